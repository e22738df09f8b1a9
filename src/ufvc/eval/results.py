"""The rate-distortion result row shared by every evaluation, and its JSON and CSV files.

One `RateRow` is one sequence coded at one quality setting by one codec configuration. Anchors
(`ufvc anchor`) and the neural codec (`ufvc eval`) write the same rows, so `ufvc bdrate` and the
plots can compare any two files.

Rates come from real bitstreams: `bits` is eight times the size of the file the codec wrote
(for anchors the raw elementary stream, for ufvc the .ufv file). A rate estimated from
likelihoods goes to `bpp_estimated` and is never mixed with `bpp_actual`.

A result file is resumable: `ResultStore` keeps the rows already measured and rewrites the whole
file after each new row, so an interrupted run loses at most the point it was working on.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ufvc.errors import InputFormatError, OutputError

RESULTS_FORMAT = "ufvc-rd-results"
RESULTS_VERSION = 1

# (codec, config, sequence, rate_control, quality): what makes a row unique in a file.
RowKey = tuple[str, str, str, str, float]


@dataclass
class RateRow:
    """One sequence coded at one quality setting: rate, distortion, speed and provenance."""

    codec: str  # "x264", "x265", "svt-av1", "vvc", "ufvc", ...
    config: str  # codec, preset and coding structure, e.g. "x264-medium-ld"
    sequence: str
    class_name: str
    rate_control: str  # what `quality` is: "crf", "qp" or "quality" (a model's quality index)
    quality: float  # the value of that parameter; an int when it is whole
    frames: int
    width: int
    height: int
    fps: float
    bits: int  # 8 x size of the coded file
    bpp_actual: float  # bits / (frames * width * height)
    kbps: float  # bits / duration / 1000, duration = frames / fps
    psnr_y: float  # dB, mean of per-frame values
    psnr_u: float
    psnr_v: float
    psnr_yuv: float  # mean of per-frame (6 Y + U + V) / 8
    encode_fps: float  # frames / wall-clock seconds of the encode loop including flush
    decode_fps: float  # frames / wall-clock seconds of demux and decode
    timing_runs: int = 1  # the speeds are the fastest of this many runs
    tools: dict[str, str] = field(default_factory=dict)  # tool name -> version string
    settings: str = ""  # the options the codec was run with
    bpp_estimated: float | None = None  # from likelihoods, when the codec can say

    @property
    def key(self) -> RowKey:
        """What identifies this row in a result file."""
        return (self.codec, self.config, self.sequence, self.rate_control, self.quality)

    @property
    def curve(self) -> str:
        """The RD curve this row is a point of: configuration and rate-control parameter."""
        return f"{self.config}:{self.rate_control}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (field order kept)."""
        return asdict(self)


def bits_per_pixel(bits: int, frames: int, width: int, height: int) -> float:
    """Bits per pixel over a whole sequence (luma pixels, the field's convention)."""
    return bits / (frames * width * height)


def kilobits_per_second(bits: int, frames: int, fps: float) -> float:
    """Average bit rate in kbit/s for `frames` frames shown at `fps`."""
    return bits * fps / frames / 1000.0


_FIELD_NAMES = tuple(f.name for f in fields(RateRow))
_REQUIRED = tuple(f.name for f in fields(RateRow) if f.name not in ("timing_runs", "tools",
                                                                     "settings", "bpp_estimated"))
_INT_FIELDS = ("frames", "width", "height", "bits", "timing_runs")
_STR_FIELDS = ("codec", "config", "sequence", "class_name", "rate_control", "settings")


def quality_value(value: Any) -> float:
    """A float, or an int when the value is whole (so CRF 22 stays 22 in files and tables)."""
    number = float(value)
    if math.isfinite(number) and number == int(number):
        return int(number)
    return number


def row_from_dict(data: dict[str, Any], *, where: str = "row") -> RateRow:
    """Build a row from a dict read from JSON or CSV; unknown keys are ignored."""
    missing = [name for name in _REQUIRED if name not in data or data[name] in (None, "")]
    if missing:
        raise InputFormatError(f"{where} lacks field(s): {', '.join(missing)}")
    values: dict[str, Any] = {}
    try:
        for name in _FIELD_NAMES:
            if name not in data:
                continue
            value = data[name]
            if name in _STR_FIELDS:
                values[name] = str(value)
            elif name in _INT_FIELDS:
                values[name] = int(float(value))
            elif name == "quality":
                values[name] = quality_value(value)
            elif name == "tools":
                values[name] = _tools_from(value)
            elif name == "bpp_estimated":
                values[name] = None if value in (None, "") else float(value)
            else:
                values[name] = float(value)
    except (TypeError, ValueError) as error:
        raise InputFormatError(f"{where}: bad value ({error})") from None
    return RateRow(**values)


def _tools_from(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if value in (None, ""):
        return {}
    # CSV cells hold "name=version;name=version".
    pairs = (item.split("=", 1) for item in str(value).split(";") if item)
    return {name: version for name, version in pairs}


def _tools_to_cell(tools: dict[str, str]) -> str:
    return ";".join(f"{name}={version}" for name, version in tools.items())


def rows_to_json(rows: Iterable[RateRow]) -> str:
    """The JSON text of a result file."""
    document = {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "rows": [row.to_dict() for row in rows],
    }
    return json.dumps(document, indent=1) + "\n"


def rows_to_csv(rows: Iterable[RateRow]) -> str:
    """The CSV text of a result file: one header line, one line per row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_FIELD_NAMES, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record = row.to_dict()
        record["tools"] = _tools_to_cell(row.tools)
        record["bpp_estimated"] = "" if row.bpp_estimated is None else row.bpp_estimated
        writer.writerow(record)
    return buffer.getvalue()


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def write_rows(path: str | Path, rows: Iterable[RateRow]) -> None:
    """Write a result file, JSON or CSV by its suffix, replacing it atomically."""
    path = Path(path)
    text = rows_to_csv(rows) if _is_csv(path) else rows_to_json(rows)
    temporary = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None


def read_rows(path: str | Path) -> list[RateRow]:
    """Read a result file written by `write_rows` (JSON or CSV by suffix)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFormatError(f"result file not found: {path}") from None
    if _is_csv(path):
        records = list(csv.DictReader(io.StringIO(text)))
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputFormatError(f"{path} is not valid JSON: {error}") from None
        if isinstance(document, dict):
            if document.get("format") != RESULTS_FORMAT:
                raise InputFormatError(f"{path} is not a ufvc result file (no format "
                                       f"'{RESULTS_FORMAT}')")
            if int(document.get("version", 0)) > RESULTS_VERSION:
                raise InputFormatError(f"{path} has result format version "
                                       f"{document['version']}; this ufvc reads up to "
                                       f"{RESULTS_VERSION}")
            records = document.get("rows", [])
        else:
            records = document
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise InputFormatError(f"{path}: 'rows' must be a list of objects")
    return [row_from_dict(record, where=f"{path} row {index + 1}")
            for index, record in enumerate(records)]


class ResultStore:
    """A result file that grows one row at a time, so that runs can be resumed.

    Rows already in the file are kept; `add` replaces a row with the same key or appends,
    then rewrites the file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._rows: dict[RowKey, RateRow] = {}
        if self.path.exists():
            for row in read_rows(self.path):
                self._rows[row.key] = row

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> list[RateRow]:
        """All rows, in the order they were first added."""
        return list(self._rows.values())

    def add(self, row: RateRow) -> None:
        """Record one row and save the file."""
        self._rows[row.key] = row
        write_rows(self.path, self._rows.values())
