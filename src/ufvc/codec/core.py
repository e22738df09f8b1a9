"""Streaming encoder and decoder: frames in, `.ufv` records out, and back.

The encoder codes frame 0 (and a frame `intra_period` frames after the last intra frame,
and the first frame of each detected scene) with the intra codec and the frames in
between in chunks of N with the chunk codec; a short chunk (the last one, or one cut
short by an intra frame) is padded by repeating its last frame and the decoder drops the
padding. How to code is a `CodingOptions` (`ufvc.codec.options`); with rate control a
`RateController` (`ufvc.codec.ratecontrol`) picks each record's qp. Memory stays bounded:
one chunk of frames (two when pipelining) and the recurrent state are held at a time.

Each data record carries three parts: the z payload, the y payload and the CRC32 of the
record's reconstructed 8/10-bit planes, so a decoder detects (instead of silently
producing) output that differs from the encoder's reconstruction.

Both sides can pipeline records on one worker thread: the range coder and the conversion
of reconstructions to planes work on one record while the networks, which only need the
recurrent state, work on the next. PyTorch kernels release the GIL; constriction holds it
per call, so the overlap is partial (`ufvc bench --pipeline-compare` measures the gain).
By default (`pipeline=None`) it is on when a CPU core is left beside the networks'
threads, or when they run on a GPU (`default_pipeline`).
"""

from __future__ import annotations

import math
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from ufvc.bitstream.format import Record, RecordType, SequenceHeader
from ufvc.codec.channels import DecoderChannel, EncoderChannel
from ufvc.codec.compile import compile_available, compiled_networks, warn
from ufvc.codec.graphs import graphed_networks
from ufvc.codec.modedecision import ModeDecider
from ufvc.codec.options import (
    CodingOptions,
    coding_options,
    precision_dtype,
)
from ufvc.codec.ratecontrol import RateController, RecordKind, estimate_y_bits
from ufvc.codec.scenecut import SceneCutDetector
from ufvc.entropy.coder import CoderModels, SymbolReader, SymbolWriter
from ufvc.entropy.tables import (
    FactorizedTables,
    GaussianTables,
    entropy_digest,
)
from ufvc.errors import CorruptStreamError, InputFormatError, ModelMismatchError
from ufvc.io.color import frames_to_tensor, tensors_to_frames
from ufvc.io.types import Frame, VideoInfo
from ufvc.models.intra import IntraCodec
from ufvc.models.registry import CodecModel
from ufvc.models.video import FRAME_MULTIPLE, LATENT_MULTIPLE, ChunkState
from ufvc.nn.deterministic import use_deterministic_convs
from ufvc.nn.exact import use_float_arithmetic

# z tables as `CodingTables.for_model` builds them: symbol range and precision.
Z_TABLE_PARAMETERS = (-64, 63, 16)
RECON_CRC = struct.Struct("<I")
# A record's y payload gets one range-coder stream per this many latent positions (at
# most MAX_Y_STREAMS), so a decoder can parse the streams of a large chunk in parallel.
# constriction holds the GIL, so this decoder parses them one after the other
# (benchmarks/bench_entropy.py: threads gave no gain); the split costs 8 bytes a stream.
SYMBOLS_PER_Y_STREAM = 1 << 18
MAX_Y_STREAMS = 8


