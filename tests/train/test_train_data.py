"""Training data: sources, frame ranges, the frame cache, synthetic motion, sampling."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ufvc.errors import InputFormatError
from ufvc.io import open_writer
from ufvc.io.color import rgb_to_frame
from ufvc.io.types import Frame, VideoInfo
from ufvc.train.config import MotionConfig, SourceConfig
from ufvc.train.data import SequenceDataset, StepSampler, prepare_sources, validation_sequences
from ufvc.train.motion import draw_motion, resample, synthesize_motion
from ufvc.train.sources import Clip, FrameCache, build_clips, frame_to_u8_444

LUMA0, LUMA_STEP = 10, 7  # frame i of the numbered clip has luma 10 + 7 i everywhere


def write_numbered_clip(path: Path, frames: int, width: int = 96, height: int = 80) -> None:
    """A lossless .y4m clip whose frame index can be read back from any pixel's luma."""
    info = VideoInfo(width=width, height=height, fps=Fraction(25), num_frames=None)
    cb = np.tile(np.arange(width // 2, dtype=np.uint8) * 2, (height // 2, 1))
    with open_writer(path, info) as writer:
        for i in range(frames):
            y = np.full((height, width), LUMA0 + LUMA_STEP * i, dtype=np.uint8)
            writer.write(Frame(y, cb, 255 - cb))


def frame_numbers(sequence: np.ndarray) -> list[int]:
    luma = sequence[:, 0, 0, 0].astype(int)
    assert all((sequence[i, 0] == luma[i]).all() for i in range(len(luma)))
    return [(v - LUMA0) // LUMA_STEP for v in luma]


@pytest.fixture(scope="module")
def numbered_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "numbered.y4m"
    write_numbered_clip(path, 30)
    return path


def dataset_for(sources, cache, **kwargs) -> SequenceDataset:
    settings = {"length": 4, "crop": (64, 64), "seed": 5, "stream": 0, "qp_range": (0, 63)}
    settings.update(kwargs)
    return SequenceDataset(sources, cache, **settings)


def test_frame_ranges_keep_excluded_frames_out(numbered_clip: Path, tmp_path: Path):
    cache = FrameCache(tmp_path / "cache")
    source = SourceConfig(kind="video", path=str(numbered_clip), start=5, stop=-5,
                          frame_steps=(1, 2))
    dataset = dataset_for(prepare_sources([source], cache), cache)
    seen = set()
    for n in range(150):
        frames, qp = dataset[n]
        numbers = frame_numbers(frames.numpy())
        step = abs(numbers[1] - numbers[0])
        assert step in (1, 2)
        assert numbers in (list(range(numbers[0], numbers[0] + 4 * step, step)),
                           list(range(numbers[0], numbers[0] - 4 * step, -step)))  # reversed
        seen.update(numbers)
        assert 0 <= qp <= 63
    assert min(seen) == 5 and max(seen) == 24  # frames 0-4 and 25-29 never drawn

    held_out = SourceConfig(kind="video", path=str(numbered_clip), start=-5)
    sequences = validation_sequences(prepare_sources([held_out], cache), cache, length=3,
                                     crop=(64, 64), max_samples=3, seed=0)
    assert [frame_numbers(s) for s in sequences] == [[25, 26, 27], [26, 27, 28], [27, 28, 29]]


def test_video_is_decoded_once_into_the_cache(numbered_clip: Path, tmp_path: Path, monkeypatch):
    cache = FrameCache(tmp_path / "cache")
    clip = build_clips(SourceConfig(kind="video", path=str(numbered_clip)))[0]
    meta = cache.fill(clip)
    assert meta["frames"] == 30 and (meta["height"], meta["width"]) == (80, 96)
    folder = cache.folder(clip)
    assert (folder / "meta.json").is_file() and len(list(folder.glob("seg_*.npy"))) == 2

    def no_decoding(self):
        raise AssertionError("decoded again")

    monkeypatch.setattr(Clip, "decode", no_decoding)
    frames = cache.open(clip).read([0, 17, 29], window=(8, 16, 32, 48))
    assert frames.shape == (3, 3, 32, 48)
    assert frame_numbers(frames) == [0, 17, 29]


def test_a_changed_file_gets_a_new_cache_entry(tmp_path: Path):
    path = tmp_path / "clip.y4m"
    write_numbered_clip(path, 4)
    before = build_clips(SourceConfig(kind="video", path=str(path)))[0].cache_key()
    write_numbered_clip(path, 6)
    after = build_clips(SourceConfig(kind="video", path=str(path)))[0].cache_key()
    assert before != after
    assert FrameCache(tmp_path / "c").fill(build_clips(
        SourceConfig(kind="video", path=str(path)))[0])["frames"] == 6


def test_frames_are_ycbcr_444_from_420_video(numbered_clip: Path):
    clip = build_clips(SourceConfig(kind="video", path=str(numbered_clip)))[0]
    first = next(clip.decode())
    assert first.shape == (3, 80, 96) and first.dtype == np.uint8
    # Nearest-neighbour chroma upsampling: each 4:2:0 sample covers a 2x2 block.
    assert (first[1, :, 0::2] == first[1, :, 1::2]).all()
    assert (first[1, 0::2] == first[1, 1::2]).all()
    ten_bit = Frame(np.full((2, 2), 1023, np.uint16), np.full((1, 1), 2, np.uint16),
                    np.full((1, 1), 512, np.uint16), 10)
    assert frame_to_u8_444(ten_bit)[:, 0, 0].tolist() == [255, 1, 128]


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def test_vimeo_septuplets_follow_the_list_file(tmp_path: Path):
    rng = np.random.default_rng(1)
    root = tmp_path / "vimeo_septuplet"
    images = {}
    for name in ("00001/0001", "00001/0002", "00002/0001"):
        for k in range(1, 8):
            rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            _write_png(root / "sequences" / name / f"im{k}.png", rgb)
            images[(name, k)] = rgb
    (root / "sep_trainlist.txt").write_text("00001/0002\n00002/0001\n")
    source = SourceConfig(kind="png_sequences", path=str(root), list_file="sep_trainlist.txt",
                          cache=False)
    clips = build_clips(source)
    assert [Path(c.label).relative_to(root / "sequences").as_posix() for c in clips] == [
        "00001/0002", "00002/0001"]
    assert all(len(c.images) == 7 for c in clips)
    frames = FrameCache(tmp_path / "cache").open(clips[1]).read([2])
    expected = rgb_to_frame(images[("00002/0001", 3)], chroma="444")
    np.testing.assert_array_equal(frames[0], np.stack(expected.planes))


def test_listing_names_videos_frame_folders_and_images(numbered_clip: Path, tmp_path: Path):
    rng = np.random.default_rng(2)
    for k in range(5):
        _write_png(tmp_path / "seq" / f"{k:03d}.png", rng.integers(0, 256, (64, 64, 3), np.uint8))
    _write_png(tmp_path / "still.png", rng.integers(0, 256, (80, 80, 3), np.uint8))
    listing = tmp_path / "description.json"
    listing.write_text(json.dumps({"sequences": [
        {"video": str(numbered_clip), "start": 10, "stop": 20},
        {"frames": "seq", "start": 1},
        {"image": "still.png"},
    ]}))
    clips = build_clips(SourceConfig(kind="listing", path=str(listing)))
    assert [(c.start, c.stop, c.still) for c in clips] == [(10, 20, False), (1, None, False),
                                                            (0, None, True)]
    assert len(clips[1].images) == 5
    listing.write_text(json.dumps([{"frames": "seq", "video": "x.mp4"}]))
    with pytest.raises(InputFormatError, match="exactly one"):
        build_clips(SourceConfig(kind="listing", path=str(listing)))


def test_listing_leaves_out_stills_smaller_than_min_size(tmp_path: Path):
    rng = np.random.default_rng(4)
    _write_png(tmp_path / "wide.png", rng.integers(0, 256, (96, 160, 3), np.uint8))
    _write_png(tmp_path / "small.png", rng.integers(0, 256, (64, 200, 3), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps([{"image": "wide.png"}, {"image": "small.png"}]))
    names = [Path(c.label).name for c in
             build_clips(SourceConfig(kind="listing", path=str(listing), min_size=96))]
    assert names == ["wide.png"]
    listing.write_text(json.dumps([{"image": "wide.png"}, {"image": "broken.png"}]))
    with pytest.raises(InputFormatError, match="entry 1: .*broken.png is not a readable image"):
        build_clips(SourceConfig(kind="listing", path=str(listing)))


def test_images_are_converted_with_bt709_full_range(tmp_path: Path):
    rgb = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    _write_png(tmp_path / "img" / "a.png", rgb)
    cache = FrameCache(tmp_path / "cache")
    sources = prepare_sources([SourceConfig(kind="images", path=str(tmp_path / "img"))], cache)
    dataset = dataset_for(sources, cache, length=1, flips=False)
    frames, _ = dataset[0]
    expected = np.stack(rgb_to_frame(rgb, chroma="444").planes)
    np.testing.assert_array_equal(frames.numpy()[0], expected)


def test_synthetic_pan_moves_the_picture_at_constant_subpixel_speed():
    motion = MotionConfig(max_pan=3.0, max_zoom=0.0, max_rotation=0.0, max_patches=0,
                          max_brightness=0.0)
    path = draw_motion((256, 300), 9, (64, 64), motion, np.random.default_rng(7))
    shift_x = path.src_x - path.src_x[0]
    shift_y = path.src_y - path.src_y[0]
    vx, vy = float(shift_x[1, 0, 0]), float(shift_y[1, 0, 0])
    assert 0.1 < max(abs(vx), abs(vy)) <= 3.0
    assert vx != round(vx) and vy != round(vy)  # sub-pixel
    t = torch.arange(9, dtype=torch.float64)[:, None, None]
    torch.testing.assert_close(shift_x, (vx * t).expand_as(shift_x))
    torch.testing.assert_close(shift_y, (vy * t).expand_as(shift_y))
    inside = (path.src_x >= 0) & (path.src_x <= 299) & (path.src_y >= 0) & (path.src_y <= 255)
    assert bool(inside.all())  # the image is large enough: no mirrored borders

    # Resampling a ramp (luma = column) returns the source coordinate itself.
    ramp = np.zeros((3, 256, 300), dtype=np.uint8)
    ramp[0] = np.minimum(np.arange(300), 255)[None, :]
    frames = resample(ramp, path)
    centre = (path.src_x <= 254)
    torch.testing.assert_close(frames[:, 0][centre], path.src_x.float()[centre])


def test_zoom_and_rotation_change_the_sampling_grid():
    motion = MotionConfig(max_pan=0.0, max_zoom=0.02, max_rotation=1.0, max_patches=0,
                          max_brightness=0.0)
    path = draw_motion((400, 400), 5, (64, 64), motion, np.random.default_rng(3))
    spacing = torch.hypot(path.src_x[:, 0, 1] - path.src_x[:, 0, 0],
                          path.src_y[:, 0, 1] - path.src_y[:, 0, 0])
    ratio = spacing[1:] / spacing[:-1]
    assert 0.98 <= float(ratio[0]) <= 1.02 and float(ratio[0]) != 1.0
    torch.testing.assert_close(ratio, ratio[:1].expand_as(ratio))  # constant zoom rate
    direction = torch.atan2(path.src_y[:, 0, 1] - path.src_y[:, 0, 0],
                            path.src_x[:, 0, 1] - path.src_x[:, 0, 0])
    assert 0 < abs(float(direction[1] - direction[0])) <= np.radians(1.0)


def test_synthetic_motion_is_deterministic_and_off_when_bounds_are_zero():
    image = np.random.default_rng(0).integers(0, 256, (3, 200, 240), dtype=np.uint8)
    motion = MotionConfig()
    a = synthesize_motion(image, 5, (64, 64), motion, np.random.default_rng(11))
    b = synthesize_motion(image, 5, (64, 64), motion, np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)
    assert not (a[0] == a[-1]).all()
    still = replace(motion, max_pan=0.0, max_zoom=0.0, max_rotation=0.0, max_patches=0,
                    max_brightness=0.0)
    frames = synthesize_motion(image, 5, (64, 64), still, np.random.default_rng(11))
    assert all((frames[k] == frames[0]).all() for k in range(5))


def test_still_chance_stops_the_camera_but_not_the_patches():
    moving = MotionConfig(max_pan=4.0, max_zoom=0.01, max_rotation=0.4, max_patches=0,
                          max_brightness=0.0)
    still = replace(moving, still_chance=1.0)
    for seed in range(5):
        path = draw_motion((300, 300), 4, (64, 64), still, np.random.default_rng(seed))
        assert (path.src_x == path.src_x[0]).all() and (path.src_y == path.src_y[0]).all()
        other = draw_motion((300, 300), 4, (64, 64), moving, np.random.default_rng(seed))
        assert not (other.src_x == other.src_x[0]).all()
    with_patch = replace(still, max_patches=1, max_patch_speed=5.0, patch_size=(0.5, 0.5))
    paths = [draw_motion((300, 300), 4, (64, 64), with_patch, np.random.default_rng(s))
             for s in range(10)]
    assert any(not (p.src_x == p.src_x[0]).all() for p in paths)  # a patch still moves
    # Half the sequences of a source with still_chance 0.5 hold the camera.
    half = replace(moving, still_chance=0.5)
    held = sum(bool((draw_motion((300, 300), 3, (64, 64), half, np.random.default_rng(s))
                     .src_x.diff(dim=0) == 0).all()) for s in range(200))
    assert 70 < held < 130


def test_dim_chance_darkens_whole_sequences_and_leaves_others_as_before():
    image = np.random.default_rng(1).integers(0, 256, (3, 200, 240), dtype=np.uint8)
    lit = MotionConfig(max_brightness=0.0)
    dim = replace(lit, dim_chance=1.0, min_dim_level=0.2)
    for seed in range(5):
        bright = synthesize_motion(image, 4, (64, 64), lit, np.random.default_rng(seed))
        dark = synthesize_motion(image, 4, (64, 64), dim, np.random.default_rng(seed))
        # The same motion, only darker: luma scaled towards black, chroma towards grey.
        level = dark[:, 0].astype(float).sum() / bright[:, 0].astype(float).sum()
        assert 0.19 < level < 1.0
        chroma_bright = np.abs(bright[:, 1:].astype(float) - 127.5).mean()
        chroma_dark = np.abs(dark[:, 1:].astype(float) - 127.5).mean()
        assert chroma_dark < chroma_bright
        np.testing.assert_allclose(dark[:, 0], np.round(bright[:, 0] * level), atol=2)
    # Without dim_chance the sequences are those drawn before the option existed.
    off = replace(lit, dim_chance=0.0)
    np.testing.assert_array_equal(
        synthesize_motion(image, 4, (64, 64), off, np.random.default_rng(3)),
        synthesize_motion(image, 4, (64, 64), lit, np.random.default_rng(3)),
    )
    # About half the sequences are dim at dim_chance 0.5, each at its own level.
    half = replace(lit, dim_chance=0.5)
    gains = [float(draw_motion((300, 300), 2, (64, 64), half, np.random.default_rng(s)).gain[0])
             for s in range(200)]
    dimmed = [g for g in gains if g < 1.0]
    assert 70 < len(dimmed) < 130 and min(dimmed) >= 0.2 and len(set(dimmed)) == len(dimmed)


def test_samples_are_a_function_of_their_number(numbered_clip: Path, tmp_path: Path):
    cache = FrameCache(tmp_path / "cache")
    rng = np.random.default_rng(4)
    _write_png(tmp_path / "img" / "a.png", rng.integers(0, 256, (100, 120, 3), np.uint8))
    configs = [SourceConfig(kind="video", path=str(numbered_clip)),
               SourceConfig(kind="images", path=str(tmp_path / "img"))]
    first = dataset_for(prepare_sources(configs, cache), cache, length=5)
    second = dataset_for(prepare_sources(configs, cache), cache, length=5)
    for n in (0, 3, 1000):
        a, qp_a = first[n]
        b, qp_b = second[n]
        assert qp_a == qp_b and (a == b).all()
        assert a.shape == (5, 3, 64, 64)
    assert any(not (first[0][0] == first[n][0]).all() for n in range(1, 4))
    other_stage = dataset_for(prepare_sources(configs, cache), cache, length=5, stream=1)
    assert any(not (first[n][0] == other_stage[n][0]).all() for n in range(3))


def test_small_clips_keep_their_scale_and_are_mirrored_to_the_crop(tmp_path: Path):
    path = tmp_path / "small.y4m"
    write_numbered_clip(path, 6, width=48, height=40)
    cache = FrameCache(tmp_path / "cache")
    sources = prepare_sources([SourceConfig(kind="video", path=str(path))], cache)
    dataset = dataset_for(sources, cache, length=3, flips=False)
    clip = cache.open(sources[0].clips[0].clip)
    for n in range(4):
        frames = dataset[n][0].numpy()
        assert frames.shape == (3, 3, 64, 64)
        number = frame_numbers(frames)[0]
        assert (frames[0, :, :40, :48] == clip.read([number])[0]).all()  # its own scale
        # Beyond the bottom and right edges, the picture mirrors itself.
        assert (frames[..., 40:64, :] == frames[..., 39:15:-1, :]).all()
        assert (frames[..., :, 48:64] == frames[..., :, 47:31:-1]).all()


def test_clips_too_short_for_the_sequence_are_an_error(numbered_clip: Path, tmp_path: Path):
    cache = FrameCache(tmp_path / "cache")
    sources = prepare_sources([SourceConfig(kind="video", path=str(numbered_clip), stop=4)],
                              cache)
    with pytest.raises(InputFormatError, match="at least 9 usable frames"):
        dataset_for(sources, cache, length=9)


def test_step_sampler_gives_each_process_its_own_samples():
    ranks = [list(StepSampler(3, start_step=2, end_step=5, rank=r, world=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 9
    assert not set(ranks[0]) & set(ranks[1])
    resumed = list(StepSampler(3, start_step=3, end_step=5, rank=1, world=2))
    assert resumed == ranks[1][3:]


def test_motion_blur_averages_along_the_motion_and_noise_is_new_every_frame():
    pan = MotionConfig(max_pan=3.0, max_zoom=0.0, max_rotation=0.0, max_patches=0,
                       max_brightness=0.0)
    rng_path = draw_motion((256, 300), 5, (64, 64), pan, np.random.default_rng(7))
    ramp = np.zeros((3, 256, 300), dtype=np.uint8)
    ramp[0] = np.minimum(np.arange(300), 255)[None, :]
    stripes = ramp.copy()
    stripes[0] = (np.arange(300) % 8 < 4)[None, :] * 255
    sharp = resample(stripes, rng_path)
    blurred = resample(stripes, replace(rng_path, shutter=1.0))
    # Blur over a pan of a linear ramp changes nothing (the mean of a linear function)...
    torch.testing.assert_close(resample(ramp, replace(rng_path, shutter=1.0))[:, 0, 8:-8, 8:-8],
                               resample(ramp, rng_path)[:, 0, 8:-8, 8:-8], atol=1e-3, rtol=0)
    # ...but smooths fine stripes along the direction of motion.
    assert float(blurred[:, 0].std()) < 0.9 * float(sharp[:, 0].std())

    image = np.full((3, 200, 240), 128, dtype=np.uint8)
    noisy = replace(pan, max_pan=0.0, max_noise=4.0)
    frames = synthesize_motion(image, 5, (64, 64), noisy, np.random.default_rng(2)).astype(float)
    assert 0 < frames[:, 0].std() < 4.5
    assert not (frames[0] == frames[1]).all()  # new noise every frame
    assert frames[:, 1].std() < frames[:, 0].std()  # chroma noise is weaker


def test_round_patches_keep_the_background_outside_the_ellipse():
    still_camera = MotionConfig(max_pan=0.0, max_zoom=0.0, max_rotation=0.0, max_patches=1,
                                patch_size=(0.5, 0.5), max_patch_speed=0.0, max_brightness=0.0,
                                round_patches=1.0)
    for seed in range(20):
        path = draw_motion((400, 400), 2, (64, 64), still_camera, np.random.default_rng(seed))
        plain = draw_motion((400, 400), 2, (64, 64), replace(still_camera, max_patches=0),
                            np.random.default_rng(seed))
        moved = (path.src_x != plain.src_x) | (path.src_y != plain.src_y)
        if moved.any():
            break
    rows, cols = torch.nonzero(moved[0], as_tuple=True)
    box = (int(rows.max() - rows.min()) + 1) * (int(cols.max() - cols.min()) + 1)
    # An ellipse fills pi/4 of its bounding box.
    assert 0.65 < int(moved[0].sum()) / box < 0.9


def test_video_folder_finds_videos_in_subfolders(numbered_clip: Path, tmp_path: Path):
    (tmp_path / "mine" / "trip" / "day2").mkdir(parents=True)
    shutil.copy(numbered_clip, tmp_path / "mine" / "trip" / "a.y4m")
    shutil.copy(numbered_clip, tmp_path / "mine" / "trip" / "day2" / "b.y4m")
    (tmp_path / "mine" / "notes.txt").write_text("not a video")
    clips = build_clips(SourceConfig(kind="video_folder", path=str(tmp_path / "mine")))
    assert sorted(Path(c.video).name for c in clips) == ["a.y4m", "b.y4m"]
    with pytest.raises(InputFormatError, match="not a folder"):
        build_clips(SourceConfig(kind="video_folder", path=str(numbered_clip)))
