"""Rate-distortion evaluation of the neural codec: the rows `ufvc eval` writes.

Each point codes one sequence at one quality, or at one target bitrate (rate control,
rows with rate_control "bitrate" and the target in kbps), into a real `.ufv` file and
measures:

- rate: `bits` is 8 x the size of that file (sequence header, records, index and footer);
- distortion: PSNR of the encoder's reconstruction against the source, per frame, averaged;
- decode: the file is decoded again with a fresh `Decoder` and every frame must equal the
  encoder's reconstruction bit for bit (compared by a hash of the planes); a difference is an
  error, not a footnote;
- speed: encode fps counts creating the encoder, coding and writing the file; decode fps
  counts opening the file, decoding and checking it. Loading the model and the source, PSNR
  and the frame hashes are outside both clocks; on CUDA the device is synchronised first.
- optionally `bpp_estimated`: the bits the model's likelihoods give for the same coding
  structure (a separate forward with `EstimateChannel(noisy_rate=False)`, driven by the
  records the encoder wrote), so it never mixes with `bpp_actual`. It counts y and z
  symbols only: no headers, no arithmetic-coder overhead, and no skipping of symbols.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

import ufvc
from ufvc.bitstream.format import RecordType
from ufvc.codec import (
    DEFAULT_MODEL,
    CodedRecord,
    CodingOptions,
    Encoder,
    load_model,
    open_stream,
    write_stream,
)
from ufvc.codec.options import check_quality, parse_rate
from ufvc.errors import InputFormatError, UfvcError
from ufvc.eval.bench import synchronize
from ufvc.eval.results import (
    RateRow,
    ResultStore,
    bits_per_pixel,
    kilobits_per_second,
    quality_value,
)
from ufvc.eval.testsets import SequenceSpec
from ufvc.io.color import frames_to_tensor
from ufvc.io.types import Frame, VideoInfo
from ufvc.metrics import SequencePsnr
from ufvc.models.channel import EstimateChannel
from ufvc.models.registry import CodecModel, create_model, list_models

CODEC = "ufvc"
QUALITY = "quality"  # rate_control of constant-quality rows: the model's index, 0..63
BITRATE = "bitrate"  # rate_control of rate-controlled rows: the target in kbps


@dataclass(frozen=True)
class EvalTarget:
    """One point of a curve: a quality level, or a target bitrate (kbps)."""

    rate_control: str
    value: float

    @classmethod
    def quality(cls, quality: int) -> EvalTarget:
        return cls(QUALITY, check_quality(quality))

    @classmethod
    def bitrate(cls, rate: str | float) -> EvalTarget:
        """A target from '800k', '1.5M' or bits/s."""
        return cls(BITRATE, parse_rate(rate) / 1000)

    @property
    def name(self) -> str:
        return f"q{self.value:g}" if self.rate_control == QUALITY else f"{self.value:g}kbps"

    def apply(self, options: CodingOptions) -> CodingOptions:
        """`options` coding at this point."""
        if self.rate_control == QUALITY:
            return options.with_(quality=int(self.value), bitrate=None)
        return options.with_(bitrate=1000 * self.value)


@dataclass(frozen=True)
class EvalSettings:
    """Coding options shared by every point of an evaluation."""

    options: CodingOptions = CodingOptions()
    intra_period: int | None = None  # None: the test set's value, else only the first frame
    estimate_rate: bool = False

    def intra_period_for(self, spec: SequenceSpec) -> int:
        """Frames between intra frames for `spec` (0: only the first frame).

        DCVC test configs write -1 for "only the first frame"."""
        if self.intra_period is not None:
            return self.intra_period
        return spec.intra_period if spec.intra_period and spec.intra_period > 0 else 0

    def options_for(self, spec: SequenceSpec, target: EvalTarget) -> CodingOptions:
        """The coding options of one point."""
        return target.apply(self.options.with_(intra_period=self.intra_period_for(spec)))


@dataclass(frozen=True)
class SourceVideo:
    """The frames of one sequence, in memory, and what they are."""

    frames: list[Frame]
    info: VideoInfo


def load_source(spec: SequenceSpec) -> SourceVideo:
    """Read the frames a test-set entry asks for (all of them, or `spec.frames`)."""
    with spec.open() as reader:
        info = reader.info
        frames = list(reader)
    if not frames:
        raise InputFormatError(f"{spec.path} holds no frames")
    if spec.frames is not None and len(frames) < spec.frames:
        raise InputFormatError(f"{spec.path} has {len(frames)} frames; the test set asks for "
                               f"{spec.frames}")
    fps = spec.fps or info.fps
    return SourceVideo(frames, info.with_(fps=fps, num_frames=len(frames)))


def frame_digest(frame: Frame) -> bytes:
    """A hash of a frame's planes: equal digests mean identical samples."""
    digest = hashlib.blake2b(digest_size=16)
    for plane in frame.planes:
        digest.update(str(plane.shape).encode())
        digest.update(plane.tobytes())
    return digest.digest()


