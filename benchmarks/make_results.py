"""Regenerate docs/results.md from the result files under results/.

    python benchmarks/make_results.py          # tables and plots from the files present
    python benchmarks/make_results.py --run    # first run the planned commands whose
                                               # output is missing (hours on a CPU)

Inputs (paths relative to the repository root):

- results/anchors/*.json: conventional codecs, written by `ufvc anchor`;
- results/neural/*.json: the neural codec, written by `ufvc eval`;
- results/bench/*.json: speed, written by `ufvc bench --json`;
- benchmarks/results_plan.json: the command that produces each of those files. The page
  shows these commands at its top; a file no plan entry names is shown as such (bench files
  carry their own command line).

The page holds: the commands, the test sequences, one rate-distortion table per sequence,
BD-rate tables against each anchor curve (`ufvc.eval.bdrate`), links to the RD plots it
writes under docs/plots/ (`ufvc.eval.plots`), and the speed tables. Everything on it is
generated; nothing is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))  # run from a checkout without installing

from ufvc.errors import InputFormatError, UfvcError  # noqa: E402
from ufvc.eval.bdrate import compare  # noqa: E402
from ufvc.eval.plots import plot_rd_curves  # noqa: E402
from ufvc.eval.results import RateRow, read_rows  # noqa: E402

# BD-rate anchors in the order the page shows them; other anchor curves follow, sorted.
PREFERRED_ANCHORS = ("x264-medium-ld", "x265-medium-ld", "svt-av1-p8-ld", "x264-medium-ai")
RESULT_GROUPS = ("anchors", "neural")


@dataclass(frozen=True)
class PlannedRun:
    """One command of the plan and the file it writes."""

    output: str  # relative to the repository root
    command: str


def read_plan(path: Path) -> list[PlannedRun]:
    """The planned runs, in order."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return [PlannedRun(str(run["output"]), str(run["command"])) for run in document["runs"]]
    except FileNotFoundError:
        return []
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise InputFormatError(f"{path}: not a results plan ({error})") from None


