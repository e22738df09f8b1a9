"""Streaming encoder and decoder: frames in, `.ufv` records out, and back.

The encoder codes frame 0 (and every `intra_period`-th frame) with the intra codec and
the frames in between in chunks of N with the chunk codec; a short last chunk is padded
by repeating its last frame and the decoder drops the padding. Memory stays bounded:
one chunk of frames and the recurrent state are held at a time.

Each data record carries three parts: the z payload, the y payload and the CRC32 of the
record's reconstructed 8/10-bit planes, so a decoder detects (instead of silently
producing) output that differs from the encoder's reconstruction.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from ufvc.bitstream.format import Record, RecordType, SequenceHeader
from ufvc.codec.channels import DecoderChannel, EncoderChannel
from ufvc.entropy.coder import CoderModels, SymbolReader, SymbolWriter
from ufvc.entropy.tables import (
    DEFAULT_SKIP_THRESHOLD,
    FactorizedTables,
    GaussianTables,
    entropy_digest,
)
from ufvc.errors import CorruptStreamError, InputFormatError, ModelMismatchError
from ufvc.io.color import frames_to_tensor, tensors_to_frames
from ufvc.io.types import Frame, VideoInfo
from ufvc.models.registry import CodecModel
from ufvc.models.video import ChunkState
from ufvc.nn.deterministic import use_deterministic_convs

NUM_QUALITY_LEVELS = 64  # quality 63 is the best; the networks' qp index
DEFAULT_QUALITY = 40
DEFAULT_RESET_INTERVAL = 32  # frames between memory resets, as in the release
RECON_CRC = struct.Struct("<I")


def check_quality(quality: int) -> int:
    """Validate a quality level (0..63, higher is better)."""
    if not 0 <= int(quality) < NUM_QUALITY_LEVELS:
        raise InputFormatError(
            f"quality must be 0..{NUM_QUALITY_LEVELS - 1} (higher is better), got {quality}"
        )
    return int(quality)


@dataclass
class CodingTables:
    """Integer tables of one model: the Gaussian bins and each codec's z tables."""

    gaussian: GaussianTables
    intra: CoderModels
    video: CoderModels
    digest: bytes

    @classmethod
    def for_model(cls, model: CodecModel, gaussian: GaussianTables | None = None) -> CodingTables:
        gaussian = gaussian or GaussianTables()

        def z_tables(density) -> FactorizedTables:
            return FactorizedTables.from_official(
                density.h.detach().cpu(), density.b.detach().cpu(), density.a.detach().cpu()
            )

        intra_z = z_tables(model.intra.bit_estimator_z)
        video_z = z_tables(model.video.bit_estimator_z)
        digest = entropy_digest(gaussian, intra_z, video_z)
        return cls(gaussian, CoderModels(gaussian, intra_z), CoderModels(gaussian, video_z), digest)


def prepare_model(model: CodecModel) -> CodecModel:
    """Put a model in the state the codec needs: eval mode, thread-count-invariant convolutions.

    On CUDA, TF32 is switched off: it flips symbols between runs of the same stream.
    """
    model.eval()
    use_deterministic_convs(model)
    if any(p.is_cuda for p in model.parameters()):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return model


PRECISIONS = ("fp32", "bf16")


def compute_context(precision: str, device: torch.device) -> AbstractContextManager:
    """The arithmetic the networks run in: float32, or bfloat16 autocast.

    Both sides of a stream must use the same one (the header says which): results
    differ between the two, while each is invariant to the number of threads.
    """
    if precision not in PRECISIONS:
        raise InputFormatError(f"precision must be one of {', '.join(PRECISIONS)}, "
                               f"got {precision!r}")
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def recon_crc(frames: list[Frame]) -> int:
    """CRC32 over the planes of `frames`, in order (little-endian samples)."""
    crc = 0
    for frame in frames:
        for plane in frame.planes:
            crc = zlib.crc32(np.ascontiguousarray(plane).astype(plane.dtype.newbyteorder("<"))
                             .tobytes(), crc)
    return crc


@dataclass
class Timing:
    """Where coding time went: the networks, and symbol handling with arithmetic coding."""

    network_seconds: float = 0.0
    entropy_seconds: float = 0.0
    frames: int = 0

    def add(self, total: float, entropy: float, frames: int) -> None:
        self.network_seconds += total - entropy
        self.entropy_seconds += entropy
        self.frames += frames


