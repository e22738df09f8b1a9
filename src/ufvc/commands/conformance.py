"""`ufvc conformance FILE.npz...`: replay reference fixtures and compare every output."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "conformance",
        help="check the networks against reference fixtures (official-model equivalence)",
        description="Replay each fixture (layout of the DCVC-UF reference set: its model, "
        "frames, qps, batches and reset flags) with the recipe weights in float64 on the "
        "CPU, print the largest deviation of every output, and exit 0 only when all are "
        "within the reference tolerances (symbols exact; x_hat, y_hat, y_res, scales 1e-5 "
        "abs; rates 1e-5 rel; state statistics 1e-6 rel).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE.npz", help="fixture file(s)")
    parser.add_argument("--tolerance-scale", type=float, default=1.0, metavar="S",
                        help="multiply every tolerance except the exact symbol matches by S")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _text(report) -> str:
    height, width = report.frame_size
    lines = [f"{report.path}: model {report.model}, {width}x{height}, {report.frames} frames, "
             f"{report.calls} calls"]
    for check in report.checks:
        status = "ok" if check.passed else "FAIL"
        lines.append(f"  {check.name:<17} {check.measure:<10} {check.deviation:>10.3g}"
                     f"   limit {check.limit:<8.3g} {status}")
    lines.append(report.verdict())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ufvc.models.conformance import run_conformance

    reports = [run_conformance(path, tolerance_scale=args.tolerance_scale)
               for path in args.files]
    if args.json:
        print(json.dumps({"passed": all(r.passed for r in reports),
                          "fixtures": [r.to_dict() for r in reports]}, indent=2))
    else:
        print("\n".join(_text(report) for report in reports))
    return 0 if all(report.passed for report in reports) else 1
