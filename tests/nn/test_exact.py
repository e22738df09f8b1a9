"""The portable arithmetic: exact sums, bounded integer weights, deterministic tables."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ufvc.nn import exact
from ufvc.nn.blocks import DCBlock
from ufvc.nn.deterministic import use_deterministic_convs


def _conv(in_ch: int, out_ch: int, kernel: int = 1, groups: int = 1, seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, groups=groups).eval()
    with torch.no_grad():
        conv.bias.mul_(20.0)  # biases large against the input: the exponent cap must act
    return conv


@pytest.mark.parametrize("bits", [6, 10, 14])
def test_integer_weights_respect_the_accumulator_budget(bits):
    torch.manual_seed(bits)
    weight = torch.randn(32, 64, 3, 3) * torch.logspace(-3, 1, 32)[:, None, None, None]
    m, g = exact.integer_weights(weight, bits)
    assert torch.equal(m, torch.round(m))
    assert bool((2**bits * m.abs().sum(1) <= exact.ACC_LIMIT).all())
    approx = m * torch.exp2(-g.double())[:, None]
    error = (approx - weight.double().flatten(1)).abs().amax(1)
    assert bool((error <= torch.exp2(-g.double() - 1) + 1e-30).all())
    # and the budget is used: one more bit of g would break it (where rounding to few
    # levels does not hide the change)
    if bits > 10:
        return
    finer = torch.round(weight.double().flatten(1) * torch.exp2(g.double() + 1)[:, None])
    assert float((2**bits * finer.abs().sum(1) > exact.ACC_LIMIT).double().mean()) > 0.9
    approx = m * torch.exp2(-g.double())[:, None]
    error = (approx - weight.double().flatten(1)).abs().amax(1)
    assert bool((error <= torch.exp2(-g.double() - 1) + 1e-30).all())


def _exact_reference(conv: exact.ExactConv2d, x: torch.Tensor) -> torch.Tensor:
    """The same integer operands summed in float64 (exact at these sizes), then float32."""
    if conv.grid_bits is not None:
        out = F.conv2d(x.double(), conv._grid_weight.double(), None, conv.stride,
                       conv.padding, conv.dilation, conv.groups)
        return out.float() + conv.bias.float()[:, None, None]
    e = exact.channel_exponents(x, conv.input_bits)
    n = torch.round(x.double() * torch.exp2(e.double()).view(1, -1, 1, 1))
    assert float(n.abs().max()) <= 2**conv.input_bits
    weight, grid = conv._integer_weights_for(e)
    m = weight.double().flatten(1) * torch.exp2(grid)[:, None]
    assert torch.equal(m, torch.round(m))  # integers on the grid 2**-G
    assert bool((2**conv.input_bits * m.abs().sum(1) <= exact.ACC_LIMIT).all())
    bias = torch.round(conv.bias.double() * torch.exp2(grid)) * torch.exp2(-grid)
    return F.conv2d(n, weight.double(), bias, conv.stride, conv.padding, conv.dilation,
                    conv.groups).float()


@pytest.mark.parametrize("kernel,groups,grid", [(1, 1, False), (3, 1, False), (3, 16, True)])
def test_exact_convolution_equals_its_exact_sum(kernel, groups, grid):
    conv = _conv(16, 16 if groups > 1 else 24, kernel, groups)
    exact.make_portable(conv)
    if grid:
        conv.exact_setup(grid_bits=exact.ACT_BITS)
        x = exact.WSILU_TABLES(torch.randn(2, 16, 9, 11) * 3)
    else:  # channels of very different ranges: each gets its own grid
        x = torch.randn(2, 16, 9, 11) * torch.logspace(-3, 1, 16).view(1, -1, 1, 1)
    out = conv(x)
    assert torch.equal(out, _exact_reference(conv, x))
    # any layout and thread count: the same bits
    channels_last = conv(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(channels_last.contiguous(), out)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(conv(x), out)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16,
                                   torch.float16])
def test_exponent_from_the_bits_is_frexps(dtype):
    tiny, big = torch.finfo(dtype).tiny, torch.finfo(dtype).max
    special = torch.tensor([0.0, -0.0, tiny, tiny / 2, tiny / 1024, tiny * 0.75, big, -big,
                            0.5, 0.75, 1.0, 2.0, 3.0, -4.0], dtype=dtype)
    generator = torch.Generator().manual_seed(0)
    spread = torch.randint(-150, 120, (20000,), generator=generator).to(dtype)
    values = torch.cat([special, torch.randn(20000, generator=generator, dtype=dtype)
                        * torch.exp2(spread)])  # float16 overflows to inf: also frexp's 0
    assert torch.equal(exact.frexp_exponent(values), torch.frexp(values)[1])
    non_finite = torch.tensor([float("inf"), -float("inf"), float("nan")], dtype=dtype)
    assert exact.frexp_exponent(non_finite).tolist() == [0, 0, 0]


def test_wsilu_table_matches_exact_decimal_rounding():
    exponent = 9
    table = exact._wsilu_table(exponent, bits=8)
    positions = list(range(0, 2**9 + 1, 7))
    for index in positions:
        units = exact._wsilu_units_exact(index - 2**8, exponent)
        assert float(table[index]) == units * 2.0**-exponent
    assert float(table.abs().max()) <= 2**8 * 2.0**-exponent


def test_wsilu_lookup_follows_the_input_grid():
    x = torch.linspace(-3, 3, 1001).view(1, 1, 7, 143)
    out = exact.WSILU_TABLES(x)
    reference = x * torch.sigmoid(4 * x)
    assert float((out - reference).abs().max()) < 3 * 2.0**-exact.ACT_BITS * 4
    e = int(exact.grid_exponent(x, exact.ACT_BITS))
    units = out.double() * 2.0**e
    assert torch.equal(units, torch.round(units))  # on the input's grid


def test_non_finite_values_give_some_finite_table_value():
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0]).view(1, 1, 2, 2)
    assert bool(torch.isfinite(exact.WSILU_TABLES(x)).all())


def test_portable_dc_block_is_close_to_float_and_switches_back():
    torch.manual_seed(1)
    block = DCBlock(32, 32, half=True).eval()
    x = torch.randn(1, 32, 12, 12)
    with torch.no_grad():
        reference = block(x)
        exact.make_portable(block)
        assert type(block) is exact.ExactDCBlock
        portable = block(x)
        exact.use_float_arithmetic(block)
        use_deterministic_convs(block)
        assert type(block) is DCBlock
        again = block(x)
    assert torch.allclose(again, reference, atol=1e-5)
    assert float((portable - reference).abs().max()) < 2e-2 * float(reference.abs().max())
    assert not torch.equal(portable, reference)
