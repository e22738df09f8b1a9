"""Parameters and multiply-accumulates (MACs) of a model, per top-level module.

Counting convention (what `ufvc info --model` prints):

* MACs = `torch.utils.flop_counter.FlopCounterMode` FLOPs / 2. That counter knows
  convolutions and matrix products only (a conv of K MACs counts 2K FLOPs, its bias
  nothing); activations, element-wise products with the qp tables, pixel (un)shuffle,
  rounding and the rate formulas are not counted. They are a few MACs per pixel against
  tens of thousands for the convolutions.
* The count runs on the `meta` device (shapes only, no arithmetic), so it is exact and
  takes well under a second even for 1080p.
* Frames are padded to a multiple of 16 as the codec does, so 1920x1080 is counted as
  1920x1088.
* encode: one full encode-side call (`x` given: encoder, hyper encoder, every prior step,
  decoder, reconstruction). decode: one decode-side call (`x` None: the encoder and hyper
  encoder are skipped). Video calls start from a steady state (memory present: the
  M-adaptor path) and are divided by the chunk size N to give MACs per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ufvc.defaults import DEFAULT_FRAME_SIZE, MAC_CONVENTIONS
from ufvc.errors import InputFormatError
from ufvc.models.channel import EstimateChannel
from ufvc.models.intra import IntraCodec
from ufvc.models.registry import CodecModel, RegisteredModel, get_model_spec
from ufvc.models.video import ChunkCodec, ChunkState
from ufvc.models.video_modules import PATCH_CHANNELS
from ufvc.nn.entropy import FactorizedDensity

FRAME_ALIGN = 16
PAPER_ALIGN = 64
OTHER = "(outside modules)"

# The paper's Table 3 (MACs per 1080p frame, parameters) for the official structures.
PAPER_TABLE = {
    "dcvc-uf-ld": (170e9, 9.7e6),
    "dcvc-uf-hts": (211e9, 81.2e6),
    "dcvc-uf-htl": (343e9, 120.5e6),
}

CONVENTIONS = MAC_CONVENTIONS


@dataclass(frozen=True)
class ModuleCost:
    """One top-level module: parameters and MACs per frame (encode- and decode-side)."""

    name: str
    parameters: int
    encode_macs: float
    decode_macs: float


@dataclass(frozen=True)
class CodecCost:
    """The per-module costs of one codec (intra or video) at one frame size."""

    codec: str
    frames_per_call: int
    modules: tuple[ModuleCost, ...]

    @property
    def parameters(self) -> int:
        return sum(m.parameters for m in self.modules)

    @property
    def encode_macs(self) -> float:
        return sum(m.encode_macs for m in self.modules)

    @property
    def decode_macs(self) -> float:
        return sum(m.decode_macs for m in self.modules)


@dataclass(frozen=True)
class ModelComplexity:
    """Costs of a registered model's two codecs."""

    model: str
    frame_size: tuple[int, int]  # (H, W) asked for
    counted_size: tuple[int, int]  # (H, W) the networks process (padded or cropped)
    intra: CodecCost
    video: CodecCost
    convention: str


class _ZeroSymbolChannel:
    """The decoder side of a stream whose symbols are all zero: shapes are all a
    decode-side cost count needs."""

    def exchange_z(self, z, density: FactorizedDensity, qp, shape):
        return torch.zeros(shape, device=qp.device, dtype=density.h.dtype)

    def begin_y(self, scales, masks):
        pass

    def exchange_y(self, step, residual, scales, mask):
        return torch.zeros_like(scales)


def _parameters_per_child(module: nn.Module) -> dict[str, int]:
    counts = {name: sum(p.numel() for p in child.parameters())
              for name, child in module.named_children()}
    for name, parameter in module.named_parameters(recurse=False):
        counts[name] = parameter.numel()
    return counts


def _macs_per_child(module: nn.Module, call, *, count_bias: bool) -> dict[str, float]:
    """MACs of each top-level child of `module` while `call()` runs (ops outside every
    child under OTHER). Forward hooks read the running total before and after each call;
    with `count_bias` every output element of a biased convolution adds one MAC."""
    counter = FlopCounterMode(display=False)
    bias_macs = [0]
    totals: dict[str, float] = {}
    started: dict[str, list[float]] = {}
    handles = []

    def running() -> float:
        return counter.get_total_flops() / 2 + bias_macs[0]

    def pre_hook(name):
        def hook(_module, _inputs):
            started.setdefault(name, []).append(running())
        return hook

    def post_hook(name):
        def hook(_module, _inputs, _output):
            totals[name] = totals.get(name, 0.0) + running() - started[name].pop()
        return hook

    def bias_hook(conv, _inputs, output):
        if conv.bias is not None:
            bias_macs[0] += output.numel()

    # Bias hooks first: a child's post hook must see the bias of its own last conv.
    if count_bias:
        handles += [m.register_forward_hook(bias_hook) for m in module.modules()
                    if isinstance(m, nn.Conv2d)]
    for name, child in module.named_children():
        handles.append(child.register_forward_pre_hook(pre_hook(name)))
        handles.append(child.register_forward_hook(post_hook(name)))
    try:
        with torch.no_grad(), counter:
            call()
    finally:
        for handle in handles:
            handle.remove()
    outside = running() - sum(totals.values())
    if outside:
        totals[OTHER] = outside
    return totals


