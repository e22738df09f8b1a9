"""`ufvc info`: what is in a .ufv file, or the size and cost of a model (registered or a
.ufvm file)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ufvc.defaults import DEFAULT_FRAME_SIZE, MAC_CONVENTIONS
from ufvc.errors import InputFormatError

if TYPE_CHECKING:  # the module itself loads torch only when the command runs
    from ufvc.models.complexity import CodecCost, ModelComplexity


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe a .ufv file, or a model's parameters and MACs per frame",
        description="With FILE: describe a .ufv stream (with --model too: whether that "
        "model decodes it). With --model alone: parameters and multiply-accumulates per "
        "frame of each top-level module of the model's intra and video codecs (encode side "
        "and decode side), plus the totals in the paper's counting convention.",
    )
    parser.add_argument("file", nargs="?", help=".ufv file to describe")
    parser.add_argument("--model", metavar="NAME|PATH",
                        help="registered model or .ufvm file to describe, or to check FILE "
                        "against")
    parser.add_argument("--list-models", action="store_true", help="list registered models")
    parser.add_argument("--size", default=f"{DEFAULT_FRAME_SIZE[1]}x{DEFAULT_FRAME_SIZE[0]}",
                        metavar="WxH", help="frame size for the MAC count (default: %(default)s)")
    parser.add_argument("--convention", choices=sorted(MAC_CONVENTIONS), default="ufvc",
                        help="MAC counting convention of the tables (default: ufvc)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _codec_table(cost: CodecCost) -> list[str]:
    n = cost.frames_per_call
    unit = "per frame" if n == 1 else f"per frame (one {n}-frame call / {n})"
    lines = [f"{cost.codec} codec, GMAC {unit}",
             f"  {'module':<28}{'params':>13}{'encode':>11}{'decode':>11}"]
    for module in cost.modules:
        lines.append(f"  {module.name:<28}{module.parameters:>13,}"
                     f"{module.encode_macs / 1e9:>11.3f}{module.decode_macs / 1e9:>11.3f}")
    lines.append(f"  {'total':<28}{cost.parameters:>13,}"
                 f"{cost.encode_macs / 1e9:>11.3f}{cost.decode_macs / 1e9:>11.3f}")
    return lines


def _model_report(name: str, size: tuple[int, int], convention: str) -> dict[str, Any]:
    from ufvc.models.checkpoint import read_ufvm
    from ufvc.models.complexity import PAPER_TABLE, model_complexity
    from ufvc.models.registry import (
        get_model_spec,
        list_models,
        model_file_spec,
        shipped_weights_path,
    )

    if name not in list_models() and Path(name).is_file():
        spec = model_file_spec(name)
        path: Path | None = Path(name)
    else:
        spec = get_model_spec(name)
        path = shipped_weights_path(spec)
    if path is None:
        weights = "none (deterministic recipe weights, untrained)"
    else:
        weights = f"{path} (stored as {read_ufvm(path).storage})"
    main = model_complexity(spec, size, convention=convention)
    paper = main if convention == "paper" else model_complexity(spec, size, convention="paper")
    return {
        "spec": spec,
        "weights": weights,
        "complexity": main,
        "paper_convention": paper,
        "paper_table": PAPER_TABLE.get(name),
    }


def _size(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


def _model_text(report: dict[str, Any]) -> str:
    spec = report["spec"]
    main: ModelComplexity = report["complexity"]
    paper: ModelComplexity = report["paper_convention"]
    lines = [
        f"model {spec.name} (id {spec.model_id}): {spec.description}",
        f"chunk size N = {spec.video.frames}; weights: {report['weights']}",
        f"frame {_size(main.frame_size)}, counted as {_size(main.counted_size)}",
        f"convention: {main.convention}",
        "",
        *_codec_table(main.intra),
        "",
        *_codec_table(main.video),
        "",
        f"paper convention, counted as {_size(paper.counted_size)}: "
        f"video {paper.video.encode_macs / 1e9:.1f} GMAC/frame, "
        f"intra {paper.intra.encode_macs / 1e9:.1f} GMAC/frame",
        f"  ({paper.convention})",
    ]
    if report["paper_table"] is not None:
        macs, params = report["paper_table"]
        lines.append(f"paper Table 3: {macs / 1e9:.0f}G MACs/frame (1080p), {params / 1e6:.1f}M "
                     f"parameters; this model's video codec: {main.video.parameters / 1e6:.2f}M")
    return "\n".join(lines)


def _model_json(report: dict[str, Any]) -> dict[str, Any]:
    spec = report["spec"]
    table = report["paper_table"]
    return {
        "model": spec.name,
        "model_id": spec.model_id,
        "description": spec.description,
        "frames_per_chunk": spec.video.frames,
        "complexity": dataclasses.asdict(report["complexity"]),
        "paper_convention": dataclasses.asdict(report["paper_convention"]),
        "paper_table": None if table is None else {"macs": table[0], "parameters": table[1]},
    }


def _model_check(path: str, model: str) -> dict[str, Any]:
    """Whether `model` (a name or .ufvm file) is the one the stream at `path` was coded with."""
    from ufvc.bitstream.stream import StreamReader
    from ufvc.codec import load_model

    with StreamReader(path) as reader:
        header = reader.header
    codec_model = load_model(model)
    same_name = codec_model.name == header.model_id
    same_weights = codec_model.weights_digest() == header.model_digest
    if same_name and same_weights:
        verdict = "decodes this stream"
    elif same_name:
        verdict = "has other weights than the stream's: it cannot decode it"
    else:
        verdict = f"is not the stream's model ({header.model_id}): it cannot decode it"
    return {"model": model, "model_name": codec_model.name, "matches": same_name and same_weights,
            "verdict": verdict}


def run(args: argparse.Namespace) -> int:
    from ufvc.models.registry import get_model_spec, list_models

    if args.list_models:
        rows = [get_model_spec(name) for name in list_models()]
        if args.json:
            print(json.dumps([{"model": s.name, "model_id": s.model_id,
                               "description": s.description} for s in rows], indent=2))
        else:
            lines = [f"{'id':>4}  {'name':<14} description"]
            lines += [f"{s.model_id:>4}  {s.name:<14} {s.description}" for s in rows]
            print("\n".join(lines))
        return 0
    if args.file is None and args.model is None:
        raise InputFormatError("give a .ufv file, --model NAME or --list-models")
    from ufvc.io import parse_size

    if args.file is not None:
        from ufvc.bitstream.describe import describe, describe_text

        report = describe(args.file)
        if args.model is not None:
            report["model_check"] = _model_check(args.file, args.model)
        if args.json:
            print(json.dumps(report, indent=2, default=str))
        else:
            print(describe_text(report))
            if args.model is not None:
                check = report["model_check"]
                print(f"{'check':<12}model {check['model']} {check['verdict']}")
        return 0
    width, height = parse_size(args.size)
    report = _model_report(args.model, (height, width), args.convention)
    if args.json:
        print(json.dumps(_model_json(report), indent=2, default=str))
    else:
        print(_model_text(report))
    return 0
