"""Interpolating the per-qp rows between trained levels."""

import math

import pytest
import torch

from ufvc.errors import InputFormatError
from ufvc.models.intra import INTRA_TINY
from ufvc.models.qp_tables import interpolate_qp_rows
from ufvc.models.registry import CodecModel
from ufvc.models.video import TINY


def test_rows_between_levels_are_interpolated_and_levels_kept():
    model = CodecModel("ufvc-tiny", 250, INTRA_TINY, TINY)
    model.load_recipe_weights()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    changed = interpolate_qp_rows(model, [0, 32, 63])
    assert "video.q_encoder" in changed and "intra.q_scale_y_enc" in changed
    assert "video.bit_estimator_z.h" in changed
    q = model.video.q_encoder
    for level in (0, 32, 63):
        assert torch.equal(q[level], before["video.q_encoder"][level])
    # Geometric between the levels for multiplier tables...
    expected = torch.sqrt(before["video.q_encoder"][0] * before["video.q_encoder"][32])
    torch.testing.assert_close(q[16], expected)
    # ...linear for the density parameters.
    h = model.video.bit_estimator_z.h
    b0, b32 = before["video.bit_estimator_z.h"][0], before["video.bit_estimator_z.h"][32]
    torch.testing.assert_close(h[8], 0.75 * b0 + 0.25 * b32)
    assert not math.isnan(float(q.sum()))
    # Convolutions with 64 output channels are not per-qp tables and stay as they were.
    for name, param in model.named_parameters():
        if name.endswith(".weight"):
            assert torch.equal(param, before[name]), name


def test_rows_outside_the_levels_repeat_the_nearest():
    model = CodecModel("ufvc-tiny", 250, INTRA_TINY, TINY)
    model.load_recipe_weights()
    interpolate_qp_rows(model, [10, 50])
    q = model.intra.q_scale_enc
    assert torch.equal(q[0], q[10]) and torch.equal(q[63], q[50])


def test_bad_levels_are_refused():
    model = CodecModel("ufvc-tiny", 250, INTRA_TINY, TINY)
    with pytest.raises(InputFormatError):
        interpolate_qp_rows(model, [70])
