"""Conventional-codec anchors through PyAV: x264, x265, SVT-AV1 and (when present) VVenC.

Each point encodes 8-bit 4:2:0 source frames into a raw elementary stream file (Annex-B
H.264/HEVC/VVC, low-overhead AV1 OBUs), decodes that file back with PyAV and compares the
decoded planes with the source frame by frame in numpy.

- Rate: `bits` is 8 x the size of the stream file on disk, which equals the sum of the sizes of
  the packets written (a raw stream has no container; an MP4 would add about a kilobyte of
  boxes). Parameter sets are counted. SEI messages are not: x264 and x265 put their version
  and whole option list into one SEI per stream (0.6 and 2.3 KB), a third of the rate of a
  short QCIF clip and nothing a decoder needs, so ffmpeg's `filter_units` bitstream filter
  drops SEI NAL units before muxing.
- Speed: encode fps counts the wall clock from the first `encode()` call (the encoder opens
  there) through the flush; decode fps counts opening, demuxing and decoding the file.
  Converting frames to and from numpy and computing PSNR are outside both.
- Threads: 2 for every encoder and decoder.

Coding structures (`mode`):
- "ld", low delay: one intra frame at the start, then only forward prediction, no B-frames and
  no further key frames (x264 `bframes=0:keyint=infinite:scenecut=0`, x265
  `bframes=0:keyint=-1:scenecut=0`, SVT-AV1 `pred-struct=1:keyint=-1`).
- "ra", random access: the encoder's default GOP (B-frames and periodic key frames).
- "ai", all intra: every frame a key frame (`keyint=1`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.bitstream
import numpy as np
from av.video.frame import PictureType

from ufvc.defaults import ANCHOR_MODES
from ufvc.errors import InputFormatError, UfvcError
from ufvc.eval.results import (
    RateRow,
    ResultStore,
    bits_per_pixel,
    kilobits_per_second,
    quality_value,
)
from ufvc.eval.testsets import SequenceSpec
from ufvc.io.types import Frame
from ufvc.metrics import SequencePsnr

ANCHOR_THREADS = 2
MODES = ANCHOR_MODES
_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                 "slower", "veryslow", "placebo")


@dataclass(frozen=True)
class AnchorCodec:
    """A conventional encoder as PyAV reaches it, and how its stream is stored and read."""

    name: str  # what users type: "x264"
    encoder: str  # libavcodec encoder name
    stream_format: str  # libavformat raw muxer/demuxer of the elementary stream
    suffix: str  # file suffix of the stream
    params_option: str  # the encoder's "key=value:key=value" option
    presets: tuple[str, ...]
    default_preset: str
    # rate control -> (lowest, highest) accepted value
    quality_ranges: tuple[tuple[str, float, float], ...]
    input_pix_fmt: str  # what the encoder accepts
    sei_nal_types: str | None  # NAL unit types of SEI messages (dropped), "|"-separated


CODECS: dict[str, AnchorCodec] = {
    codec.name: codec
    for codec in (
        AnchorCodec("x264", "libx264", "h264", ".264", "x264-params", _X26X_PRESETS, "medium",
                    (("crf", 0, 51), ("qp", 0, 51)), "yuv420p", "6"),
        AnchorCodec("x265", "libx265", "hevc", ".265", "x265-params", _X26X_PRESETS, "medium",
                    (("crf", 0, 51), ("qp", 0, 51)), "yuv420p", "39|40"),
        AnchorCodec("svt-av1", "libsvtav1", "obu", ".obu", "svtav1-params",
                    tuple(str(p) for p in range(14)), "8", (("crf", 1, 63), ("qp", 1, 63)),
                    "yuv420p", None),
        # libvvenc takes 10-bit input only; 8-bit sources are shifted up and the decoded
        # pictures rounded back to 8 bits before PSNR.
        AnchorCodec("vvc", "libvvenc", "vvc", ".266", "vvenc-params",
                    ("faster", "fast", "medium", "slow", "slower"), "medium", (("qp", 0, 63),),
                    "yuv420p10le", "23|24"),
    )
}


def encoder_available(codec: str) -> bool:
    """Whether the ffmpeg under PyAV has the encoder of `codec`."""
    try:
        av.codec.Codec(CODECS[codec].encoder, "w")
    except (av.error.FFmpegError, ValueError, KeyError):
        return False
    return True


def ffmpeg_description() -> str:
    """The ffmpeg build PyAV runs on, for messages."""
    return f"PyAV {av.__version__} on ffmpeg {av.ffmpeg_version_info}"


@dataclass(frozen=True)
class AnchorConfig:
    """One encoder configuration: codec, preset, coding structure and rate control."""

    codec: AnchorCodec
    preset: str
    mode: str  # "ld", "ra" or "ai"
    rate_control: str  # "crf" or "qp"
    threads: int = ANCHOR_THREADS

    @property
    def name(self) -> str:
        """The configuration's label in result files, e.g. "x264-medium-ld"."""
        preset = f"p{self.preset}" if self.preset.isdigit() else self.preset
        return f"{self.codec.name}-{preset}-{self.mode}"

    def check_quality(self, quality: float) -> None:
        """Raise InputFormatError when `quality` is outside the encoder's range."""
        for rate_control, low, high in self.codec.quality_ranges:
            if rate_control == self.rate_control:
                if not low <= quality <= high:
                    raise InputFormatError(f"{self.codec.name} {rate_control} must be in "
                                           f"{low}..{high}, got {quality}")
                if rate_control == "qp" and quality != int(quality):
                    raise InputFormatError(f"qp must be a whole number, got {quality}")
                return

    def options(self, quality: float) -> dict[str, str]:
        """The PyAV encoder options for one quality value."""
        params: list[str] = []
        options = {"preset": self.preset}
        name = self.codec.name
        value = f"{quality:g}"
        if name == "x264":
            params += [f"{self.rate_control}={value}", f"threads={self.threads}"]
            params += {"ld": ["bframes=0", "keyint=infinite", "scenecut=0"],
                       "ra": [], "ai": ["keyint=1"]}[self.mode]
        elif name == "x265":
            # x265 ignores the libavcodec thread count; it has its own pool settings.
            params += [f"{self.rate_control}={value}", f"pools={self.threads}",
                       f"frame-threads={self.threads}", "log-level=error"]
            params += {"ld": ["bframes=0", "keyint=-1", "scenecut=0"],
                       "ra": [], "ai": ["keyint=1"]}[self.mode]
        elif name == "svt-av1":
            # SVT-AV1's crf varies the QP per block (aq-mode 2); a constant QP needs aq-mode 0.
            params += [f"crf={value}"] if self.rate_control == "crf" else [f"qp={value}",
                                                                          "aq-mode=0"]
            params += [f"lp={self.threads}"]
            params += {"ld": ["pred-struct=1", "keyint=-1"], "ra": [],
                       "ai": ["keyint=1"]}[self.mode]
        else:  # vvc
            options["qp"] = value
            # Perceptual QP adaptation targets XPSNR; PSNR anchors run without it.
            options["qpa"] = "0"
            # Low delay as libheif configures VVenC: no reordering, no refresh, GOP of 8.
            params += {"ld": ["PicReordering=0", "GOPSize=8", "DecodingRefreshType=0",
                              "IntraPeriod=-1"], "ra": [], "ai": []}[self.mode]
        if params:
            options[self.codec.params_option] = ":".join(params)
        return options

    @property
    def gop_size(self) -> int | None:
        """A libavcodec GOP size to set (only the VVenC wrapper reads it for all-intra)."""
        return 1 if self.codec.name == "vvc" and self.mode == "ai" else None


