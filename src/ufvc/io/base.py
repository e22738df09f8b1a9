"""Reader and writer base classes, and output staging (write aside, rename on success)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import sys
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from ufvc.errors import InputFormatError, OutputError
from ufvc.io.planar import plane_shapes
from ufvc.io.types import Frame, FramePosition, VideoInfo


class VideoReader(ABC):
    """Frames of one video, decoded one at a time (constant memory).

    Use as a context manager and iterate. Each iteration starts again at frame `start`
    and yields at most `max_frames` frames. `info.num_frames` is the number of frames an
    iteration yields, or None when the container does not say.
    """

    codec_name: str | None = None  # the compressed codec, for containers PyAV reads

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        *,
        start: int | FramePosition = 0,
        duration: FramePosition | None = None,
        max_frames: int | None = None,
    ) -> None:
        # Positions in seconds become frames at the reader's frame rate (--fps included).
        if isinstance(start, FramePosition):
            start = start.frames(info.fps)
        if duration is not None:
            length = duration.frames(info.fps)
            if length < 1:
                raise InputFormatError(f"duration {duration} is less than one frame")
            max_frames = length if max_frames is None else min(max_frames, length)
        if start < 0:
            raise InputFormatError(f"start frame must be >= 0, got {start}")
        if max_frames is not None and max_frames < 0:
            raise InputFormatError(f"max_frames must be >= 0, got {max_frames}")
        total = info.num_frames
        if total is not None and start > 0 and start >= total:
            raise InputFormatError(f"start frame {start} is past the end of {path} ({total})")
        self.path = path
        self.start = start
        self.max_frames = max_frames
        self.source_num_frames = total
        count = None if total is None else total - start
        if max_frames is not None:
            count = max_frames if count is None else min(count, max_frames)
        self.info = info.with_(num_frames=count)
        self._passes: weakref.WeakSet = weakref.WeakSet()

    @abstractmethod
    def _read_from(self, start: int) -> Iterator[Frame]:
        """Frames from index `start` to the end of the source; closes its handles when closed."""

    def __iter__(self) -> Iterator[Frame]:
        frames = self._limited()
        self._passes.add(frames)
        return frames

    def _limited(self) -> Iterator[Frame]:
        source = self._read_from(self.start)
        try:
            for index, frame in enumerate(source):
                if self.max_frames is not None and index >= self.max_frames:
                    break
                yield frame
        finally:
            source.close()

    def count_frames(self) -> int:
        """Frames an iteration yields: from the header when known, otherwise by reading."""
        if self.info.num_frames is not None:
            return self.info.num_frames
        return sum(1 for _ in self)

    def close(self) -> None:
        """Stop every iteration in progress and release its file handles."""
        for frames in list(self._passes):
            frames.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


STDIO = "-"  # as an input path: standard input; as an output path: standard output


def is_stdio(path: str | os.PathLike[str] | None) -> bool:
    """Whether `path` is `-`, the name of standard input or output."""
    return path is not None and os.fspath(path) == STDIO


def is_special_file(path: str | os.PathLike[str]) -> bool:
    """An existing device node, FIFO or socket: written in place, never replaced."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_not_input(
    output: str | os.PathLike[str] | None, inputs: Iterable[str | os.PathLike[str] | None]
) -> None:
    """Refuse an output that is one of the inputs, under any name (a link, `./x`)."""
    if output is None or is_stdio(output):
        return
    for source in inputs:
        if source is None or is_stdio(source):
            continue
        try:
            same = os.path.samefile(output, source)
        except OSError:  # one of them does not exist (yet)
            same = os.path.abspath(output) == os.path.abspath(source)
        if same:
            raise OutputError(f"cannot write {output}: it is an input of this run")


def refuse_existing(target: Path) -> None:
    """The one-line refusal to replace an existing output (ffmpeg's -n)."""
    raise OutputError(f"{target} already exists; use -y (--overwrite) to replace it")


def _staging_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")


def _layout(chroma: str, bit_depth: int) -> str:
    return f"{chroma[0]}:{chroma[1]}:{chroma[2]} {bit_depth}-bit"


def _describe(error: OSError) -> str:
    return error.strerror or str(error)


