"""Multi-step spatial prior of the latent y, shared by the intra and the video models.

The latent is coded in steps (paper sec. 3.3, Fig. 4a). Each step codes the elements
of one mask; the means (and, per-step, the scales) of later steps are predicted from
what is already decoded. Three entropy modes exist:

* ``PER_STEP_QUADTREE`` (intra, HT-L): 4 quadtree steps; the step network predicts
  (scales, means) before steps 1-3, so a decoder needs one parsing pass per step.
* ``STREAMLINED_QUADTREE`` (HT-S, our own models): 4 quadtree steps; the scales of all
  steps come from the prior fusion, only the means are refined, so a decoder parses
  every symbol in one pass before running the mean steps.
* ``STREAMLINED_CHECKERBOARD`` (LD): 2 checkerboard steps with swapped channel halves;
  means of step 1 from ``y_spatial_prior(cat(y_hat_0, params))``.

Public API (everything a host model needs)::

    prior = build_spatial_prior(mode, latent_channels, param_channels, blocks=3, half=False)
    prior.attach(host)      # registers the official submodules on the host nn.Module
    code = prior.code(y_or_None, params, scales, means, channel, quant_step=None)
    code.y_hat              # latent for the synthesis transform

``attach`` adds the submodules under their official state-dict names
(``y_spatial_prior_reduction``, ``y_spatial_prior_adaptor_1..3``, ``y_spatial_prior``;
only ``y_spatial_prior`` for the checkerboard), so a checkpoint loads with
``load_state_dict(strict=True)``. The prior object itself is not an ``nn.Module``: it
only keeps references to those submodules, so ``.to()``, ``.double()``, ``train()``
and checkpoint loading on the host apply to it too.

``code`` arguments:

* ``y``: the latent to code, already scaled as the model wants it coded (the intra
  model multiplies by its ``q_scale_y_enc`` row before the call and multiplies
  ``code.y_hat`` by ``q_scale_y_dec`` after it); ``None`` when decoding.
* ``params``: the prior-fusion output the step networks condition on (all of it: the
  quadtree reduces it with the 1x1 ``y_spatial_prior_reduction``, the checkerboard
  concatenates it with y_hat_0).
* ``scales``, ``means``: the initial entropy parameters, shape of y.
* ``quant_step``: video models only, the predicted quantisation step (already clamped
  to >= 0.5): y is divided by it before the steps and y_hat multiplied by it after.
* ``step_scale``: our own models only, the per-qp quantisation step multiplier g
  ([B, 1, 1, 1], from the model's ``q_step`` table). It changes the step of the rounding
  and nothing else: y, the means and the scales are divided by g, the step networks see
  y_hat multiplied by g (the domain they were trained in) and their outputs are divided
  by g, and the returned y_hat is multiplied by g. With g = 1 the result is unchanged.

Channel protocol (``ufvc.models.channel.LatentChannel``): ``code`` calls
``channel.begin_y(scales_per_step, masks)`` once (streamlined modes: a list with the
scales of every step, available before any symbol; per-step mode: ``None``), then for
each step ``q = channel.exchange_y(step, residual_or_None, scales, mask)`` with
``residual = (y - means * mask) * mask`` and continues with ``y_hat_step = q + means * mask``.
The caller handles z (``channel.exchange_z``) before computing ``params``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from ufvc.models.channel import LatentChannel
from ufvc.nn.blocks import DCBlock
from ufvc.nn.masks import checkerboard_masks, quadtree_masks


class EntropyMode(Enum):
    """How the latent is split into steps and which parameters each step re-predicts."""

    PER_STEP_QUADTREE = "per-step-quadtree"
    STREAMLINED_QUADTREE = "streamlined-quadtree"
    STREAMLINED_CHECKERBOARD = "streamlined-checkerboard"

    @property
    def streamlined(self) -> bool:
        """True when every step's scales are known before the first symbol."""
        return self is not EntropyMode.PER_STEP_QUADTREE