@dataclass
class CodedRecord:
    """One record as written, with the encoder's reconstruction of its frames."""

    record: Record
    recon: list[Frame]
    source: list[Frame]

    @property
    def bits(self) -> int:
        """Bits this record takes in the file, its header included."""
        return 8 * len(self.record.pack())


@dataclass
class _Pending:
    frames: list[Frame] = field(default_factory=list)
    first_frame: int = 0


class Encoder:
    """Frames in, records out (PyAV style: `encode(frame)` then `flush()`)."""

    def __init__(
        self,
        model: CodecModel,
        info: VideoInfo,
        *,
        quality: int = DEFAULT_QUALITY,
        reset_interval: int = DEFAULT_RESET_INTERVAL,
        intra_period: int = 0,
        skip_threshold: float = DEFAULT_SKIP_THRESHOLD,
        precision: str = "fp32",
        device: str | torch.device = "cpu",
    ) -> None:
        if info.width % 2 or info.height % 2:
            raise InputFormatError(
                f"frame size must be even, got {info.width}x{info.height}"
            )
        if info.bit_depth not in (8, 10):
            raise InputFormatError(f"bit depth must be 8 or 10, got {info.bit_depth}")
        if reset_interval < 0 or intra_period < 0:
            raise InputFormatError("reset interval and intra period must be >= 0")
        self.model = prepare_model(model.to(device))
        self.info = info
        self.quality = check_quality(quality)
        self.reset_interval = reset_interval
        self.intra_period = intra_period
        self.device = torch.device(device)
        self._compute = compute_context(precision, self.device)
        self.tables = CodingTables.for_model(model)
        self.header = SequenceHeader(
            model_id=model.name,
            model_digest=model.weights_digest(),
            entropy_digest=self.tables.digest,
            width=info.width,
            height=info.height,
            fps=info.fps,
            chunk_size=model.frames_per_chunk,
            frame_count=info.num_frames or 0,
            chroma=info.chroma,
            bit_depth=info.bit_depth,
            skip_threshold=skip_threshold,
            gaussian=self.tables.gaussian,
            compute_precision=precision,
        )
        self._skip = self.header.skip_threshold
        self._qp = torch.tensor([self.quality], device=self.device)
        self._state: ChunkState | None = None
        self._last_intra = 0
        self._next_frame = 0
        self._pending = _Pending()
        self.timing = Timing()

    def encode(self, frame: Frame) -> list[CodedRecord]:
        """Take one frame; return the records it completes (possibly none)."""
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            raise InputFormatError(
                f"frame {self._next_frame} is {frame.width}x{frame.height}, "
                f"expected {self.info.width}x{self.info.height}"
            )
        index = self._next_frame
        self._next_frame += 1
        out: list[CodedRecord] = []
        if self._state is None or (self.intra_period and index % self.intra_period == 0):
            out += self.flush()
            out.append(self._code_intra(frame, index))
            return out
        if not self._pending.frames:
            self._pending.first_frame = index
        self._pending.frames.append(frame)
        if len(self._pending.frames) == self.model.frames_per_chunk:
            out.append(self._code_chunk())
        return out

    def flush(self) -> list[CodedRecord]:
        """Code the frames still buffered (a short chunk); returns its record, if any."""
        return [self._code_chunk()] if self._pending.frames else []

    def _to_tensor(self, frames: list[Frame]) -> torch.Tensor:
        return frames_to_tensor(frames, device=self.device)

    def _to_frames(self, x_hat: torch.Tensor) -> list[Frame]:
        return tensors_to_frames(x_hat, chroma=self.info.chroma, bit_depth=self.info.bit_depth)

    def _record(self, kind, first, frames, reset, channel, models, recon) -> Record:
        z_writer, y_writer = SymbolWriter(models), SymbolWriter(models)
        channel.write(z_writer, y_writer, self.quality)
        parts = (z_writer.finish(), y_writer.finish(), RECON_CRC.pack(recon_crc(recon)))
        return Record(kind, first, len(frames), self.quality, reset, parts)

    @torch.inference_mode()
    def _code_intra(self, frame: Frame, index: int) -> CodedRecord:
        channel = EncoderChannel(self.tables.gaussian, self._skip)
        x = self._to_tensor([frame])
        started = time.perf_counter()
        with self._compute:
            result = self.model.intra.code_frame(x, self._qp, channel)
        x_hat = result.x_hat.float().clamp(-0.5, 0.5)
        # The clamped reconstruction is the reference, as in the release's inference.
        self._state = self.model.video.init_state(x_hat)
        self._last_intra = index
        recon = self._to_frames(x_hat)
        record = self._record(RecordType.INTRA, index, [frame], False, channel,
                              self.tables.intra, recon)
        self.timing.add(time.perf_counter() - started, channel.coding_seconds, 1)
        return CodedRecord(record, recon, [frame])

    @torch.inference_mode()
    def _code_chunk(self) -> CodedRecord:
        frames, first = self._pending.frames, self._pending.first_frame
        self._pending = _Pending()
        n = self.model.frames_per_chunk
        padded = frames + [frames[-1]] * (n - len(frames))
        reset = bool(self.reset_interval) and (
            (first - self._last_intra + n) % self.reset_interval == 1
        )
        channel = EncoderChannel(self.tables.gaussian, self._skip)
        x = self._to_tensor(padded).unsqueeze(0)
        started = time.perf_counter()
        with self._compute:
            result = self.model.video.code_chunk(x, self._qp, self._state, channel, reset=reset)
        self._state = result.state
        recon = self._to_frames(result.x_hat[0, : len(frames)])  # clamps, like the decoder
        record = self._record(RecordType.CHUNK, first, frames, reset, channel,
                              self.tables.video, recon)
        self.timing.add(time.perf_counter() - started, channel.coding_seconds, len(frames))
        return CodedRecord(record, recon, frames)


