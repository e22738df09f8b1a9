"""Run by test_train_ddp.py under torchrun: train, then save this process's parameters."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from ufvc.train.config import config_from_table
from ufvc.train.trainer import run_training


def main() -> None:
    table = json.loads(Path(sys.argv[1]).read_text())
    out_dir = Path(sys.argv[2])
    result = run_training(config_from_table(table), out_dir=out_dir, config_table=table)
    rank = int(os.environ["RANK"])
    torch.save(result.model.state_dict(), out_dir / f"params_rank{rank}.pt")


if __name__ == "__main__":
    main()
