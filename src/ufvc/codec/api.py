"""File-level encode and decode calls built on `Encoder` and `Decoder`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ufvc.bitstream.format import SequenceHeader
from ufvc.bitstream.stream import StreamReader, StreamWriter
from ufvc.codec.core import CodedRecord, Decoder, Encoder
from ufvc.codec.options import CodingOptions, coding_options, torch_threads
from ufvc.defaults import DEFAULT_MODEL
from ufvc.errors import CorruptStreamError, InputFormatError, ModelMismatchError
from ufvc.io import VideoReader, check_reader_options, open_reader, open_writer
from ufvc.io.base import check_not_input
from ufvc.io.types import Frame, VideoInfo
from ufvc.metrics import SequencePsnr
from ufvc.models.registry import (
    CodecModel,
    create_model,
    get_model_spec,
    list_models,
    load_model_file,
)

ModelSpec = str | os.PathLike[str] | CodecModel | None


def load_model(spec: ModelSpec = None, *, device: str | torch.device = "cpu") -> CodecModel:
    """A model from a registry name, a `.ufvm` file, or the default model when None."""
    if isinstance(spec, CodecModel):
        return spec.to(device)
    name = DEFAULT_MODEL if spec is None else os.fspath(spec)
    if name in list_models():
        return create_model(name, device=device)
    if Path(name).is_file():
        return load_model_file(name, device=device)
    raise InputFormatError(
        f"unknown model {name!r}: give a .ufvm file or one of {', '.join(list_models())}"
    )


@dataclass
class EncodeSummary:
    """What an encode produced and measured."""

    frames: int
    width: int
    height: int
    fps: float
    bytes: int
    psnr: SequencePsnr
    seconds: float
    options: CodingOptions = field(default_factory=CodingOptions)
    scene_cuts: list[int] = field(default_factory=list)  # frames given an intra frame by a cut
    intra_chunks: list[int] = field(default_factory=list)  # chunks the RD decision coded intra
    vbv_overflows: int = 0  # records that overflowed the VBV buffer even at quality 0

    @property
    def bpp(self) -> float:
        return 8 * self.bytes / (self.frames * self.width * self.height)

    @property
    def kbps(self) -> float:
        return 8 * self.bytes * self.fps / self.frames / 1000

    @property
    def encode_fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def encode_frames(encoder: Encoder, frames: Iterable[Frame],
                  sink: Callable[[CodedRecord], None]) -> int:
    """The encode loop: every frame through `encoder`, every record to `sink`, in order.

    Returns the number of frames taken. The encoder is flushed, and can take more frames
    after (a new call continues the stream)."""
    count = 0
    for frame in frames:
        for coded in encoder.encode(frame):
            sink(coded)
        count += 1
    for coded in encoder.flush():
        sink(coded)
    return count


def write_stream(encoder: Encoder, frames: Iterable[Frame], output: str | os.PathLike[str],
                 sink: Callable[[CodedRecord], None] | None = None, *,
                 overwrite: bool = True) -> tuple[int, int]:
    """`encode_frames` into a `.ufv` file (or `-`, a device, a FIFO); each record also goes
    to `sink` once written. Returns the frames coded and the bytes written."""
    with StreamWriter(output, encoder.header, overwrite=overwrite) as writer:
        def write(coded: CodedRecord) -> None:
            writer.write(coded.record)
            if sink is not None:
                sink(coded)

        count = encode_frames(encoder, frames, write)
    return count, writer.bytes_written


def encode(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    options: CodingOptions | None = None,
    *,
    model: ModelSpec = None,
    max_frames: int | None = None,
    recon: str | os.PathLike[str] | None = None,
    reader_options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = True,
    on_start: Callable[[VideoReader], None] | None = None,
    **changes: Any,
) -> EncodeSummary:
    """Encode a video file into a `.ufv` file, one chunk in memory at a time.

    `source` is anything `ufvc.io.open_reader` reads: .y4m (8/10-bit 4:2:0 or 4:4:4),
    raw .yuv (give `reader_options={"size": "WxH"}`), a PNG folder or pattern, any
    container FFmpeg reads (.mp4, .mkv, ...), or `-` for Y4M on standard input.
    `output` is a path, `-` (standard output) or an existing device node or FIFO.
    `options` say how (`CodingOptions`: quality or bitrate, intra period, precision,
    threads, ...); keyword arguments change single fields of it, as in
    `encode("in.y4m", "out.ufv", quality=40)` or `bitrate="800k"`. `quality` runs 0..63
    and HIGHER IS BETTER (more bits, higher PSNR). `model` is a registered name, a
    `.ufvm` file or a CodecModel (default "ufvc-s").
    `max_frames` caps the frame count. `reader_options` go to `open_reader`: "size"
    ((w, h) or "WxH"), "pix_fmt" (e.g. "yuv420p10le"), "fps", "start" and "duration"
    (frames, or seconds as "2.5s"), "max_frames". `on_start` gets the open reader
    before the first frame (its `info` and `start`, e.g. for a progress total).
    `overwrite` False refuses an existing output; an output that is the source is
    always refused.
    `recon` also writes the encoder's own reconstruction (what `decode` will give).
    `progress` is called with the number of frames each completed record holds.

    Raises InputFormatError (bad source, option or quality), OutputError (an output
    cannot be written, exists, or is the source), CheckpointError (bad model file).
    """
    options = coding_options(options, **changes)
    reader_settings = check_reader_options(reader_options)
    check_not_input(output, [source])
    check_not_input(recon, [source, output])
    psnr = SequencePsnr()
    if max_frames is not None and max_frames < 1:
        raise InputFormatError(f"frame limit must be >= 1, got {max_frames}")
    started = time.perf_counter()
    with torch_threads(options.threads), ExitStack() as stack:
        codec_model = load_model(model, device=options.device)
        reader = stack.enter_context(
            open_reader(source, **{**reader_settings,
                                   "max_frames": _least(max_frames,
                                                        reader_settings.get("max_frames"))})
        )
        info = reader.info
        if on_start is not None:
            on_start(reader)
        encoder = Encoder(codec_model, info, options)
        recon_writer = (stack.enter_context(open_writer(recon, info, overwrite=overwrite))
                        if recon else None)

        def measure(coded: CodedRecord) -> None:
            for src, rec in zip(coded.source, coded.recon, strict=True):
                psnr.add(src, rec)
                if recon_writer is not None:
                    recon_writer.write(rec)
            if progress is not None:
                progress(len(coded.recon))

        def checked_frames() -> Iterator[Frame]:
            # Raised inside the loop, so that the writer drops its unfinished file.
            count = 0
            for frame in reader:
                count += 1
                yield frame
            if count == 0:
                raise InputFormatError(f"{source} holds no frames")
            if info.num_frames and count != info.num_frames:
                raise InputFormatError(f"{source} ended after {count} of {info.num_frames} "
                                       "frames")

        count, size = write_stream(encoder, checked_frames(), output, measure,
                                   overwrite=overwrite)
    seconds = time.perf_counter() - started
    overflows = encoder.rate.vbv_overflows if encoder.rate is not None else 0
    return EncodeSummary(count, info.width, info.height, float(info.fps), size, psnr, seconds,
                         options, list(encoder.scene_cuts), list(encoder.intra_chunks),
                         overflows)


def _least(*limits: int | None) -> int | None:
    """The smallest of the limits given (None = no limit)."""
    given = [limit for limit in limits if limit is not None]
    return min(given) if given else None


def stream_model(header: SequenceHeader, *, device: str | torch.device = "cpu") -> CodecModel:
    """The registered model a stream names. Never a file: a stream is untrusted input, and
    a model file is only loaded when the user names it (`--model`). What the registry
    tells without building the model (chunk size, the digest of recipe weights) is
    checked first, so that a small stream cannot make the decoder build a large model
    it will not decode with."""
    name = header.model_id
    if name not in list_models():
        raise ModelMismatchError(
            f"the stream names model {name!r}, which is not a built-in model; if it was "
            "encoded with a model file, give that file with --model"
        )
    spec = get_model_spec(name)
    if spec.video.frames != header.chunk_size:
        raise CorruptStreamError(f"the stream's chunk size {header.chunk_size} is not "
                                 f"{name}'s {spec.video.frames}: the header is damaged")
    if spec.recipe_digest is not None and header.model_digest.hex() != spec.recipe_digest:
        raise ModelMismatchError(
            f"stream was coded with other weights of {name!r} (digest "
            f"{header.model_digest.hex()}, built-in {spec.recipe_digest}); give them with --model"
        )
    return create_model(name, device=device)


class DecodeStream:
    """An open `.ufv` file: `info`, then its frames by iteration (a context manager).

    The model is the user's `model`, else the registered model the stream names. A stream
    with fewer frames than its header says is an error at its end, unless
    `allow_truncated` (then a StreamWarning).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        model: ModelSpec = None,
        device: str | torch.device = "cpu",
        pipeline: bool | None = None,
        compile: bool = False,
        allow_truncated: bool = False,
    ) -> None:
        self._reader = StreamReader(path, allow_truncated=allow_truncated)
        try:
            header = self._reader.header
            self.header = header
            codec_model = (stream_model(header, device=device) if model is None
                           else load_model(model, device=device))
            self.decoder = Decoder(codec_model, header, device=device, pipeline=pipeline,
                                   compile=compile)
        except BaseException:
            self._reader.close()
            raise
        self.info = VideoInfo(
            width=header.width, height=header.height, fps=header.fps,
            num_frames=header.frame_count or None, bit_depth=header.bit_depth,
            chroma=header.chroma, format_name="ufv",
        )

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self, sink: Callable[[Frame], None] | None = None) -> Iterator[Frame]:
        """The decoded frames; each goes to `sink` first (on the worker thread when
        pipelining, so that e.g. a writer's `write` overlaps the networks)."""
        return self.decoder.decode_all(self._reader, sink)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> DecodeStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_stream(
    path: str | os.PathLike[str],
    *,
    model: ModelSpec = None,
    device: str | torch.device = "cpu",
    pipeline: bool | None = None,
    compile: bool = False,
    allow_truncated: bool = False,
) -> DecodeStream:
    """Open a `.ufv` file (a path, or a binary file object such as `sys.stdin.buffer`).

    The model defaults to the registered one the stream names (never a file the stream
    names); `model` may give a registered name, a `.ufvm` file or a CodecModel instead.
    `info` describes the video; iterate for `ufvc.io.types.Frame`s, bit-exactly the
    encoder's reconstruction. `pipeline` as for `encode`; `compile` allows a stream encoded
    with compiled networks (decoding compiles too). A stream with fewer frames than its
    header says is an error at its end unless `allow_truncated` (then a StreamWarning).
    Raises BitstreamError (damaged or truncated stream, CorruptStreamError; newer format,
    UnsupportedVersionError) and ModelMismatchError (a model other than the stream's).
    """
    return DecodeStream(path, model=model, device=device, pipeline=pipeline, compile=compile,
                        allow_truncated=allow_truncated)


def decode(
    path: str | os.PathLike[str],
    *,
    model: ModelSpec = None,
    device: str | torch.device = "cpu",
    pipeline: bool | None = None,
    compile: bool = False,
    allow_truncated: bool = False,
) -> Iterator[Frame]:
    """The frames of a `.ufv` file, decoded one record at a time (see `open_stream`).

    Frames are `ufvc.io.types.Frame`s (Y, Cb, Cr planes, uint8 or uint16 for 10-bit);
    the errors are those of `open_stream`, raised while iterating.
    """
    with open_stream(path, model=model, device=device, pipeline=pipeline,
                     compile=compile, allow_truncated=allow_truncated) as stream:
        yield from stream
