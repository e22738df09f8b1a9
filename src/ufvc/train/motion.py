"""Still images turned into video: synthetic camera motion plus independently moving objects.

A user with only images can train the video stages on them. Each sequence draws a camera
path (a pan, a zoom and a rotation, each at a constant rate; with `still_chance`, a
camera that stands still), a few patches of the image
that move over the picture on their own (occlusions the temporal prior cannot simply
copy; rectangles or ellipses), and a slow change of brightness. All of it is one
bilinear resampling of the source image per frame, so motion is sub-pixel. Optionally a
sequence gets motion blur (each frame averages samples along every pixel's own motion
over the exposure, so a moving patch blurs with its own motion), sensor noise (new
every frame, as a camera's is) and dim light (the whole scene darker, as at night or
indoors: a light level scales luma towards black and chroma towards grey).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ufvc.train.config import MotionConfig


def _source_grid(
    points_y: torch.Tensor, points_x: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Source pixel coordinates as grid_sample's normalised (x, y) (align_corners=False)."""
    return torch.stack(((2 * points_x + 1) / width - 1, (2 * points_y + 1) / height - 1), dim=-1)


@dataclass
class MotionPath:
    """Where each output pixel of each frame samples the source image, and the luma gain.

    `src_y`, `src_x` [T, h, w] are source pixel coordinates (pixel k has its centre at k);
    `gain` [T] scales luma towards black and chroma towards grey (brightness drift and
    light level); `shutter` is the exposure as a fraction of the frame interval (0: no
    motion blur); `noise` the std of the sensor noise in 8-bit levels.
    """

    src_y: torch.Tensor
    src_x: torch.Tensor
    gain: torch.Tensor
    shutter: float = 0.0
    noise: float = 0.0


def draw_motion(
    image_size: tuple[int, int],
    length: int,
    crop: tuple[int, int],
    motion: MotionConfig,
    rng: np.random.Generator,
) -> MotionPath:
    """Draw one sequence's camera path, moving patches and brightness change.

    The camera never samples outside the image when the image is large enough for the
    drawn path. An image close to the crop's size is magnified a little (the data loader
    mirrors smaller pictures out to the crop first).
    """
    height, width = image_size
    h, w = crop
    t = torch.arange(length, dtype=torch.float64)

    base_scale = min(1.0, 0.95 * min(height / h, width / w))  # source pixels per output pixel
    velocity = rng.uniform(-motion.max_pan, motion.max_pan, size=2) * base_scale  # (y, x)
    zoom = rng.uniform(-motion.max_zoom, motion.max_zoom)
    spin = math.radians(rng.uniform(-motion.max_rotation, motion.max_rotation))
    gain_rate = rng.uniform(-motion.max_brightness, motion.max_brightness)
    if motion.still_chance > 0 and rng.random() < motion.still_chance:
        # A fixed camera (surveillance, a tripod): the background should be copied from
        # the reference, which camera paths drawn from the whole range almost never ask.
        velocity, zoom, spin = np.zeros(2), 0.0, 0.0

    scale = base_scale * (1.0 + zoom) ** t  # [T]
    angle = spin * t
    largest = float(scale.max())
    turn = min(abs(spin) * (length - 1), math.pi / 2)
    half_extent = (
        0.5 * largest * (h * math.cos(turn) + w * math.sin(turn)),
        0.5 * largest * (w * math.cos(turn) + h * math.sin(turn)),
    )
    travel = velocity * (length - 1)
    centre = []
    for axis, size in enumerate((height, width)):
        low = half_extent[axis] - min(0.0, travel[axis])
        high = size - half_extent[axis] - max(0.0, travel[axis])
        centre.append(rng.uniform(low, high) if low < high else 0.5 * (low + high))
    centre_t = torch.tensor(centre, dtype=torch.float64)[None, :] + t[:, None] * torch.tensor(
        velocity, dtype=torch.float64
    )  # [T, 2] (y, x)

    v = torch.arange(h, dtype=torch.float64) - (h - 1) / 2
    u = torch.arange(w, dtype=torch.float64) - (w - 1) / 2
    vv, uu = torch.meshgrid(v, u, indexing="ij")  # [h, w]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    s = scale[:, None, None]
    src_y = centre_t[:, 0, None, None] + s * (sin * uu + cos * vv)
    src_x = centre_t[:, 1, None, None] + s * (cos * uu - sin * vv)

    for _ in range(int(rng.integers(0, motion.max_patches + 1))):
        fractions = rng.uniform(*motion.patch_size, size=2)
        ph, pw = max(1, round(fractions[0] * h)), max(1, round(fractions[1] * w))
        span_y, span_x = ph * base_scale, pw * base_scale
        origin = (rng.uniform(0, max(height - span_y, 0)), rng.uniform(0, max(width - span_x, 0)))
        start = (rng.uniform(0, h - ph), rng.uniform(0, w - pw))
        speed = rng.uniform(-motion.max_patch_speed, motion.max_patch_speed, size=2)
        round_patch = motion.round_patches > 0 and rng.random() < motion.round_patches
        for k in range(length):
            top, left = start[0] + speed[0] * k, start[1] + speed[1] * k
            r0, c0 = math.floor(top), math.floor(left)
            r1, c1 = max(r0, 0), max(c0, 0)
            r2, c2 = min(r0 + ph, h), min(c0 + pw, w)
            if r1 >= r2 or c1 >= c2:
                continue
            rows = torch.arange(r1, r2, dtype=torch.float64)[:, None]
            cols = torch.arange(c1, c2, dtype=torch.float64)[None, :]
            patch_y = (origin[0] + base_scale * (rows - top)).expand(r2 - r1, c2 - c1)
            patch_x = (origin[1] + base_scale * (cols - left)).expand(r2 - r1, c2 - c1)
            inside = torch.ones(r2 - r1, c2 - c1, dtype=torch.bool)
            if round_patch:
                dy = (rows + 0.5 - top - ph / 2) / (ph / 2)
                dx = (cols + 0.5 - left - pw / 2) / (pw / 2)
                inside = dy.square() + dx.square() <= 1.0
            src_y[k, r1:r2, c1:c2] = torch.where(inside, patch_y, src_y[k, r1:r2, c1:c2])
            src_x[k, r1:r2, c1:c2] = torch.where(inside, patch_x, src_x[k, r1:r2, c1:c2])
    # Draw only what is enabled, so that configs without these options see the sequences
    # they always did.
    blurred = motion.blur_chance > 0 and rng.random() < motion.blur_chance
    shutter = rng.uniform(0.0, motion.max_shutter) if blurred else 0.0
    noise = rng.uniform(0.0, motion.max_noise) if motion.max_noise > 0 else 0.0
    light = 1.0
    if motion.dim_chance > 0 and rng.random() < motion.dim_chance:
        # Log-uniform: as many sequences a little dim as very dark ones.
        light = math.exp(rng.uniform(math.log(motion.min_dim_level), 0.0))
    return MotionPath(src_y=src_y, src_x=src_x, gain=light * (1.0 + gain_rate * t),
                      shutter=shutter, noise=noise)


