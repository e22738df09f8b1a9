"""Coding speed: encode and decode frames per second on synthetic content, and the machine's
matrix-product peak measured in the same run.

For each frame size, a seeded `ufvc.samples.synthetic_video` clip is coded with the chunk
codec at one quality. The intra frame and the first `warmup_chunks` chunks are coded but not
timed (first calls pay for allocation and kernel selection); then whole chunks are timed:

- wall clock of `Encoder.encode` over the timed frames and the `flush` that hands back their
  last records (tensor conversion, networks, symbol handling, arithmetic coding, record
  packing; no file I/O), and of `Decoder.decode_all` over the records they produced. On
  CUDA the device is synchronised before each clock reading.
- The split into network and entropy-coding seconds is the codec's own `Timing`; what the
  wall clock holds beyond the two ("other") is frame conversion outside the codec's timer.
  With pipelining (by default when a core is free) the arithmetic coding and the frame
  conversion of one record run on a worker thread beside the next record's networks, so
  network + entropy seconds may exceed the wall clock. `pipeline_compare` also times every
  size without pipelining and reports the fps ratio.
- With `compile`, the networks run through torch.compile, and with `cuda_graphs` (CUDA
  only) they replay from CUDA graphs; either way each size is coded once untimed before
  the timed run, which compilation and graph capture stay out of.
- MACs per frame are counted by `ufvc.models.complexity.video_cost` at the frame size
  (steady-state chunk, encode side and decode side); achieved MAC/s is that count times
  the frames per second, and its share of the measured matrix-product peak in the codec's
  precision says how far the codec is from the machine's arithmetic limit.

Peaks are `torch.mm` of two random square matrices, fp32 and bf16, repeated for at least
`PEAK_SECONDS` after one warm-up product: GMAC/s = size**3 * repeats / seconds / 1e9.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from functools import partial
from typing import Any

import torch

import ufvc
from ufvc.codec import CodedRecord, CodingOptions, Decoder, Encoder, encode_frames
from ufvc.codec.compile import compile_available, compile_notes
from ufvc.codec.core import Timing, check_graphs_device, compute_context, default_pipeline
from ufvc.codec.options import dtype_name
from ufvc.defaults import NAMED_SIZES
from ufvc.errors import InputFormatError
from ufvc.io import parse_size
from ufvc.io.types import VideoInfo
from ufvc.models.complexity import video_cost
from ufvc.models.registry import CodecModel
from ufvc.samples import synthetic_video

# Sizes by their common names, (width, height); 240p..1080p as YouTube labels them, made even.
PEAK_SECONDS = 0.5
PEAK_SIZES = {"cpu": 2048, "cuda": 8192}  # matrix side: long enough to reach the peak
BENCH_SEED = 7


def parse_frame_size(text: str) -> tuple[int, int]:
    """'720p' or '1280x720' -> (width, height); both must be even (4:2:0)."""
    size = NAMED_SIZES.get(text.strip().lower())
    if size is None:
        try:
            size = parse_size(text)
        except InputFormatError:
            raise InputFormatError(f"frame size must be WxH (e.g. 1280x720) or one of "
                                   f"{', '.join(NAMED_SIZES)}, got {text!r}") from None
    if size[0] % 2 or size[1] % 2:
        raise InputFormatError(f"frame size must be even for 4:2:0, got {size[0]}x{size[1]}")
    return size


def resolve_device(text: str) -> torch.device:
    """A torch device from 'cpu', 'cuda' or 'cuda:N'; refuses CUDA when it is absent."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise InputFormatError(f"unknown device {text!r}; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise InputFormatError(f"device must be cpu or cuda, got {text!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputFormatError(f"device {text!r}: this torch ({torch.__version__}) sees no "
                                   "CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputFormatError(f"device {text!r}: only {torch.cuda.device_count()} CUDA "
                                   "device(s)")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that a clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """What the device is, in words: the GPU's name, or the CPU model and logical CPUs."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass  # not Linux: platform's answer stands
    return f"{model}, {os.cpu_count()} logical CPUs"


@dataclass(frozen=True)
class MatmulPeak:
    """A timed run of square matrix products in one precision."""

    dtype: str
    size: int
    repeats: int
    seconds: float

    @property
    def gmacs(self) -> float:
        """Multiply-accumulates per second, in units of 1e9."""
        return self.size**3 * self.repeats / self.seconds / 1e9

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gmacs": self.gmacs}


def matmul_peak(dtype: torch.dtype, device: torch.device, *, size: int | None = None,
                min_seconds: float = PEAK_SECONDS) -> MatmulPeak:
    """Time `torch.mm` of two random size x size matrices in `dtype` on `device`."""
    size = size or PEAK_SIZES[device.type]
    if size < 1:
        raise InputFormatError(f"peak matrix size must be >= 1, got {size}")
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)

    def run(repeats: int) -> float:
        synchronize(device)
        started = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b, out=out)
        synchronize(device)
        return time.perf_counter() - started

    run(1)  # warm-up: library initialisation, kernel choice, caches
    single = run(1)
    repeats = max(2, math.ceil(min_seconds / max(single, 1e-9)))
    return MatmulPeak(str(dtype).removeprefix("torch."), size, repeats, run(repeats))


@dataclass(frozen=True)
class CodingSpeed:
    """Timed frames of one direction (encode or decode) at one size."""

    frames: int
    seconds: float  # wall clock
    network_seconds: float  # the codec's Timing: networks and tensor bookkeeping
    entropy_seconds: float  # the codec's Timing: symbol handling and arithmetic coding
    macs_per_frame: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    @property
    def other_seconds(self) -> float:
        """Wall clock outside the codec's timer (frame to tensor conversion)."""
        return max(self.seconds - self.network_seconds - self.entropy_seconds, 0.0)

    @property
    def gmacs(self) -> float:
        """Achieved multiply-accumulates per second (counted MACs x fps), units of 1e9."""
        return self.macs_per_frame * self.fps / 1e9

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fps": self.fps, "other_seconds": self.other_seconds,
                "gmacs": self.gmacs}


