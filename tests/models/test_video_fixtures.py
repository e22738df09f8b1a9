"""The chunk video codec computes the official function: float64 replay of the reference
fixtures (shared/reference README sec. 4-6) with the recipe weights loaded strictly.

Skipped when the reference directory (`$UFVC_REFERENCE_DIR`, default
/work/shared/reference) is absent.
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

REFERENCE = Path(os.environ.get("UFVC_REFERENCE_DIR", "/work/shared/reference"))
CONFIGS = {"ld": LD, "hts": HTS, "htl": HTL}
ABS_TOL = 1e-5  # reconstructions and latent maps
REL_TOL = 1e-5  # rates


def _stats(t: torch.Tensor) -> np.ndarray:
    return np.array([t.mean().item(), t.std().item(), t.abs().mean().item()])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_reference_fixture_reproduced_in_float64(name):
    path = REFERENCE / f"fixture_{name}.npz"
    if not path.is_file():
        pytest.skip(f"reference fixture {path} not available")
    fixture = np.load(path)
    assert str(fixture["model"]) == name
    config = CONFIGS[name]
    model = ChunkCodec(config)
    model.load_state_dict(recipe_state_dict(model), strict=True)
    model = model.double().eval()

    frames = torch.from_numpy(fixture["frames_u8"]).double() / 255 - 0.5
    state = model.init_state(torch.from_numpy(fixture["ref0_x_hat"]))
    n = config.frames
    with torch.no_grad():
        for call, (qp, reset) in enumerate(zip(fixture["qp"], fixture["reset"], strict=True)):
            where = f"{name} call {call}"
            chunk = frames[1 + call * n: 1 + (call + 1) * n][None]
            channel = EstimateChannel(noisy_rate=False)
            result = model.code_chunk(chunk, torch.tensor([int(qp)]), state, channel,
                                      reset=bool(reset))
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
