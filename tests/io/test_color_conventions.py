"""Colour conventions: chroma resampling, BT.709 matrices, model tensors, padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ufvc.errors import InputFormatError
from ufvc.io.color import (
    crop,
    downsample_444_to_420,
    frame_to_tensor,
    frames_to_tensor,
    pad_to_multiple,
    rgb_to_ycbcr,
    tensor_to_frame,
    tensors_to_frames,
    upsample_420_to_444,
    ycbcr_to_rgb,
)
from ufvc.io.types import Frame


def test_upsampling_repeats_each_chroma_sample_over_a_2x2_block():
    plane = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    expected = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    np.testing.assert_array_equal(upsample_420_to_444(plane), expected)


def test_integer_downsampling_rounds_half_up():
    plane = np.array([[0, 1, 1, 1], [1, 0, 1, 1], [1023, 1023, 0, 0], [1023, 1022, 0, 2]])
    # Sums 2, 4, 4091, 2: means 0.5 -> 1, 1 -> 1, 1022.75 -> 1023, 0.5 -> 1.
    out = downsample_444_to_420(plane.astype(np.uint16))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, [[1, 1], [1023, 1]])
    assert downsample_444_to_420(np.full((2, 2), 255, np.uint8))[0, 0] == 255


def test_downsampling_undoes_upsampling():
    plane = np.random.default_rng(0).integers(0, 1024, (6, 10)).astype(np.uint16)
    np.testing.assert_array_equal(downsample_444_to_420(upsample_420_to_444(plane)), plane)


def test_bt709_matrix_values_and_inverse():
    white, red = rgb_to_ycbcr(np.array([1.0, 1.0, 1.0])), rgb_to_ycbcr(np.array([1.0, 0, 0]))
    np.testing.assert_allclose(white, [1.0, 0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(red, [0.2126, 0.5 - 0.2126 / 1.8556, 1.0], atol=1e-12)
    rgb = np.random.default_rng(1).random((5, 7, 3))
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-12)


def test_torch_conversion_matches_numpy_on_channel_first_batches():
    rgb = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    from_torch = rgb_to_ycbcr(rgb, channel_axis=1)
    from_numpy = rgb_to_ycbcr(rgb.numpy(), channel_axis=1)
    np.testing.assert_allclose(from_torch.numpy(), from_numpy, atol=1e-12)
    torch.testing.assert_close(ycbcr_to_rgb(from_torch, channel_axis=1), rgb)


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_444_tensor_round_trip_is_exact(random_frames, assert_same_frames, bit_depth):
    frames = random_frames(18, 10, 2, chroma="444", bit_depth=bit_depth)
    tensor = frames_to_tensor(frames)
    assert tensor.shape == (2, 3, 10, 18) and tensor.dtype == torch.float32
    assert tensor.min() >= -0.5 and tensor.max() <= 0.5
    back = tensors_to_frames(tensor, chroma="444", bit_depth=bit_depth)
    assert_same_frames(frames, back)


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_420_tensor_round_trip_is_exact(random_frames, assert_same_frames, bit_depth):
    # Upsampled 4:2:0 chroma is constant over each 2x2 block, so averaging restores it.
    frame = random_frames(16, 12, 1, bit_depth=bit_depth)[0]
    tensor = frame_to_tensor(frame)
    torch.testing.assert_close(tensor[1, 0:2, 0:2], tensor[1, 0, 0].expand(2, 2))
    assert_same_frames([frame], [tensor_to_frame(tensor, chroma="420", bit_depth=bit_depth)])


def test_tensor_values_follow_the_sample_convention():
    y = np.array([[0, 255], [128, 64]], dtype=np.uint8)
    frame = Frame(y, np.array([[255]], np.uint8), np.array([[0]], np.uint8))
    tensor = frame_to_tensor(frame)
    torch.testing.assert_close(tensor[0], torch.from_numpy(y / 255 - 0.5).float())
    torch.testing.assert_close(tensor[1], torch.full((2, 2), 0.5))
    ten_bit = Frame(np.full((2, 2), 1023, np.uint16), *(np.zeros((1, 1), np.uint16),) * 2, 10)
    assert frame_to_tensor(ten_bit)[0, 0, 0] == 0.5


def test_tensor_to_frame_clamps_and_averages_chroma_before_rounding():
    def from_codes(codes):
        return torch.tensor(codes, dtype=torch.float32) / 255 - 0.5

    tensor = torch.stack(
        [
            torch.tensor([[-3.0, 3.0], [0.0, 0.0]]),
            from_codes([[10.6, 10.6], [10.6, 10.1]]),  # mean 10.475 -> 10 (rounding first: 11)
            from_codes([[200.2, 200.2], [200.2, 200.2]]),
        ]
    )
    frame = tensor_to_frame(tensor)
    np.testing.assert_array_equal(frame.y, [[0, 255], [128, 128]])
    assert (frame.u[0, 0], frame.v[0, 0]) == (10, 200)


def test_odd_tensor_cannot_become_420():
    with pytest.raises(InputFormatError, match="even width and height"):
        tensor_to_frame(torch.zeros(3, 5, 4))


def test_pad_replicates_right_and_bottom_and_crop_undoes_it():
    tensor = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    padded, size = pad_to_multiple(tensor, 16)
    assert padded.shape == (2, 3, 16, 16) and size == (5, 7)
    torch.testing.assert_close(padded[..., :5, 7:], tensor[..., :, 6:7].expand(-1, -1, -1, 9))
    torch.testing.assert_close(padded[..., 5:, :7], tensor[..., 4:5, :].expand(-1, -1, 11, -1))
    torch.testing.assert_close(crop(padded, size), tensor)
    same, _ = pad_to_multiple(torch.zeros(3, 16, 32), 16)
    assert same.shape == (3, 16, 32)
