"""`ufvc encode` and `ufvc decode` from the command line."""

from __future__ import annotations

import re

from ufvc.cli import main
from ufvc.io import open_reader


def test_encode_prints_summary_and_decode_matches_recon(tmp_path, clip, capsys):
    source = clip(64, 48, 5)
    stream, recon, out = tmp_path / "s.ufv", tmp_path / "r.y4m", tmp_path / "d.y4m"
    assert main(["encode", str(source), "-o", str(stream), "--model", "ufvc-tiny", "-q", "50",
                 "--precision", "bf16", "--recon", str(recon), "--quiet"]) == 0
    captured = capsys.readouterr()
    line = captured.err
    assert captured.out == ""  # stdout stays free for video
    summary = (r"frames 0-4 of \S+ \(5 frames 64x48\), \d+ bytes, [\d.]+ kbps, [\d.]+ bpp, "
               r"PSNR YUV [\d.]+ dB")
    assert re.search(summary, line)
    assert "frames/s" in line
    assert main(["decode", str(stream), "-o", str(out), "--quiet"]) == 0
    assert out.read_bytes() == recon.read_bytes()
    with open_reader(out) as reader:
        assert reader.info.num_frames == 5


def test_quality_outside_the_range_is_refused(tmp_path, clip, capsys):
    code = main(["encode", str(clip(64, 48, 2)), "-o", str(tmp_path / "s.ufv"),
                 "--model", "ufvc-tiny", "-q", "64", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "higher is better" in err[0]
    assert not (tmp_path / "s.ufv").exists()