def _codec_cost(
    label: str, module: nn.Module, frames: int, encode_call, decode_call, *, count_bias: bool
) -> CodecCost:
    params = _parameters_per_child(module)
    encode = _macs_per_child(module, encode_call, count_bias=count_bias)
    decode = _macs_per_child(module, decode_call, count_bias=count_bias)
    names = list(params) + [n for n in (*encode, *decode) if n not in params]
    modules = tuple(
        ModuleCost(name, params.get(name, 0), encode.get(name, 0.0) / frames,
                   decode.get(name, 0.0) / frames)
        for name in names
    )
    return CodecCost(label, frames, modules)


def intra_cost(
    intra: IntraCodec, frame_size: tuple[int, int], *, count_bias: bool = False
) -> CodecCost:
    """Per-module cost of one intra frame of `frame_size` (H, W)."""
    device = next(intra.parameters()).device
    x = torch.zeros(1, 3, *frame_size, device=device)
    qp = torch.zeros(1, dtype=torch.long, device=device)
    return _codec_cost(
        "intra", intra, 1,
        lambda: intra.code_frame(x, qp, EstimateChannel()),
        lambda: intra.code_frame(None, qp, _ZeroSymbolChannel(), frame_size=frame_size),
        count_bias=count_bias,
    )


def video_cost(
    video: ChunkCodec, frame_size: tuple[int, int], *, count_bias: bool = False
) -> CodecCost:
    """Per-module cost per frame of one steady-state chunk call at `frame_size` (H, W)."""
    device = next(video.parameters()).device
    c = video.config
    height, width = (-(-s // FRAME_ALIGN) * FRAME_ALIGN // 8 for s in frame_size)
    state = ChunkState(
        ref_feature=torch.zeros(1, c.feature_channels, height, width, device=device),
        memory=torch.zeros(1, c.memory_channels, height, width, device=device),
        ref_frame=torch.zeros(1, PATCH_CHANNELS, height, width, device=device),
    )
    x = torch.zeros(1, c.frames, 3, *frame_size, device=device)
    qp = torch.zeros(1, dtype=torch.long, device=device)
    return _codec_cost(
        "video", video, c.frames,
        lambda: video.code_chunk(x, qp, state, EstimateChannel()),
        lambda: video.code_chunk(None, qp, state, _ZeroSymbolChannel(), frame_size=frame_size),
        count_bias=count_bias,
    )


def model_complexity(
    name: str | RegisteredModel,
    frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE,
    *,
    convention: str = "ufvc",
) -> ModelComplexity:
    """Parameters and multiply-accumulates (MACs) of a model, per top-level module.

Counting conventions (`ufvc info --model NAME [--convention ...]`):

* "ufvc" (default): MACs = `torch.utils.flop_counter.FlopCounterMode` FLOPs / 2. That
  counter knows convolutions and matrix products only (a conv of K MACs counts 2K FLOPs,
  its bias nothing); activations, the qp-table products, pixel (un)shuffle, rounding and
  the rate formulas are not counted (a few operations per pixel against tens of thousands
  for the convolutions). Frames are padded up to a multiple of 16 as the codec does, so
  1920x1080 is counted as 1920x1088.
* "paper": the paper's Table 3 numbers (LD 170G, HT-S 211G, HT-L 343G per 1080p frame)
  are reproduced to the rounding by counting, in addition, one MAC per output element of
  every biased convolution (as thop-style module counters do) on a 1080p frame cropped to
  1920x1024, the largest multiple of 64 that the release's training forward accepts:
  170.2G, 210.8G, 342.7G. The "ufvc" numbers at 1920x1088 are 180.0G, 223.3G, 363.2G,
  1/0.944 of the paper's; at 1920x1024 without bias they are 169.4G, 210.2G, 341.8G.

Both count one full encode-side call (`x` given: encoder, hyper encoder, every prior
step, decoder, reconstruction) and one decode-side call (`x` None: the encoder and hyper
encoder are skipped). Video calls start from a steady state (memory present: the
M-adaptor path) and are divided by the chunk size N to give MACs per frame. The count
runs on the `meta` device (shapes only), so it is exact and fast even for 1080p.
"""
    if convention not in CONVENTIONS:
        raise InputFormatError(
            f"unknown MAC convention {convention!r} (known: {', '.join(CONVENTIONS)})"
        )
    spec = name if isinstance(name, RegisteredModel) else get_model_spec(name)
    height, width = frame_size
    if height < 1 or width < 1:
        raise InputFormatError(f"frame size must be positive, got {width}x{height}")
    count_bias = convention == "paper"
    if count_bias:
        height, width = height // PAPER_ALIGN * PAPER_ALIGN, width // PAPER_ALIGN * PAPER_ALIGN
        if height == 0 or width == 0:
            raise InputFormatError(
                f"the paper convention needs frames of at least {PAPER_ALIGN}x{PAPER_ALIGN}"
            )
    counted = (-(-height // FRAME_ALIGN) * FRAME_ALIGN, -(-width // FRAME_ALIGN) * FRAME_ALIGN)
    with torch.device("meta"):
        model = CodecModel(spec.name, spec.model_id, spec.intra, spec.video)
    return ModelComplexity(
        model=spec.name,
        frame_size=(int(frame_size[0]), int(frame_size[1])),
        counted_size=counted,
        intra=intra_cost(model.intra, (height, width), count_bias=count_bias),
        video=video_cost(model.video, (height, width), count_bias=count_bias),
        convention=CONVENTIONS[convention],
    )
