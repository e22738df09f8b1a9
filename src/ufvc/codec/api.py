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

from ufvc.bitstream.stream import StreamReader, StreamWriter
from ufvc.codec.core import CodedRecord, Decoder, Encoder
from ufvc.codec.options import CodingOptions, coding_options, torch_threads
from ufvc.errors import InputFormatError
from ufvc.io import open_reader, open_writer
from ufvc.io.types import Frame, VideoInfo
from ufvc.metrics import SequencePsnr
from ufvc.models.registry import CodecModel, create_model, list_models, load_model_file

DEFAULT_MODEL = "ufvc-s"

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
                 sink: Callable[[CodedRecord], None] | None = None) -> int:
    """`encode_frames` into a `.ufv` file; each record also goes to `sink` once written."""
    with StreamWriter(output, encoder.header) as writer:
        def write(coded: CodedRecord) -> None:
            writer.write(coded.record)
            if sink is not None:
                sink(coded)

        return encode_frames(encoder, frames, write)


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
    **changes: Any,
) -> EncodeSummary:
    """Encode a video file into a `.ufv` file, one chunk in memory at a time.

    `options` say how (`CodingOptions`); keyword arguments change single fields of it,
    as in `encode("in.y4m", "out.ufv", quality=40)` or `bitrate="800k"`.
    `recon` also writes the encoder's own reconstruction (what `decode` will give).
    `progress` is called with the number of frames each completed record holds.
    """
    options = coding_options(options, **changes)
    psnr = SequencePsnr()
    if max_frames is not None and max_frames < 1:
        raise InputFormatError(f"frame limit must be >= 1, got {max_frames}")
    started = time.perf_counter()
    with torch_threads(options.threads), ExitStack() as stack:
        codec_model = load_model(model, device=options.device)
        reader = stack.enter_context(
            open_reader(source, max_frames=max_frames, **(reader_options or {}))
        )
        info = reader.info
        encoder = Encoder(codec_model, info, options)
        recon_writer = stack.enter_context(open_writer(recon, info)) if recon else None

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

        count = write_stream(encoder, checked_frames(), output, measure)
    seconds = time.perf_counter() - started
    size = Path(output).stat().st_size
    overflows = encoder.rate.vbv_overflows if encoder.rate is not None else 0
    return EncodeSummary(count, info.width, info.height, float(info.fps), size, psnr, seconds,
                         options, list(encoder.scene_cuts), overflows)


class DecodeStream:
    """An open `.ufv` file: `info`, then its frames by iteration (a context manager)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        model: ModelSpec = None,
        device: str | torch.device = "cpu",
        pipeline: bool | None = None,
        compile: bool = False,
    ) -> None:
        self._reader = StreamReader(path)
        try:
            header = self._reader.header
            self.header = header
            self.decoder = Decoder(load_model(model or header.model_id, device=device), header,
                                   device=device, pipeline=pipeline, compile=compile)
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
) -> DecodeStream:
    """Open a `.ufv` file for decoding; the model defaults to the one the stream names."""
    return DecodeStream(path, model=model, device=device, pipeline=pipeline, compile=compile)


def decode(
    path: str | os.PathLike[str],
    *,
    model: ModelSpec = None,
    device: str | torch.device = "cpu",
    pipeline: bool | None = None,
    compile: bool = False,
) -> Iterator[Frame]:
    """The frames of a `.ufv` file, decoded one record at a time (see `Decoder`)."""
    with open_stream(path, model=model, device=device, pipeline=pipeline,
                     compile=compile) as stream:
        yield from stream