@dataclass(frozen=True)
class SizeSpeed:
    """Encode and decode speed at one frame size."""

    width: int
    height: int
    encode: CodingSpeed
    decode: CodingSpeed
    bpp: float  # rate of the timed frames (records' bytes), for context only
    pipeline: bool = True
    unpipelined: SizeSpeed | None = None  # the same size without pipelining, when compared

    @property
    def label(self) -> str:
        names = {size: name for name, size in NAMED_SIZES.items()}
        return names.get((self.width, self.height), f"{self.width}x{self.height}")

    def pipeline_gain(self) -> dict[str, float] | None:
        """fps with pipelining over fps without, per direction, when both were measured."""
        if self.unpipelined is None:
            return None
        return {"encode": self.encode.fps / self.unpipelined.encode.fps,
                "decode": self.decode.fps / self.unpipelined.decode.fps}

    def to_dict(self) -> dict[str, Any]:
        data = {"size": self.label, "width": self.width, "height": self.height,
                "bpp": self.bpp, "pipeline": self.pipeline, "encode": self.encode.to_dict(),
                "decode": self.decode.to_dict()}
        if self.unpipelined is not None:
            data["unpipelined"] = {"encode": self.unpipelined.encode.to_dict(),
                                   "decode": self.unpipelined.decode.to_dict()}
            data["pipeline_gain"] = self.pipeline_gain()
        return data


