"""The shipped default model: present, loadable, and its rate follows the quality."""

from __future__ import annotations

import pytest

from ufvc.codec import DEFAULT_MODEL, encode, load_model
from ufvc.models.registry import get_model_spec, shipped_weights_path


def test_default_model_ships_with_trained_weights():
    spec = get_model_spec(DEFAULT_MODEL)
    path = shipped_weights_path(spec)
    assert path is not None and path.stat().st_size < 40e6
    model = load_model()
    assert model.weights_source == str(path)


def test_rate_and_quality_fall_as_the_quality_level_falls(tmp_path, clip):
    source = clip(128, 96, 9, seed=3)
    points = []
    for quality in (63, 32, 0):
        summary = encode(source, tmp_path / f"q{quality}.ufv", quality=quality)
        points.append((summary.bytes, summary.psnr.mean().yuv611))
    sizes = [size for size, _ in points]
    psnrs = [psnr for _, psnr in points]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 3
    assert psnrs == sorted(psnrs, reverse=True)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_default_model_streams_decode_exactly(tmp_path, clip, precision):
    from ufvc.codec import decode
    from ufvc.io import open_reader

    recon = tmp_path / "recon.y4m"
    encode(clip(96, 64, 5), tmp_path / "s.ufv", quality=40, recon=recon, precision=precision)
    with open_reader(recon) as reader:
        expected = list(reader)
    decoded = list(decode(tmp_path / "s.ufv"))
    assert all(
        (a.y == b.y).all() and (a.u == b.u).all() and (a.v == b.v).all()
        for a, b in zip(expected, decoded, strict=True)
    )
