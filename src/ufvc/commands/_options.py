"""Options and helpers shared by the sub-commands (not a sub-command: the name starts with _).

Nothing here imports torch, PyAV or numpy at module level: `ufvc --help` builds every
parser, and the heavy modules load only inside the functions that run a command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ufvc.defaults import DEFAULT_MODE_DECISION, DEFAULT_SCENECUT, MODE_DECISIONS, PIX_FMTS
from ufvc.errors import InputFormatError, OutputError

if TYPE_CHECKING:
    from ufvc.codec.options import CodingOptions


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """Add --size, --pix-fmt and --fps (needed for raw .yuv, overrides elsewhere)."""
    group = parser.add_argument_group("input format (raw .yuv needs --size)")
    group.add_argument("--size", metavar="WxH", help="frame size of raw .yuv input")
    group.add_argument(
        "--pix-fmt",
        choices=sorted(PIX_FMTS),
        help="raw .yuv layout (default yuv420p); for PNG and compressed input, the layout "
        "to convert to",
    )
    group.add_argument("--fps", metavar="RATE", help="frame rate, e.g. 25 or 30000/1001")


def add_range_options(parser: argparse.ArgumentParser, verb: str = "code") -> None:
    """Add --start and --duration (frames, or seconds with an `s` suffix)."""
    parser.add_argument(
        "--start", metavar="POS",
        help=f"first frame to {verb}: a frame number (0 = the first) or seconds such as "
        "2.5s (ffmpeg's -ss; default 0)",
    )
    parser.add_argument(
        "--duration", metavar="LEN",
        help=f"how much to {verb} from --start: frames, or seconds such as 2s (ffmpeg's -t)",
    )


def reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for `ufvc.io.open_reader` from the options above."""
    from ufvc.io import FramePosition, parse_fps, parse_size

    options: dict[str, Any] = {
        "size": parse_size(args.size) if args.size else None,
        "pix_fmt": args.pix_fmt,
        "fps": parse_fps(args.fps) if args.fps else None,
    }
    if getattr(args, "start", None) is not None:
        options["start"] = FramePosition.parse(args.start)
    if getattr(args, "duration", None) is not None:
        options["duration"] = FramePosition.parse(args.duration)
    return options


def add_package_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    """--out and --debs of the commands that gather training data from Debian packages."""
    from pathlib import Path

    parser.add_argument("--out", type=Path, default=Path(default_out),
                        help=f"output folder (default: {default_out})")
    parser.add_argument("--debs", type=Path,
                        help="folder of already downloaded .deb files (default: OUT/debs)")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """Add --threads (torch's intra-op threads for the networks)."""
    parser.add_argument(
        "--threads", type=positive_int, metavar="N",
        help="CPU threads for the networks (default: one per core that other processes "
        "leave free, measured at start, at least 1; the output is the same for any N)",
    )


def _cores() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class CpuSample:
    """Busy CPU time of this process's cores (/proc/stat) and of this process, at one time."""

    busy: int  # clock ticks the cores spent busy, all processes
    total: int  # clock ticks the cores spent in all, busy or idle
    own: float  # CPU seconds this process used
    at: float  # time.monotonic()

    @classmethod
    def now(cls) -> CpuSample | None:
        """A sample, or None where /proc/stat cannot be read."""
        cores = _cores()
        busy = total = 0
        try:
            with open("/proc/stat") as stat:
                lines = stat.read().splitlines()
        except OSError:
            return None
        for line in lines:
            name, *fields = line.split()
            if name[:3] == "cpu" and name[3:].isdigit() and int(name[3:]) in cores:
                # user nice system idle iowait irq softirq steal
                ticks = [int(value) for value in fields[:8]]
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]
        usage = os.times()
        return cls(busy, total, usage.user + usage.system, time.monotonic())


def default_threads(since: CpuSample | None = None, *, window: float = 0.1) -> int:
    """Threads for the networks when --threads is not given: the cores not busy now.

    Oversubscribed OpenMP threads wait on each other: with one of two cores busy, two
    threads decoded 2-10x slower than one (README, "Threads"). The cores that other
    processes keep busy are measured from /proc/stat between `since` (taken before
    torch loads, say) and now, at least over `window` seconds, less this process's own
    CPU time. Without /proc/stat: every core.
    """
    cores = len(_cores())
    if since is None:
        since = CpuSample.now()
    if since is None:
        return cores
    time.sleep(max(0.0, window - (time.monotonic() - since.at)))
    now = CpuSample.now()
    if now is None or now.total <= since.total:
        return cores
    ticks_per_second = (now.total - since.total) / (now.at - since.at) / cores
    own = (now.own - since.own) * ticks_per_second
    busy = max(0.0, (now.busy - since.busy - own) / (now.total - since.total) * cores)
    return max(1, min(cores, math.floor(cores - busy + 0.5)))


@contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """Run a block with `count` torch intra-op threads (None: `default_threads()`).

    Yields the count in use and restores the previous one afterwards, so that `main()`
    called in-process leaves the caller's setting alone. The machine's load is sampled
    while torch loads, which costs no extra wait.
    """
    before = None if count else CpuSample.now()
    from ufvc.codec.options import torch_threads as set_threads

    with set_threads(count or default_threads(before)) as threads:
        yield threads


