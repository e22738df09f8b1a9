"""The DCVC-UF chunk video codec: N frames per call, conditioned on a recurrent memory.

One call codes a chunk of N frames (paper sec. 3; HT-S/HT-L: N = 8, LD: N = 1)::

    memory = adaptor_I(ref)                  if the memory is empty (after intra or reset)
           = adaptor_M(cat(memory, ref))     otherwise
    ctx    = feature_extractor(memory)
    y      = encoder(cat(unshuffle8(frames), ctx))            (skipped when decoding)
    z_hat  = channel(hyper_encoder(y))
    params = fusion(cat(hyper_decoder(z_hat), temporal_prior(memory)))
           = (quant_step, scales, means);  y_hat via the multi-step spatial prior
    F      = decoder(cat(up(y_hat), ctx)) * q_decoder[qp]
    frames = recon_head(F), one 192-channel patch map per frame -> pixel_shuffle(8)
           (blended with the previous frame's patch map by gate(F), with `reference_skip`)
    ref    = F for the next call, or the last frame's patch map on reset (memory cleared)

The networks hold no state: `ChunkState` carries the reference feature and memory from
call to call. `ChunkCodec.code_chunk` is the single path for training, rate estimation,
encoding and decoding; what happens to the latents is up to the `LatentChannel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from ufvc.errors import InputFormatError
from ufvc.models.channel import LatentChannel
from ufvc.models.qp_tables import step_table
from ufvc.models.spatial_prior import EntropyMode, LatentCode, build_spatial_prior
from ufvc.models.video_modules import (
    PATCH,
    PATCH_CHANNELS,
    BlockStack,
    BranchReconHead,
    Decoder,
    Encoder,
    HyperDecoder,
    HyperEncoder,
    PriorFusion,
    SharedReconHead,
    SingleReconHead,
    TemporalPriorEncoder,
    pad_to_multiple,
)
from ufvc.nn.entropy import FactorizedDensity

FRAME_MULTIPLE = 16  # frames are padded to this (y is at 1/16)
LATENT_MULTIPLE = 4  # y is padded to this before the hyper encoder (z is at 1/64)
MIN_QUANT_STEP = 0.5
# The reference gate's output is this times its convolution's: Adam moves a weight by about
# the learning rate per step, so a closed gate (zero weights) at fine-tuning rates (3e-5)
# would need tens of thousands of steps to open; a power of two scales exactly.
REFERENCE_GATE_GAIN = 32.0


class ReconLayout(Enum):
    """Key layout of the reconstruction head."""

    SINGLE = "single"  # LD: recon_head.conv.<block>, recon_head.head (N = 1)
    BRANCHES = "branches"  # HT-L: recon_head.conv.<frame>.<layer>
    SHARED_GROUPS = "shared-groups"  # HT-S: recon_head.conv1.<group>.<block>, conv2.<frame>.<layer>


@dataclass(frozen=True)
class ChunkCodecConfig:
    """Shape of a chunk video codec; the official models are `LD`, `HTS` and `HTL`."""

    frames: int  # N, frames coded per call
    y_channels: int
    z_channels: int
    feature_channels: int  # d: encoder/decoder width and the decoder feature F
    memory_channels: int  # m: memory, context and temporal prior width
    recon_channels: int  # width of each frame's reconstruction branch
    encoder_blocks: int
    decoder_blocks: int
    adaptor_i_blocks: int
    adaptor_m_blocks: int
    extractor_blocks: int
    recon_blocks: int  # DC blocks per reconstruction branch
    entropy_mode: EntropyMode
    recon_layout: ReconLayout = ReconLayout.BRANCHES
    recon_shared_blocks: int = 1  # SHARED_GROUPS: DC blocks of each shared first stage
    recon_group_size: int = 2  # SHARED_GROUPS: consecutive frames per shared stage
    fusion_blocks: int = 3
    spatial_prior_blocks: int = 3  # DC blocks of the shared step network
    half_main: bool = False  # half-width DC blocks in adaptors, extractor, encoder, decoder
    half_prior: bool = False  # ... in hyper coder, temporal prior, fusion, spatial prior
    half_recon: bool = False  # ... in the reconstruction head
    resample_shortcut: bool = False  # DC blocks inside down/up blocks add their input again
    hyper_up_bias: bool = False  # the hyper decoder's 1x1 up-convs carry a bias
    decoder_up_kernel: int = 1  # kernel of the decoder's sub-pixel up-conv (bias when > 1)
    encoder_tail_block: bool = False  # LD layout: last encoder DC block held as encoder.conv2
    decoder_output_conv: bool = False  # LD layout: a 1x1 conv (decoder.conv2) ends the decoder
    q_feature_on_prior: bool = False  # LD: q_feature scales the temporal prior, not the memory
    # Our models: initial quantisation step multiplier at qp 0 and qp 63 (a learned
    # per-qp table `q_step`); empty for the official structures, which have none.
    qp_step_range: tuple[float, ...] = ()
    # Our models: each frame's patch map moves towards the previous frame's (the reference's
    # last frame) by a gate per 8x8 block, a 1x1 conv of F (`reference_gate`, N outputs):
    # (1 - gate) * patches + gate * reference. The official structures reach the reference
    # only through the memory, which cannot copy a still scene (docs/training.md, session
    # 41); this path copies it at no cost. A blend rather than a sum: a trained head already
    # outputs the picture, and the blend's gradient at a closed gate is the correlation of
    # the error with what the head misses of the reference, not with the reference itself.
    reference_skip: bool = False
    num_qp: int = 64

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.recon_layout is ReconLayout.SINGLE and self.frames != 1:
            raise ValueError("the single recon head layout codes one frame per call")
        steps = 2 if self.entropy_mode is EntropyMode.STREAMLINED_CHECKERBOARD else 4
        if self.y_channels % steps:
            raise ValueError(f"y_channels must be divisible by {steps} for {self.entropy_mode}")


# Official release structures; parameter counts equal the reference manifests.
LD = ChunkCodecConfig(  # 9,650,176 parameters
    frames=1, y_channels=128, z_channels=128, feature_channels=256, memory_channels=256,
    recon_channels=256, encoder_blocks=3, decoder_blocks=3, adaptor_i_blocks=4,
    adaptor_m_blocks=4, extractor_blocks=5, recon_blocks=3,
    entropy_mode=EntropyMode.STREAMLINED_CHECKERBOARD, recon_layout=ReconLayout.SINGLE,
    spatial_prior_blocks=2, half_main=True, half_prior=True, half_recon=True,
    encoder_tail_block=True, decoder_output_conv=True, q_feature_on_prior=True,
)
HTS = ChunkCodecConfig(  # 81,157,632 parameters
    frames=8, y_channels=256, z_channels=128, feature_channels=512, memory_channels=512,
    recon_channels=256, encoder_blocks=6, decoder_blocks=7, adaptor_i_blocks=4,
    adaptor_m_blocks=6, extractor_blocks=5, recon_blocks=3,
    entropy_mode=EntropyMode.STREAMLINED_QUADTREE, recon_layout=ReconLayout.SHARED_GROUPS,
    recon_shared_blocks=1, recon_group_size=2, half_main=True,
)
HTL = ChunkCodecConfig(  # 120,538,368 parameters
    frames=8, y_channels=256, z_channels=128, feature_channels=512, memory_channels=512,
    recon_channels=256, encoder_blocks=7, decoder_blocks=11, adaptor_i_blocks=3,
    adaptor_m_blocks=10, extractor_blocks=2, recon_blocks=5,
    entropy_mode=EntropyMode.PER_STEP_QUADTREE, recon_layout=ReconLayout.BRANCHES,
    resample_shortcut=True, hyper_up_bias=True, decoder_up_kernel=3,
)
# Test-sized model: every structural option of the streamlined family, in milliseconds.
TINY = ChunkCodecConfig(  # 161,456 parameters
    frames=2, y_channels=16, z_channels=8, feature_channels=32, memory_channels=32,
    recon_channels=16, encoder_blocks=1, decoder_blocks=1, adaptor_i_blocks=1,
    adaptor_m_blocks=1, extractor_blocks=1, recon_blocks=1,
    entropy_mode=EntropyMode.STREAMLINED_QUADTREE, recon_layout=ReconLayout.SHARED_GROUPS,
    fusion_blocks=1, spatial_prior_blocks=1, half_main=True,
)


@dataclass(frozen=True)
class ChunkState:
    """What one call leaves for the next: the reference feature and the memory.

    `ref_feature` is at 1/8 of the padded frame size; `memory` is None right after an
    intra frame or a reset (the next call then builds it with feature adaptor I).
    `ref_frame` is the last reconstructed frame's patch map [B, 192, h/8, w/8] (unclamped),
    which codecs with `reference_skip` add to their output.
    """

    ref_feature: torch.Tensor
    memory: torch.Tensor | None
    ref_frame: torch.Tensor | None = None


@dataclass(frozen=True)
class ChunkResult:
    """Output of one call."""

    x_hat: torch.Tensor  # [B, N, 3, H, W] reconstruction, not clamped
    state: ChunkState  # state for the next call
    latent: LatentCode  # y_hat, symbols, scales (and the rounded values when encoding)
    z_hat: torch.Tensor  # integer hyper-latent symbols, as floats


class ChunkCodec(nn.Module):
    """DCVC-UF video model (official class DMC) built from a `ChunkCodecConfig`."""

    # What a decoder recomputes (the portable arithmetic covers these; `encoder` and
    # `hyper_encoder` run only in the encoder and stay in float). Absent names (the
    # checkerboard prior has no reduction or adaptors) are skipped.
    DECODER_PARTS = ("feature_adaptor_i", "feature_adaptor_m", "feature_extractor",
                     "hyper_decoder", "temporal_prior_encoder", "y_prior_fusion",
                     "y_spatial_prior_reduction", "y_spatial_prior_adaptor_1",
                     "y_spatial_prior_adaptor_2", "y_spatial_prior_adaptor_3",
                     "y_spatial_prior", "decoder", "recon_head", "reference_gate")

    def __init__(self, config: ChunkCodecConfig) -> None:
        super().__init__()
        c = config
        self.config = config
        d, m, y = c.feature_channels, c.memory_channels, c.y_channels
        # Registration follows the official state-dict order.
        self.q_encoder = nn.Parameter(torch.ones(c.num_qp, d))
        self.q_decoder = nn.Parameter(torch.ones(c.num_qp, d))
        self.q_feature = nn.Parameter(torch.ones(c.num_qp, m))
        self.bit_estimator_z = FactorizedDensity(c.z_channels, c.num_qp)
        self.feature_adaptor_i = BlockStack(PATCH_CHANNELS, m, c.adaptor_i_blocks,
                                            half=c.half_main)
        self.feature_adaptor_m = BlockStack(m + d, m, c.adaptor_m_blocks, half=c.half_main)
        self.feature_extractor = BlockStack(m, m, c.extractor_blocks, half=c.half_main)
        self.encoder = Encoder(PATCH_CHANNELS * c.frames + m, d, y, c.encoder_blocks,
                               half=c.half_main, tail_block=c.encoder_tail_block)
        self.hyper_encoder = HyperEncoder(y, c.z_channels, half=c.half_prior,
                                          shortcut=c.resample_shortcut)
        self.hyper_decoder = HyperDecoder(c.z_channels, y, half=c.half_prior,
                                          shortcut=c.resample_shortcut, up_bias=c.hyper_up_bias)
        self.temporal_prior_encoder = TemporalPriorEncoder(m, half=c.half_prior,
                                                           shortcut=c.resample_shortcut)
        self.y_prior_fusion = PriorFusion(y + m, 3 * y, c.fusion_blocks, half=c.half_prior)
        self.spatial_prior = build_spatial_prior(c.entropy_mode, y, 3 * y,
                                                 blocks=c.spatial_prior_blocks, half=c.half_prior)
        self.spatial_prior.attach(self)
        self.decoder = Decoder(y, d, m, c.decoder_blocks, half=c.half_main,
                               up_kernel=c.decoder_up_kernel, output_conv=c.decoder_output_conv)
        self.recon_head = _build_recon_head(c)
        self.q_step = step_table(c.qp_step_range, c.num_qp)
        if c.reference_skip:
            # Zero at first: a codec given this path starts as the one without it.
            self.reference_gate = nn.Conv2d(d, c.frames, 1)
            nn.init.zeros_(self.reference_gate.weight)
            nn.init.zeros_(self.reference_gate.bias)

    def init_state(self, intra_recon: torch.Tensor) -> ChunkState:
        """State after an intra frame [B, 3, H, W]: its patch embedding, empty memory.

        The frame is replicate-padded to a multiple of 16 first (a no-op when the caller
        passes the intra model's padded reconstruction)."""
        if intra_recon.dim() != 4 or intra_recon.shape[1] != 3:
            raise InputFormatError(f"intra reconstruction must be [B, 3, H, W], "
                                   f"got {tuple(intra_recon.shape)}")
        ref = F.pixel_unshuffle(pad_to_multiple(intra_recon, FRAME_MULTIPLE), PATCH)
        return ChunkState(ref_feature=ref, memory=None, ref_frame=ref)

    def code_chunk(
        self,
        x: torch.Tensor | None,
        qp: torch.Tensor,
        state: ChunkState,
        channel: LatentChannel,
        *,
        reset: bool = False,
        frame_size: tuple[int, int] | None = None,
    ) -> ChunkResult:
        """Code (x given) or decode (x None) one chunk.

        x: [B, N, 3, H, W] frames in [-0.5, 0.5]; any H, W (padded to 16 internally).
        qp: LongTensor [B], one row of the 64-row tables per sample (63 = best quality).
        frame_size: (H, W) of the frames when decoding (x None); ignored otherwise.
        reset: leave the last frame's patch map as reference and clear the memory.
        """
        c = self.config
        height, width = self._frame_size(x, state, frame_size)
        batch = state.ref_feature.shape[0]
        if qp.shape != (batch,):
            raise InputFormatError(f"qp must hold one index per sample ({batch}), "
                                   f"got shape {tuple(qp.shape)}")
        memory = (self.feature_adaptor_i(state.ref_feature) if state.memory is None
                  else self.feature_adaptor_m(torch.cat((state.memory, state.ref_feature), 1)))
        ctx = self.feature_extractor(memory)

        latent_h = math.ceil(height / FRAME_MULTIPLE)
        latent_w = math.ceil(width / FRAME_MULTIPLE)
        z_shape = (batch, c.z_channels, math.ceil(latent_h / LATENT_MULTIPLE),
                   math.ceil(latent_w / LATENT_MULTIPLE))
        if x is None:
            y = z = None
        else:
            frames = pad_to_multiple(x.reshape(batch, 3 * c.frames, height, width),
                                     FRAME_MULTIPLE)
            y = self.encoder(F.pixel_unshuffle(frames, PATCH), ctx, _row(self.q_encoder, qp))
            z = self.hyper_encoder(pad_to_multiple(y, LATENT_MULTIPLE))
        z_hat = channel.exchange_z(z, self.bit_estimator_z, qp, z_shape)
        hyper = self.hyper_decoder(z_hat)[..., :latent_h, :latent_w]

        q_feature = _row(self.q_feature, qp)
        if c.q_feature_on_prior:
            temporal = self.temporal_prior_encoder(memory) * q_feature
        else:
            temporal = self.temporal_prior_encoder(memory * q_feature)
        params = self.y_prior_fusion(torch.cat((hyper, temporal), dim=1))
        quant_step, scales, means = params.chunk(3, dim=1)
        quant_step = torch.clamp_min(quant_step, MIN_QUANT_STEP)
        latent = self.spatial_prior.code(
            y, params, scales, means, channel, quant_step=quant_step,
            step_scale=None if self.q_step is None else _row(self.q_step, qp))

        feature = self.decoder(latent.y_hat, ctx, _row(self.q_decoder, qp))
        patches = self.recon_head(feature)  # [B, N, 192, h/8, w/8]
        if c.reference_skip:
            if state.ref_frame is None:
                raise InputFormatError("this codec adds the reference frame: the state "
                                       "must hold it (ChunkCodec.init_state)")
            # One IEEE operation at a time (portable; no fused kernel).
            gate = (self.reference_gate(feature) * REFERENCE_GATE_GAIN)[:, :, None]
            # (1 - g) p + g r, not p + g (r - p): an open gate then copies r exactly.
            patches = (1 - gate) * patches + gate * state.ref_frame[:, None]
        x_hat = F.pixel_shuffle(patches.flatten(0, 1), PATCH)
        x_hat = x_hat.unflatten(0, (batch, c.frames))[..., :height, :width]
        if reset:
            # The last frame's patch map equals unshuffle8 of its unclamped reconstruction.
            next_state = ChunkState(ref_feature=patches[:, -1], memory=None,
                                    ref_frame=patches[:, -1])
        else:
            next_state = ChunkState(ref_feature=feature, memory=memory, ref_frame=patches[:, -1])
        return ChunkResult(x_hat=x_hat, state=next_state, latent=latent, z_hat=z_hat)

    def _frame_size(
        self, x: torch.Tensor | None, state: ChunkState, frame_size: tuple[int, int] | None
    ) -> tuple[int, int]:
        """(H, W) of this chunk, checked against the reference held in `state`."""
        if x is not None:
            expected = (state.ref_feature.shape[0], self.config.frames, 3)
            if x.dim() != 5 or tuple(x.shape[:3]) != expected:
                raise InputFormatError(f"chunk must be [B, N, 3, H, W] with (B, N) = "
                                       f"{expected[:2]}, got {tuple(x.shape)}")
            height, width = x.shape[-2:]
        elif frame_size is None:
            raise InputFormatError("frame_size is required when decoding (x is None)")
        else:
            height, width = frame_size
        ref_size = tuple(state.ref_feature.shape[-2:])
        padded = (math.ceil(height / FRAME_MULTIPLE) * FRAME_MULTIPLE // PATCH,
                  math.ceil(width / FRAME_MULTIPLE) * FRAME_MULTIPLE // PATCH)
        if ref_size != padded:
            raise InputFormatError(f"frame size {height}x{width} does not match the reference "
                                   f"feature ({ref_size[0]}x{ref_size[1]} at 1/{PATCH})")
        return int(height), int(width)


def _row(table: torch.Tensor, qp: torch.Tensor) -> torch.Tensor:
    """Per-sample rows of a [64, C] table as a [B, C, 1, 1] multiplier."""
    return table[qp][:, :, None, None]


def _build_recon_head(c: ChunkCodecConfig) -> nn.Module:
    if c.recon_layout is ReconLayout.SINGLE:
        return SingleReconHead(c.feature_channels, c.recon_channels, c.recon_blocks,
                               half=c.half_recon)
    if c.recon_layout is ReconLayout.BRANCHES:
        return BranchReconHead(c.frames, c.feature_channels, c.recon_channels, c.recon_blocks,
                               half=c.half_recon)
    return SharedReconHead(c.frames, c.feature_channels, c.recon_channels, c.recon_blocks,
                           shared_blocks=c.recon_shared_blocks, group_size=c.recon_group_size,
                           half=c.half_recon)
