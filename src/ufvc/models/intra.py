"""The intra (image) codec: codes frame 0 and every intra refresh (DCVC-UF's DMCI).

Data flow (reference README sec. 7 and 9)::

    x -> unshuffle(8) -> enc_1 -> x q_scale_enc[qp] -> enc_2 (DC blocks, 3x3/2 conv) -> y
    y -> pad to 4 -> hyper_enc -> z -> channel -> z_hat -> hyper_dec -> crop -> y_prior_fusion
      -> (scales, means); y x q_scale_y_enc[qp] -> 4-step spatial prior -> y_hat x q_scale_y_dec[qp]
    y_hat -> dec_1 (up block, DC blocks) -> x q_scale_dec[qp] -> dec_2 -> shuffle(8) -> x_hat

Attribute names are the official state-dict keys, so `cvpr2026_image.pth.tar` loads with a
strict `load_state_dict`. The reconstruction is returned unclamped: the codec clamps what it
outputs and what it keeps as a reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ufvc.errors import InputFormatError
from ufvc.models.channel import LatentChannel
from ufvc.models.qp_tables import step_table
from ufvc.models.spatial_prior import EntropyMode, build_spatial_prior
from ufvc.nn.blocks import DCBlock, DownBlock, UpBlock
from ufvc.nn.entropy import FactorizedDensity

PATCH = 8  # pixel_unshuffle factor of the patch embedding
FRAME_ALIGN = 16  # frames are padded to a multiple of the latent stride
LATENT_ALIGN = 4  # y is padded to a multiple of the hyper encoder's stride


@dataclass(frozen=True)
class IntraCodecConfig:
    """Widths and depths of an intra codec.

    The prior networks output scales and means side by side (twice the latent width) and
    work at that width too unless `prior_width` says otherwise.
    """

    name: str
    latent_channels: int = 256  # y
    hyper_channels: int = 128  # z
    encoder_width: int = 384
    encoder_depth: int = 6  # DC blocks after the first (the qp-scaled one)
    decoder_width: int = 384
    decoder_depth: int = 12  # DC blocks after the up block, before the qp scaling
    fusion_depth: int = 3  # DC blocks of the prior fusion, before its 1x1 output
    spatial_prior_depth: int = 3  # DC blocks of the shared step network, before its 1x1
    half_width: bool = False  # halve the inner width of every DC block
    shortcut: bool = True  # shortcut in the DC blocks of the hyper up/down and decoder up blocks
    # Our models: initial quantisation step multiplier at qp 0 and qp 63 (a learned
    # per-qp table `q_step`); empty for the official structure, which has none.
    qp_step_range: tuple[float, ...] = ()
    num_qp: int = 64
    # Inner width of the prior fusion and the spatial prior; 0: twice the latent width (the
    # release). Lets a model widen its latent without quadrupling the prior's cost.
    prior_width: int = 0

    @property
    def prior_channels(self) -> int:
        """Channels of the fused parameters: scales and means side by side."""
        return 2 * self.latent_channels

    @property
    def prior_network_width(self) -> int:
        return self.prior_width or self.prior_channels


INTRA = IntraCodecConfig(name="intra")  # the release's DMCI: 42,179,328 parameters
INTRA_S = IntraCodecConfig(  # our small intra codec: 3,231,360 parameters
    name="intra-s",
    latent_channels=128,
    hyper_channels=64,
    encoder_width=128,
    encoder_depth=3,
    decoder_width=128,
    decoder_depth=4,
    fusion_depth=2,
    spatial_prior_depth=2,
    half_width=True,
    shortcut=False,
)
INTRA_TINY = IntraCodecConfig(  # tests only: 340,208 parameters
    name="intra-tiny",
    latent_channels=16,
    hyper_channels=8,
    encoder_width=16,
    encoder_depth=1,
    decoder_width=16,
    decoder_depth=1,
    fusion_depth=1,
    spatial_prior_depth=1,
    half_width=False,
    shortcut=True,
)


@dataclass
class IntraResult:
    """Outputs of one intra call. `x_hat` is unclamped and has the input's size; the latent
    maps have the size of the padded frame / 16."""

    x_hat: torch.Tensor
    y_hat: torch.Tensor  # dequantised latent fed to the decoder (after q_scale_y_dec)
    z_hat: torch.Tensor  # integer z symbols (as floats)
    y_symbols: torch.Tensor  # integer y residuals of all steps, merged
    y_scales: torch.Tensor  # the scale each y symbol was coded with, before the 0.11 floor
    y_residual: torch.Tensor | None  # the values that were rounded; None when decoding


class IntraEncoder(nn.Module):
    """Analysis transform: frame -> y at 1/16 resolution (official `enc`)."""

    def __init__(self, cfg: IntraCodecConfig) -> None:
        super().__init__()
        half = cfg.half_width
        self.enc_1 = DCBlock(3 * PATCH * PATCH, cfg.encoder_width, half=half)
        self.enc_2 = nn.Sequential(
            *[DCBlock(cfg.encoder_width, cfg.encoder_width, half=half)
              for _ in range(cfg.encoder_depth)],
            nn.Conv2d(cfg.encoder_width, cfg.latent_channels, 3, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor, q_scale: torch.Tensor) -> torch.Tensor:
        feature = self.enc_1(F.pixel_unshuffle(x, PATCH))
        return self.enc_2(feature * q_scale[:, :, None, None])


class IntraDecoder(nn.Module):
    """Synthesis transform: y_hat -> frame (official `dec`)."""

    def __init__(self, cfg: IntraCodecConfig) -> None:
        super().__init__()
        half = cfg.half_width
        self.dec_1 = nn.Sequential(
            UpBlock(cfg.latent_channels, cfg.decoder_width, shortcut=cfg.shortcut, half=half),
            *[DCBlock(cfg.decoder_width, cfg.decoder_width, half=half)
              for _ in range(cfg.decoder_depth)],
        )
        self.dec_2 = DCBlock(cfg.decoder_width, 3 * PATCH * PATCH, half=half)

    def forward(self, y_hat: torch.Tensor, q_scale: torch.Tensor) -> torch.Tensor:
        feature = self.dec_1(y_hat) * q_scale[:, :, None, None]
        return F.pixel_shuffle(self.dec_2(feature), PATCH)


class HyperEncoder(nn.Module):
    """y -> z at 1/4 of y's resolution: a DC block then two stride-2 blocks."""

    def __init__(self, cfg: IntraCodecConfig) -> None:
        super().__init__()
        y, z, half = cfg.latent_channels, cfg.hyper_channels, cfg.half_width
        self.conv = nn.Sequential(
            DCBlock(y, z, half=half),
            DownBlock(z, z, shortcut=cfg.shortcut, half=half),
            DownBlock(z, z, shortcut=cfg.shortcut, half=half),
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.conv(y)


class HyperDecoder(nn.Module):
    """z_hat -> hyper features at y's (padded) resolution: two up blocks then a DC block."""

    def __init__(self, cfg: IntraCodecConfig) -> None:
        super().__init__()
        y, z, half = cfg.latent_channels, cfg.hyper_channels, cfg.half_width
        self.conv = nn.Sequential(
            UpBlock(z, z, shortcut=cfg.shortcut, half=half),
            UpBlock(z, z, shortcut=cfg.shortcut, half=half),
            DCBlock(z, y, half=half),
        )

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self.conv(z_hat)


class PriorFusion(nn.Module):
    """Hyper features -> (scales, means) of step 0, side by side on channels."""

    def __init__(self, cfg: IntraCodecConfig) -> None:
        super().__init__()
        y, w, half = cfg.latent_channels, cfg.prior_network_width, cfg.half_width
        # The first block always adapts its input (as in the release, where y != w), so
        # a widened latent keeps the same structure.
        blocks = [DCBlock(y if i == 0 else w, w, half=half, force_adaptor=i == 0)
                  for i in range(cfg.fusion_depth)]
        self.conv = nn.Sequential(*blocks, nn.Conv2d(w, cfg.prior_channels, 1))

    def forward(self, hyper: torch.Tensor) -> torch.Tensor:
        return self.conv(hyper)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the bottom and right of x to a multiple of `multiple`."""
    pad_h = -x.shape[-2] % multiple
    pad_w = -x.shape[-1] % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


class IntraCodec(nn.Module):
    """The intra codec (paper sec. 3; reference README sec. 7 "Intra prior").

    `code_frame` is the one code path for training, rate estimation, encoding and decoding;
    the `channel` decides what happens to the quantised symbols.
    """

    # What a decoder recomputes (the portable arithmetic covers these; the analysis
    # transforms `enc` and `hyper_enc` run only in the encoder and stay in float).
    DECODER_PARTS = ("hyper_dec", "y_prior_fusion", "y_spatial_prior_reduction",
                     "y_spatial_prior_adaptor_1", "y_spatial_prior_adaptor_2",
                     "y_spatial_prior_adaptor_3", "y_spatial_prior", "dec")

    def __init__(self, cfg: IntraCodecConfig = INTRA) -> None:
        super().__init__()
        self.config = cfg
        enc_w, dec_w, y = cfg.encoder_width, cfg.decoder_width, cfg.latent_channels
        self.q_scale_enc = nn.Parameter(torch.ones(cfg.num_qp, enc_w))
        self.q_scale_dec = nn.Parameter(torch.ones(cfg.num_qp, dec_w))
        self.q_scale_y_enc = nn.Parameter(torch.ones(cfg.num_qp, y))
        self.q_scale_y_dec = nn.Parameter(torch.ones(cfg.num_qp, y))
        self.bit_estimator_z = FactorizedDensity(cfg.hyper_channels, cfg.num_qp)
        self.enc = IntraEncoder(cfg)
        self.hyper_enc = HyperEncoder(cfg)
        self.hyper_dec = HyperDecoder(cfg)
        self.y_prior_fusion = PriorFusion(cfg)
        # Registered here so the state-dict order is the official one.
        self.spatial_prior = build_spatial_prior(
            EntropyMode.PER_STEP_QUADTREE,
            cfg.latent_channels,
            cfg.prior_channels,
            blocks=cfg.spatial_prior_depth,
            half=cfg.half_width,
            width=cfg.prior_network_width,
        )
        self.spatial_prior.attach(self)
        self.dec = IntraDecoder(cfg)
        self.q_step = step_table(cfg.qp_step_range, cfg.num_qp)

    @staticmethod
    def latent_size(frame_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of y for a frame of (H, W) pixels, after padding to a multiple of 16."""
        height, width = frame_size
        return math.ceil(height / FRAME_ALIGN), math.ceil(width / FRAME_ALIGN)

    @classmethod
    def hyper_size(cls, frame_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of z for a frame of (H, W) pixels."""
        h, w = cls.latent_size(frame_size)
        return math.ceil(h / LATENT_ALIGN), math.ceil(w / LATENT_ALIGN)

    def code_frame(
        self,
        x: torch.Tensor | None,
        qp: torch.Tensor,
        channel: LatentChannel,
        *,
        frame_size: tuple[int, int] | None = None,
    ) -> IntraResult:
        """Code one batch of frames [B, 3, H, W] (or decode them when `x` is None).

        `qp` is a LongTensor [B] (row of the 64-level tables; 63 is the highest quality).
        `frame_size` (H, W) is required when decoding and ignored otherwise.
        """
        if x is not None:
            frame_size = (x.shape[-2], x.shape[-1])
        elif frame_size is None:
            raise InputFormatError("frame_size is required when decoding (x is None)")
        h, w = self.latent_size(frame_size)
        z_shape = (qp.shape[0], self.config.hyper_channels, *self.hyper_size(frame_size))

        y = z = None
        if x is not None:
            y = self.enc(_pad_to_multiple(x, FRAME_ALIGN), self.q_scale_enc[qp])
            z = self.hyper_enc(_pad_to_multiple(y, LATENT_ALIGN))
        z_hat = channel.exchange_z(z, self.bit_estimator_z, qp, z_shape)
        params = self.y_prior_fusion(self.hyper_dec(z_hat)[..., :h, :w])

        y_scaled = None if y is None else y * self.q_scale_y_enc[qp][:, :, None, None]
        scales, means = params.chunk(2, dim=1)
        step_scale = None if self.q_step is None else self.q_step[qp][:, :, None, None]
        code = self.spatial_prior.code(y_scaled, params, scales, means, channel,
                                       step_scale=step_scale)
        y_hat = code.y_hat * self.q_scale_y_dec[qp][:, :, None, None]

        x_hat = self.dec(y_hat, self.q_scale_dec[qp])
        return IntraResult(
            x_hat=x_hat[..., : frame_size[0], : frame_size[1]],
            y_hat=y_hat,
            z_hat=z_hat,
            y_symbols=code.symbols,
            y_scales=code.scales,
            y_residual=code.residual,
        )