def add_overwrite_options(parser: argparse.ArgumentParser) -> None:
    """Add -y/--overwrite and -n/--no-overwrite (ffmpeg's flags; refusing is the default)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-y", "--overwrite", dest="overwrite", action="store_true", default=False,
                       help="replace output files that already exist")
    group.add_argument("-n", "--no-overwrite", dest="overwrite", action="store_false",
                       help="refuse to replace an existing output file (the default)")


def check_outputs(
    outputs: list[str | None], inputs: list[str | None], *, overwrite: bool
) -> None:
    """Refuse, before any work, an output that is an input, a duplicate, or exists.

    The writers check again when they publish their files (another process may create
    one meanwhile); this early check makes the usual mistake cost no time.
    """
    from ufvc.io.base import check_not_input, is_special_file, is_stdio, refuse_existing

    named = [path for path in outputs if path is not None]
    for number, path in enumerate(named):
        check_not_input(path, inputs + named[:number])
        # check_not_input lets `-` pass (stdin is no file): two outputs on stdout would mix.
        if is_stdio(path) and any(is_stdio(other) for other in named[:number]):
            raise OutputError("only one output can go to stdout (-)")
        if is_stdio(path) or is_special_file(path) or os.path.isdir(path):
            continue
        if not overwrite and os.path.lexists(path):
            refuse_existing(path)


def check_input_exists(path: str) -> None:
    """Refuse a missing input before the slow imports (a PNG pattern names no file)."""
    if path != "-" and "%" not in path and not os.path.lexists(path):
        raise InputFormatError(f"input not found: {path}")


def add_progress_options(parser: argparse.ArgumentParser) -> None:
    """Add --progress and --quiet."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", action="store_true",
                       help="show the progress bar even when stderr is not a terminal")
    group.add_argument("--quiet", action="store_true", help="no progress bar")


def progress_bar(args: argparse.Namespace, desc: str, total: int | None = None):
    """A tqdm bar on stderr; shown on a terminal, or anywhere with --progress."""
    from tqdm import tqdm

    shown = args.progress or (not args.quiet and sys.stderr.isatty())
    return tqdm(total=total, unit="frame", desc=desc, disable=not shown, file=sys.stderr,
                leave=False, dynamic_ncols=True)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """Add --json [FILE]: the summary as one JSON object."""
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="FILE",
        help="also give the summary as one JSON object: on stdout, or in FILE (needed when "
        "stdout carries the video); write --json=FILE before positional arguments",
    )


def check_json_target(args: argparse.Namespace, stdout_output: bool) -> None:
    """Refuse --json on stdout when stdout already carries the video."""
    if args.json == "-" and stdout_output:
        raise InputFormatError("stdout carries the video: write the JSON summary to a file "
                               "with --json=FILE")


def emit_summary(args: argparse.Namespace, text: str, data: dict[str, Any]) -> None:
    """The summary: text on stderr (stdout may carry video), JSON where --json says."""
    print(text, file=sys.stderr)
    if args.json is None:
        return
    document = json.dumps(data, indent=1) + "\n"
    if args.json == "-":
        sys.stdout.write(document)
        sys.stdout.flush()
        return
    from pathlib import Path

    from ufvc.io.base import StagedOutput

    staged = StagedOutput(Path(args.json), overwrite=args.overwrite)
    try:
        with staged.open_binary() as file:
            file.write(document.encode("utf-8"))
    except OSError as error:
        staged.discard()
        raise OutputError(f"cannot write {args.json}: {error.strerror or error}") from None
    staged.commit()


def warn_bit_depth(output: str, bit_depth: int) -> None:
    """Warn when `output`'s format keeps fewer bits per sample than the video has."""
    from ufvc.io import writer_class

    kept = writer_class(output).max_bit_depth
    if bit_depth > kept:
        warn(f"{output} keeps {kept} bits per sample of this {bit_depth}-bit video; "
             "write .y4m or .yuv to keep them all")


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"ufvc: warning: {message}", file=sys.stderr)


def add_rate_options(parser: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    """--maxrate/--bufsize and --scenecut/--no-scenecut (and --bitrate unless `sweep`:
    eval takes several bitrates), shared by encode and eval."""
    if not sweep:
        parser.add_argument(
            "-b", "--bitrate", metavar="RATE",
            help="average bitrate to aim for, bits/s with k/M suffixes (e.g. 800k, 1.5M): "
            "a rate controller picks each record's quality instead of --quality",
        )
    parser.add_argument("--maxrate", metavar="RATE",
                        help="leaky-bucket (VBV) drain rate, bits/s (with --bufsize)")
    parser.add_argument("--bufsize", metavar="BITS",
                        help="leaky-bucket (VBV) size, bits (k/M suffixes); no record may "
                        "overflow it")
    cuts = parser.add_mutually_exclusive_group()
    cuts.add_argument(
        "--scenecut", type=float, default=DEFAULT_SCENECUT, metavar="T",
        help="start an intra frame where the mean luma change from the previous frame "
        f"reaches T %% of the sample range (default {DEFAULT_SCENECUT:g})",
    )
    cuts.add_argument("--no-scenecut", dest="scenecut", action="store_const", const=None,
                      help="no scene-cut detection")
    parser.add_argument(
        "--mode-decision", choices=MODE_DECISIONS, default=DEFAULT_MODE_DECISION,
        help="fixed: every chunk between intra frames is coded with the chunk codec; rd: a "
        "chunk is coded as intra frames where that costs less at the quality (the top "
        "qualities, where the chunk codec's quality stops rising); constant quality only "
        f"(default {DEFAULT_MODE_DECISION})",
    )


def coding_options_from_args(args: argparse.Namespace) -> CodingOptions:
    """The `CodingOptions` of a command's arguments (fields it lacks keep their default)."""
    from ufvc.codec.options import CodingOptions

    fields = {name: getattr(args, name) for name in CodingOptions.__dataclass_fields__
              if hasattr(args, name)}
    return CodingOptions(**{name: value for name, value in fields.items()
                            if value is not None or name in ("scenecut", "pipeline")})
