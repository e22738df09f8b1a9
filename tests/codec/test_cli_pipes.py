"""ffmpeg habits on the command line: pipes, FIFOs, devices, overwrite control, ranges."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.codec.conftest import write_clip
from ufvc.cli import main
from ufvc.io import open_reader, open_writer

TINY = ["--model", "ufvc-tiny", "--quiet"]
SRC = Path(__file__).resolve().parents[2] / "src"


def ufvc(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """`python -m ufvc ARGS` in a child process, as a shell pipeline runs it."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ufvc", *args], input=stdin,
                          capture_output=True, env=env, timeout=300, check=False)


@pytest.fixture
def coded(tmp_path, clip) -> tuple[Path, Path]:
    """(source .y4m, its .ufv) for a 5-frame 64x48 clip."""
    source = clip(64, 48, 5)
    stream = tmp_path / "file.ufv"
    assert main(["encode", str(source), "-o", str(stream), *TINY]) == 0
    return source, stream


def test_encode_from_a_pipe_gives_the_file_encode_stream(tmp_path, coded) -> None:
    source, stream = coded
    piped = tmp_path / "piped.ufv"
    result = ufvc("encode", "-", "-o", str(piped), *TINY, stdin=source.read_bytes())
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""  # the summary goes to stderr
    assert b"of stdin (5 frames" in result.stderr
    # The frame count a pipe cannot tell in advance is filled into the header at the end.
    assert piped.read_bytes() == stream.read_bytes()


def test_encode_to_stdout_and_decode_stdin_to_stdout(tmp_path, coded) -> None:
    _, stream = coded
    result = ufvc("encode", str(coded[0]), "-o", "-", *TINY)
    assert result.returncode == 0, result.stderr
    assert result.stdout == stream.read_bytes()
    on_file = tmp_path / "file.y4m"
    assert main(["decode", str(stream), "-o", str(on_file), "--quiet"]) == 0
    piped = ufvc("decode", "-", "-o", "-", "--quiet", stdin=stream.read_bytes())
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == on_file.read_bytes()


def test_fifo_in_and_out(tmp_path, coded) -> None:
    source, stream = coded
    fifo_in, fifo_out = tmp_path / "in.fifo", tmp_path / "out.fifo"
    os.mkfifo(fifo_in)
    os.mkfifo(fifo_out)
    feeder = threading.Thread(target=lambda: fifo_in.write_bytes(source.read_bytes()),
                              daemon=True)
    feeder.start()
    from_fifo = tmp_path / "fifo.ufv"
    assert main(["encode", str(fifo_in), "-o", str(from_fifo), *TINY]) == 0
    feeder.join()
    assert from_fifo.read_bytes() == stream.read_bytes()

    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo_out.read_bytes()),
                              daemon=True)
    reader.start()
    assert main(["decode", str(stream), "-o", str(fifo_out), "--quiet"]) == 0
    reader.join()
    on_file = tmp_path / "file.y4m"
    assert main(["decode", str(stream), "-o", str(on_file), "--quiet"]) == 0
    assert received == [on_file.read_bytes()]
    assert stat.S_ISFIFO(fifo_out.stat().st_mode)


