"""Rate control and scene cuts of ufvc-s on the sample clips: the tables of docs/rate-control.md.

For each full clip (bigbuckbunny: see FIXED_TARGETS):
- constant quality at QUALITIES gives four rates; those rates are the targets of
  rate-controlled (`bitrate=`) encodes, whose average bitrate error is reported;
- BD-rate of the rate-controlled curve against the constant-quality curve (PSNR-YUV):
  what control costs;
- a plot of qp and bits per record of one rate-controlled encode (bigbuckbunny).
The first 97 frames of each clip are coded with rate control at three of those targets.
A spliced clip (24 frames of bigbuckbunny cropped to 640x272, then 25 of bikes) is coded
at QUALITIES with and without scene-cut detection: where the intra frames land, and the
BD-rate of detection.

Every encode is cached in a JSON file (rerunning skips what it holds).

    PYTHONPATH=src nice -n 5 python benchmarks/rate_control.py --precision bf16 \
        --cache rc.json --plot docs/plots/rate_control.png > tables.md
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ufvc.bitstream.describe import describe
from ufvc.codec import CodingOptions, encode
from ufvc.eval.bdrate import RdCurve, bd_rate
from ufvc.io import open_reader, open_writer
from ufvc.io.types import Frame, VideoInfo
from ufvc.samples import sample_clip

CLIPS = ("carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4")  # cheapest first
QUALITIES = (12, 24, 36, 48)
EXCERPT = 97
EXCERPT_QUALITIES = (12, 36, 48)  # their full-clip rates are the excerpts' targets
# bigbuckbunny's 720p frames are slow on 2 shared cores: its full clip and excerpt are coded
# at fixed targets spanning the range (its 33-frame constant-quality rates at about
# qualities 12, 32 and 48, docs/results.md) and the cost of control is measured on its
# first COST_FRAMES frames.
FIXED_TARGETS = {"bigbuckbunny.mp4": (300.0, 1200.0, 2700.0)}
COST_FRAMES = 33
PARTS = ("full", "splice", "excerpt", "cost")
SPLICE = (24, 25)  # frames of bigbuckbunny (cropped), then of bikes (from BIKES_START)
BIKES_START = 77  # between two cuts of bikes.mp4 (at 76 and 137)
SPLICE_SIZE = (640, 272)


@dataclass
class Cache:
    """Encode results by key, kept in a JSON file."""

    path: Path

    def __post_init__(self) -> None:
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def encode(self, key: str, source: Path, options: CodingOptions, frames: int | None
               ) -> dict:
        """`run_encode`'s result, from the file when it holds `key`."""
        if key not in self.data:
            self.data[key] = run_encode(source, options, frames)
            self.path.write_text(json.dumps(self.data, indent=1) + "\n")
        return self.data[key]