def y_stream_count(positions: int) -> int:
    """Streams of a y payload that codes `positions` latent positions."""
    return min(MAX_Y_STREAMS, max(1, -(-positions // SYMBOLS_PER_Y_STREAM)))


def default_pipeline(device: torch.device) -> bool:
    """Whether pipelining pays: networks on a GPU, or fewer intra-op threads than cores.

    On the 2-core development machine the worker thread sped 1-thread coding up by up to
    12 % but slowed 2-thread coding by 2-40 %, because it takes a core from the networks.
    """
    if device.type != "cpu":
        return True
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return torch.get_num_threads() < cores


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
                density.h.detach().cpu(), density.b.detach().cpu(), density.a.detach().cpu(),
                *Z_TABLE_PARAMETERS,
            )

        intra_z = z_tables(model.intra.bit_estimator_z)
        video_z = z_tables(model.video.bit_estimator_z)
        digest = entropy_digest(gaussian, intra_z, video_z)
        return cls(gaussian, CoderModels(gaussian, intra_z), CoderModels(gaussian, video_z), digest)


def prepare_model(model: CodecModel, precision: str) -> CodecModel:
    """Put a model in the state the codec needs for `precision`: eval mode, GEMM
    convolutions, and for "portable" the exact arithmetic of what the decoder recomputes
    (`ufvc.nn.exact`); a float precision switches a portable model back.

    On CUDA, TF32 and reduced-precision GEMM reductions are switched off: TF32 flips
    symbols between runs of the same stream, and both break the portable arithmetic's
    exact sums.
    """
    model.eval()
    use_float_arithmetic(model)
    use_deterministic_convs(model)
    if precision == "portable":
        model.make_portable()
    if any(p.is_cuda for p in model.parameters()):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    return model


def compute_context(precision: str, device: torch.device, *, graphs: bool = False
                    ) -> AbstractContextManager:
    """The arithmetic the networks run in: float32, or bfloat16 or float16 autocast.

    Both sides of a stream must use the same one (the header says which): results
    differ between them, while each is invariant to the number of threads. float16 is
    the GPU's half precision; CPUs get bfloat16, which they have units for. With CUDA
    `graphs`, autocast does not cache cast weights (a capture must not keep them); the
    casts are exact, so the results are the same.
    """
    dtype = precision_dtype(precision)
    if dtype == torch.float32:
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise InputFormatError("fp16 runs the networks on a CUDA device only (--device cuda); "
                               "on a CPU use bf16")
    return torch.autocast(device.type, dtype=dtype,
                          cache_enabled=not graphs)


class _Networks(AbstractContextManager):
    """Reusable context running the networks compiled and/or from CUDA graphs."""

    def __init__(self, *contexts: AbstractContextManager) -> None:
        self.contexts = contexts

    def __enter__(self) -> None:
        for context in self.contexts:
            context.__enter__()

    def __exit__(self, *exc: object) -> None:
        for context in reversed(self.contexts):
            context.__exit__(*exc)


def network_context(model: CodecModel, *, compiled: bool, graphs: bool
                    ) -> AbstractContextManager:
    """The context the networks run in: eager, compiled, graphed, or compiled and graphed."""
    contexts = []
    if compiled:
        contexts.append(compiled_networks(model))
    if graphs:
        contexts.append(graphed_networks(model))
    return _Networks(*contexts) if contexts else nullcontext()


def check_graphs_device(device: torch.device) -> None:
    """CUDA graphs exist on CUDA devices only: a one-line error elsewhere."""
    if device.type != "cuda":
        raise InputFormatError("CUDA graphs need a CUDA device (--device cuda); on a CPU "
                               "leave --cuda-graphs off")


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
    """Where coding time went: the networks, and symbol handling with arithmetic coding.

    Conversion of reconstructed frames to planes is in neither. With pipelining, part of the
    entropy time runs on the worker thread beside the networks, so the two can add up to
    more than the wall clock.
    """

    network_seconds: float = 0.0
    entropy_seconds: float = 0.0
    frames: int = 0

    def add(self, network: float, entropy: float, frames: int) -> None:
        self.network_seconds += network
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


@dataclass
class _Trial:
    """A record's networks run at one qp: what its coding or its pricing needs."""

    qp: int
    x_hat: torch.Tensor
    state: ChunkState
    channel: EncoderChannel
    network_seconds: float


@dataclass
class _Job:
    """A record whose networks have run and whose coding (or checking) may still run."""

    future: Future
    channel: EncoderChannel | DecoderChannel
    network_seconds: float
    on_done: Callable[[CodedRecord], None] | None = None  # on the caller's thread


def _identity(value: object) -> object:
    return value


def _tell_written(rate: RateController, kind: RecordKind, estimated: float,
                  coded: CodedRecord) -> None:
    rate.written(kind, len(coded.recon), estimated, coded.bits)


def _run_now(function: Callable[[], object]) -> Future:
    """A finished future holding function(): the non-pipelined path, with the same bookkeeping."""
    future: Future = Future()
    future.set_result(function())
    return future


class Encoder:
    """Frames in, records out (PyAV style: `encode(frame)` then `flush()`).

    `options` (a `CodingOptions`; keyword arguments change single fields) say everything:
    quality or rate control, structure, arithmetic. An intra frame starts the stream,
    every `intra_period` frames after the last one, and on each scene cut; the chunk
    before it ends early (short, padded like a last chunk). With rate control a
    `RateController` picks each record's qp (`ufvc.codec.ratecontrol`).

    With `pipeline`, a record's arithmetic coding, reconstruction planes and CRC run on a
    worker thread while the networks code the next chunk: `encode` then hands back each
    record one call later, and `flush` hands back the rest. At constant quality the bytes
    do not change; an ABR controller learns each exact size one record later, so its
    choices may differ. A VBV limit needs each record's exact size before the next is
    decided, so it codes records in turn. `compile` runs the networks through
    torch.compile (`ufvc.codec.compile`) when it works here, `cuda_graphs` replays them
    from CUDA graphs (`ufvc.codec.graphs`, CUDA devices only); the header says which, and
    decoders follow it.
    """

    def __init__(self, model: CodecModel, info: VideoInfo,
                 options: CodingOptions | None = None, **changes: object) -> None:
        options = coding_options(options, **changes)
        if info.width % 2 or info.height % 2:
            raise InputFormatError(
                f"frame size must be even, got {info.width}x{info.height}"
            )
        if info.bit_depth not in (8, 10):
            raise InputFormatError(f"bit depth must be 8 or 10, got {info.bit_depth}")
        self.options = options
        self.device = torch.device(options.device)
        self.model = prepare_model(model.to(self.device), options.precision)
        self.info = info
        self.pipeline = (default_pipeline(self.device) if options.pipeline is None
                         else options.pipeline)
        if options.cuda_graphs:
            check_graphs_device(self.device)
        self._compute = compute_context(options.precision, self.device,
                                        graphs=options.cuda_graphs)
        self.compiled = options.compile and compile_available()
        self._networks = network_context(self.model, compiled=self.compiled,
                                         graphs=options.cuda_graphs)
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
            skip_threshold=options.skip_threshold,
            gaussian=self.tables.gaussian,
            compute_precision=options.precision,
            # Portable streams decode the same either way: compiling is a local choice.
            compiled_networks=self.compiled and options.precision != "portable",
            cuda_graphs=options.cuda_graphs,
        )
        self._skip = self.header.skip_threshold
        self.rate: RateController | None = None
        if options.rate_controlled:
            self.rate = RateController(options, info.width * info.height, float(info.fps),
                                       model.frames_per_chunk, info.num_frames,
                                       header_bits=8 * len(self.header.pack()))
            if self.rate.vbv is not None:
                self.pipeline = False  # each record's exact size decides the next
        self._scenecut = (SceneCutDetector(options.scenecut) if options.scenecut is not None
                          else None)
        self.scene_cuts: list[int] = []  # frames where a detected cut put an intra frame
        self._decider = (ModeDecider(options.quality, info.width * info.height,
                                     self.tables.gaussian)
                         if options.effective_mode_decision == "rd" else None)
        self.intra_chunks: list[int] = []  # first frames of chunks the decision coded intra
        self._qp_tensors: dict[int, torch.Tensor] = {}  # by qp, made once on the device
        self._state: ChunkState | None = None
        self._last_intra = 0
        self._next_frame = 0
        self._pending = _Pending()
        self._coding: deque[_Job] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self.timing = Timing()

    def encode(self, frame: Frame) -> list[CodedRecord]:
        """Take one frame; return the records finished so far (possibly none), in order."""
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            raise InputFormatError(
                f"frame {self._next_frame} is {frame.width}x{frame.height}, "
                f"expected {self.info.width}x{self.info.height}"
            )
        index = self._next_frame
        self._next_frame += 1
        cut = self._scenecut is not None and self._scenecut.is_cut(frame)
        period = self.options.intra_period
        if self._state is None or cut or (period and index - self._last_intra >= period):
            if cut and self._state is not None:
                self.scene_cuts.append(index)
            out = self._code_chunk() if self._pending.frames else []
            return out + self._code_intra(frame, index)
        if not self._pending.frames:
            self._pending.first_frame = index
        self._pending.frames.append(frame)
        if len(self._pending.frames) == self.model.frames_per_chunk:
            return self._code_chunk()
        return []

    def flush(self) -> list[CodedRecord]:
        """Code the frames still buffered (a short chunk); return every record not yet given."""
        out = self._code_chunk() if self._pending.frames else []
        out += self._collect(keep=0)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return out

    def _to_tensor(self, frames: list[Frame]) -> torch.Tensor:
        return frames_to_tensor(frames, device=self.device)

    def _submit(self, finish: Callable[[], CodedRecord], channel: EncoderChannel,
                network_seconds: float, on_done: Callable[[CodedRecord], None] | None = None
                ) -> list[CodedRecord]:
        """Queue a record's coding; return the records finished before it. `on_done` gets
        each finished record on this thread (the worker never touches the controller)."""
        if self.pipeline:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="ufvc-encode")
            future = self._pool.submit(finish)
        else:
            future = _run_now(finish)
        self._coding.append(_Job(future, channel, network_seconds, on_done))
        # One record stays in coding while the networks go on: the pipeline's depth.
        return self._collect(keep=1 if self.pipeline else 0)

    def _collect(self, keep: int) -> list[CodedRecord]:
        out = []
        while len(self._coding) > keep:
            job = self._coding.popleft()
            coded = job.future.result()
            self.timing.add(job.network_seconds, job.channel.coding_seconds, len(coded.recon))
            if job.on_done is not None:
                job.on_done(coded)
            out.append(coded)
        return out

    @torch.inference_mode()
    def _finish(self, kind: RecordType, first: int, frames: list[Frame], reset: bool, qp: int,
                channel: EncoderChannel, models: CoderModels, x_hat: torch.Tensor
                ) -> CodedRecord:
        """Planes of the reconstruction, arithmetic coding, the record (on the worker when
        pipelined: it needs nothing the next chunk's networks change)."""
        recon = tensors_to_frames(x_hat, chroma=self.info.chroma, bit_depth=self.info.bit_depth)
        positions = sum(bins.size for _, bins in channel.y_steps)
        z_writer = SymbolWriter(models)
        y_writer = SymbolWriter(models, num_streams=y_stream_count(positions))
        channel.write(z_writer, y_writer, qp)
        parts = (z_writer.finish(), y_writer.finish(), RECON_CRC.pack(recon_crc(recon)))
        return CodedRecord(Record(kind, first, len(frames), qp, reset, parts), recon, frames)

    def _qp_tensor(self, qp: int) -> torch.Tensor:
        """The networks' qp input, kept per qp: no new device tensor for every record."""
        tensor = self._qp_tensors.get(qp)
        if tensor is None:
            tensor = self._qp_tensors[qp] = torch.tensor([qp], device=self.device)
        return tensor

    @torch.inference_mode()
    def _trial(self, qp: int, run: Callable[[torch.Tensor, EncoderChannel],
                                            tuple[torch.Tensor, ChunkState]]) -> _Trial:
        """Run a record's networks at `qp`; `run(qp, channel)` gives the reconstruction and
        the state after the record, leaving the encoder's own state alone."""
        channel = EncoderChannel(self.tables.gaussian, self._skip)
        started = time.perf_counter()
        with self._compute, self._networks:
            x_hat, state = run(self._qp_tensor(qp), channel)
        network = time.perf_counter() - started - channel.coding_seconds
        return _Trial(qp, x_hat, state, channel, network)

    def _finisher(self, kind: RecordKind, first: int, frames: list[Frame], reset: bool,
                  trial: _Trial) -> Callable[[], CodedRecord]:
        record_type = RecordType.INTRA if kind == RecordKind.INTRA else RecordType.CHUNK
        models = self.tables.intra if kind == RecordKind.INTRA else self.tables.video
        return partial(self._finish, record_type, first, frames, reset, trial.qp, trial.channel,
                       models, trial.x_hat)

    def _commit(self, kind: RecordKind, first: int, frames: list[Frame], trial: _Trial,
                finish: Callable[[], CodedRecord], network_seconds: float,
                on_done: Callable[[CodedRecord], None] | None = None) -> list[CodedRecord]:
        """Adopt a trial's state and queue its record's coding."""
        self._state = trial.state
        if kind == RecordKind.INTRA:
            self._last_intra = first
        return self._submit(finish, trial.channel, network_seconds, on_done)

    def _code_record(self, kind: RecordKind, frames: list[Frame], first: int, reset: bool,
                     run: Callable[[torch.Tensor, EncoderChannel],
                                   tuple[torch.Tensor, ChunkState]],
                     trial: _Trial | None = None) -> list[CodedRecord]:
        """Run the networks at the record's qp (again at another qp when rate control asks),
        then queue its coding; a `trial` already run at constant quality is coded as is."""
        rate = self.rate
        if rate is None:
            trial = trial or self._trial(self.options.quality, run)
            return self._commit(kind, first, frames, trial,
                                self._finisher(kind, first, frames, reset, trial),
                                trial.network_seconds)
        qp = rate.choose(kind, len(frames))
        network = 0.0
        first_try = True
        while True:
            trial = self._trial(qp, run)
            network += trial.network_seconds
            finish = self._finisher(kind, first, frames, reset, trial)
            estimated = estimate_y_bits(self.tables.gaussian, trial.channel.y_steps)
            retry = rate.review(kind, len(frames), qp, estimated, first_try)
            first_try = False
            if retry is not None and retry != qp:
                qp = retry
                continue
            if rate.vbv is None:
                rate.accept(kind, len(frames), qp, estimated)
                return self._commit(kind, first, frames, trial, finish, network,
                                    partial(_tell_written, rate, kind, estimated))
            # VBV: the exact size decides; a record that would overflow is coded again lower.
            coded = finish()
            if not rate.fits(coded.bits) and qp > 0:
                qp = max(0, qp - 2)
                continue
            if not rate.fits(coded.bits):
                rate.vbv_overflows += 1
                warn(f"VBV buffer overflows at frame {first}: even quality 0 takes "
                     f"{coded.bits} bits, {rate.vbv.space():.0f} are free (raise --bufsize "
                     "or --maxrate)")
            rate.accept(kind, len(frames), qp, estimated)
            rate.written(kind, len(frames), estimated, coded.bits)
            return self._commit(kind, first, frames, trial, partial(_identity, coded), network)

    def _intra_run(self, frame: Frame) -> tuple[torch.Tensor, Callable]:
        x = self._to_tensor([frame])

        def run(qp: torch.Tensor, channel: EncoderChannel):
            result = self.model.intra.code_frame(x, qp, channel)
            # The clamped reconstruction is the reference, as in the release's inference.
            x_hat = result.x_hat.float().clamp(-0.5, 0.5)
            return x_hat, self.model.video.init_state(x_hat)

        return x, run

    def _code_intra(self, frame: Frame, index: int, trial: _Trial | None = None
                    ) -> list[CodedRecord]:
        """Code an intra frame (from a `trial` already run at constant quality, if given);
        the mode decision keeps its cost."""
        x, run = self._intra_run(frame)
        if self._decider is not None:
            trial = trial or self._trial(self.options.quality, run)
            self._decider.last_intra_cost = self._decider.cost(
                trial.x_hat, x, trial.channel.y_steps, 1)
        return self._code_record(RecordKind.INTRA, [frame], index, False, run, trial)

    def _code_chunk(self) -> list[CodedRecord]:
        frames, first = self._pending.frames, self._pending.first_frame
        self._pending = _Pending()
        n = self.model.frames_per_chunk
        padded = frames + [frames[-1]] * (n - len(frames))
        reset = bool(self.options.reset_interval) and (
            (first - self._last_intra + n) % self.options.reset_interval == 1
        )
        kind = RecordKind.FIRST if first == self._last_intra + 1 else RecordKind.STEADY
        x = self._to_tensor(padded).unsqueeze(0)
        state = self._state

        def run(qp: torch.Tensor, channel: EncoderChannel):
            result = self.model.video.code_chunk(x, qp, state, channel, reset=reset)
            # tensors_to_frames clamps, like the decoder.
            return result.x_hat[0, : len(frames)], result.state

        decider = self._decider
        if decider is None:
            return self._code_record(kind, frames, first, reset, run)
        chunk = self._trial(self.options.quality, run)
        chunk_cost = decider.cost(chunk.x_hat, x[0, : len(frames)], chunk.channel.y_steps,
                                  len(frames))
        if decider.worth_trying_intra(chunk_cost):
            x0, intra_run = self._intra_run(frames[0])
            intra = self._trial(self.options.quality, intra_run)
            intra_cost = decider.cost(intra.x_hat, x0, intra.channel.y_steps, 1)
            decider.last_intra_cost = intra_cost
            if intra_cost < chunk_cost:
                self.intra_chunks.append(first)
                out = self._code_intra(frames[0], first, intra)
                for offset, frame in enumerate(frames[1:], start=1):
                    out += self._code_intra(frame, first + offset)
                return out
        return self._code_record(kind, frames, first, reset, run, chunk)


