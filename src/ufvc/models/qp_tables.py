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

from collections.abc import Sequence

import torch
from torch import nn

from ufvc.errors import InputFormatError

# The per-qp tables of the intra and chunk codecs (last part of the parameter name).
MULTIPLIER_TABLES = frozenset({"q_encoder", "q_decoder", "q_feature", "q_scale_enc",
                               "q_scale_dec", "q_scale_y_enc", "q_scale_y_dec"})
DENSITY_TABLES = frozenset({"bit_estimator_z.h", "bit_estimator_z.b", "bit_estimator_z.a"})


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
    for name, param in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        is_density = ".".join(name.rsplit(".", 2)[-2:]) in DENSITY_TABLES
        if not (is_density or leaf in MULTIPLIER_TABLES) or param.shape[0] != num_qp:
            continue
        log = not is_density and bool((param > 0).all())
        param.copy_(_interpolate(param.detach(), levels, log=log))
        changed.append(name)
    return changed
