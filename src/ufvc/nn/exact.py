"""Portable arithmetic: networks that compute the same bits on every machine.

A decoder must recompute its encoder's entropy parameters and reconstructions exactly,
on another CPU, instruction set, GPU, thread count or PyTorch version. Float kernels do
not promise that: a convolution sums its products in an order of the kernel's choosing,
and sigmoid or exp are approximations that differ between implementations. This module
keeps the float kernels (their speed) and removes the freedom they have:

* **Every sum is exact.** A convolution's input is rounded to a fixed-point grid
  (``n * 2**-e``, ``|n| <= 2**bits``) and its weights to integers per output channel
  (``m * 2**-g``), with ``2**bits * sum|m| + |bias units| <= 2**24`` for every output
  channel. Every product and partial sum is then an integer multiple of one power of
  two below 2**24 in magnitude, which float32 represents exactly, so any summation order,
  blocking, thread split or instruction set gives the same result.
* **The grid follows the data, exactly.** ``e`` is derived from the tensor's largest
  magnitude (a max is exact) with ``frexp``'s exponent (exact; read from the float's
  bits, `frexp_exponent`), so no calibration is stored and every machine picks the same
  grid.
* **No library transcendental.** WSiLU is a lookup table indexed by the input's grid
  position; its entries are computed once per grid in float64 and rounded to the grid,
  with near-ties decided in exact decimal arithmetic, so every machine builds the same
  table.
* **Everything else is one IEEE operation at a time** (an add, a per-channel multiply, a
  division, a rounding), which IEEE 754 defines to the bit; eager PyTorch runs each as
  its own kernel, and inductor compiles without contraction or reassociation.

``make_portable(module)`` switches the convolutions and DC blocks of a (decoder-side)
module to this arithmetic in place; parameters stay as they are.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import torch
import torch.nn.functional as F
from torch import nn

from ufvc.nn.blocks import DCBlock
from ufvc.nn.deterministic import gemm_conv2d

ACC_LIMIT = 2**23  # integer units an accumulator may reach from products (and from bias)
ACT_BITS = 12  # grid positions on each side of zero in a WSiLU table: 2**12
MIN_INPUT_BITS, MAX_INPUT_BITS = 6, 15  # range of a convolution's input precision
MAX_EXPONENT = 48  # |e|, |g| <= 48: every 2**-(e + g) stays a normal float32
MAX_GRID = 96  # |G| of a product grid 2**-G
# Grids of the WSiLU tables: 2**-e for e in this range. Larger inputs (beyond 2**28)
# saturate at the table's ends; smaller ones (below 2**-12) get the grid 2**-24.
TABLE_EXPONENTS = (-16, 24)


def pow2(k: torch.Tensor) -> torch.Tensor:
    """2**k as float32 for integer k in -126..127, built from its bits (exact everywhere)."""
    return ((k.to(torch.int32) + 127) << 23).view(torch.float32)


# Per float type: the integer type of its bits, the mantissa width, the exponent mask, and
# the exponent bias as frexp counts it (a mantissa in [0.5, 1)).
_FLOAT_LAYOUT = {torch.float32: (torch.int32, 23, 0xFF, 126),
                 torch.float64: (torch.int64, 52, 0x7FF, 1022)}


def frexp_exponent(x: torch.Tensor) -> torch.Tensor:
    """The exponent of `torch.frexp(x)` (int32; 0 for zero and non-finite x), read from
    x's bits: exact, and inductor compiles it (its CPU code for frexp does not build).
    Narrower floats (bfloat16, float16 in training) are read as float32, which holds
    their values exactly."""
    if x.dtype not in _FLOAT_LAYOUT:
        x = x.float()
    int_type, mantissa_bits, mask, bias = _FLOAT_LAYOUT[x.dtype]
    magnitude = x.abs()
    # Subnormals have no implicit leading bit: scale them into the normal range (exact).
    subnormal = magnitude < torch.finfo(x.dtype).tiny
    scaled = torch.where(subnormal, magnitude * 2.0**64, magnitude)
    biased = (scaled.view(int_type) >> mantissa_bits) & mask
    exponent = biased.to(torch.int32) - bias - torch.where(subnormal, 64, 0).to(torch.int32)
    return torch.where((magnitude == 0) | ~torch.isfinite(x), 0, exponent).to(torch.int32)


def grid_exponent(x: torch.Tensor, bits: int) -> torch.Tensor:
    """The exponent e (an int32 tensor) of the finest grid n * 2**-e with |n| <= 2**bits
    holding all of x; an exact function of x's largest magnitude. A non-finite x gives
    some grid (the decoder's CRC check reports such a stream)."""
    amax = x.detach().abs().amax() if x.numel() else x.new_zeros(())
    exponent = frexp_exponent(amax)  # amax = m * 2**exponent, 0.5 <= m < 1
    return torch.clamp(bits - exponent, -MAX_EXPONENT, MAX_EXPONENT)


def channel_exponents(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Per input channel, the exponent e_i (int32 [C]) of the finest grid n 2**-e_i with
    |n| <= 2**bits holding channel i of x [B, C, H, W] (exact, as `grid_exponent`)."""
    x = x.detach()
    amax = torch.maximum(x.amax(dim=(0, 2, 3)), -x.amin(dim=(0, 2, 3)))  # no |x| copy
    return torch.clamp(bits - frexp_exponent(amax), -MAX_EXPONENT, MAX_EXPONENT)


def integer_weights(weight: torch.Tensor, input_bits: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer weights m [O, K] and exponents g [O]: w ~ m * 2**-g with
    2**input_bits * sum|m| <= ACC_LIMIT per output channel."""
    w = weight.detach().double().flatten(1)
    l1 = w.abs().sum(1)
    budget = ACC_LIMIT / 2**input_bits
    safe = torch.where(l1 > 0, l1, torch.ones_like(l1))
    g = torch.floor(torch.log2(budget / safe)).clamp(-MAX_EXPONENT, MAX_EXPONENT)
    m = torch.round(w * torch.exp2(g)[:, None])
    over = m.abs().sum(1) > budget  # rounding up may cross the budget: one bit less
    g = torch.where(over, g - 1, g)
    m = torch.round(w * torch.exp2(g)[:, None])
    return m, g.long()


def _balanced_input_bits(weight: torch.Tensor) -> int:
    """Input precision of a convolution: as many bits as its typical integer weight gets
    (the median channel's largest weight, 2**g * max|w|)."""
    w = weight.detach().double().flatten(1).abs()
    l1, peak = w.sum(1), w.amax(1)
    used = l1 > 0
    if not bool(used.any()):
        return MAX_INPUT_BITS
    bits = torch.arange(MAX_INPUT_BITS, MIN_INPUT_BITS - 1, -1, dtype=torch.float64)
    g = torch.floor(torch.log2(ACC_LIMIT / 2**bits[:, None] / l1[used]))
    weight_bits = torch.log2(peak[used] * torch.exp2(g)).median(dim=1).values
    fits = torch.nonzero(weight_bits >= bits - 1).flatten()
    return int(bits[fits[0]]) if fits.numel() else MIN_INPUT_BITS


class ExactConv2d(nn.Conv2d):
    """A convolution whose output is exact: input snapped to a data-derived grid, integer
    weights, products and sums below 2**24 units (see the module docstring).

    `grid_bits` set: the input is already on a grid with |n| <= 2**grid_bits (a WSiLU
    table's output), used as it is, and the bias is added after the sum.
    """

    grid_bits: int | None = None

    def exact_setup(self, grid_bits: int | None = None) -> None:
        """Derive the integer weights (grid mode) or the float64 weights and limits the
        per-call integer weights are made from (snap mode)."""
        self.grid_bits = grid_bits
        device = self.weight.device
        if grid_bits is not None:
            self.input_bits = grid_bits
            m, g = integer_weights(self.weight, grid_bits)
            self._grid_weight = (m * torch.exp2(-g.double())[:, None]).float() \
                .view_as(self.weight).to(device)
            return
        columns = self.weight[0].numel()
        # At most 2**(22 - bits) columns: rounding the weights then stays in the budget.
        self.input_bits = min(_balanced_input_bits(self.weight),
                              22 - math.ceil(math.log2(columns)))
        self._w64 = self.weight.detach().double().flatten(1).to(device)
        self._taps = self._w64.shape[1] // (self.in_channels // self.groups)
        # The bias shares the products' grid 2**-G: |b| 2**G <= ACC_LIMIT caps G.
        cap = torch.full((self.out_channels,), float(MAX_GRID), dtype=torch.float64)
        if self.bias is not None:
            bias = self.bias.detach().double().abs().cpu()
            room = torch.floor(torch.log2(ACC_LIMIT / bias.clamp_min(2.0**-MAX_GRID)))
            cap = torch.minimum(cap, room)
        self._grid_cap = cap.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self._forward_training(x)
        x = x.float()
        if self.grid_bits is not None:
            out = _conv(self, x, self._grid_weight.to(x.device), None)
            return out if self.bias is None else out + self.bias.float()[:, None, None]
        e = channel_exponents(x, self.input_bits)
        n = torch.round(x * pow2(e).view(1, -1, 1, 1))  # |n| <= 2**input_bits per channel
        weight, grid = self._integer_weights_for(e)
        bias = None
        if self.bias is not None:
            bias = (torch.round(self.bias.detach().double() * torch.exp2(grid))
                    * torch.exp2(-grid)).float()
        return _conv(self, n, weight, bias)

    def _integer_weights_for(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights m * 2**-G (Conv2d layout, float32) for inputs n_i 2**-e_i, with integer
        m = round(w 2**(G - e_i)) and 2**bits * sum|m| <= ACC_LIMIT per output channel,
        and G [O] (float64). Every step is exact, so every machine derives the same G."""
        w = self._w64.to(e.device)
        shift = e.double().repeat_interleave(self._taps)  # e of each weight column
        scaled = w.abs() * torch.exp2(-shift)  # |w_ci| 2**-e_i, exact
        # An exact upper bound of each row's sum: fixed point with the largest term near
        # 2**40, summed in int64; its bit length P gives sum < 2**(P - s).
        top = frexp_exponent(scaled.amax().clamp_min(2.0**-1000))
        s = 40 - top
        fixed = torch.ceil(scaled * torch.exp2(s.double())).to(torch.int64).sum(1)
        bits = frexp_exponent(fixed.double().clamp_min(1.0))
        budget = int(math.log2(ACC_LIMIT)) - self.input_bits
        grid = (budget - 1 - (bits - s)).double()  # sum|m| < 2**(budget-1) + K/2
        grid = torch.minimum(grid, self._grid_cap.to(e.device))
        # One step finer where it still fits (sums of integers: exact in float64).
        finer = torch.round(w * torch.exp2(grid[:, None] + 1 - shift))
        fits = finer.abs().sum(1) * 2.0**self.input_bits <= ACC_LIMIT
        fits &= grid + 1 <= self._grid_cap.to(e.device)
        grid = torch.where(fits, grid + 1, grid).clamp(-MAX_GRID, MAX_GRID)
        m = torch.round(w * torch.exp2(grid[:, None] - shift))
        weight = (m * torch.exp2(-grid)[:, None]).float().view_as(self.weight)
        return weight, grid

    def _forward_training(self, x: torch.Tensor) -> torch.Tensor:
        """Quantisation-aware training: the roundings of the input and (approximately, on
        a per-channel budget) of the weights, from the current weights, with
        straight-through gradients, in the float kernels and autocast of training."""
        m, g = integer_weights(self.weight, self.input_bits)
        step = torch.exp2(-g.to(self.weight.device, self.weight.dtype))
        weight = _straight_through(self.weight,
                                   (m.to(self.weight) * step[:, None]).view_as(self.weight))
        if self.grid_bits is not None:  # input already on its grid (a WSiLU output)
            return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation,
                            self.groups)
        scale = pow2(channel_exponents(x, self.input_bits)).view(1, -1, 1, 1)
        x = _straight_through(x, torch.round(x.detach() * scale) / scale)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


def _straight_through(value: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    """`rounded` forward, the gradient of `value` backward."""
    return value + (rounded.to(value.dtype) - value).detach()


def wsilu_training(x: torch.Tensor, bits: int = ACT_BITS) -> torch.Tensor:
    """What the WSiLU table computes (input on its grid, output rounded to it), with
    straight-through gradients for quantisation-aware training."""
    scale = pow2(torch.clamp(grid_exponent(x, bits), *TABLE_EXPONENTS))
    x = _straight_through(x, torch.round(x.detach() * scale) / scale)
    y = x * torch.sigmoid(4.0 * x)
    return _straight_through(y, torch.round(y.detach() * scale) / scale)


def _conv(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor,
          bias: torch.Tensor | None) -> torch.Tensor:
    """conv's convolution with other weights: a GEMM for dense kernels (one code path on
    every device), the library's depthwise kernel otherwise; both exact here."""
    if conv.groups == 1:
        return gemm_conv2d(conv, x, weight, bias)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _wsilu_table(exponent: int, bits: int = ACT_BITS) -> torch.Tensor:
    """WSiLU(n * 2**-e) rounded to the grid 2**-e, for n = -2**bits .. 2**bits (float32)."""
    n = torch.arange(-(2**bits), 2**bits + 1, dtype=torch.float64)
    x = n * 2.0**-exponent
    scaled = x / (1.0 + torch.exp(-4.0 * x)) * 2.0**exponent
    rounded = torch.round(scaled)
    # float64 sigmoid may differ in its last bits between machines; where the value is
    # that close to a rounding midpoint, decide in exact decimal arithmetic instead.
    near = ((scaled - torch.floor(scaled)) - 0.5).abs() < 1e-9
    for index in torch.nonzero(near).flatten().tolist():
        rounded[index] = _wsilu_units_exact(int(n[index]), exponent)
    return (rounded * 2.0**-exponent).float()


def _wsilu_units_exact(n: int, exponent: int) -> float:
    """round(WSiLU(n 2**-e) 2**e), half to even, in 60-digit decimal arithmetic."""
    with localcontext() as ctx:
        ctx.prec = 60
        x = Decimal(n) * Decimal(2) ** -exponent
        units = x / (1 + (Decimal(-4) * x).exp()) * Decimal(2) ** exponent
        return float(units.to_integral_value())  # context rounding: half to even


class WSiLUTable:
    """WSiLU as lookups in one table per input grid, all rows built on first use."""

    def __init__(self, bits: int = ACT_BITS) -> None:
        self.bits = bits
        self.row = 2 ** (bits + 1) + 1
        self._tables: dict[torch.device, torch.Tensor] = {}

    def table(self, device: torch.device) -> torch.Tensor:
        """Rows e = TABLE_EXPONENTS[0] .. [1], flattened."""
        table = self._tables.get(device)
        return self._build(device) if table is None else table

    # Built once, eagerly: traced by torch.compile, the rows' data-dependent tie checks
    # would split a compiled network into about a hundred graphs.
    @torch.compiler.disable
    def _build(self, device: torch.device) -> torch.Tensor:
        low, high = TABLE_EXPONENTS
        rows = [_wsilu_table(e, self.bits) for e in range(low, high + 1)]
        table = self._tables[device] = torch.cat(rows).to(device)
        return table

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """WSiLU(x) on the grid of x; |output| <= 2**bits units of that grid."""
        x = x.float()
        low, high = TABLE_EXPONENTS
        e = torch.clamp(grid_exponent(x, self.bits), low, high)
        # floor(x 2**e + 2**bits + 1/2) is the grid position from 0 (the int conversion
        # truncates, which is floor for non-negative values), plus the row's offset.
        start = (e - low).to(torch.float32) * self.row + (2**self.bits + 0.5)
        # In memory order (channels_last stays channels_last, without a copy).
        layout = x.permute(0, 2, 3, 1) if _channels_last(x) else x
        position = torch.add(layout * pow2(e), start).to(torch.int32)
        position = position.clamp_(0, self.row * (high - low + 1) - 1)  # non-finite x
        out = self.table(x.device).index_select(0, position.view(-1)).view(layout.shape)
        return out.permute(0, 3, 1, 2) if layout is not x else out


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous()


WSILU_TABLES = WSiLUTable()


def exact_group_sum4(x: torch.Tensor) -> torch.Tensor:
    """channels 0::4 + 1::4 + 2::4 + 3::4 of values on one grid: exact in any order."""
    b, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return x.permute(0, 2, 3, 1).view(b, h, w, c // 4, 4).sum(-1).permute(0, 3, 1, 2)
    return x.view(b, c // 4, 4, h, w).sum(dim=2)


def make_portable(module: nn.Module) -> nn.Module:
    """Switch every DC block and convolution inside `module` to the portable arithmetic,
    in place (parameters unchanged; call again after the weights change: it derives the
    integer weights anew)."""
    on_grid = set()
    for sub in module.modules():
        if isinstance(sub, DCBlock):
            sub.__class__ = ExactDCBlock
            on_grid.add(id(sub.dc[2]))  # the depthwise conv after the WSiLU table
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            _to_exact(sub, ACT_BITS if id(sub) in on_grid else None)
    return module


def use_float_arithmetic(module: nn.Module) -> nn.Module:
    """Undo `make_portable`: plain DC blocks and `nn.Conv2d`s again, in place."""
    for sub in module.modules():
        if isinstance(sub, ExactDCBlock):
            sub.__class__ = DCBlock
        elif isinstance(sub, ExactConv2d):
            sub.__class__ = nn.Conv2d
    return module


def _to_exact(conv: nn.Conv2d, grid_bits: int | None = None) -> None:
    conv.__class__ = ExactConv2d
    conv.exact_setup(grid_bits)


def is_portable(module: nn.Module) -> bool:
    """True when `module` holds convolutions in the portable arithmetic."""
    return any(isinstance(sub, ExactConv2d) for sub in module.modules())


class ExactDCBlock(DCBlock):
    """A DC block in the portable arithmetic: exact convolutions, table WSiLU, exact
    group sums (the float block's structure and parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            x = x.float()
        if self.adaptor is not None:
            x = self.adaptor(x)
        act = wsilu_training if self.training else WSILU_TABLES
        reduce, _, depthwise, expand = self.dc
        out = x + expand(depthwise(act(reduce(x))))
        widen, _, narrow = self.ffn
        out = out + narrow(exact_group_sum4(act(widen(out))))
        if self.shortcut:
            out = out + x
        return out