def run_missing(plan: Sequence[PlannedRun], root: Path) -> None:
    """Run every planned command whose output file does not exist yet."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"),
                                                      env.get("PYTHONPATH")]))
    for run in plan:
        if (root / run.output).exists():
            continue
        words = shlex.split(run.command)
        if words[0] == "ufvc":
            words = [sys.executable, "-m", "ufvc", *words[1:]]
        print(f"make_results: {run.command}", file=sys.stderr)
        subprocess.run(words, cwd=root, env=env, check=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


# ---------------------------------------------------------------------------------------------
# Sections


def commands_section(files: Sequence[Path], bench: dict[Path, dict[str, Any]],
                     plan: Sequence[PlannedRun], root: Path) -> list[str]:
    planned = {run.output: run.command for run in plan}
    lines = ["## How these numbers were made", "",
             "From the repository root, with the package installed (`make setup`):", "",
             "```sh"]
    unknown = []
    for path in files:
        name = _relative(path, root)
        command = planned.get(name) or bench.get(path, {}).get("command")
        if command:
            lines.append(command)
        else:
            unknown.append(name)
    lines += ["python benchmarks/make_results.py", "```", ""]
    if unknown:
        lines += ["Inputs no plan entry names (their commands are unknown): "
                  + ", ".join(f"`{name}`" for name in unknown) + ".", ""]
    return lines


def testset_section(rows: Sequence[RateRow]) -> list[str]:
    sequences = sorted({(r.class_name, r.sequence, r.width, r.height, r.frames, r.fps)
                        for r in rows})
    lines = ["## Sequences", "", "| class | sequence | size | frames | fps |",
             "|---|---|---|---:|---:|"]
    lines += [f"| {cls} | {seq} | {w}x{h} | {frames} | {fps:g} |"
              for cls, seq, w, h, frames, fps in sequences]
    return lines + [""]


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def rd_section(rows: Sequence[RateRow]) -> list[str]:
    lines = ["## Rate and distortion", "",
             "Rate from the stream files; est. bpp (neural codec only) from the model's "
             "likelihoods. PSNR of the decoded frames against the source, mean over frames; "
             "YUV = (6Y + U + V) / 8. Speeds are wall clock on the machine the rows name in "
             "their settings.", ""]
    by_sequence: dict[tuple[str, str], list[RateRow]] = defaultdict(list)
    for row in rows:
        by_sequence[(row.class_name, row.sequence)].append(row)
    for (class_name, sequence), members in sorted(by_sequence.items()):
        lines += [f"### {sequence} ({class_name})", "",
                  "| configuration | parameter | bpp | est. bpp | kbps | PSNR-Y | PSNR-U | "
                  "PSNR-V | PSNR-YUV | enc fps | dec fps |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in sorted(members, key=lambda r: (r.config, r.rate_control, r.bpp_actual)):
            lines.append(
                f"| {row.config} | {row.rate_control} {row.quality:g} | {row.bpp_actual:.4f} | "
                f"{_number(row.bpp_estimated, 4)} | {row.kbps:.1f} | {row.psnr_y:.2f} | "
                f"{row.psnr_u:.2f} | {row.psnr_v:.2f} | {row.psnr_yuv:.2f} | "
                f"{row.encode_fps:.2f} | {row.decode_fps:.2f} |")
        lines.append("")
    return lines


def anchor_order(anchor_rows: Iterable[RateRow]) -> list[str]:
    """Anchor configurations: the preferred ones first, then the rest, sorted."""
    configs = {row.config for row in anchor_rows}
    return [c for c in PREFERRED_ANCHORS if c in configs] + sorted(configs
                                                                   - set(PREFERRED_ANCHORS))


def bdrate_section(anchor_rows: Sequence[RateRow], all_rows: Sequence[RateRow]) -> list[str]:
    lines = ["## BD-rate", ""]
    configs = anchor_order(anchor_rows)
    if not configs:
        return lines + ["No anchor results.", ""]
    for config in configs:
        anchor = [row for row in anchor_rows if row.config == config]
        tests = [row for row in all_rows if row.config != config]
        if not tests:
            continue
        curves = sorted({row.curve for row in anchor})
        for curve in curves:
            try:
                report = compare(anchor, tests, anchor_curve=curve)
            except UfvcError as error:
                lines += [f"### Against {curve}", "", f"Not computed: {error}.", ""]
                continue
            markdown = report.to_markdown().replace("## BD-rate against", "### Against", 1)
            lines += [markdown.rstrip("\n"), ""]
    return lines


def plots_section(rows: Sequence[RateRow], plots: Path, out: Path) -> list[str]:
    written, notes = plot_rd_curves(rows, plots)
    folder = Path(os.path.relpath(plots.resolve(), out.resolve().parent)).as_posix()
    lines = ["## RD plots", ""]
    classes = sorted(p for p in written if p.name.startswith("class_"))
    sequences = sorted(p for p in written if p.name.startswith("seq_"))
    for path in classes:
        lines += [f"![{path.stem}]({folder}/{path.name})", ""]
    if sequences:
        lines += ["Per sequence: " + ", ".join(f"[{p.stem.removeprefix('seq_')}]"
                                               f"({folder}/{p.name})" for p in sequences), ""]
    lines += [f"- {note}" for note in notes]
    return lines + ([""] if notes else [])


def _speed_cell(speed: dict[str, Any], peak: float | None) -> str:
    share = f" ({100 * speed['gmacs'] / peak:.1f} %)" if peak else ""
    return f"{speed['gmacs']:.1f}{share}"


def _split(speed: dict[str, Any]) -> str:
    """Network, entropy and other seconds per frame."""
    return " / ".join(f"{speed[key] / speed['frames']:.3f}"
                      for key in ("network_seconds", "entropy_seconds", "other_seconds"))


def _bench_key(report: dict[str, Any], size: dict[str, Any]) -> tuple:
    return (report["model"], report["device"], report["precision"], report["threads"],
            size["size"], size["encode"]["frames"])


def _ratio(after: float, before: float | None) -> str:
    return f"x{after / before:.2f}" if before else "n/a"


def summary_section(bench: dict[Path, dict[str, Any]],
                    before: dict[Path, dict[str, Any]]) -> list[str]:
    """One line per (model, precision, threads, size): fps before and after the speed work,
    share of the matmul peak, pipelining gain; then chunk codec (HT-S) against LD."""
    earlier = {_bench_key(report, size): size for report in before.values()
               for size in report["sizes"]}
    lines = ["### Summary", "",
             "Before: `results/bench/before/` (the codec before pipelining and "
             "`--compile` existed); after: `results/bench/`, without and with pipelining, "
             "both measured in the same run (`--pipeline-compare`; the gain is their "
             "ratio). By default the codec pipelines only when a core is left beside the "
             "networks' threads. % of peak: the pipelined run's GMAC/s over the matmul peak "
             "in the codec's precision, measured in the same run. The 48-frame rows of "
             "`ufvc-s` are the controlled comparison: the old commit (ac49906, its own "
             "weights) and this one were run alternately on the idle machine. The 16-frame "
             "before rows were measured in an earlier session, under other load.", "",
             "| model | precision | threads | size | frames | compile | "
             "enc fps before / after off / "
             "after on | dec fps before / after off / after on | pipelining gain enc / dec | "
             "enc / dec % of peak |",
             "|---|---|---:|---|---:|---|---:|---:|---:|---:|"]
    after_fps: dict[tuple, dict[str, float]] = {}
    for report in sorted(bench.values(), key=lambda r: (r["model"], r["precision"],
                                                         r["threads"], r.get("compile", False))):
        peak = report.get("peaks", {}).get(report["precision"], {}).get("gmacs")
        for size in report["sizes"]:
            key = _bench_key(report, size)
            old = earlier.get(key)
            enc, dec = size["encode"], size["decode"]
            off = size.get("unpipelined", {})
            shares = (f"{100 * enc['gmacs'] / peak:.1f} / {100 * dec['gmacs'] / peak:.1f}"
                      if peak else "n/a")
            gain = size.get("pipeline_gain")
            gain_text = f"x{gain['encode']:.2f} / x{gain['decode']:.2f}" if gain else "-"
            cells = []
            for direction in ("encode", "decode"):
                before_fps = old[direction]["fps"] if old else None
                off_fps = off[direction]["fps"] if direction in off else None
                best = max(size[direction]["fps"], off_fps or 0.0)
                cells.append(f"{_number(before_fps, 2)} / {_number(off_fps, 2)} / "
                             f"{size[direction]['fps']:.2f} ({_ratio(best, before_fps)})")
            compiled = "yes" if report.get("compile") else "no"
            lines.append(
                f"| {report['model']} | {report['precision']} | {report['threads']} | "
                f"{size['size']} | {size['encode']['frames']} | {compiled} | {cells[0]} | "
                f"{cells[1]} | {gain_text} | "
                f"{shares} |")
            if not report.get("compile"):
                after_fps[key] = {d: max(size[d]["fps"], off[d]["fps"] if d in off else 0.0)
                                  for d in ("encode", "decode")}
    lines.append("")
    pairs = []
    for (model, device, precision, threads, size, frames), fps in sorted(after_fps.items()):
        if model != "dcvc-uf-hts":
            continue
        ld = after_fps.get(("dcvc-uf-ld", device, precision, threads, size, frames))
        if ld:
            pairs.append(f"| {precision} | {threads} | {size} | {fps['encode']:.2f} / "
                         f"{ld['encode']:.2f} = x{fps['encode'] / ld['encode']:.2f} | "
                         f"{fps['decode']:.2f} / {ld['decode']:.2f} = "
                         f"x{fps['decode'] / ld['decode']:.2f} |")
    if pairs:
        lines += ["Chunk coding against frame-by-frame coding: HT-S (8-frame chunks) over LD "
                  "(one frame per call), both the official structures with the fixture "
                  "recipe's weights, same run conditions, the faster pipelining mode of "
                  "each.", "",
                  "| precision | threads | size | encode fps HT-S / LD | decode fps HT-S / LD |",
                  "|---|---:|---|---:|---:|", *pairs, ""]
    return lines


# The paper's 1080p frames per second of HT-S on one H100 (encode, decode).
PAPER_HTS_H100_1080P = (957.0, 669.0)
GPU_BENCH_COMMAND = ("ufvc bench --model dcvc-uf-hts --device cuda --fp16 --cuda-graphs "
                     "--sizes 1080p --frames 64 --json results/bench/dcvc-uf-hts-cuda.json")


def gpu_section(bench: dict[Path, dict[str, Any]]) -> list[str]:
    """HT-S at 1080p on CUDA next to the paper's H100 figures, or how to measure it."""
    lines = ["### GPU", ""]
    rows = []
    for report in bench.values():
        if not report["device"].startswith("cuda") or report["model"] != "dcvc-uf-hts":
            continue
        for size in report["sizes"]:
            if size["size"] != "1080p":
                continue
            enc, dec = size["encode"]["fps"], size["decode"]["fps"]
            graphs = "yes" if report.get("cuda_graphs") else "no"
            rows.append(f"| {report['device_name']} | {report['precision']} | {graphs} | "
                        f"{enc:.1f} / {PAPER_HTS_H100_1080P[0]:.0f} = "
                        f"x{enc / PAPER_HTS_H100_1080P[0]:.2f} | "
                        f"{dec:.1f} / {PAPER_HTS_H100_1080P[1]:.0f} = "
                        f"x{dec / PAPER_HTS_H100_1080P[1]:.2f} |")
    if not rows:
        return lines + ["No GPU was lent to this project yet, so the GPU path (float16 "
                        "autocast, CUDA graphs, entropy coding pipelined on a CPU thread) is "
                        "implemented but unmeasured. On a CUDA machine, "
                        f"`{GPU_BENCH_COMMAND}` fills this table: HT-S at 1080p next to the "
                        "paper's H100 figures (957 encode, 669 decode frames per second).", ""]
    return lines + ["HT-S at 1080p against the paper's H100 figures (ours / paper).", "",
                    "| GPU | precision | CUDA graphs | encode fps | decode fps |",
                    "|---|---|---|---:|---:|", *sorted(rows), ""]