BLUR_SAMPLES = 5  # samples per pixel over the exposure of a blurred frame


def _exposure_offsets(path: MotionPath) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-sample (dy, dx) [T, h, w] offsets along each pixel's motion over the exposure."""
    if path.shutter <= 0 or path.src_y.shape[0] < 2:
        return [(torch.zeros(()), torch.zeros(()))]
    # Each pixel's displacement to the next frame (the last frame repeats the one before).
    dy = torch.diff(path.src_y, dim=0, append=(2 * path.src_y[-1:] - path.src_y[-2:-1]))
    dx = torch.diff(path.src_x, dim=0, append=(2 * path.src_x[-1:] - path.src_x[-2:-1]))
    fractions = torch.linspace(-0.5, 0.5, BLUR_SAMPLES, dtype=torch.float64) * path.shutter
    return [(float(f) * dy, float(f) * dx) for f in fractions]


def resample(image: np.ndarray, path: MotionPath) -> torch.Tensor:
    """Bilinear samples float32 [T, 3, h, w] of image uint8 [3, H, W] along `path`
    (mirrored at the image borders), brightness change applied, not rounded."""
    _, height, width = image.shape
    length, h, w = path.src_x.shape
    source = torch.from_numpy(np.ascontiguousarray(image)).float()[None]  # [1, 3, H, W]
    offsets = _exposure_offsets(path)
    frames = torch.zeros(3, length, h, w)
    for dy, dx in offsets:
        grid = _source_grid(path.src_y + dy, path.src_x + dx, height, width).float()
        frames += F.grid_sample(
            source,
            grid.reshape(1, length * h, w, 2),
            mode="bilinear",
            padding_mode="reflection",
            align_corners=False,
        ).reshape(3, length, h, w)
    frames = (frames / len(offsets)).transpose(0, 1)
    gain = path.gain.float()[:, None, None, None]
    neutral = torch.tensor([0.0, 127.5, 127.5])[None, :, None, None]
    return (frames - neutral) * gain + neutral


def synthesize_motion(
    image: np.ndarray,
    length: int,
    crop: tuple[int, int],
    motion: MotionConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """A moving sequence uint8 [length, 3, h, w] from one YCbCr image uint8 [3, H, W]."""
    path = draw_motion(image.shape[1:], length, crop, motion, rng)
    frames = resample(image, path)
    if path.noise > 0:
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        noise = torch.randn(frames.shape, generator=generator) * path.noise
        noise[:, 1:] *= 0.5  # chroma noise is weaker than luma noise in camera output
        frames = frames + noise
    return frames.round().clamp(0, 255).to(torch.uint8).numpy()