def anchor_config(codec: str, *, preset: str | None = None, mode: str = "ld",
                  rate_control: str = "crf", threads: int = ANCHOR_THREADS) -> AnchorConfig:
    """Check and build a configuration; raises InputFormatError on a bad or absent codec."""
    if codec not in CODECS:
        raise InputFormatError(f"unknown anchor codec {codec!r}; choose one of "
                               f"{', '.join(CODECS)}")
    spec = CODECS[codec]
    if not encoder_available(codec):
        raise InputFormatError(f"{codec} needs the {spec.encoder} encoder, which the ffmpeg "
                               f"under {ffmpeg_description()} does not have")
    preset = spec.default_preset if preset is None else str(preset)
    if preset not in spec.presets:
        raise InputFormatError(f"{codec} preset must be one of {', '.join(spec.presets)}, "
                               f"got {preset!r}")
    if mode not in MODES:
        raise InputFormatError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    controls = [rc for rc, _, _ in spec.quality_ranges]
    if rate_control not in controls:
        raise InputFormatError(f"{codec} supports rate control {', '.join(controls)}, "
                               f"not {rate_control!r}")
    if threads < 1:
        raise InputFormatError(f"threads must be >= 1, got {threads}")
    return AnchorConfig(spec, preset, mode, rate_control, threads)