def speed_section(bench: dict[Path, dict[str, Any]], before: dict[Path, dict[str, Any]],
                  root: Path) -> list[str]:
    lines = ["## Speed", "",
             "`ufvc bench`: synthetic video, whole chunks timed after the intra frame and a "
             "warm-up chunk. net / ent / other: seconds per frame in the networks, in entropy "
             "coding (the codec's own timers) and outside them. GMAC/s: counted MACs per "
             "frame x fps, with its share of the matrix-product peak measured in the same "
             "run in the codec's precision.", ""]
    if not bench:
        return lines + ["No bench results.", ""]
    lines += summary_section(bench, before)
    lines += gpu_section(bench)
    for path, report in sorted(bench.items()):
        peaks = report.get("peaks", {})
        peak = peaks.get(report["precision"], {}).get("gmacs")
        peak_text = ", ".join(f"{name} {value['gmacs']:,.0f} GMAC/s"
                              for name, value in peaks.items())
        options = (f"pipelining {'on' if report.get('pipeline', False) else 'off'}, "
                   f"torch.compile {'on' if report.get('compile') else 'off'}"
                   + (", CUDA graphs on" if report.get("cuda_graphs") else ""))
        lines += [
            f"### {report['model']} on {report['device']} ({report['device_name']}, "
            f"{report['threads']} threads)", "",
            f"`{_relative(path, root)}`: weights {report['weights']}, {report['precision']}, "
            f"quality {report['quality']}, {options}; matmul peak {peak_text}.", "",
            "| size | enc fps | dec fps | enc net / ent / other s | dec net / ent / other s | "
            "GMAC/frame enc / dec | enc GMAC/s | dec GMAC/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for size in report["sizes"]:
            enc, dec = size["encode"], size["decode"]
            lines.append(
                f"| {size['size']} | {enc['fps']:.2f} | {dec['fps']:.2f} | {_split(enc)} | "
                f"{_split(dec)} | {enc['macs_per_frame'] / 1e9:.1f} / "
                f"{dec['macs_per_frame'] / 1e9:.1f} | {_speed_cell(enc, peak)} | "
                f"{_speed_cell(dec, peak)} |")
        lines += [""] + [f"- {note}" for note in report.get("notes", [])]
        lines += [""] if report.get("notes") else []
    return lines


# ---------------------------------------------------------------------------------------------


def read_bench(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputFormatError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(report, dict) or report.get("format") != "ufvc-bench":
        raise InputFormatError(f"{path} is not a `ufvc bench --json` report")
    return report


def build_page(root: Path, out: Path, plots: Path, plan: Sequence[PlannedRun]) -> str:
    """The Markdown of the results page; writes the plots on the way."""
    results = root / "results"
    files = {group: sorted((results / group).glob("*.json")) for group in RESULT_GROUPS}
    bench_files = sorted((results / "bench").glob("*.json"))
    anchor_rows = [row for path in files["anchors"] for row in read_rows(path)]
    neural_rows = [row for path in files["neural"] for row in read_rows(path)]
    rows = anchor_rows + neural_rows
    bench = {path: read_bench(path) for path in bench_files}
    before = {path: read_bench(path) for path in sorted((results / "bench" / "before")
                                                        .glob("*.json"))}
    lines = ["# Results", "",
             "Generated by `benchmarks/make_results.py` from the files under `results/`; "
             "do not edit by hand: change the inputs and run the script again.", ""]
    lines += commands_section(files["anchors"] + files["neural"] + bench_files, bench, plan,
                              root)
    if rows:
        lines += testset_section(rows)
        lines += rd_section(rows)
        lines += bdrate_section(anchor_rows, rows)
        lines += plots_section(rows, plots, out)
    else:
        lines += ["No rate-distortion results yet.", ""]
    lines += speed_section(bench, before, root)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO,
                        help="folder holding results/ (default: the repository)")
    parser.add_argument("--out", type=Path, help="page to write (default: ROOT/docs/results.md)")
    parser.add_argument("--plots", type=Path, help="plot folder (default: ROOT/docs/plots)")
    parser.add_argument("--plan", type=Path, default=REPO / "benchmarks" / "results_plan.json")
    parser.add_argument("--run", action="store_true",
                        help="first run the planned commands whose output is missing")
    args = parser.parse_args(argv)
    out = args.out or args.root / "docs" / "results.md"
    plots = args.plots or args.root / "docs" / "plots"
    try:
        plan = read_plan(args.plan)
        if args.run:
            run_missing(plan, args.root)
        page = build_page(args.root, out, plots, plan)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except (UfvcError, OSError, subprocess.CalledProcessError) as error:
        print(f"make_results: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {out} and plots in {plots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
