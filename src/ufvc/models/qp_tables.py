"""Fill the rows of per-qp tables between trained levels by interpolation.

Every quality level has its own row in the q tables (`q_encoder`, `q_scale_y_enc`, ...)
and in the z density (`bit_estimator_z.h/b/a`). A short training run that draws qps
from a few levels trains only those rows; the others are set here by interpolating,
level by level, between the two nearest trained rows: in the log domain for the
positive multiplier tables (so the quantisation step changes geometrically, as the
lambdas do), linearly for the density parameters. Outside the trained span the nearest
trained row is repeated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ufvc.errors import InputFormatError

# The per-qp tables of the intra and chunk codecs (last part of the parameter name).
MULTIPLIER_TABLES = frozenset({"q_encoder", "q_decoder", "q_feature", "q_scale_enc",
                               "q_scale_dec", "q_scale_y_enc", "q_scale_y_dec", "q_step"})
DENSITY_TABLES = frozenset({"bit_estimator_z.h", "bit_estimator_z.b", "bit_estimator_z.a"})


def step_table(step_range: tuple[float, ...], num_qp: int) -> nn.Parameter | None:
    """The per-qp quantisation step multipliers of our own models, or None when
    `step_range` is empty (the official models).

    Row qp is geometric between `step_range[0]` (qp 0) and `step_range[1]` (qp 63), so a
    model starts with rates that fall as the quality level falls; training then moves the
    rows freely.
    """
    if not step_range:
        return None
    if len(step_range) != 2 or min(step_range) <= 0:
        raise ValueError(f"qp_step_range must be two positive steps, got {step_range}")
    first, last = (math.log(v) for v in step_range)
    return nn.Parameter(torch.exp(torch.linspace(first, last, num_qp)).unsqueeze(1))


def _interpolate(rows: torch.Tensor, levels: Sequence[int], *, log: bool) -> torch.Tensor:
    values = torch.log(rows) if log else rows
    out = values.clone()
    known = sorted(levels)
    for qp in range(rows.shape[0]):
        if qp in known:
            continue
        upper = next((k for k in known if k > qp), None)
        lower = next((k for k in reversed(known) if k < qp), None)
        if lower is None or upper is None:
            out[qp] = values[upper if lower is None else lower]
        else:
            t = (qp - lower) / (upper - lower)
            out[qp] = (1 - t) * values[lower] + t * values[upper]
    return torch.exp(out) if log else out


@torch.no_grad()
def interpolate_qp_rows(model: nn.Module, levels: Sequence[int], num_qp: int = 64) -> list[str]:
    """Replace the untrained rows of every per-qp table of `model`, in place.

    Returns the names of the tables changed.
    """
    if not levels or any(not 0 <= qp < num_qp for qp in levels):
        raise InputFormatError(f"trained qp levels must be in 0..{num_qp - 1}, got {levels}")
    changed = []
    for name, param, is_density in _per_qp_tables(model, num_qp):
        log = not is_density and bool((param > 0).all())
        param.copy_(_interpolate(param.detach(), levels, log=log))
        changed.append(name)
    return changed


def _per_qp_tables(model: nn.Module, num_qp: int):
    """(name, parameter, is_density) of every per-qp table of `model`, `q_step` included."""
    for name, param in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        is_density = ".".join(name.rsplit(".", 2)[-2:]) in DENSITY_TABLES
        if (is_density or leaf in MULTIPLIER_TABLES) and param.shape[0] == num_qp:
            yield name, param, is_density


@torch.no_grad()
def copy_qp_row(model: nn.Module, source_qp: int, num_qp: int = 64) -> list[str]:
    """Set every row of every per-qp table except `q_step` to row `source_qp`, in place.

    Returns the names of the tables changed.
    """
    if not 0 <= source_qp < num_qp:
        raise InputFormatError(f"source qp must be in 0..{num_qp - 1}, got {source_qp}")
    changed = []
    for name, param, _ in _per_qp_tables(model, num_qp):
        if name.rsplit(".", 1)[-1] == "q_step":
            continue
        param.copy_(param[source_qp].expand_as(param))
        changed.append(name)
    return changed


@torch.no_grad()
def stretch_top_steps(model: nn.Module, start_qp: int, ratio: float, num_qp: int = 64
                      ) -> list[str]:
    """Make the quantisation steps of qps `start_qp`..63 geometric from row `start_qp` down to
    `ratio` times it, in every `q_step` table of `model`, in place.

    This widens the rate range above `start_qp` without training: the step is the only
    per-qp value the latent's precision depends on, and the other per-qp rows stay as they
    are. Returns the names of the tables changed.
    """
    if not 0 <= start_qp < num_qp - 1:
        raise InputFormatError(f"start qp must be in 0..{num_qp - 2}, got {start_qp}")
    if not 0 < ratio <= 1:
        raise InputFormatError(f"step ratio must be in (0, 1], got {ratio}")
    changed = []
    for name, param, _ in _per_qp_tables(model, num_qp):
        if name.rsplit(".", 1)[-1] != "q_step":
            continue
        first = torch.log(param[start_qp])
        t = torch.linspace(0.0, 1.0, num_qp - start_qp, dtype=param.dtype).unsqueeze(1)
        param[start_qp:] = torch.exp(first + t * math.log(ratio))
        changed.append(name)
    return changed
