"""Decoding gives back exactly the encoder's reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.codec.conftest import TINY_FAMILIES, tiny_model
from ufvc.codec import decode, encode, open_stream
from ufvc.io import open_reader


def _frames(path):
    with open_reader(path) as reader:
        return list(reader)


def _assert_identical(expected, actual):
    assert len(actual) == len(expected)
    for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
        for plane_a, plane_b in zip(a.planes, b.planes, strict=True):
            np.testing.assert_array_equal(plane_a, plane_b, err_msg=f"frame {i}")


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
@pytest.mark.parametrize(("width", "height", "frames", "quality"),
                         [(64, 48, 6, 50), (50, 34, 4, 5), (96, 80, 9, 63)])
def test_decoded_frames_match_encoder_reconstruction(
    tmp_path, clip, family, width, height, frames, quality
):
    model = tiny_model(family)
    stream, recon = tmp_path / "out.ufv", tmp_path / "recon.y4m"
    summary = encode(clip(width, height, frames), stream, model=model, quality=quality,
                     recon=recon, reset_interval=4)
    assert summary.frames == frames
    decoded = list(decode(stream, model=model))
    assert all((f.width, f.height) == (width, height) for f in decoded)
    _assert_identical(_frames(recon), decoded)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_decoding_with_other_thread_count_is_bit_exact(tmp_path, clip, precision):
    model = tiny_model()
    stream, recon = tmp_path / "out.ufv", tmp_path / "recon.y4m"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        encode(clip(128, 96, 5), stream, model=model, quality=40, recon=recon,
               precision=precision)
        torch.set_num_threads(max(2, threads))
        decoded = list(decode(stream, model=model))
    finally:
        torch.set_num_threads(threads)
    _assert_identical(_frames(recon), decoded)


def test_frame_limit_and_short_last_chunk(tmp_path, clip):
    model = tiny_model()
    stream = tmp_path / "out.ufv"
    summary = encode(clip(64, 64, 8), stream, model=model, max_frames=4)
    assert summary.frames == 4  # intra + one chunk of 2 + a short chunk of 1
    assert len(list(decode(stream, model=model))) == 4


def test_bf16_streams_say_so_and_differ_from_fp32(tmp_path, clip):
    model = tiny_model()
    source = clip(64, 48, 3)
    paths = {p: tmp_path / f"{p}.ufv" for p in ("fp32", "bf16")}
    for precision, path in paths.items():
        encode(source, path, model=model, quality=40, precision=precision)
    assert paths["fp32"].read_bytes() != paths["bf16"].read_bytes()
    with open_stream(paths["bf16"], model=model) as stream:
        assert stream.header.compute_precision == "bf16"
        assert len(list(stream)) == 3
