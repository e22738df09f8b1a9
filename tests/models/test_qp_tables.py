"""Interpolating the per-qp rows between trained levels."""

import dataclasses
import math

import pytest
import torch

from ufvc.errors import InputFormatError
from ufvc.models.channel import EstimateChannel
from ufvc.models.intra import INTRA_TINY
from ufvc.models.qp_tables import (
    copy_qp_row,
    interpolate_qp_rows,
    step_table,
    stretch_top_steps,
)
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


def _stepped_tiny(step_range=(2.0, 0.5)) -> CodecModel:
    intra = dataclasses.replace(INTRA_TINY, qp_step_range=step_range)
    video = dataclasses.replace(TINY, qp_step_range=step_range)
    model = CodecModel("ufvc-tiny", 250, intra, video)
    model.load_recipe_weights()
    return model


def test_step_table_is_geometric_and_absent_from_official_structures():
    table = step_table((3.0, 0.1), 64)
    assert table.shape == (64, 1)
    assert math.isclose(float(table[0]), 3.0, rel_tol=1e-6)
    assert math.isclose(float(table[63]), 0.1, rel_tol=1e-6)
    ratios = table[1:, 0] / table[:-1, 0]
    torch.testing.assert_close(ratios, torch.full_like(ratios, float(ratios[0])))
    assert step_table((), 64) is None
    with pytest.raises(ValueError):
        step_table((1.0, -1.0), 64)
    model = CodecModel("ufvc-tiny", 250, INTRA_TINY, TINY)
    assert model.intra.q_step is None and model.video.q_step is None
    # The recipe weights of a stepped model keep the configured start, not random values.
    stepped = _stepped_tiny()
    torch.testing.assert_close(stepped.video.q_step, step_table((2.0, 0.5), 64))


def test_copy_row_sets_every_table_but_the_steps():
    model = _stepped_tiny()
    steps = model.video.q_step.detach().clone()
    changed = copy_qp_row(model, 40)
    assert "video.q_encoder" in changed and "intra.bit_estimator_z.a" in changed
    assert "video.q_step" not in changed
    for row in (0, 17, 63):
        assert torch.equal(model.video.q_decoder[row], model.video.q_decoder[40])
        assert torch.equal(model.intra.bit_estimator_z.b[row], model.intra.bit_estimator_z.b[40])
    assert torch.equal(model.video.q_step, steps)
    with pytest.raises(InputFormatError):
        copy_qp_row(model, 64)


def test_stretching_the_top_steps_keeps_the_lower_rows_and_ends_at_the_ratio():
    model = _stepped_tiny((2.0, 0.5))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    changed = stretch_top_steps(model, 48, 0.1)
    assert changed == ["intra.q_step", "video.q_step"]
    for name in changed:
        steps, old = dict(model.named_parameters())[name].detach(), before[name]
        assert torch.equal(steps[:49], old[:49])
        torch.testing.assert_close(steps[63], old[48] * 0.1)
        ratios = steps[49:, 0] / steps[48:-1, 0]
        torch.testing.assert_close(ratios, torch.full_like(ratios, 0.1 ** (1 / 15)))
    for name, param in model.named_parameters():
        if not name.endswith("q_step"):
            assert torch.equal(param, before[name]), name
    with pytest.raises(InputFormatError):
        stretch_top_steps(model, 63, 0.5)
    with pytest.raises(InputFormatError):
        stretch_top_steps(model, 48, 1.5)


@torch.no_grad()
def test_finer_steps_cost_more_bits_and_quantise_more_finely():
    model = _stepped_tiny((4.0, 0.25))
    copy_qp_row(model, 63)  # the levels now differ only by their step
    frame = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)) - 0.5
    bits, errors = [], []
    for qp in (0, 63):
        channel = EstimateChannel()
        result = model.intra.code_frame(frame, torch.tensor([qp]), channel)
        bits.append(float(channel.bits_y))
        # Rounding error back in the latent's own units: residual and symbols are in steps.
        step = float(model.intra.q_step[qp])
        errors.append(float((result.y_residual - result.y_symbols).abs().mean()) * step)
    assert bits[1] > bits[0]
    assert errors[1] < errors[0] / 4


@torch.no_grad()
def test_unit_steps_change_nothing():
    plain = CodecModel("ufvc-tiny", 250, INTRA_TINY, TINY)
    plain.load_recipe_weights()
    stepped = _stepped_tiny((1.0, 1.0))
    frames = torch.rand(1, 3, 3, 32, 48, generator=torch.Generator().manual_seed(5)) - 0.5
    qp = torch.tensor([20])
    outputs = []
    for model in (plain, stepped):
        intra = model.intra.code_frame(frames[:, 0], qp, EstimateChannel())
        state = model.video.init_state(intra.x_hat)
        chunk = model.video.code_chunk(frames[:, 1:], qp, state, EstimateChannel())
        outputs.append((intra.x_hat, intra.y_symbols, chunk.x_hat, chunk.latent.symbols))
    for a, b in zip(*outputs, strict=True):
        assert torch.equal(a, b)