class Decoder:
    """Records in, frames out; the model must be the one the stream names."""

    def __init__(
        self, model: CodecModel, header: SequenceHeader, *, device: str | torch.device = "cpu"
    ) -> None:
        if model.name != header.model_id:
            raise ModelMismatchError(
                f"stream was coded with model {header.model_id!r}, not {model.name!r}"
            )
        if model.weights_digest() != header.model_digest:
            raise ModelMismatchError(
                f"stream was coded with other weights of {header.model_id!r} "
                f"(digest {header.model_digest.hex()}, model {model.weights_digest().hex()})"
            )
        self.model = prepare_model(model.to(device))
        self.header = header
        self.device = torch.device(device)
        self._compute = compute_context(header.compute_precision, self.device)
        self.tables = CodingTables.for_model(model, header.gaussian)
        if self.tables.digest != header.entropy_digest:
            raise ModelMismatchError(
                "entropy tables built here differ from the encoder's (table digest mismatch)"
            )
        self._state: ChunkState | None = None
        self._size = (header.height, header.width)
        self.timing = Timing()

    def _channel(self, record: Record, models: CoderModels) -> DecoderChannel:
        if len(record.parts) < 3 or len(record.parts[2]) != RECON_CRC.size:
            raise CorruptStreamError(f"record at frame {record.first_frame} lacks payload parts")
        return DecoderChannel(
            self.tables.gaussian,
            self.header.skip_threshold,
            SymbolReader(models, record.parts[0]),
            SymbolReader(models, record.parts[1]),
            record.qp,
        )

    @torch.inference_mode()
    def decode(self, record: Record) -> list[Frame]:
        """The frames of one data record."""
        started = time.perf_counter()
        qp = torch.tensor([record.qp], device=self.device)
        if record.type == RecordType.INTRA:
            channel = self._channel(record, self.tables.intra)
            with self._compute:
                result = self.model.intra.code_frame(None, qp, channel, frame_size=self._size)
            x_hat = result.x_hat.float().clamp(-0.5, 0.5)
            self._state = self.model.video.init_state(x_hat)
        else:
            if self._state is None:
                raise CorruptStreamError(
                    f"chunk at frame {record.first_frame} has no preceding intra frame"
                )
            channel = self._channel(record, self.tables.video)
            with self._compute:
                result = self.model.video.code_chunk(
                    None, qp, self._state, channel, reset=record.reset, frame_size=self._size
                )
            self._state = result.state
            x_hat = result.x_hat[0, : record.num_frames]  # tensors_to_frames clamps
        channel.z_reader.ensure_consumed()
        channel.y_reader.ensure_consumed()
        frames = tensors_to_frames(x_hat, chroma=self.header.chroma,
                                   bit_depth=self.header.bit_depth)
        self.timing.add(time.perf_counter() - started, channel.coding_seconds, len(frames))
        (expected,) = RECON_CRC.unpack(record.parts[2])
        if recon_crc(frames) != expected:
            raise CorruptStreamError(
                f"frames {record.first_frame}..{record.first_frame + record.num_frames - 1} "
                "decode differently from the encoder's reconstruction (the stream is damaged, "
                "or this machine computes the model differently from the encoder's)"
            )
        return frames

    def decode_all(self, records) -> Iterator[Frame]:
        for record in records:
            yield from self.decode(record)
