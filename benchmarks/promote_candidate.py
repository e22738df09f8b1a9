"""Make a candidate's held-out results the shipped model's, and the shipped model's the previous.

    python benchmarks/promote_candidate.py runs/eval --label cand
    python benchmarks/heldout_tables.py

Run it when a candidate ships (docs/training.md, "shipping a model"), after its weights were
copied to src/ufvc/weights/. Each result file's curve is renamed with it (`config`), so the
tables and plots name the models `shipped` and `previous`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ufvc.eval.results import read_rows, write_rows

HELDOUT = Path(__file__).resolve().parents[1] / "results" / "heldout"
CONTENT = ("clips", "photos", "samples")


def relabel(source: Path, target: Path, label: str) -> None:
    """Copy a result file with every row's curve named `label`."""
    rows = [dataclasses.replace(row, config=label) for row in read_rows(source)]
    write_rows(target, rows)
    print(f"{source} -> {target} ({len(rows)} rows, curve {label!r})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of the candidate's result files")
    parser.add_argument("--label", default="cand", help="the candidate's file prefix")
    parser.add_argument("--heldout", type=Path, default=HELDOUT)
    args = parser.parse_args()
    candidates = [args.folder / f"{args.label}-{content}.json" for content in CONTENT]
    missing = [str(path) for path in candidates if not path.is_file()]
    if missing:
        parser.error(f"missing result file(s): {', '.join(missing)}")
    for content, candidate in zip(CONTENT, candidates, strict=True):
        relabel(args.heldout / f"shipped-{content}.json",
                args.heldout / f"previous-{content}.json", "previous")
        relabel(candidate, args.heldout / f"shipped-{content}.json", "shipped")


if __name__ == "__main__":
    main()
