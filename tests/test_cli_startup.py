"""The command line starts fast and speaks clearly: lazy imports, usage, help, `info`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ufvc.cli import build_parser, main, parse_args

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("torch", "av", "PIL", "scipy", "matplotlib", "numpy")


def test_building_every_parser_imports_no_heavy_module() -> None:
    # A child process: this one has imported torch already.
    code = ("import sys; from ufvc.cli import build_parser; build_parser(); "
            f"print(sorted(set({HEAVY!r}) & set(sys.modules)))")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_an_unknown_option_shows_the_sub_command_usage(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["decode", "x.ufv", "-o", "x.y4m", "--bogus"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "usage: ufvc decode" in err and "unrecognized arguments: --bogus" in err


def test_train_overrides_may_follow_options(capsys) -> None:
    args = parse_args(build_parser(), ["train", "--config", "c.toml", "seed=1", "--export",
                                       "ema_decay=0", "--out", "o"])
    assert args.overrides == ["seed=1", "ema_decay=0"] and args.export and str(args.out) == "o"
    with pytest.raises(SystemExit):
        parse_args(build_parser(), ["train", "--config", "c.toml", "seed=1", "--bogus"])
    err = capsys.readouterr().err
    assert "usage: ufvc train" in err and "unrecognized arguments: --bogus" in err


def test_decode_help_shows_the_pattern_as_typed(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["decode", "--help"])
    out = capsys.readouterr().out
    assert "%05d" in out and "%%" not in out


@pytest.mark.parametrize("command", ["encode", "decode", "eval", "bench"])
def test_threads_1_parses_everywhere_and_0_is_refused(command, capsys) -> None:
    required = {
        "encode": ["in.y4m", "-o", "x.ufv"],
        "decode": ["x.ufv", "-o", "x.y4m"],
        "eval": ["-q", "40", "--testset", "samples", "-o", "r.json"],
        "bench": [],
    }[command]
    args = build_parser().parse_args([command, *required, "--threads", "1"])
    assert args.threads == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, *required, "--threads", "0"])
    assert "--threads" in capsys.readouterr().err


def test_list_models_has_a_labelled_column_header(capsys) -> None:
    assert main(["info", "--list-models"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header == ["id", "name", "description"]


def test_info_of_a_stream_checks_the_model_given(tmp_path, capsys) -> None:
    from tests.codec.conftest import write_clip

    source = write_clip(tmp_path / "c.y4m", 64, 48, 2)
    stream = tmp_path / "c.ufv"
    assert main(["encode", str(source), "-o", str(stream), "--model", "ufvc-tiny",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", str(stream), "--model", "ufvc-tiny"]) == 0
    assert "model ufvc-tiny decodes this stream" in capsys.readouterr().out
    assert main(["info", str(stream), "--model", "ufvc-s"]) == 0
    assert "cannot decode it" in capsys.readouterr().out


def test_the_python_encode_documents_quality_inputs_options_and_errors() -> None:
    from ufvc.codec import encode

    doc = encode.__doc__
    for words in ("0..63", "HIGHER IS BETTER", ".y4m", "reader_options", "Raises",
                  "InputFormatError", "OutputError"):
        assert words in doc


@pytest.mark.parametrize(("cores", "busy_ticks", "own_seconds", "threads"), [
    (2, 0, 0.0, 2),  # idle machine: every core
    (2, 100, 0.0, 1),  # another process keeps one core of two busy
    (2, 100, 1.0, 2),  # the busy core was this process loading torch
    (2, 200, 0.0, 1),  # everything busy: still one thread
    (4, 260, 0.0, 1),  # 2.6 of 4 cores busy
    (4, 140, 0.0, 3),
])
def test_default_threads_leave_the_busy_cores_alone(
    monkeypatch, cores, busy_ticks, own_seconds, threads
) -> None:
    from ufvc.commands import _options

    monkeypatch.setattr(_options, "_cores", lambda: set(range(cores)))
    monkeypatch.setattr(_options.time, "sleep", lambda seconds: None)
    # One second at 100 ticks per second per core.
    since = _options.CpuSample(busy=0, total=0, own=0.0, at=0.0)
    now = _options.CpuSample(busy=busy_ticks, total=100 * cores, own=own_seconds, at=1.0)
    monkeypatch.setattr(_options.CpuSample, "now", classmethod(lambda cls: now))
    assert _options.default_threads(since) == threads


def test_the_light_defaults_agree_with_the_modules_that_use_them() -> None:
    from ufvc import defaults
    from ufvc.eval.anchors import CODECS
    from ufvc.io.planar import SUPPORTED_PIX_FMTS

    assert set(defaults.ANCHOR_CODECS) == set(CODECS)
    assert set(defaults.PIX_FMTS) == set(SUPPORTED_PIX_FMTS)