def run_encode(source: Path, options: CodingOptions, frames: int | None) -> dict:
    """Encode; the rate, PSNR and records (type, first frame, frames, qp, bits)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.ufv"
        summary = encode(source, out, options, max_frames=frames)
        report = describe(out)
    psnr = summary.psnr.mean()
    return {"kbps": summary.kbps, "psnr_yuv": psnr.yuv611, "psnr_y": psnr.y,
            "frames": summary.frames, "seconds": summary.seconds,
            "records": [(r["type"], r["first_frame"], r["frames"], r["quality"], 8 * r["bytes"])
                        for r in report["records"] if r["type"] != "INDEX"]}


def splice(path: Path) -> Path:
    """bigbuckbunny's first frames cropped to SPLICE_SIZE, then bikes' frames."""
    width, height = SPLICE_SIZE

    def crop(frame: Frame) -> Frame:
        top = (frame.height - height) // 2 // 2 * 2
        left = (frame.width - width) // 2 // 2 * 2
        return Frame(frame.y[top:top + height, left:left + width],
                     frame.u[top // 2:(top + height) // 2, left // 2:(left + width) // 2],
                     frame.v[top // 2:(top + height) // 2, left // 2:(left + width) // 2],
                     frame.bit_depth)

    with open_reader(sample_clip("bigbuckbunny.mp4")) as reader:
        first = [crop(frame) for _, frame in zip(range(SPLICE[0]), reader, strict=False)]
    with open_reader(sample_clip("bikes.mp4")) as reader:
        second = [frame for index, frame in enumerate(reader)
                  if BIKES_START <= index < BIKES_START + SPLICE[1]]
    info = VideoInfo(width, height, Fraction(25), len(first) + len(second))
    with open_writer(path, info) as writer:
        for frame in first + second:
            writer.write(frame)
    return path


def bd(anchor: list[dict], test: list[dict]) -> str:
    try:
        value = bd_rate(RdCurve.from_points([p["kbps"] for p in anchor],
                                            [p["psnr_yuv"] for p in anchor]),
                        RdCurve.from_points([p["kbps"] for p in test],
                                            [p["psnr_yuv"] for p in test]))
    except Exception as error:  # a curve BD-rate cannot use: say why in the table
        return f"n/a ({error})"
    return f"{value.percent:+.2f} %"


def plot(records: list, title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, bits_axis = plt.subplots(figsize=(8, 3.5))
    x = [r[1] for r in records]
    colors = ["tab:red" if r[0] == "INTRA" else "tab:blue" for r in records]
    bits_axis.bar(x, [r[4] / 1000 for r in records], width=[max(r[2], 1) * 0.9 for r in records],
                  align="edge", color=colors)
    bits_axis.set_xlabel("frame (record start; red: intra)")
    bits_axis.set_ylabel("kbit per record")
    qp_axis = bits_axis.twinx()
    qp_axis.step(x, [r[3] for r in records], where="post", color="black")
    qp_axis.set_ylabel("qp (quality index)")
    qp_axis.set_ylim(0, 63)
    bits_axis.set_title(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def label(frames: int | None) -> str:
    return "full" if frames is None else str(frames)


def accuracy_row(clip: str, result: dict, target: float, constant: dict | None) -> str:
    cq = f" ({constant['psnr_yuv']:.2f})" if constant else ""
    return (f"| {clip} | {result['frames']} | {target:.1f} | {result['kbps']:.1f} | "
            f"{100 * (result['kbps'] / target - 1):+.2f} % | {result['psnr_yuv']:.2f}{cq} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--cache", default="rate_control.json")
    parser.add_argument("--plot", help="PNG of qp and bits per record (bigbuckbunny)")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS,
                        help="what to measure, in this order (default: all)")
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), choices=CLIPS,
                        help="clips of the full and excerpt parts (default: all)")
    args = parser.parse_args()
    cache = Cache(Path(args.cache))
    base = CodingOptions(precision=args.precision)
    accuracy = ["| clip | frames | target kbps | actual kbps | error | PSNR-YUV (CQ) |",
                "|---|---:|---:|---:|---:|---|"]
    costs = ["| clip | frames | BD-rate, rate control vs constant quality (PSNR-YUV) |",
             "|---|---:|---:|"]

    def cost(clip: str, frames: int | None) -> None:
        """CQ at QUALITIES, then rate control at their rates: accuracy rows and BD-rate."""
        source = sample_clip(clip)
        constant = [cache.encode(f"{clip}|{label(frames)}|q{q}", source, base.with_(quality=q),
                                 frames) for q in QUALITIES]
        controlled = []
        for point in constant:
            target = round(point["kbps"], 1)
            controlled.append(cache.encode(f"{clip}|{label(frames)}|b{target}", source,
                                           base.with_(bitrate=1000 * target), frames))
            accuracy.append(accuracy_row(clip, controlled[-1], target, point))
        costs.append(f"| {clip} | {constant[0]['frames']} | {bd(constant, controlled)} |")

    def targets(clip: str) -> tuple[float, ...]:
        if clip in FIXED_TARGETS:
            return FIXED_TARGETS[clip]
        return tuple(round(cache.data[f"{clip}|full|q{q}"]["kbps"], 1)
                     for q in EXCERPT_QUALITIES)

    def controlled_only(clip: str, frames: int | None) -> list[dict]:
        results = []
        for target in targets(clip):
            results.append(cache.encode(f"{clip}|{label(frames)}|b{target}", sample_clip(clip),
                                        base.with_(bitrate=1000 * target), frames))
            accuracy.append(accuracy_row(clip, results[-1], target, None))
        return results

    runs: dict[str, list[dict]] = {}
    for part in args.parts:
        if part == "full":
            for clip in args.clips:
                if clip in FIXED_TARGETS:
                    results = controlled_only(clip, None)
                    if args.plot:
                        plot(results[1]["records"], f"ufvc-s, {clip}, --bitrate "
                             f"{targets(clip)[1]:g}k", Path(args.plot))
                else:
                    cost(clip, None)
        elif part == "excerpt":
            for clip in args.clips:
                controlled_only(clip, EXCERPT)
        elif part == "cost":
            cost("bigbuckbunny.mp4", COST_FRAMES)
        elif part == "splice":
            with tempfile.TemporaryDirectory() as folder:
                spliced = splice(Path(folder) / "spliced.y4m")
                for name, scenecut in (("detection", base.scenecut), ("no detection", None)):
                    runs[name] = [cache.encode(f"splice|{name}|q{q}", spliced,
                                               base.with_(quality=q, scenecut=scenecut), None)
                                  for q in QUALITIES]
    print("### Average bitrate against the target\n")
    print("\n".join(accuracy))
    print("\n### Cost of control\n")
    print("\n".join(costs))
    if runs:
        print(f"\n### Spliced clip (cut at frame {SPLICE[0]})\n")
        print("| scene cuts | quality | kbps | PSNR-YUV | intra records at frames |")
        print("|---|---:|---:|---:|---|")
        for name, points in runs.items():
            for quality, point in zip(QUALITIES, points, strict=True):
                intra = [r[1] for r in point["records"] if r[0] == "INTRA"]
                print(f"| {name} | {quality} | {point['kbps']:.1f} | {point['psnr_yuv']:.2f} | "
                      f"{', '.join(map(str, intra))} |")
        print(f"\nBD-rate of detection against none: "
              f"{bd(runs['no detection'], runs['detection'])}")


if __name__ == "__main__":
    main()
