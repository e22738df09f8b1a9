"""`ufvc train`: train a model from a TOML config (see configs/*.toml)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a TOML config",
        description=(
            "Train as a TOML config says (model, data, stages, loss). Writes train_log.csv, "
            "checkpoints/ and the trained model (.ufvm) into the output folder. Run under "
            "`torchrun --nproc_per_node K -m ufvc train ...` for K processes. "
            "qp 63 is the highest quality."
        ),
    )
    parser.add_argument("--config", required=True, type=Path, help="training config (.toml)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/checkpoints/last.pt")
    parser.add_argument("--out", type=Path, help="output folder (default: the config's `out`, "
                        "else runs/<config name>)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's)")
    parser.add_argument("--max-steps", type=int, metavar="K",
                        help="stop after K steps in all (a checkpoint is written and the "
                             "model exported; --resume goes on from there)")
    parser.add_argument("--max-minutes", type=float, metavar="M",
                        help="stop after M minutes of training (a checkpoint is written and "
                             "the model exported; --resume goes on from there)")
    parser.add_argument("--export", action="store_true",
                        help="do not train: write the model of OUT/checkpoints/last.pt as "
                             "OUT/<export> (for a run still going, or stopped)")
    parser.add_argument("--weights", choices=("average", "own"),
                        help="with --export: write the checkpoint's weight average or its "
                             "own weights, as asked, to OUT/<export stem>-<weights>.ufvm "
                             "(without it, the better-validated of the two go to OUT/<export>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="change config values, e.g. stages.0.steps=100 seed=3")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ufvc.errors import InputFormatError
    from ufvc.train.config import config_from_table, read_table
    from ufvc.train.trainer import Trainer, cpu_has_fast_bf16, resolve_device, run_training

    if args.max_steps is not None and args.max_steps < 1:
        raise InputFormatError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise InputFormatError(f"--max-minutes must be > 0, got {args.max_minutes}")
    table = read_table(args.config, args.overrides)
    config = config_from_table(table)
    out_dir = args.out or Path(config.out or Path("runs") / args.config.stem)
    if (config.precision == "bf16" and not args.export and not cpu_has_fast_bf16()
            and resolve_device(args.device or config.device).type == "cpu"):
        print("ufvc train: note: this CPU has no bfloat16 kernels, so precision=bf16 is "
              "emulated and several times slower than fp32 (precision=auto picks fp32 here)",
              file=sys.stderr)
    if args.weights and not args.export:
        raise InputFormatError("--weights goes with --export")
    if args.export:
        trainer = Trainer(config, out_dir=out_dir, device="cpu", config_table=table)
        path = trainer.export_checkpoint(args.weights or "chosen")
        print(f"model of step {trainer.step}: {path}")
        return 0
    result = run_training(
        config, out_dir=out_dir, resume=args.resume, device=args.device,
        max_steps=args.max_steps, progress=not args.quiet, config_table=table,
        max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        state = "finished" if result.finished else "stopped"
        print(f"{state} at step {result.step}; log: {result.log_path}")
        if result.validation:
            v = result.validation
            print(f"validation ({v['stage']}): RD loss {v['loss']:.4f}, bpp {v['bpp']:.4f}, "
                  f"PSNR {v['psnr']:.2f} dB")
        if result.export:
            print(f"model: {result.export}")
    return 0