class StagedOutput:
    """A temporary file or folder next to `target` that becomes `target` on commit.

    Being next to the target keeps it on the same file system, so the final rename is
    atomic for files and for folders that do not exist yet. With `overwrite` False an
    existing target is refused, also one that appears while the output is written.
    Standard output (`-`) and existing device nodes, FIFOs and sockets are written in
    place (`direct`): there is nothing to stage, and a device must never be replaced.
    """

    def __init__(self, target: Path, *, folder: bool = False, overwrite: bool = True) -> None:
        self.target = target
        self.folder = folder
        self.overwrite = overwrite
        self.direct = not folder and (is_stdio(target) or is_special_file(target))
        self._done = False
        if self.direct:
            self.path = target
            return
        parent = target.parent
        if not parent.is_dir():
            raise OutputError(f"cannot write {target}: folder {parent} does not exist")
        if not folder and target.is_dir():
            raise OutputError(f"cannot write {target}: it is a folder")
        if folder and target.exists() and not target.is_dir():
            raise OutputError(f"cannot write frames to {target}: it is a file")
        if not folder and not overwrite and (target.exists() or target.is_symlink()):
            refuse_existing(target)
        self.path = _staging_name(target)
        try:
            if folder:
                self.path.mkdir()
            else:
                # Created here with the user's umask (mkstemp would force 0600).
                self.path.open("xb").close()
        except OSError as error:
            raise OutputError(f"cannot write {target}: {_describe(error)}") from None

    def open_binary(self) -> BinaryIO:
        """The file to write: the staged file, the device, or a copy of stdout's handle."""
        if is_stdio(self.path):
            return os.fdopen(os.dup(sys.stdout.fileno()), "wb")
        return self.path.open("wb")

    def commit(self) -> None:
        """Move the staged output into place."""
        if self._done:
            return
        self._done = True
        if self.direct:
            return
        try:
            if self.folder and self.target.is_dir():
                # The folder exists (the writer checked that no frame name clashes).
                for item in sorted(self.path.iterdir()):
                    os.replace(item, self.target / item.name)
                self.path.rmdir()
            elif self.overwrite or self.folder:
                os.replace(self.path, self.target)
            else:
                self._publish_new()
        except OSError as error:
            self._remove()
            if isinstance(error, OutputError):
                raise
            raise OutputError(f"cannot write {self.target}: {_describe(error)}") from None

    def _publish_new(self) -> None:
        """Put the file in place only if the target still does not exist (no clobbering)."""
        try:
            os.link(self.path, self.target)  # fails if the target appeared meanwhile
        except FileExistsError:
            refuse_existing(self.target)
        except OSError:  # a file system without hard links: check, then rename
            if self.target.exists():
                refuse_existing(self.target)
            os.replace(self.path, self.target)
            return
        self.path.unlink()

    def discard(self) -> None:
        """Remove the staged output."""
        if not self._done:
            self._done = True
            if not self.direct:
                self._remove()

    def _remove(self) -> None:
        if self.folder:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            self.path.unlink(missing_ok=True)


class VideoWriter(ABC):
    """Writes frames of one format; the output appears only when `close()` succeeds.

    Use as a context manager: a normal exit publishes the output, an exception inside the
    `with` block removes everything written so far.
    """

    # Deepest samples the format stores; deeper frames are rounded to fit.
    max_bit_depth = 10

    def __init__(
        self, path: Path, info: VideoInfo, *, folder: bool = False, overwrite: bool = True
    ) -> None:
        if info.chroma not in ("420", "444"):
            raise InputFormatError(f"chroma must be '420' or '444', got {info.chroma!r}")
        if info.bit_depth not in (8, 10):
            raise InputFormatError(f"bit depth must be 8 or 10, got {info.bit_depth}")
        plane_shapes(info.width, info.height, info.chroma)
        self.path = path
        self.info = info
        self.frames_written = 0
        self._staged = StagedOutput(path, folder=folder, overwrite=overwrite)
        # A writer dropped without close() or abort() leaves no staging debris behind.
        weakref.finalize(self, self._staged.discard)
        self._closed = False
        try:
            self._open()
        except OSError as error:
            self._staged.discard()
            raise OutputError(f"cannot write {path}: {_describe(error)}") from None
        except BaseException:
            self._staged.discard()
            raise

    @property
    def staging_path(self) -> Path:
        """Where the output is written until `close()` moves it to `path`."""
        return self._staged.path

    def _open_binary(self) -> BinaryIO:
        """The file to write the output's bytes to (see `StagedOutput.open_binary`)."""
        return self._staged.open_binary()

    @abstractmethod
    def _open(self) -> None:
        """Start the output at `staging_path`, which already exists and is empty."""

    def write(self, frame: Frame) -> None:
        """Append one frame; it must match `info` in size, chroma and bit depth."""
        if self._closed:
            raise OutputError(f"cannot write to {self.path}: the writer is closed")
        info = self.info
        if (frame.width, frame.height) != (info.width, info.height):
            raise InputFormatError(
                f"frame {self.frames_written} is {frame.width}x{frame.height}, "
                f"but {self.path} is {info.width}x{info.height}"
            )
        if frame.chroma != info.chroma or frame.bit_depth != info.bit_depth:
            raise InputFormatError(
                f"frame {self.frames_written} is {_layout(frame.chroma, frame.bit_depth)}, "
                f"but {self.path} is {_layout(info.chroma, info.bit_depth)}"
            )
        try:
            self._write(frame)
        except OutputError:
            raise
        except OSError as error:
            raise OutputError(f"cannot write {self.path}: {_describe(error)}") from None
        self.frames_written += 1

    @abstractmethod
    def _write(self, frame: Frame) -> None:
        """Write one validated frame to the staged output."""

    @abstractmethod
    def _finish(self) -> None:
        """Flush and close the staged output before it is moved into place."""

    def close(self) -> None:
        """Finish the output and move it into place."""
        if self._closed:
            return
        self._closed = True
        try:
            self._finish()
        except OSError as error:
            self._staged.discard()
            if isinstance(error, OutputError):
                raise
            raise OutputError(f"cannot write {self.path}: {_describe(error)}") from None
        except BaseException:
            self._staged.discard()
            raise
        self._staged.commit()

    def abort(self) -> None:
        """Drop everything written so far; no output appears."""
        if self._closed:
            return
        self._closed = True
        try:
            # A failure to finish does not matter: the output is being thrown away.
            with contextlib.suppress(Exception):
                self._finish()
        finally:
            self._staged.discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
