"""Rate-distortion evaluation of the neural codec: the rows `ufvc eval` writes.

Each point codes one sequence at one quality into a real `.ufv` file and measures:

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
from ufvc.bitstream.stream import StreamWriter
from ufvc.codec import (
    DEFAULT_MODEL,
    DEFAULT_RESET_INTERVAL,
    CodedRecord,
    Encoder,
    load_model,
    open_stream,
)
from ufvc.codec.core import check_quality
from ufvc.entropy.tables import DEFAULT_SKIP_THRESHOLD
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
RATE_CONTROL = "quality"  # the model's quality index, 0..63, higher is better


@dataclass(frozen=True)
class EvalSettings:
    """Coding options shared by every point of an evaluation."""

    reset_interval: int = DEFAULT_RESET_INTERVAL
    intra_period: int | None = None  # None: the test set's value, else only the first frame
    skip_threshold: float = DEFAULT_SKIP_THRESHOLD
    estimate_rate: bool = False

    def intra_period_for(self, spec: SequenceSpec) -> int:
        """Frames between intra frames for `spec` (0: only the first frame).

        DCVC test configs write -1 for "only the first frame"."""
        if self.intra_period is not None:
            return self.intra_period
        return spec.intra_period if spec.intra_period and spec.intra_period > 0 else 0


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


@dataclass(frozen=True)
class EncodedFile:
    """A `.ufv` file written by `encode_file`, with what the encoder measured on the way."""

    path: Path
    bits: int
    seconds: float
    psnr: SequencePsnr
    digests: list[bytes]  # one per frame of the encoder's reconstruction
    plan: list[RecordPlan]


def encode_file(model: CodecModel, source: SourceVideo, quality: int, path: Path, *,
                reset_interval: int, intra_period: int, skip_threshold: float,
                device: torch.device) -> EncodedFile:
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
                               record.num_frames, record.reset))
        for src, rec in zip(coded.source, coded.recon, strict=True):
            psnr.add(src, rec)
            digests.append(frame_digest(rec))
        bookkeeping += time.perf_counter() - started

    synchronize(device)
    started = time.perf_counter()
    encoder = Encoder(model, source.info, quality=quality, reset_interval=reset_interval,
                      intra_period=intra_period, skip_threshold=skip_threshold, device=device)
    with StreamWriter(path, encoder.header) as writer:
        for frame in source.frames:
            for coded in encoder.encode(frame):
                writer.write(coded.record)
                note(coded)
        for coded in encoder.flush():
            writer.write(coded.record)
            note(coded)
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
def estimate_bits(model: CodecModel, frames: Sequence[Frame], plan: Sequence[RecordPlan],
                  quality: int, *, device: torch.device) -> float:
    """Bits the model's likelihoods give for coding `frames` with the structure of `plan`.

    Padding of a short last chunk (its last frame repeated) is coded, as in the stream."""
    qp = torch.tensor([quality], device=device)
    chunk_size = model.frames_per_chunk
    state = None
    total = 0.0
    for unit in plan:
        frames_here = list(frames[unit.first_frame:unit.first_frame + unit.num_frames])
        channel = EstimateChannel(noisy_rate=False)
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


def stream_name(spec: SequenceSpec, label: str, quality: int) -> str:
    """File name of a point's stream, e.g. 'B_BasketballDrive_ufvc-s_q40.ufv'."""
    return (f"{_file_stem(spec.class_name)}_{_file_stem(spec.name)}_{_file_stem(label)}"
            f"_q{quality}.ufv")


def measure_point(model: CodecModel, source: SourceVideo, quality: int, *, label: str,
                  spec: SequenceSpec, settings: EvalSettings, device: torch.device,
                  stream_path: Path) -> RateRow:
    """Encode one sequence at one quality into `stream_path`, decode it, make its row."""
    intra_period = settings.intra_period_for(spec)
    encoded = encode_file(model, source, quality, stream_path,
                          reset_interval=settings.reset_interval, intra_period=intra_period,
                          skip_threshold=settings.skip_threshold, device=device)
    decode_seconds = decode_and_verify(stream_path, model, encoded.digests, device=device)
    info = source.info
    count = len(source.frames)
    estimated = None
    if settings.estimate_rate:
        bits = estimate_bits(model, source.frames, encoded.plan, quality, device=device)
        estimated = bits_per_pixel(bits, count, info.width, info.height)
    mean = encoded.psnr.mean()
    options = (f"model={model.name} quality={quality} reset_interval={settings.reset_interval} "
               f"intra_period={intra_period} skip_threshold={settings.skip_threshold:g} "
               f"device={device} threads={torch.get_num_threads()}")
    return RateRow(
        codec=CODEC,
        config=label,
        sequence=spec.name,
        class_name=spec.class_name,
        rate_control=RATE_CONTROL,
        quality=quality_value(quality),
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
        settings=options,
        bpp_estimated=estimated,
    )


@dataclass(frozen=True)
class EvalPoint:
    """One (sequence, quality) point of an evaluation; `skipped` when it was already done."""

    sequence: SequenceSpec
    quality: int
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


def run_eval(model: CodecModel, sequences: Sequence[SequenceSpec], qualities: Sequence[int],
             store: ResultStore, *, label: str | None = None,
             settings: EvalSettings | None = None, device: torch.device | str = "cpu",
             stream_dir: str | Path | None = None) -> Iterator[EvalPoint]:
    """Measure every sequence at every quality, skipping points the store already has.

    Yields after each point (new or skipped); each new row is saved before it is yielded.
    Streams are written to `stream_dir` and kept, or to a temporary folder and deleted.
    """
    settings = settings or EvalSettings()
    device = torch.device(device)
    qualities = [check_quality(q) for q in qualities]
    if settings.reset_interval < 0 or (settings.intra_period or 0) < 0:
        raise InputFormatError("reset interval and intra period must be >= 0")
    label = label or model.name
    model = model.to(device).eval()
    check_store_weights(store, label, model_tools(model))
    with tempfile.TemporaryDirectory(prefix="ufvc-eval-") as workdir:
        folder = Path(stream_dir) if stream_dir is not None else Path(workdir)
        folder.mkdir(parents=True, exist_ok=True)
        for spec in sequences:
            keys = [(CODEC, label, spec.name, RATE_CONTROL, q) for q in qualities]
            source = None
            for quality, key in zip(qualities, keys, strict=True):
                if key in store:
                    done = next(row for row in store.rows if row.key == key)
                    yield EvalPoint(spec, quality, done, skipped=True)
                    continue
                if source is None:
                    source = load_source(spec)
                path = folder / stream_name(spec, label, quality)
                row = measure_point(model, source, quality, label=label, spec=spec,
                                    settings=settings, device=device, stream_path=path)
                if stream_dir is None:
                    path.unlink()
                store.add(row)
                yield EvalPoint(spec, quality, row, skipped=False)


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