def check_header_fits(header: SequenceHeader, model: CodecModel) -> None:
    """Refuse a header whose fields differ from what `model`'s encoder writes, before
    anything is built from them: the table parameters (a damaged header could ask for
    huge tables), the chunk size, the frame size and sample format (CorruptStreamError)."""
    expected = {
        "chunk size": (header.chunk_size, model.frames_per_chunk),
        "Gaussian table parameters": (header.gaussian, GaussianTables()),
        "z table parameters": ((header.z_symbol_min, header.z_symbol_max,
                                header.z_precision_bits), Z_TABLE_PARAMETERS),
    }
    for name, (stored, ours) in expected.items():
        if stored != ours:
            raise CorruptStreamError(f"the stream's {name} {stored} differ from the ones "
                                     f"{model.name} codes with, {ours}: the header is damaged")
    if header.width % 2 or header.height % 2 or header.bit_depth not in (8, 10):
        raise CorruptStreamError(
            f"the stream's format ({header.width}x{header.height}, {header.bit_depth}-bit) is "
            "not one the encoder writes: the header is damaged"
        )


@dataclass
class _Parsed:
    """A data record with its payload readers and its z symbols already parsed."""

    record: Record
    channel: DecoderChannel


class Decoder:
    """Records in, frames out; the model must be the one the stream names.

    `decode` handles one record at a time. `decode_all` with `pipeline` overlaps records:
    while the networks decode record t, a worker thread reads record t + 1 (CRC checks)
    and parses its z symbols, then converts record t's frames to planes, checks their CRC
    and hands them to the sink. Frames and errors come out as without pipelining.

    Every header field is checked against what this model codes with (chunk size, table
    parameters, frame size) before anything is built or allocated from it. A portable
    stream's networks run compiled when `compile` asks (the same bits either way); a
    float stream's networks run compiled (and from CUDA graphs) exactly when the stream's
    header says the encoder's did, as bit-exact decoding needs; but compiling runs a C
    compiler, so a stream asks for it only with the caller's consent: without `compile`,
    a compiled stream is refused (a one-line error). Graphs need a CUDA device here: on another
    device a graphed stream's networks run eagerly.
    """

    def __init__(
        self,
        model: CodecModel,
        header: SequenceHeader,
        *,
        device: str | torch.device = "cpu",
        pipeline: bool | None = None,
        compile: bool = False,
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
        check_header_fits(header, model)
        if header.compiled_networks and not compile:
            raise InputFormatError(
                "the stream was encoded with torch.compile'd networks, and decoding it "
                "compiles them too (runs a C compiler): pass --compile to decode it"
            )
        self.model = prepare_model(model.to(device), header.compute_precision)
        self.header = header
        self.device = torch.device(device)
        self.pipeline = default_pipeline(self.device) if pipeline is None else pipeline
        graphs = header.cuda_graphs and self.device.type == "cuda"
        if header.cuda_graphs and not graphs:
            warn("the stream was encoded with CUDA graphs; without a CUDA device its "
                 "networks run eagerly here")
        self._compute = compute_context(header.compute_precision, self.device, graphs=graphs)
        self._networks = network_context(self.model, compiled=self._compiled(compile),
                                         graphs=graphs)
        self.tables = CodingTables.for_model(model)
        if self.tables.digest != header.entropy_digest:
            raise ModelMismatchError(
                "entropy tables built here differ from the encoder's (table digest mismatch)"
            )
        self._state: ChunkState | None = None
        self._size = (header.height, header.width)
        self.timing = Timing()

    def _compiled(self, compile: bool) -> bool:
        """Whether the networks run compiled: as the caller asks for a portable stream
        (its arithmetic is exact either way), else as the stream says (a compiled stream
        is decoded only with `compile`, see __init__)."""
        if self.header.compute_precision == "portable":
            return compile and compile_available()
        if not self.header.compiled_networks:
            if compile:
                warn("the stream was encoded without torch.compile; its networks run eagerly, "
                     "as bit-exact decoding needs")
            return False
        return compile_available()  # if not, the CRC check will say if eager networks differ

    def _z_shape(self, record: Record) -> tuple[int, int, int, int]:
        """The z shape the model will ask for: known from the header before any network."""
        if record.type == RecordType.INTRA:
            return (1, self.model.intra.config.hyper_channels,
                    *IntraCodec.hyper_size(self._size))
        height, width = (math.ceil(math.ceil(side / FRAME_MULTIPLE) / LATENT_MULTIPLE)
                         for side in self._size)
        return (1, self.model.video.config.z_channels, height, width)

    def _parse(self, record: Record) -> _Parsed:
        """Check a record's parts and parse its z symbols (needs no network)."""
        if len(record.parts) < 3 or len(record.parts[2]) != RECON_CRC.size:
            raise CorruptStreamError(f"record at frame {record.first_frame} lacks payload parts")
        models = self.tables.intra if record.type == RecordType.INTRA else self.tables.video
        channel = DecoderChannel(
            self.tables.gaussian,
            self.header.skip_threshold,
            SymbolReader(models, record.parts[0]),
            SymbolReader(models, record.parts[1]),
            record.qp,
        )
        channel.read_z(self._z_shape(record))
        return _Parsed(record, channel)

    def _parse_next(self, records: Iterator[Record]) -> _Parsed | None:
        record = next(records, None)
        return None if record is None else self._parse(record)

    @torch.inference_mode()
    def _run_networks(self, parsed: _Parsed) -> tuple[torch.Tensor, float]:
        """The record's reconstruction [N, 3, H, W] and the seconds the networks took."""
        record, channel = parsed.record, parsed.channel
        before = channel.coding_seconds
        started = time.perf_counter()
        qp = torch.tensor([record.qp], device=self.device)
        if record.type == RecordType.INTRA:
            with self._compute, self._networks:
                result = self.model.intra.code_frame(None, qp, channel, frame_size=self._size)
            x_hat = result.x_hat.float().clamp(-0.5, 0.5)
            self._state = self.model.video.init_state(x_hat)
        else:
            if self._state is None:
                raise CorruptStreamError(
                    f"chunk at frame {record.first_frame} has no preceding intra frame"
                )
            with self._compute, self._networks:
                result = self.model.video.code_chunk(
                    None, qp, self._state, channel, reset=record.reset, frame_size=self._size
                )
            self._state = result.state
            x_hat = result.x_hat[0, : record.num_frames]  # tensors_to_frames clamps
        channel.y_reader.ensure_consumed()
        seconds = time.perf_counter() - started - (channel.coding_seconds - before)
        return x_hat, seconds

    @torch.inference_mode()
    def _finish(self, parsed: _Parsed, x_hat: torch.Tensor,
                sink: Callable[[Frame], None] | None) -> list[Frame]:
        """Planes of the reconstruction, checked against the encoder's CRC, then to `sink`."""
        record = parsed.record
        frames = tensors_to_frames(x_hat, chroma=self.header.chroma,
                                   bit_depth=self.header.bit_depth)
        (expected,) = RECON_CRC.unpack(record.parts[2])
        if recon_crc(frames) != expected:
            compiled = (", with torch.compile'd networks, which also need a working compiler "
                        "here" if self.header.compiled_networks else "")
            raise CorruptStreamError(
                f"frames {record.first_frame}..{record.first_frame + record.num_frames - 1} "
                "decode differently from the encoder's reconstruction (the stream is damaged, "
                f"or this machine computes the model differently from the encoder's{compiled})"
            )
        if sink is not None:
            for frame in frames:
                sink(frame)
        return frames

    def _collect(self, job: _Job) -> list[Frame]:
        frames = job.future.result()
        self.timing.add(job.network_seconds, job.channel.coding_seconds, len(frames))
        return frames

    def decode(self, record: Record) -> list[Frame]:
        """The frames of one data record."""
        parsed = self._parse(record)
        x_hat, seconds = self._run_networks(parsed)
        return self._collect(_Job(_run_now(partial(self._finish, parsed, x_hat, None)),
                                  parsed.channel, seconds))

    def decode_all(self, records: Iterable[Record],
                   sink: Callable[[Frame], None] | None = None) -> Iterator[Frame]:
        """The frames of `records`, in order; each goes to `sink` (if given) first.

        With pipelining, `sink` runs on the worker thread (a writer's `write`, say), so
        writing overlaps the networks as well.
        """
        if not self.pipeline:
            for record in records:
                frames = self.decode(record)
                if sink is not None:
                    for frame in frames:
                        sink(frame)
                yield from frames
            return
        source = iter(records)
        with ThreadPoolExecutor(1, thread_name_prefix="ufvc-decode") as pool:
            pending: _Job | None = None  # the previous record, finishing on the worker
            upcoming = pool.submit(self._parse_next, source)
            try:
                while True:
                    try:
                        parsed = upcoming.result()
                        if parsed is None:
                            break
                        upcoming = pool.submit(self._parse_next, source)
                        x_hat, seconds = self._run_networks(parsed)
                    except Exception:
                        if pending is not None:  # the earlier record's frames (or error) first
                            yield from self._collect(pending)
                        raise
                    job = _Job(pool.submit(self._finish, parsed, x_hat, sink), parsed.channel,
                               seconds)
                    if pending is not None:
                        yield from self._collect(pending)
                    pending = job
                if pending is not None:
                    yield from self._collect(pending)
            finally:
                # On an error or an abandoned iteration: drop queued work; the pool's exit
                # waits for the job in progress, so nothing touches the reader or sink later.
                upcoming.cancel()
                if pending is not None:
                    pending.future.cancel()