def test_a_character_device_is_written_in_place_never_replaced(tmp_path, coded) -> None:
    source, stream = coded
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except (PermissionError, OSError) as error:
        pytest.skip(f"cannot create a device node here: {error}")
    assert main(["decode", str(stream), "-o", str(device), "--quiet"]) == 0
    assert stat.S_ISCHR(device.stat().st_mode)
    assert main(["encode", str(source), "-o", str(device), *TINY]) == 0
    assert stat.S_ISCHR(device.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("flag", ["-o", "--recon"])
def test_an_encode_never_writes_over_its_input(tmp_path, coded, capsys, flag) -> None:
    source, _ = coded
    before = source.read_bytes()
    args = ["-o", str(source)] if flag == "-o" else ["-o", str(tmp_path / "x.ufv"),
                                                      "--recon", str(source)]
    assert main(["encode", str(source), *args, "-y", *TINY]) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "input" in err[0]
    assert source.read_bytes() == before
    assert not (tmp_path / "x.ufv").exists()


def test_two_outputs_on_stdout_are_refused(coded, capsys) -> None:
    source, _ = coded
    assert main(["encode", str(source), "-o", "-", "--recon", "-", *TINY]) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stdout" in err[0]


def test_a_decode_never_writes_over_its_stream(coded, capsys) -> None:
    _, stream = coded
    before = stream.read_bytes()
    same_file = stream.parent / "." / stream.name
    assert main(["decode", str(stream), "-o", str(same_file), "-y", "--quiet"]) == 5
    assert stream.read_bytes() == before


def test_existing_outputs_are_refused_unless_y(tmp_path, coded, capsys) -> None:
    source, stream = coded
    target = tmp_path / "old.y4m"
    target.write_bytes(b"keep me")
    assert main(["decode", str(stream), "-o", str(target), "--quiet"]) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "-y" in err[0]
    assert target.read_bytes() == b"keep me"
    assert main(["decode", str(stream), "-o", str(target), "-n", "--quiet"]) == 5
    assert main(["decode", str(stream), "-o", str(target), "-y", "--quiet"]) == 0
    with open_reader(target) as reader:
        assert reader.info.num_frames == 5
    before = stream.read_bytes()
    assert main(["encode", str(source), "-o", str(stream), "-q", "10", *TINY]) == 5
    assert stream.read_bytes() == before
    assert main(["encode", str(source), "-o", str(stream), "-q", "10", "--overwrite",
                 *TINY]) == 0
    assert stream.read_bytes() != before


def _frames_of(path: Path, first: int, count: int, target: Path) -> Path:
    with open_reader(path, start=first, max_frames=count) as reader, \
            open_writer(target, reader.info) as writer:
        for frame in reader:
            writer.write(frame)
    return target


@pytest.mark.parametrize(("start", "duration", "frames", "first", "count"), [
    ("3", "4", None, 3, 4),
    ("0.12s", "0.16s", None, 3, 4),  # 25 fps: 0.12 s is frame 3, 0.16 s is 4 frames
    ("2", "10", "2", 2, 2),  # --frames caps --duration
    ("9", None, None, 9, 3),  # from --start to the end
])
def test_start_and_duration_code_exactly_the_frames_asked(
    tmp_path, clip, capsys, start, duration, frames, first, count
) -> None:
    source = clip(64, 48, 12)
    ranged = tmp_path / "ranged.ufv"
    args = ["encode", str(source), "-o", str(ranged), "--start", start, *TINY]
    args += ["--duration", duration] if duration else []
    args += ["--frames", frames] if frames else []
    assert main(args) == 0
    assert f"frames {first}-{first + count - 1} of" in capsys.readouterr().err
    expected = tmp_path / "expected.ufv"
    part = _frames_of(source, first, count, tmp_path / "part.y4m")
    assert main(["encode", str(part), "-o", str(expected), *TINY]) == 0
    assert ranged.read_bytes() == expected.read_bytes()


@pytest.mark.parametrize("position", ["-1", "1.5", "x", "2q"])
def test_bad_start_is_one_line(tmp_path, clip, capsys, position) -> None:
    code = main(["encode", str(clip(64, 48, 3)), "-o", str(tmp_path / "s.ufv"),
                 f"--start={position}", *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "frame position" in err[0]


def test_threads_1_is_accepted_by_encode_and_decode(tmp_path, coded, capsys) -> None:
    source, stream = coded
    again = tmp_path / "again.ufv"
    assert main(["encode", str(source), "-o", str(again), "--threads", "1", *TINY]) == 0
    assert again.read_bytes() == stream.read_bytes()
    out = tmp_path / "d.y4m"
    assert main(["decode", str(stream), "-o", str(out), "--threads", "1", "--quiet"]) == 0
    assert "1 thread(s)" in capsys.readouterr().err


def test_json_summaries(tmp_path, coded, capsys) -> None:
    source, stream = coded
    capsys.readouterr()
    out = tmp_path / "d.y4m"
    assert main(["decode", str(stream), "-o", str(out), "--quiet", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 5 and report["width"] == 64 and report["bit_depth"] == 8
    summary = tmp_path / "encode.json"
    again = tmp_path / "again.ufv"
    assert main(["encode", str(source), "-o", str(again), f"--json={summary}", *TINY]) == 0
    assert capsys.readouterr().out == ""
    report = json.loads(summary.read_text())
    assert report["bytes"] == again.stat().st_size
    assert (report["first_frame"], report["last_frame"], report["frames"]) == (0, 4, 5)


def test_json_on_stdout_beside_video_on_stdout_is_refused(coded, capsys) -> None:
    _, stream = coded
    assert main(["decode", str(stream), "-o", "-", "--json", "--quiet"]) == 2
    assert "--json=FILE" in capsys.readouterr().err


def test_ten_bit_to_png_warns_about_lost_bits(tmp_path, capsys) -> None:
    from fractions import Fraction

    from ufvc.io.types import VideoInfo
    from ufvc.samples import synthetic_video

    source = tmp_path / "ten.y4m"
    with open_writer(source, VideoInfo(64, 48, Fraction(25), 2, bit_depth=10)) as writer:
        for frame in synthetic_video(64, 48, 2, bit_depth=10):
            writer.write(frame)
    stream = tmp_path / "ten.ufv"
    assert main(["encode", str(source), "-o", str(stream), "--recon", str(tmp_path / "r.mp4"),
                 *TINY]) == 0
    assert "r.mp4 keeps 8 bits per sample of this 10-bit video" in capsys.readouterr().err
    assert main(["decode", str(stream), "-o", str(tmp_path / "frames/"), "--quiet"]) == 0
    assert "warning" in capsys.readouterr().err
    assert main(["decode", str(stream), "-o", str(tmp_path / "ten_out.y4m"), "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_sigterm_leaves_no_temporary_files(tmp_path, clip) -> None:
    source = write_clip(tmp_path / "src.y4m", 64, 48, 3)
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "ufvc", "encode", str(fifo), "-o", str(out / "x.ufv"),
         "--recon", str(out / "r.y4m"), *TINY],
        env=env, stderr=subprocess.PIPE,
    )
    data = source.read_bytes()
    with fifo.open("wb") as feed:
        feed.write(data[: len(data) // 2])  # the header and a frame, then nothing more
        feed.flush()
        deadline = time.monotonic() + 120
        while len(list(out.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # both outputs are being written
        assert len(list(out.iterdir())) == 2
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(("start", "duration", "first", "count"), [
    ("2", "2", 2, 2),
    ("0.04s", None, 1, 4),  # 25 fps: from frame 1 to the end
    (None, "0.08s", 0, 2),
])
def test_decode_start_and_duration_write_exactly_those_frames(
    tmp_path, coded, capsys, start, duration, first, count
) -> None:
    _, stream = coded
    whole, part = tmp_path / "whole.y4m", tmp_path / "part.y4m"
    assert main(["decode", str(stream), "-o", str(whole), "--quiet"]) == 0
    args = ["decode", str(stream), "-o", str(part), "--quiet"]
    args += ["--start", start] if start else []
    args += ["--duration", duration] if duration else []
    capsys.readouterr()
    assert main(args) == 0
    assert f"frames {first}-{first + count - 1} of" in capsys.readouterr().err
    expected = _frames_of(whole, first, count, tmp_path / "expected.y4m")
    assert part.read_bytes() == expected.read_bytes()


def test_decode_start_past_the_end_writes_nothing(tmp_path, coded, capsys) -> None:
    _, stream = coded
    out = tmp_path / "out.y4m"
    assert main(["decode", str(stream), "-o", str(out), "--start", "5", "--quiet"]) == 2
    assert "past the end" in capsys.readouterr().err
    assert not out.exists()