@dataclass(frozen=True)
class RecordPlan:
    """What the encoder decided for one record: the structure a rate estimate must follow."""

    intra: bool
    first_frame: int
    num_frames: int
    reset: bool
    qp: int


@dataclass(frozen=True)
class EncodedFile:
    """A `.ufv` file written by `encode_file`, with what the encoder measured on the way."""

    path: Path
    bits: int
    seconds: float
    psnr: SequencePsnr
    digests: list[bytes]  # one per frame of the encoder's reconstruction
    plan: list[RecordPlan]


def encode_file(model: CodecModel, source: SourceVideo, options: CodingOptions,
                path: Path) -> EncodedFile:
    """Encode `source` into `path` and measure PSNR of the encoder's reconstruction."""
    psnr = SequencePsnr()
    digests: list[bytes] = []
    plan: list[RecordPlan] = []
    bookkeeping = 0.0  # PSNR and hashing, taken out of the encode time

    def note(coded: CodedRecord) -> None:
        nonlocal bookkeeping
        started = time.perf_counter()
        record = coded.record
        plan.append(RecordPlan(record.type == RecordType.INTRA, record.first_frame,
                               record.num_frames, record.reset, record.qp))
        for src, rec in zip(coded.source, coded.recon, strict=True):
            psnr.add(src, rec)
            digests.append(frame_digest(rec))
        bookkeeping += time.perf_counter() - started

    device = torch.device(options.device)
    synchronize(device)
    started = time.perf_counter()
    write_stream(Encoder(model, source.info, options), source.frames, path, note)
    synchronize(device)
    seconds = time.perf_counter() - started - bookkeeping
    return EncodedFile(path, 8 * path.stat().st_size, seconds, psnr, digests, plan)


def decode_and_verify(path: Path, model: CodecModel, digests: Sequence[bytes], *,
                      device: torch.device) -> float:
    """Decode `path` and check every frame against the encoder's; returns decode seconds."""
    checking = 0.0
    count = 0
    synchronize(device)
    started = time.perf_counter()
    with open_stream(path, model=model, device=device) as stream:
        for frame in stream:
            check_started = time.perf_counter()
            if count >= len(digests) or frame_digest(frame) != digests[count]:
                raise UfvcError(f"{path.name}: decoded frame {count} differs from the "
                                "encoder's reconstruction")
            count += 1
            checking += time.perf_counter() - check_started
    synchronize(device)
    seconds = time.perf_counter() - started - checking
    if count != len(digests):
        raise UfvcError(f"{path.name}: decoded {count} frames, the encoder wrote {len(digests)}")
    return seconds


@torch.inference_mode()
def estimate_bits(model: CodecModel, frames: Sequence[Frame], plan: Sequence[RecordPlan], *,
                  device: torch.device) -> float:
    """Bits the model's likelihoods give for coding `frames` with the structure and the
    qps of `plan`.

    Padding of a short chunk (its last frame repeated) is coded, as in the stream."""
    chunk_size = model.frames_per_chunk
    state = None
    total = 0.0
    for unit in plan:
        frames_here = list(frames[unit.first_frame:unit.first_frame + unit.num_frames])
        channel = EstimateChannel(noisy_rate=False)
        qp = torch.tensor([unit.qp], device=device)
        if unit.intra:
            result = model.intra.code_frame(frames_to_tensor(frames_here, device=device), qp,
                                            channel)
            state = model.video.init_state(result.x_hat.clamp(-0.5, 0.5))
        else:
            if state is None:
                raise InputFormatError("a rate estimate needs an intra frame first")
            padded = frames_here + [frames_here[-1]] * (chunk_size - len(frames_here))
            x = frames_to_tensor(padded, device=device).unsqueeze(0)
            result = model.video.code_chunk(x, qp, state, channel, reset=unit.reset)
            state = result.state
        total += float(channel.bits_y + channel.bits_z)
    return total


def model_tools(model: CodecModel) -> dict[str, str]:
    """Versions of what produced a row: ufvc, torch, and the model's weights."""
    return {
        "ufvc": ufvc.__version__,
        "torch": torch.__version__,
        "model": f"{model.name} {model.weights_digest().hex()}",
        "weights": model.weights_source,
    }


def _file_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def stream_name(spec: SequenceSpec, label: str, target: EvalTarget) -> str:
    """File name of a point's stream, e.g. 'B_BasketballDrive_ufvc-s_q40.ufv'."""
    return (f"{_file_stem(spec.class_name)}_{_file_stem(spec.name)}_{_file_stem(label)}"
            f"_{_file_stem(target.name)}.ufv")


