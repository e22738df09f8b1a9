"""Two CPU processes under torchrun (gloo): parameters stay identical, the loss falls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from ufvc.train.runlog import read_log

WORKER = Path(__file__).with_name("ddp_worker.py")
SRC = Path(__file__).parents[2] / "src"


def test_two_process_run_keeps_ranks_identical_and_learns(run_table, tmp_path: Path):
    table = run_table(intra_steps=12, video_steps=12)
    table["stages"][1].update(lr_schedule="constant")
    config = tmp_path / "run.json"
    config.write_text(json.dumps(table))
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", str(WORKER), str(config), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    rank0 = torch.load(out / "params_rank0.pt", weights_only=True)
    rank1 = torch.load(out / "params_rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key

    rows = read_log(out / "train_log.csv")
    validation = {}
    for row in rows:
        if row["split"] == "val":
            validation.setdefault(row["stage"], []).append(float(row["loss"]))
    assert validation["intra"][-1] < validation["intra"][0]
    assert validation["video"][-1] < validation["video"][0]
    # Throughput counts the samples of both processes.
    assert all(float(r["samples_per_s"]) > 0 for r in rows if r["split"] == "train")