# ---------------------------------------------------------------------------------------------
# Versions


def _x264_version(stream_head: bytes) -> str | None:
    # x264 writes its version and options into an unregistered-user-data SEI of the stream.
    match = re.search(rb"x264 - core (\d+)( r\d+ [0-9a-f]+)?", stream_head)
    if not match:
        return None
    return f"x264 core {match.group(1).decode()}{(match.group(2) or b'').decode()}"


def _x265_version(stream_head: bytes) -> str | None:
    match = re.search(rb"x265 \(build (\d+)\) - ([^:\s]+)", stream_head)
    if not match:
        return None
    return f"x265 {match.group(2).decode()} (build {match.group(1).decode()})"


def _library_version(stem: str, function: str) -> str | None:
    """Ask a shared library loaded by PyAV's ffmpeg for its version string.

    SVT-AV1 and VVenC write no version into their streams. The PyAV wheels bundle them next
    to the package; builds against a system ffmpeg find them on the library path. Opening an
    already loaded library again returns the same handle.
    """
    package = Path(av.__file__).resolve().parent
    candidates: list[str] = []
    for folder in (package.parent / "av.libs", package / ".dylibs", package):
        if folder.is_dir():
            candidates += [str(p) for p in sorted(folder.glob(f"*{stem}*"))
                           if ".so" in p.name or p.suffix in (".dylib", ".dll")]
    system = ctypes.util.find_library(stem)
    if system:
        candidates.append(system)
    for candidate in candidates:
        try:
            getter = getattr(ctypes.CDLL(candidate), function)
        except (OSError, AttributeError):
            continue
        getter.restype = ctypes.c_char_p
        getter.argtypes = []
        value = getter()
        if value:
            return value.decode("utf-8", "replace")
    return None


def encoder_version(codec: AnchorCodec, head: bytes) -> str:
    """The encoder library's version, from the SEI in the first packet or from the library."""
    if codec.name == "x264":
        version = _x264_version(head)
    elif codec.name == "x265":
        version = _x265_version(head)
    elif codec.name == "svt-av1":
        found = _library_version("SvtAv1Enc", "svt_av1_get_version")
        version = f"SVT-AV1 {found}" if found else None
    else:
        found = _library_version("vvenc", "vvenc_get_version")
        version = f"VVenC {found}" if found else None
    return version or f"{codec.encoder} (version unknown)"


def _libavcodec_version() -> str:
    return ".".join(str(part) for part in av.library_versions["libavcodec"])


# ---------------------------------------------------------------------------------------------
# Frames between ufvc.io and PyAV


def _to_av_frame(frame: Frame, pix_fmt: str) -> av.VideoFrame:
    planes = frame.planes
    if pix_fmt == "yuv420p10le":
        planes = tuple(plane.astype(np.uint16) << 2 for plane in planes)
    packed = np.concatenate([plane.ravel() for plane in planes]).reshape(-1, frame.width)
    return av.VideoFrame.from_ndarray(packed, format=pix_fmt)


