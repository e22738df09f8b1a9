"""Shared inputs of the training tests: a synthetic clip and a small run configuration."""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from ufvc.io import open_writer
from ufvc.io.types import VideoInfo
from ufvc.samples import synthetic_video

CLIP_FRAMES = 30
HELD_OUT = 8  # the last frames of the clip are the validation set


@pytest.fixture(scope="session")
def synthetic_clip(tmp_path_factory) -> Path:
    """A lossless 96x96 clip of a moving texture (ufvc.samples.synthetic_video)."""
    path = tmp_path_factory.mktemp("train-data") / "moving.y4m"
    info = VideoInfo(width=96, height=96, fps=Fraction(25), num_frames=None)
    with open_writer(path, info) as writer:
        for frame in synthetic_video(96, 96, CLIP_FRAMES, seed=3):
            writer.write(frame)
    return path


@pytest.fixture(scope="session")
def frame_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("frame-cache")


@pytest.fixture
def run_table(synthetic_clip: Path, frame_cache: Path):
    """Builds the config table of a tiny-model run on the synthetic clip."""
    return lambda **steps: _run_table(synthetic_clip, frame_cache, **steps)


def _run_table(clip: Path, cache: Path, *, intra_steps: int, video_steps: int) -> dict:
    """A tiny-model run on `clip`: an intra stage, then a video stage of 1 + 2*2 frames."""
    source = {"kind": "video", "path": str(clip), "stop": -HELD_OUT}
    held_out = {"kind": "video", "path": str(clip), "start": -HELD_OUT}
    return copy.deepcopy({
        "model": {"name": "ufvc-tiny"},
        "seed": 3,
        "device": "cpu",
        "precision": "fp32",
        "log_every": 1,
        "checkpoint_every": 1000,
        "data": {"cache_dir": str(cache), "sources": [source]},
        "validation": {"every": 1000, "qps": [0, 21, 42, 63], "crop": 64, "chunks": 2,
                       "max_samples": 2, "sources": [held_out]},
        "stages": [
            {"name": "intra", "kind": "intra", "steps": intra_steps, "crop": 64,
             "batch_size": 4, "lr": 2e-3, "lr_schedule": "constant"},
            {"name": "video", "kind": "video", "steps": video_steps, "chunks": 2, "crop": 64,
             "batch_size": 2, "lr": 2e-3, "warmup_steps": 2, "lr_schedule": "cosine"},
        ],
    })


@pytest.fixture
def one_thread():
    """One torch thread: the 2-core test machine runs other jobs, and two spinning OpenMP
    threads then slow tiny models down by orders of magnitude."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