def measure_point(model: CodecModel, source: SourceVideo, target: EvalTarget, *, label: str,
                  spec: SequenceSpec, settings: EvalSettings, stream_path: Path) -> RateRow:
    """Encode one sequence at one point into `stream_path`, decode it, make its row."""
    options = settings.options_for(spec, target)
    device = torch.device(options.device)
    encoded = encode_file(model, source, options, stream_path)
    decode_seconds = decode_and_verify(stream_path, model, encoded.digests, device=device)
    info = source.info
    count = len(source.frames)
    estimated = None
    if settings.estimate_rate:
        bits = estimate_bits(model, source.frames, encoded.plan, device=device)
        estimated = bits_per_pixel(bits, count, info.width, info.height)
    mean = encoded.psnr.mean()
    described = (f"model={model.name} {options.describe()} device={device} "
                 f"threads={torch.get_num_threads()}")
    return RateRow(
        codec=CODEC,
        config=label,
        sequence=spec.name,
        class_name=spec.class_name,
        rate_control=target.rate_control,
        quality=quality_value(target.value),
        frames=count,
        width=info.width,
        height=info.height,
        fps=float(info.fps),
        bits=encoded.bits,
        bpp_actual=bits_per_pixel(encoded.bits, count, info.width, info.height),
        kbps=kilobits_per_second(encoded.bits, count, float(info.fps)),
        psnr_y=mean.y,
        psnr_u=mean.u,
        psnr_v=mean.v,
        psnr_yuv=mean.yuv611,
        encode_fps=count / encoded.seconds,
        decode_fps=count / decode_seconds,
        tools=model_tools(model),
        settings=described,
        bpp_estimated=estimated,
    )


@dataclass(frozen=True)
class EvalPoint:
    """One (sequence, target) point of an evaluation; `skipped` when it was already done."""

    sequence: SequenceSpec
    target: EvalTarget
    row: RateRow
    skipped: bool


def check_store_weights(store: ResultStore, label: str, tools: dict[str, str]) -> None:
    """Refuse to add rows of other weights to a curve a result file already holds."""
    for row in store.rows:
        if row.codec == CODEC and row.config == label and row.tools.get("model") != \
                tools["model"]:
            raise InputFormatError(
                f"{store.path} already holds {label} rows of other weights "
                f"({row.tools.get('model')}, now {tools['model']}); write to another file "
                "or give this run another --label")


def run_eval(model: CodecModel, sequences: Sequence[SequenceSpec],
             targets: Sequence[EvalTarget | int], store: ResultStore, *,
             label: str | None = None, settings: EvalSettings | None = None,
             stream_dir: str | Path | None = None) -> Iterator[EvalPoint]:
    """Measure every sequence at every target (a quality, as an int, or an `EvalTarget`),
    skipping points the store already has.

    Yields after each point (new or skipped); each new row is saved before it is yielded.
    Streams are written to `stream_dir` and kept, or to a temporary folder and deleted.
    The device is the settings' `options.device`.
    """
    settings = settings or EvalSettings()
    points = [t if isinstance(t, EvalTarget) else EvalTarget.quality(t) for t in targets]
    if (settings.intra_period or 0) < 0:
        raise InputFormatError("reset interval and intra period must be >= 0")
    label = label or model.name
    model = model.to(settings.options.device).eval()
    check_store_weights(store, label, model_tools(model))
    with tempfile.TemporaryDirectory(prefix="ufvc-eval-") as workdir:
        folder = Path(stream_dir) if stream_dir is not None else Path(workdir)
        folder.mkdir(parents=True, exist_ok=True)
        for spec in sequences:
            source = None
            for target in points:
                key = (CODEC, label, spec.name, target.rate_control,
                       quality_value(target.value))
                if key in store:
                    done = next(row for row in store.rows if row.key == key)
                    yield EvalPoint(spec, target, done, skipped=True)
                    continue
                if source is None:
                    source = load_source(spec)
                path = folder / stream_name(spec, label, target)
                row = measure_point(model, source, target, label=label, spec=spec,
                                    settings=settings, stream_path=path)
                if stream_dir is None:
                    path.unlink()
                store.add(row)
                yield EvalPoint(spec, target, row, skipped=False)


def load_codec_model(spec: str | None, *, checkpoint: str | None = None,
                     intra_checkpoint: str | None = None,
                     device: torch.device | str = "cpu") -> CodecModel:
    """A model by registry name or `.ufvm` path; checkpoints apply to registered names."""
    if checkpoint is None and intra_checkpoint is None:
        return load_model(spec, device=device)
    name = spec or DEFAULT_MODEL
    if name not in list_models():
        raise InputFormatError(f"--checkpoint and --intra-checkpoint need a registered model "
                               f"name ({', '.join(list_models())}), got {name!r}")
    return create_model(name, checkpoint=checkpoint, intra_checkpoint=intra_checkpoint,
                        device=device)
