"""Small models and inputs for the codec tests."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from ufvc.io import open_writer
from ufvc.io.types import VideoInfo
from ufvc.models.intra import INTRA_TINY
from ufvc.models.registry import CodecModel
from ufvc.models.spatial_prior import EntropyMode
from ufvc.models.video import TINY, ReconLayout
from ufvc.samples import synthetic_video

# One tiny model per entropy-coding family; all share the registered name so that
# streams name a model the decoder is given explicitly.
TINY_FAMILIES = {
    "streamlined-quadtree": TINY,
    "per-step-quadtree": replace(TINY, entropy_mode=EntropyMode.PER_STEP_QUADTREE,
                                 recon_layout=ReconLayout.BRANCHES),
    "checkerboard": replace(TINY, frames=1, entropy_mode=EntropyMode.STREAMLINED_CHECKERBOARD,
                            recon_layout=ReconLayout.SINGLE),
}


def tiny_model(family: str = "streamlined-quadtree") -> CodecModel:
    model = CodecModel("ufvc-tiny", 250, INTRA_TINY, TINY_FAMILIES[family])
    model.load_recipe_weights()
    return model.eval()


def write_clip(path: Path, width: int, height: int, frames: int, seed: int = 0) -> Path:
    info = VideoInfo(width, height, Fraction(25), frames)
    with open_writer(path, info) as writer:
        for frame in synthetic_video(width, height, frames, seed=seed):
            writer.write(frame)
    return path


@pytest.fixture
def clip(tmp_path: Path):
    """`clip(width, height, frames)` -> path of a synthetic .y4m clip."""
    return lambda w, h, n, seed=0: write_clip(tmp_path / f"src_{w}x{h}_{n}_{seed}.y4m", w, h, n,
                                              seed)