@dataclass
class BenchReport:
    """Everything one `ufvc bench` run measured, and under which conditions."""

    model: str
    weights: str
    device: str
    device_name: str
    threads: int
    precision: str  # the dtype the codec computes in
    bf16_requested: bool
    quality: int
    warmup_frames: int  # coded before timing starts: the intra frame and warm-up chunks
    frames_per_chunk: int
    peaks: dict[str, MatmulPeak]
    pipeline: bool = True
    compile: bool = False
    cuda_graphs: bool = False
    arithmetic: str = "fp32"  # the stream's precision name: portable, fp32, bf16 or fp16
    sizes: list[SizeSpeed] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    command: str = ""

    def peak_for_codec(self) -> MatmulPeak | None:
        """The peak in the precision the codec computes in, when measured."""
        return self.peaks.get(self.precision)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the format `benchmarks/make_results.py` reads)."""
        return {
            "format": "ufvc-bench",
            "version": 1,
            "command": self.command,
            "model": self.model,
            "weights": self.weights,
            "device": self.device,
            "device_name": self.device_name,
            "threads": self.threads,
            "precision": self.precision,
            "arithmetic": self.arithmetic,
            "bf16_requested": self.bf16_requested,
            "quality": self.quality,
            "warmup_frames": self.warmup_frames,
            "frames_per_chunk": self.frames_per_chunk,
            "pipeline": self.pipeline,
            "compile": self.compile,
            "cuda_graphs": self.cuda_graphs,
            "versions": self.versions,
            "peaks": {name: peak.to_dict() for name, peak in self.peaks.items()},
            "sizes": [size.to_dict() for size in self.sizes],
            "notes": self.notes,
        }

    def to_table(self) -> str:
        """A plain-text report: conditions, peaks, then one line per size."""
        lines = [
            f"model {self.model} ({self.weights}), {self.arithmetic} ({self.precision}), "
            f"quality {self.quality}, "
            f"pipelining {'on' if self.pipeline else 'off'}, "
            f"torch.compile {'on' if self.compile else 'off'}"
            + (", CUDA graphs on" if self.cuda_graphs else ""),
            f"device {self.device}: {self.device_name}, {self.threads} thread(s)",
            "matmul peak: " + ", ".join(f"{name} {peak.gmacs:,.1f} GMAC/s "
                                        f"({peak.size}^3 x{peak.repeats})"
                                        for name, peak in self.peaks.items()),
            f"timed: whole {self.frames_per_chunk}-frame chunks after {self.warmup_frames} "
            "warm-up frame(s) (intra frame and first chunk(s) excluded)",
            "",
            f"{'size':>10} {'dir':>4} {'pipe':>4} {'frames':>6} {'fps':>8} {'net s':>8} "
            f"{'ent s':>8} {'other s':>8} {'GMAC/f':>8} {'GMAC/s':>9} {'of peak':>8}",
        ]
        peak = self.peak_for_codec()
        for size in self.sizes:
            runs = [size] if size.unpipelined is None else [size.unpipelined, size]
            for run in runs:
                for name, speed in (("enc", run.encode), ("dec", run.decode)):
                    share = f"{100 * speed.gmacs / peak.gmacs:7.2f}%" if peak else "    n/a"
                    lines.append(
                        f"{size.label:>10} {name:>4} {'on' if run.pipeline else 'off':>4} "
                        f"{speed.frames:>6} {speed.fps:>8.3f} "
                        f"{speed.network_seconds:>8.3f} {speed.entropy_seconds:>8.3f} "
                        f"{speed.other_seconds:>8.3f} {speed.macs_per_frame / 1e9:>8.3g} "
                        f"{speed.gmacs:>9.1f} {share}")
        gains = [(size.label, size.pipeline_gain()) for size in self.sizes]
        lines += [f"pipelining gain at {label} (fps on / off): encode x{gain['encode']:.3f}, "
                  f"decode x{gain['decode']:.3f}" for label, gain in gains if gain]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def _timing_delta(after: Timing, before: Timing) -> tuple[float, float]:
    return (after.network_seconds - before.network_seconds,
            after.entropy_seconds - before.entropy_seconds)


def _snapshot(timing: Timing) -> Timing:
    return Timing(timing.network_seconds, timing.entropy_seconds, timing.frames)


@dataclass(frozen=True)
class _ClipTimes:
    records: list  # the timed records
    encode: tuple[float, float, float]  # wall, network and entropy seconds
    decode: tuple[float, float, float]
    decoded: int


def _time_clip(model: CodecModel, source: list, warmup: int,
               options: CodingOptions) -> _ClipTimes:
    """Code `source`, timing the encode and the decode of everything after `warmup` frames."""
    device = torch.device(options.device)
    width, height = source[0].width, source[0].height
    info = VideoInfo(width, height, Fraction(25), len(source))
    encoder = Encoder(model, info, options)
    # The loop flushes: it hands back the records still in the pipeline (whole chunks:
    # none is padded).
    warm: list[CodedRecord] = []
    encode_frames(encoder, source[:warmup], warm.append)

    synchronize(device)
    before = _snapshot(encoder.timing)
    started = time.perf_counter()
    timed: list[CodedRecord] = []
    encode_frames(encoder, source[warmup:], timed.append)
    synchronize(device)
    encode = (time.perf_counter() - started, *_timing_delta(encoder.timing, before))
    timed_records = [coded.record for coded in timed]
    if sum(record.num_frames for record in timed_records) != len(source) - warmup:
        raise RuntimeError("bench timed a padded chunk")  # a bug here, not user input

    decoder = Decoder(model, encoder.header, device=device, pipeline=encoder.pipeline,
                      compile=options.compile)
    for _ in decoder.decode_all(coded.record for coded in warm):
        pass
    synchronize(device)
    before = _snapshot(decoder.timing)
    started = time.perf_counter()
    decoded = sum(1 for _ in decoder.decode_all(timed_records))
    synchronize(device)
    decode = (time.perf_counter() - started, *_timing_delta(decoder.timing, before))
    return _ClipTimes(timed_records, encode, decode, decoded)


def bench_options(options: CodingOptions) -> CodingOptions:
    """What bench codes with: constant quality on synthetic video, no scene-cut detection
    (synthetic pans have no cuts, and timing must not depend on it)."""
    return options.with_(bitrate=None, maxrate=None, bufsize=None, scenecut=None,
                         intra_period=0)


def measure_size(model: CodecModel, width: int, height: int, options: CodingOptions, *,
                 frames: int, warmup_chunks: int = 1) -> SizeSpeed:
    """Encode and decode speed of the chunk codec at one frame size.

    `frames` is rounded up to whole chunks, so no timed chunk is padded. With `compile` or
    `cuda_graphs`, the clip is coded once untimed first: modules compile (or are captured)
    on their first call in each situation (first chunk, later chunks, the chunk after a
    reset), which a warm-up chunk alone does not cover.
    """
    if frames < 1 or warmup_chunks < 0:
        raise InputFormatError("bench needs frames >= 1 and warm-up chunks >= 0")
    pipeline = (default_pipeline(torch.device(options.device)) if options.pipeline is None
                else options.pipeline)
    options = bench_options(options).with_(pipeline=pipeline)
    n = model.frames_per_chunk
    timed = math.ceil(frames / n) * n
    warmup = 1 + warmup_chunks * n
    source = list(synthetic_video(width, height, warmup + timed, seed=BENCH_SEED))
    for _ in range(2 if options.compile or options.cuda_graphs else 1):
        times = _time_clip(model, source, warmup, options)

    with torch.device("meta"):
        shapes_only = CodecModel(model.name, model.model_id, model.intra.config,
                                 model.video.config)
    cost = video_cost(shapes_only.video, (height, width))
    bits = sum(8 * len(record.pack()) for record in times.records)
    return SizeSpeed(
        width, height,
        CodingSpeed(timed, *times.encode, cost.encode_macs),
        CodingSpeed(times.decoded, *times.decode, cost.decode_macs),
        bits / (timed * width * height),
        pipeline,
    )


def run_bench(model: CodecModel, sizes: Sequence[tuple[int, int]], options: CodingOptions, *,
              frames: int, warmup_chunks: int = 1, peak_size: int | None = None,
              pipeline_compare: bool = False,
              progress: Callable[[str], None] | None = None) -> BenchReport:
    """Measure the matmul peaks, then encode and decode speed at every size.

    `options` give the quality, precision, pipelining (None: when a core is free), compile,
    CUDA graphs and device; `pipeline_compare` measures every size without pipelining
    first, then with it.
    """
    device = torch.device(options.device)
    compute_context(options.precision, device)  # refuses fp16 off CUDA before any timing
    if options.cuda_graphs:
        check_graphs_device(device)  # likewise for CUDA graphs
    model = model.to(device).eval()
    pipeline = pipeline_compare or (default_pipeline(device) if options.pipeline is None
                                    else options.pipeline)
    options = options.with_(pipeline=pipeline,
                            compile=options.compile and compile_available())
    report = BenchReport(
        model=model.name,
        weights=model.weights_source,
        device=str(device),
        device_name=device_name(device),
        threads=torch.get_num_threads(),
        precision=dtype_name(options.precision),
        bf16_requested=options.precision == "bf16",
        quality=options.quality,
        warmup_frames=1 + warmup_chunks * model.frames_per_chunk,
        frames_per_chunk=model.frames_per_chunk,
        peaks={},
        pipeline=pipeline,
        compile=options.compile,
        cuda_graphs=options.cuda_graphs,
        arithmetic=options.precision,
        versions={"ufvc": ufvc.__version__, "torch": torch.__version__},
    )
    if report.pipeline:
        report.notes.append(
            "pipelined: a record's arithmetic coding and frame conversion run on a worker "
            "thread beside the next record's networks, so net s + ent s can exceed the wall "
            "clock")
    if device.type == "cuda":
        report.notes.append(
            "the codec's network/entropy split does not synchronise the GPU: network work "
            "still queued when a latent is copied to the CPU for coding is counted as entropy "
            "time (the wall-clock fps are synchronised)")
    fp16 = options.precision == "fp16"
    for dtype in (torch.float32, torch.bfloat16) + ((torch.float16,) if fp16 else ()):
        if progress:
            progress(f"matmul peak {str(dtype).removeprefix('torch.')}")
        peak = matmul_peak(dtype, device, size=peak_size)
        report.peaks[peak.dtype] = peak
    for width, height in sizes:
        if progress:
            progress(f"{width}x{height}")
        measure = partial(measure_size, model, width, height, frames=frames,
                          warmup_chunks=warmup_chunks)
        unpipelined = measure(options.with_(pipeline=False)) if pipeline_compare else None
        speed = measure(options)
        report.sizes.append(replace(speed, unpipelined=unpipelined))
    report.notes += [f"torch.compile: {note}" for note in compile_notes()]
    if options.cuda_graphs:
        report.notes.append("CUDA graphs: each sub-network replays a graph captured at its "
                            "first call per shape (capture happens in the untimed first pass)")
    return report
