"""The intra codec has the official structure and computes the official function."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ufvc.errors import InputFormatError
from ufvc.models.channel import EstimateChannel
from ufvc.models.intra import INTRA, INTRA_S, INTRA_TINY, IntraCodec
from ufvc.models.recipe import recipe_state_dict

FIXTURES = Path(__file__).parents[1] / "fixtures"
# The repository's sibling shared/ folder (present for developers and CI, not for users).
SIBLING_REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
REFERENCE = Path(os.environ.get("UFVC_REFERENCE_DIR", SIBLING_REFERENCE))


def intra_fixture_path() -> Path:
    for path in (FIXTURES / "fixture_intra.npz", REFERENCE / "fixture_intra.npz"):
        if path.is_file():
            return path
    pytest.skip("fixture_intra.npz not available")


def recipe_intra(config=INTRA) -> IntraCodec:
    model = IntraCodec(config)
    model.load_state_dict(recipe_state_dict(model), strict=True)
    return model.eval()


class ReplayChannel:
    """Decoder side: hands back the symbols an EstimateChannel recorded while encoding."""

    def __init__(self, z_hat: torch.Tensor, y_symbols: list[torch.Tensor]) -> None:
        self.z_hat = z_hat
        self.y_symbols = y_symbols
        self.announced = "not called"

    def exchange_z(self, z, density, qp, shape):
        assert z is None and tuple(shape) == tuple(self.z_hat.shape)
        return self.z_hat

    def begin_y(self, scales, masks):
        self.announced = scales

    def exchange_y(self, step, residual, scales, mask):
        assert residual is None
        return self.y_symbols[step]


def test_official_intra_has_42179328_parameters():
    with torch.device("meta"):
        model = IntraCodec(INTRA)
    assert sum(p.numel() for p in model.parameters()) == 42_179_328


def test_official_intra_keys_and_shapes_match_manifest():
    manifest = json.loads((FIXTURES / "manifests" / "intra.json").read_text())
    with torch.device("meta"):
        model = IntraCodec(INTRA)
    ours = [[key, list(t.shape)] for key, t in model.state_dict().items()]
    assert ours == manifest["state_dict"]  # same keys, shapes and order
    assert list(model.buffers()) == []
    for name, count in manifest["parameters_per_top_level_submodule"].items():
        part = getattr(model, name)
        numel = part.numel() if isinstance(part, torch.nn.Parameter) else sum(
            p.numel() for p in part.parameters())
        assert numel == count, name


def test_intra_fixture_reproduced_in_float64():
    fixture = np.load(intra_fixture_path())
    assert str(fixture["model"]) == "intra"
    model = recipe_intra().double()
    frames = torch.from_numpy(fixture["frames_u8"].astype(np.float64) / 255 - 0.5)
    qps = torch.from_numpy(fixture["qp"].astype(np.int64))
    start = 0
    for batch in fixture["call_batch"]:
        part = slice(start, start + int(batch))
        channel = EstimateChannel()
        with torch.no_grad():
            result = model.code_frame(frames[part], qps[part], channel)
        np.testing.assert_allclose(result.x_hat.numpy(), fixture["x_hat"][part], rtol=0,
                                   atol=1e-5)
        np.testing.assert_array_equal(result.y_symbols.numpy(), fixture["y_q"][part])
        np.testing.assert_array_equal(result.z_hat.numpy(), fixture["z_hat"][part])
        for key, value in (("y_hat", result.y_hat), ("y_res", result.y_residual),
                           ("scales_hat", result.y_scales)):
            np.testing.assert_allclose(value.numpy(), fixture[key][part], rtol=0, atol=1e-5,
                                       err_msg=key)
        np.testing.assert_allclose(channel.bits_y.numpy(), fixture["bits_y"][part], rtol=1e-5)
        np.testing.assert_allclose(channel.bits_z.numpy(), fixture["bits_z"][part], rtol=1e-5)
        start += int(batch)
    assert start == len(qps)


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (48, 64), (50, 130)])
def test_any_frame_size_comes_back_at_input_size(size):
    model = recipe_intra(INTRA_TINY)
    x = torch.rand(2, 3, *size) - 0.5
    with torch.no_grad():
        result = model.code_frame(x, torch.tensor([0, 63]), EstimateChannel())
    assert result.x_hat.shape == x.shape
    assert torch.isfinite(result.x_hat).all()
    latent = (-(-size[0] // 16), -(-size[1] // 16))
    assert result.y_hat.shape[-2:] == latent
    assert result.z_hat.shape[-2:] == (-(-latent[0] // 4), -(-latent[1] // 4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decoding_from_symbols_gives_the_encoder_reconstruction(dtype):
    model = recipe_intra(INTRA_TINY).to(dtype)
    x = (torch.rand(2, 3, 40, 72) - 0.5).to(dtype)
    qp = torch.tensor([10, 50])
    encoder_channel = EstimateChannel()
    with torch.no_grad():
        encoded = model.code_frame(x, qp, encoder_channel)
        # The channel recorded each step's symbols (zero outside that step's mask).
        replay = ReplayChannel(encoded.z_hat, encoder_channel.y_symbols)
        decoded = model.code_frame(None, qp, replay, frame_size=(40, 72))
    assert replay.announced is None  # per-step scales: nothing announced up front
    assert torch.equal(decoded.x_hat, encoded.x_hat)
    assert torch.equal(decoded.y_symbols, encoded.y_symbols)
    assert decoded.y_residual is None


def test_decoding_needs_the_frame_size():
    model = recipe_intra(INTRA_TINY)
    with pytest.raises(InputFormatError, match="frame_size"):
        model.code_frame(None, torch.tensor([0]), EstimateChannel())


def test_small_intra_config_codes_frames():
    with torch.device("meta"):
        small = IntraCodec(INTRA_S)
    assert sum(p.numel() for p in small.parameters()) == 3_231_360
    model = recipe_intra(INTRA_S)
    x = torch.rand(1, 3, 64, 96) - 0.5
    channel = EstimateChannel()
    with torch.no_grad():
        result = model.code_frame(x, torch.tensor([32]), channel)
    assert result.x_hat.shape == x.shape
    assert float(channel.bits_y[0]) > 0 and float(channel.bits_z[0]) > 0