def _from_av_frame(picture: av.VideoFrame) -> Frame:
    """8-bit 4:2:0 planes of a decoded picture (10-bit output rounded to 8 bits)."""
    name = picture.format.name
    if name not in ("yuv420p", "yuv420p10le"):
        raise UfvcError(f"decoder returned {name} pictures; anchors compare yuv420p only")
    packed = picture.to_ndarray()
    if name == "yuv420p10le":
        packed = np.minimum((packed.astype(np.uint16) + 2) >> 2, 255).astype(np.uint8)
    height, width = picture.height, picture.width
    chroma = packed[height:].reshape(-1)
    quarter = (height // 2) * (width // 2)
    u = chroma[:quarter].reshape(height // 2, width // 2)
    v = chroma[quarter:].reshape(height // 2, width // 2)
    return Frame(np.ascontiguousarray(packed[:height]), u, v, 8)


# ---------------------------------------------------------------------------------------------
# Measurement


@dataclass(frozen=True)
class EncodedStream:
    """A stream file written by `encode_frames` and what it cost."""

    path: Path
    bits: int
    seconds: float  # wall clock of the encode loop, flush included
    settings: str  # the encoder options used
    encoder_version: str


def _check_source(frames: Sequence[Frame]) -> None:
    if not frames:
        raise InputFormatError("no frames to encode")
    first = frames[0]
    if first.bit_depth != 8 or first.chroma != "420":
        raise InputFormatError(f"anchors take 8-bit 4:2:0 frames, got {first.bit_depth}-bit "
                               f"{first.chroma}")


def encode_frames(frames: Sequence[Frame], fps: Fraction, config: AnchorConfig, quality: float,
                  path: Path) -> EncodedStream:
    """Encode `frames` with one configuration into the raw stream file `path`."""
    _check_source(frames)
    config.check_quality(quality)
    options = config.options(quality)
    pictures = [_to_av_frame(frame, config.codec.input_pix_fmt) for frame in frames]
    for index, picture in enumerate(pictures):
        picture.pts = index
    if config.codec.name == "svt-av1":
        # SVT-AV1 prints its banner and settings straight to stderr, past ffmpeg's logging;
        # level 1 keeps errors only. A level the user set is kept.
        os.environ.setdefault("SVT_LOG", "1")
    head = bytearray()  # the first packet, for the version the encoder writes into it
    try:
        with av.open(str(path), mode="w", format=config.codec.stream_format) as container:
            stream = container.add_stream(config.codec.encoder, rate=fps, options=options)
            stream.width = frames[0].width
            stream.height = frames[0].height
            stream.pix_fmt = config.codec.input_pix_fmt
            stream.time_base = 1 / Fraction(fps)
            stream.codec_context.thread_count = config.threads
            if config.gop_size is not None:
                stream.codec_context.gop_size = config.gop_size
            drop_sei = None
            if config.codec.sei_nal_types:
                drop_sei = av.bitstream.BitStreamFilterContext(
                    f"filter_units=remove_types={config.codec.sei_nal_types}",
                    config.codec.stream_format)

            def write(packets: list[av.Packet]) -> None:
                for packet in packets:
                    if not head:
                        head.extend(bytes(packet))
                    container.mux(drop_sei.filter(packet) if drop_sei else packet)

            start = time.perf_counter()
            for picture in pictures:
                write(stream.encode(picture))
            write(stream.encode(None))
            if drop_sei:
                container.mux(drop_sei.filter(None))
            seconds = time.perf_counter() - start
    except av.error.FFmpegError as error:
        raise UfvcError(f"{config.codec.encoder} failed on {config.name} "
                        f"{config.rate_control} {quality:g}: {error}") from None
    settings = " ".join(f"{key}={value}" for key, value in options.items())
    return EncodedStream(path, 8 * path.stat().st_size, seconds, settings,
                         encoder_version(config.codec, bytes(head)))


@dataclass(frozen=True)
class DecodedStream:
    """Pictures decoded from a stream file, and how long demuxing and decoding took."""

    frames: list[Frame]
    seconds: float
    decoder: str
    picture_types: str  # one letter per picture in output order, e.g. "IPPP"


def decode_stream(path: Path, codec: AnchorCodec, threads: int = ANCHOR_THREADS
                  ) -> DecodedStream:
    """Decode a raw stream file with PyAV; the numpy conversion is not timed."""
    try:
        start = time.perf_counter()
        with av.open(str(path), format=codec.stream_format) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = threads
            stream.codec_context.thread_type = "AUTO"
            pictures = list(container.decode(stream))
            seconds = time.perf_counter() - start
            decoder = stream.codec_context.name
    except av.error.FFmpegError as error:
        raise UfvcError(f"cannot decode {path.name}: {error}") from None
    types = "".join(PictureType(p.pict_type).name[0] for p in pictures)
    return DecodedStream([_from_av_frame(p) for p in pictures], seconds, decoder, types)


def mean_psnr(sources: Sequence[Frame], decoded: Sequence[Frame]) -> dict[str, float]:
    """Per-plane and 6:1:1 PSNR, each the mean of the per-frame values."""
    if len(sources) != len(decoded):
        raise UfvcError(f"decoded {len(decoded)} frames, expected {len(sources)}")
    psnr = SequencePsnr()
    for ref, dist in zip(sources, decoded, strict=True):
        psnr.add(ref, dist)
    mean = psnr.mean()
    return {"psnr_y": mean.y, "psnr_u": mean.u, "psnr_v": mean.v, "psnr_yuv": mean.yuv611}


def measure_point(frames: Sequence[Frame], fps: Fraction, config: AnchorConfig,
                  quality: float, *, sequence: str, class_name: str, workdir: Path,
                  timing_runs: int = 1) -> RateRow:
    """Encode, decode and measure one sequence at one quality value.

    With `timing_runs` > 1 the encode and the decode are repeated and the fastest run gives
    the speeds (other processes can only slow a run down); rate and PSNR come from the first.
    """
    if timing_runs < 1:
        raise InputFormatError(f"timing runs must be >= 1, got {timing_runs}")
    stream_path = workdir / f"{config.name}-{config.rate_control}{quality:g}{config.codec.suffix}"
    encoded = encode_frames(frames, fps, config, quality, stream_path)
    decoded = decode_stream(stream_path, config.codec, config.threads)
    encode_seconds, decode_seconds = encoded.seconds, decoded.seconds
    for _ in range(timing_runs - 1):
        again = encode_frames(frames, fps, config, quality, workdir / f"again{stream_path.name}")
        again.path.unlink()
        encode_seconds = min(encode_seconds, again.seconds)
        decode_seconds = min(decode_seconds,
                             decode_stream(stream_path, config.codec, config.threads).seconds)
    psnr = mean_psnr(frames, decoded.frames)
    count, width, height = len(frames), frames[0].width, frames[0].height
    tools = {
        "encoder": encoded.encoder_version,
        "decoder": decoded.decoder,
        "ffmpeg": str(av.ffmpeg_version_info),
        "libavcodec": _libavcodec_version(),
        "pyav": av.__version__,
    }
    stream_path.unlink()
    return RateRow(
        codec=config.codec.name,
        config=config.name,
        sequence=sequence,
        class_name=class_name,
        rate_control=config.rate_control,
        quality=quality_value(quality),
        frames=count,
        width=width,
        height=height,
        fps=float(fps),
        bits=encoded.bits,
        bpp_actual=bits_per_pixel(encoded.bits, count, width, height),
        kbps=kilobits_per_second(encoded.bits, count, float(fps)),
        encode_fps=count / encode_seconds,
        decode_fps=count / decode_seconds,
        timing_runs=timing_runs,
        tools=tools,
        settings=encoded.settings,
        **psnr,
    )


def load_sequence(spec: SequenceSpec) -> tuple[list[Frame], Fraction]:
    """The frames a test set asks for, and the frame rate to code them at."""
    with spec.open() as reader:
        fps = spec.fps or reader.info.fps
        frames = list(reader)
    if spec.frames is not None and len(frames) < spec.frames:
        raise InputFormatError(f"{spec.path} has {len(frames)} frames; the test set asks for "
                               f"{spec.frames}")
    _check_source(frames)
    return frames, Fraction(fps)


@dataclass(frozen=True)
class AnchorPoint:
    """One (sequence, quality) point of an anchor run; `skipped` when it was already done."""

    sequence: SequenceSpec
    quality: float
    row: RateRow
    skipped: bool


def run_anchor(config: AnchorConfig, sequences: Sequence[SequenceSpec],
               qualities: Sequence[float], store: ResultStore, *,
               timing_runs: int = 1) -> Iterator[AnchorPoint]:
    """Measure every sequence at every quality, skipping points the store already has.

    Yields after each point (new or skipped); each new row is saved before it is yielded.
    """
    for value in qualities:
        config.check_quality(value)
    done = {row.key: row for row in store.rows}
    with tempfile.TemporaryDirectory(prefix="ufvc-anchor-") as workdir:
        for spec in sequences:
            keys = [(config.codec.name, config.name, spec.name, config.rate_control, q)
                    for q in qualities]
            if all(key in done for key in keys):
                for quality, key in zip(qualities, keys, strict=True):
                    yield AnchorPoint(spec, quality, done[key], skipped=True)
                continue
            frames, fps = load_sequence(spec)
            for quality, key in zip(qualities, keys, strict=True):
                if key in done:
                    yield AnchorPoint(spec, quality, done[key], skipped=True)
                    continue
                row = measure_point(frames, fps, config, quality, sequence=spec.name,
                                    class_name=spec.class_name, workdir=Path(workdir),
                                    timing_runs=timing_runs)
                store.add(row)
                yield AnchorPoint(spec, quality, row, skipped=False)
