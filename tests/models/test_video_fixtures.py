"""The chunk video codec computes the official function: float64 replay of the reference
fixtures (shared/reference README sec. 4-6) with the recipe weights loaded strictly.

Skipped when the reference directory (`$UFVC_REFERENCE_DIR`, default
../shared/reference beside the repository) is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ufvc.models.channel import EstimateChannel
from ufvc.models.recipe import recipe_state_dict
from ufvc.models.video import HTL, HTS, LD, ChunkCodec

# The repository's sibling shared/ folder (present for developers and CI, not for users).
SIBLING_REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
REFERENCE = Path(os.environ.get("UFVC_REFERENCE_DIR", SIBLING_REFERENCE))
CONFIGS = {"ld": LD, "hts": HTS, "htl": HTL}
ABS_TOL = 1e-5  # reconstructions and latent maps
REL_TOL = 1e-5  # rates


def _stats(t: torch.Tensor) -> np.ndarray:
    return np.array([t.mean().item(), t.std().item(), t.abs().mean().item()])


def _load(name: str):
    path = REFERENCE / f"fixture_{name}.npz"
    if not path.is_file():
        pytest.skip(f"reference fixture {path} not available")
    fixture = np.load(path)
    assert str(fixture["model"]) == name
    model = ChunkCodec(CONFIGS[name])
    model.load_state_dict(recipe_state_dict(model), strict=True)
    return fixture, model.eval()


def _call(model, fixture, frames, state, call):
    n = model.config.frames
    chunk = frames[1 + call * n: 1 + (call + 1) * n][None]
    channel = EstimateChannel(noisy_rate=False)
    result = model.code_chunk(chunk, torch.tensor([int(fixture["qp"][call])]), state, channel,
                              reset=bool(fixture["reset"][call]))
    return result, channel


def _frames(fixture, dtype) -> torch.Tensor:
    return (torch.from_numpy(fixture["frames_u8"]).double() / 255 - 0.5).to(dtype)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_reference_fixture_reproduced(name):
    fixture, model = _load(name)
    n = model.config.frames
    ref0 = torch.from_numpy(fixture["ref0_x_hat"])

    # float32 smoke test of the first call (README sec. 6): symbols may flip only at ties.
    with torch.no_grad():
        result, channel = _call(model, fixture, _frames(fixture, torch.float32),
                                model.init_state(ref0.float()), 0)
    flipped = result.latent.symbols[0].numpy() != fixture["y_q"][0]
    if flipped.any():
        margin = np.abs(np.abs(fixture["y_res_first"] % 1.0) - 0.5)
        assert (margin[flipped] < 1e-4).all(), "float32 symbols differ away from a tie"
    else:
        np.testing.assert_allclose(result.x_hat[0].numpy(), fixture["x_hat"][:n], rtol=0,
                                   atol=1e-4)
        np.testing.assert_allclose(result.latent.y_hat[0].numpy(), fixture["y_hat_first"],
                                   rtol=0, atol=1e-4)
        np.testing.assert_allclose(channel.bits_y.item(), fixture["bits_y"][0], rtol=REL_TOL)
        np.testing.assert_allclose(channel.bits_z.item(), fixture["bits_z"][0], rtol=REL_TOL)

    # float64 replay of every call: exact symbols, tight reconstructions and rates.
    model.double()
    frames = _frames(fixture, torch.float64)
    state = model.init_state(ref0)
    with torch.no_grad():
        for call in range(len(fixture["qp"])):
            where = f"{name} call {call}"
            result, channel = _call(model, fixture, frames, state, call)
            np.testing.assert_array_equal(result.latent.symbols[0].numpy(), fixture["y_q"][call],
                                          err_msg=where)
            np.testing.assert_array_equal(result.z_hat[0].numpy(), fixture["z_hat"][call],
                                          err_msg=where)
            np.testing.assert_allclose(result.x_hat[0].numpy(),
                                       fixture["x_hat"][call * n:(call + 1) * n],
                                       rtol=0, atol=ABS_TOL, err_msg=where)
            np.testing.assert_allclose(channel.bits_y.item(), fixture["bits_y"][call],
                                       rtol=REL_TOL, err_msg=where)
            np.testing.assert_allclose(channel.bits_z.item(), fixture["bits_z"][call],
                                       rtol=REL_TOL, err_msg=where)
            if call == 0:
                latent = result.latent
                for key, ours in (("y_hat_first", latent.y_hat), ("y_res_first", latent.residual),
                                  ("scales_hat_first", latent.scales)):
                    np.testing.assert_allclose(ours[0].numpy(), fixture[key], rtol=0,
                                               atol=ABS_TOL, err_msg=f"{where} {key}")
            # Recurrent-state statistics (debugging aids, cheap to compare).
            if result.state.memory is not None:
                np.testing.assert_allclose(_stats(result.state.memory),
                                           fixture["mem_stats"][call], rtol=1e-6, atol=1e-9,
                                           err_msg=f"{where} memory")
            np.testing.assert_allclose(_stats(result.state.ref_feature),
                                       fixture["feat_stats"][call], rtol=1e-6, atol=1e-9,
                                       err_msg=f"{where} reference feature")
            state = result.state
