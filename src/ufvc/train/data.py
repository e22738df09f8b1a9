"""Training and validation samples: sequences of YCbCr 4:4:4 uint8 frames plus a qp.

A training sample is a pure function of (seed, stage, sample number): the sample number
seeds its own random generator, which picks the source, clip, frames, crop, flips and qp.
So a run can stop and resume at any step and see exactly the same data, whatever the
number of DataLoader workers, and processes of a distributed run draw disjoint samples.
Frames stay uint8 until they reach the device (4x less to copy).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ufvc.errors import InputFormatError
from ufvc.train.config import MotionConfig, SourceConfig
from ufvc.train.motion import synthesize_motion
from ufvc.train.sources import CachedFrames, Clip, FrameCache, build_clips


@dataclass
class PreparedClip:
    """A clip with its usable frame range resolved (`first`..`end`, end exclusive)."""

    clip: Clip
    first: int
    end: int

    @property
    def usable(self) -> int:
        return self.end - self.first


@dataclass
class PreparedSource:
    label: str
    weight: float
    clips: list[PreparedClip]
    frame_steps: tuple[int, ...]
    motion: MotionConfig


def prepare_sources(
    configs: tuple[SourceConfig, ...] | list[SourceConfig],
    cache: FrameCache,
    *,
    base: Path | None = None,
) -> list[PreparedSource]:
    """Build every source's clips and resolve their frame ranges.

    Videos are decoded into the cache here (once; later runs find them there), since
    their length is known only after decoding.
    """
    prepared = []
    for cfg in configs:
        clips = []
        for clip in build_clips(cfg, base):
            length = clip.known_length()
            if length is None:
                length = int(cache.fill(clip)["frames"])
            first, end = clip.frame_range(length)
            clips.append(PreparedClip(clip, first, end))
        prepared.append(PreparedSource(cfg.label, cfg.weight, clips, cfg.frame_steps, cfg.motion))
    return prepared


def fit_to_crop(frames: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
    """Frames uint8 [T, 3, H, W] mirrored past their bottom and right edges until both
    sides cover the crop.

    A small clip keeps its own scale (magnifying a 176x144 clip to a 256 crop would teach
    the codec smoothed content unlike what it is then asked to code).
    """
    height, width = frames.shape[-2:]
    pad_h, pad_w = max(crop[0] - height, 0), max(crop[1] - width, 0)
    if pad_h == 0 and pad_w == 0:
        return frames
    pads = [(0, 0)] * (frames.ndim - 2) + [(0, pad_h), (0, pad_w)]
    return np.pad(frames, pads, mode="symmetric")


def _read_window(
    access: CachedFrames, indices: list[int], crop: tuple[int, int], top_left: tuple[int, int]
) -> np.ndarray:
    """Frames cut to `crop` at `top_left`, mirrored first when the clip is smaller."""
    if access.height >= crop[0] and access.width >= crop[1]:
        return access.read(indices, (top_left[0], top_left[1], crop[0], crop[1]))
    frames = fit_to_crop(access.read(indices), crop)
    top = min(top_left[0], frames.shape[-2] - crop[0])
    left = min(top_left[1], frames.shape[-1] - crop[1])
    return frames[..., top : top + crop[0], left : left + crop[1]]


class SequenceDataset(Dataset):
    """Training sequences of `length` frames cut to `crop`; item n is sample number n."""

    def __init__(
        self,
        sources: list[PreparedSource],
        cache: FrameCache,
        *,
        length: int,
        crop: tuple[int, int],
        seed: int,
        stream: int,
        qp_range: tuple[int, int],
        qp_choices: tuple[int, ...] = (),
        flips: bool = True,
        reverse: bool = True,
    ) -> None:
        self.cache = cache
        self.length = length
        self.crop = crop
        self.seed = seed
        self.stream = stream
        self.qp_range = qp_range
        self.qp_choices = qp_choices
        self.flips = flips
        self.reverse = reverse
        self.sources: list[PreparedSource] = []
        self.clip_weights: list[np.ndarray] = []
        for source in sources:
            clips = [c for c in source.clips if c.clip.still or self._windows(source, c) > 0]
            if not clips:
                continue
            kept = PreparedSource(source.label, source.weight, clips, source.frame_steps,
                                  source.motion)
            # Every usable window of every clip is equally likely; a still image counts once.
            windows = np.array([1 if c.clip.still else self._windows(kept, c) for c in clips],
                               dtype=np.float64)
            self.sources.append(kept)
            self.clip_weights.append(windows / windows.sum())
        if not self.sources:
            raise InputFormatError(
                f"no data source has a clip of at least {length} usable frames"
            )
        weights = np.array([s.weight for s in self.sources], dtype=np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise InputFormatError("source weights must be >= 0 with a positive sum")
        self.source_weights = weights / weights.sum()
        self._open: dict[int, CachedFrames] = {}

    def _steps(self, source: PreparedSource, clip: PreparedClip) -> list[int]:
        return [s for s in source.frame_steps if (self.length - 1) * s < clip.usable]

    def _windows(self, source: PreparedSource, clip: PreparedClip) -> int:
        return sum(clip.usable - (self.length - 1) * s for s in self._steps(source, clip))

    def __len__(self) -> int:
        return 2**62  # samples are drawn by number; the sampler decides how many

    def _access(self, clip: Clip) -> CachedFrames:
        # Opened lazily in each worker process: memory maps do not cross fork/spawn well.
        key = id(clip)
        if key not in self._open:
            self._open[key] = self.cache.open(clip)
        return self._open[key]

    def __getitem__(self, n: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, self.stream, int(n)])
        s = int(rng.choice(len(self.sources), p=self.source_weights))
        source = self.sources[s]
        prepared = source.clips[int(rng.choice(len(source.clips), p=self.clip_weights[s]))]
        access = self._access(prepared.clip)
        h, w = self.crop
        if prepared.clip.still:
            image = fit_to_crop(access.read([0]), self.crop)[0]
            if self.length == 1:
                top = int(rng.integers(0, image.shape[1] - h + 1))
                left = int(rng.integers(0, image.shape[2] - w + 1))
                frames = image[None, :, top : top + h, left : left + w]
            else:
                frames = synthesize_motion(image, self.length, self.crop, source.motion, rng)
        else:
            steps = self._steps(source, prepared)
            step = int(steps[int(rng.integers(0, len(steps)))])
            span = (self.length - 1) * step
            start = prepared.first + int(rng.integers(0, prepared.usable - span))
            indices = list(range(start, start + span + 1, step))
            top = int(rng.integers(0, max(access.height - h, 0) + 1))
            left = int(rng.integers(0, max(access.width - w, 0) + 1))
            frames = _read_window(access, indices, self.crop, (top, left))
        if self.flips and rng.random() < 0.5:
            frames = frames[..., ::-1]
        if self.reverse and self.length > 1 and rng.random() < 0.5:
            frames = frames[::-1]
        if self.qp_choices:
            qp = int(self.qp_choices[rng.integers(0, len(self.qp_choices))])
        else:
            qp = int(rng.integers(self.qp_range[0], self.qp_range[1] + 1))
        return torch.from_numpy(np.ascontiguousarray(frames)), qp


class StepSampler(Sampler[int]):
    """Sample numbers of one process for steps [start_step, end_step).

    Step s of process r in a run of `world` processes takes samples
    (s * world + r) * batch ... + batch - 1, so no two processes share a sample and the
    numbering does not depend on where a run was resumed.
    """

    def __init__(
        self, batch_size: int, *, start_step: int, end_step: int, rank: int = 0, world: int = 1
    ) -> None:
        self.batch_size = batch_size
        self.start_step = start_step
        self.end_step = end_step
        self.rank = rank
        self.world = world

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.end_step):
            base = (step * self.world + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.batch_size


def validation_sequences(
    sources: list[PreparedSource],
    cache: FrameCache,
    *,
    length: int,
    crop: tuple[int, int],
    max_samples: int,
    seed: int,
) -> list[np.ndarray]:
    """Fixed held-out sequences uint8 [length, 3, h, w]: centre crops at evenly spaced starts.

    Still images get a fixed synthetic motion (seeded by `seed` and their position).
    """
    sequences = []
    h, w = crop
    for s, source in enumerate(sources):
        for c, prepared in enumerate(source.clips):
            access = cache.open(prepared.clip)
            if prepared.clip.still:
                image = fit_to_crop(access.read([0]), crop)[0]
                if length == 1:
                    top, left = (image.shape[1] - h) // 2, (image.shape[2] - w) // 2
                    sequences.append(image[None, :, top : top + h, left : left + w].copy())
                else:
                    rng = np.random.default_rng([seed, s, c])
                    sequences.append(synthesize_motion(image, length, crop, source.motion, rng))
                continue
            if prepared.usable < length:
                continue
            last = prepared.end - length
            starts = np.unique(np.linspace(prepared.first, last, max_samples).round().astype(int))
            top, left = max(access.height - h, 0) // 2, max(access.width - w, 0) // 2
            for start in starts:
                indices = list(range(int(start), int(start) + length))
                sequences.append(_read_window(access, indices, crop, (top, left)).copy())
    if not sequences:
        raise InputFormatError(f"validation: no clip has {length} usable frames")
    return sequences