@dataclass(frozen=True)
class LatentCode:
    """Result of coding y through the spatial prior; merged tensors sum over the steps."""

    y_hat: torch.Tensor  # dequantised latent (multiplied by step_scale and quant_step if given)
    symbols: torch.Tensor  # the integer residuals, as floats
    scales: torch.Tensor  # scale of each element's rate, before the 0.11 floor
    residual: torch.Tensor | None  # the value that was rounded; None when decoding


class StepNetwork(nn.Module):
    """The shared step network (`y_spatial_prior`): DC blocks then a 1x1 output conv."""

    def __init__(self, in_channels: int, width: int, out_channels: int, *, blocks: int,
                 half: bool) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            DCBlock(in_channels, width, half=half),
            *(DCBlock(width, width, half=half) for _ in range(blocks - 1)),
            nn.Conv2d(width, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SpatialPrior(ABC):
    """Common driver of the step loop; subclasses define the masks and step networks."""

    mode: EntropyMode

    @abstractmethod
    def named_parts(self) -> dict[str, nn.Module]:
        """The submodules under their official state-dict names."""

    def attach(self, host: nn.Module) -> None:
        """Register the submodules on `host` under their official names."""
        for name, module in self.named_parts().items():
            host.add_module(name, module)

    @abstractmethod
    def masks(self, like: torch.Tensor) -> list[torch.Tensor]:
        """Step masks [1, C, H, W] for a latent shaped like `like`; they sum to one."""

    @abstractmethod
    def _begin(self, params: torch.Tensor) -> torch.Tensor:
        """Conditioning computed once per latent, handed to every `_next_parameters`."""

    @abstractmethod
    def _next_parameters(
        self, step: int, y_hat: torch.Tensor, condition: torch.Tensor
    ) -> torch.Tensor:
        """Output of the step network before `step` (>= 1) from the y_hat decoded so far."""

    def code(
        self,
        y: torch.Tensor | None,
        params: torch.Tensor,
        scales: torch.Tensor,
        means: torch.Tensor,
        channel: LatentChannel,
        *,
        quant_step: torch.Tensor | None = None,
        step_scale: torch.Tensor | None = None,
    ) -> LatentCode:
        """Code `y` (or decode it when None) step by step through `channel`."""
        masks = self.masks(means)
        if y is not None and quant_step is not None:
            y = y / quant_step
        if step_scale is not None:
            y = None if y is None else y / step_scale
            scales, means = scales / step_scale, means / step_scale
        streamlined = self.mode.streamlined
        channel.begin_y([scales] * len(masks) if streamlined else None, masks)
        condition = self._begin(params)
        y_hat = symbols = scales_used = residuals = None
        for step, mask in enumerate(masks):
            if step > 0:
                if step_scale is None:
                    out = self._next_parameters(step, y_hat, condition)
                else:
                    out = self._next_parameters(step, y_hat * step_scale, condition) / step_scale
                if streamlined:
                    means = out
                else:
                    scales, means = out.chunk(2, dim=1)
            means_step = means * mask
            residual = None if y is None else (y - means_step) * mask
            q = channel.exchange_y(step, residual, scales, mask)
            y_hat_step = q + means_step
            scales_step = scales * mask
            if step == 0:
                y_hat, symbols, scales_used, residuals = y_hat_step, q, scales_step, residual
            else:
                y_hat = y_hat + y_hat_step
                symbols = symbols + q
                scales_used = scales_used + scales_step
                if residual is not None:
                    residuals = residuals + residual
        if step_scale is not None:
            y_hat = y_hat * step_scale
        if quant_step is not None:
            y_hat = y_hat * quant_step
        return LatentCode(y_hat=y_hat, symbols=symbols, scales=scales_used, residual=residuals)


class QuadtreePrior(SpatialPrior):
    """4-step quadtree prior: 1x1 reduction of the fused parameters to `latent` channels,
    one forced-adaptor DC block per step on cat(y_hat so far, reduced), then a shared step
    network (`blocks` DC blocks + 1x1) giving (scales, means) or means only. The blocks
    work at `width` channels (default: twice the latent, as the release)."""

    def __init__(
        self,
        latent_channels: int,
        param_channels: int,
        *,
        predicts_scales: bool,
        blocks: int = 3,
        half: bool = False,
        width: int | None = None,
    ) -> None:
        if latent_channels % 4:
            raise ValueError(f"quadtree prior needs latent channels divisible by 4, "
                             f"got {latent_channels}")
        self.mode = (EntropyMode.PER_STEP_QUADTREE if predicts_scales
                     else EntropyMode.STREAMLINED_QUADTREE)
        width = width or 2 * latent_channels
        self.reduction = nn.Conv2d(param_channels, latent_channels, 1)
        self.adaptors = [DCBlock(2 * latent_channels, width, half=half, force_adaptor=True)
                         for _ in range(3)]
        out_channels = 2 * latent_channels if predicts_scales else latent_channels
        self.network = StepNetwork(width, width, out_channels, blocks=blocks, half=half)

    def named_parts(self) -> dict[str, nn.Module]:
        parts: dict[str, nn.Module] = {"y_spatial_prior_reduction": self.reduction}
        for index, adaptor in enumerate(self.adaptors, start=1):
            parts[f"y_spatial_prior_adaptor_{index}"] = adaptor
        parts["y_spatial_prior"] = self.network
        return parts

    def masks(self, like: torch.Tensor) -> list[torch.Tensor]:
        _, c, h, w = like.shape
        return quadtree_masks(c, h, w, device=like.device, dtype=like.dtype)

    def _begin(self, params: torch.Tensor) -> torch.Tensor:
        return self.reduction(params)

    def _next_parameters(self, step, y_hat, condition):
        return self.network(self.adaptors[step - 1](torch.cat((y_hat, condition), dim=1)))


class CheckerboardPrior(SpatialPrior):
    """2-step checkerboard prior (LD): means of step 1 from a DC-block network on
    cat(y_hat_0, fused parameters); no reduction and no per-step adaptor."""

    mode = EntropyMode.STREAMLINED_CHECKERBOARD

    def __init__(
        self, latent_channels: int, param_channels: int, *, blocks: int = 2, half: bool = False
    ) -> None:
        if latent_channels % 2:
            raise ValueError(f"checkerboard prior needs an even number of latent channels, "
                             f"got {latent_channels}")
        self.network = StepNetwork(latent_channels + param_channels, 2 * latent_channels,
                                   latent_channels, blocks=blocks, half=half)

    def named_parts(self) -> dict[str, nn.Module]:
        return {"y_spatial_prior": self.network}

    def masks(self, like: torch.Tensor) -> list[torch.Tensor]:
        _, c, h, w = like.shape
        return checkerboard_masks(c, h, w, device=like.device, dtype=like.dtype)

    def _begin(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def _next_parameters(self, step, y_hat, condition):
        return self.network(torch.cat((y_hat, condition), dim=1))


def build_spatial_prior(
    mode: EntropyMode,
    latent_channels: int,
    param_channels: int,
    *,
    blocks: int = 3,
    half: bool = False,
    width: int | None = None,
) -> SpatialPrior:
    """The prior for `mode`: `blocks` DC blocks in the shared step network (3 in the
    official quadtree priors, 2 in LD's checkerboard prior), half-width when `half`;
    `width` sets the quadtree prior's inner width (default twice the latent)."""
    if mode is EntropyMode.STREAMLINED_CHECKERBOARD:
        if width is not None:
            raise ValueError("the checkerboard prior has no separate width")
        return CheckerboardPrior(latent_channels, param_channels, blocks=blocks, half=half)
    return QuadtreePrior(
        latent_channels,
        param_channels,
        predicts_scales=mode is EntropyMode.PER_STEP_QUADTREE,
        blocks=blocks,
        half=half,
        width=width,
    )
