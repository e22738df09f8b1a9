"""How to code a stream: one frozen `CodingOptions`, built once from the CLI or Python.

`ufvc encode`, `ufvc eval` and `ufvc bench` build one, and `Encoder` takes it whole; the
fields that decoders must know (skip threshold, precision, compiled networks, CUDA graphs)
go into the stream header (docs/bitstream.md 2.2, 2.4), the rest only steer the encoder.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch

from ufvc.defaults import (
    DEFAULT_MODE_DECISION,
    DEFAULT_PRECISION,
    DEFAULT_QUALITY,
    DEFAULT_RESET_INTERVAL,
    DEFAULT_SCENECUT,
    DEFAULT_SKIP_THRESHOLD,
    MODE_DECISIONS,
    NUM_QUALITY_LEVELS,
    PRECISIONS,
)
from ufvc.errors import InputFormatError

# The arithmetic the networks run in, by the names the CLI, the header and training use.
PRECISION_DTYPES: dict[str, torch.dtype] = dict(
    zip(PRECISIONS, (torch.float32, torch.float32, torch.bfloat16, torch.float16), strict=True)
)

_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgG]?)(?:bps|b/s|b)?\s*$")
_RATE_SCALE = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_rate(text: str | float) -> float:
    """'800k', '1.5M', '250000' -> bits per second (k = 1000, M = 1e6)."""
    if isinstance(text, int | float):
        rate = float(text)
    else:
        match = _RATE.match(text)
        if match is None:
            raise InputFormatError(f"a rate looks like 800k, 1.5M or 250000 (bits/s), "
                                   f"got {text!r}")
        rate = float(match.group(1)) * _RATE_SCALE[match.group(2).lower()]
    if not (rate > 0 and math.isfinite(rate)):
        raise InputFormatError(f"a rate must be positive, got {text!r}")
    return rate


def check_quality(quality: int) -> int:
    """Validate a quality level (0..63, higher is better)."""
    if not 0 <= int(quality) < NUM_QUALITY_LEVELS:
        raise InputFormatError(
            f"quality must be 0..{NUM_QUALITY_LEVELS - 1} (higher is better), got {quality}"
        )
    return int(quality)


def precision_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision name (portable and fp32 compute in float32)."""
    if precision not in PRECISION_DTYPES:
        raise InputFormatError(f"precision must be one of {', '.join(PRECISIONS)}, "
                               f"got {precision!r}")
    return PRECISION_DTYPES[precision]


def dtype_name(precision: str) -> str:
    """'bf16' -> 'bfloat16': the dtype's own name, as reports print it."""
    return str(precision_dtype(precision)).removeprefix("torch.")


@dataclass(frozen=True)
class CodingOptions:
    """Every choice an encoder makes, validated on construction.

    Rate: `quality` (0..63, higher is better) is constant quality; `bitrate` (bits/s)
    asks for that average instead (the controller picks every record's quality).
    `maxrate` and `bufsize` (bits/s, bits) add a leaky-bucket (VBV) limit to either mode;
    with `quality`, records go below it only where the limit needs.
    Structure: an intra frame every `intra_period` frames (0: only where needed), on scene
    cuts scoring above `scenecut` (None: no detection), the temporal memory rebuilt every
    `reset_interval` frames (0: never); `mode_decision` "rd" codes a chunk as intra frames
    where that costs less at the quality (`ufvc.codec.modedecision`; constant quality only,
    a rate-controlled structure stays fixed). Arithmetic: `precision`, `compile`, `cuda_graphs`,
    `pipeline` (None: when a core is free), `device`, `threads` (None: torch's choice).
    """

    quality: int = DEFAULT_QUALITY
    bitrate: float | None = None
    maxrate: float | None = None
    bufsize: float | None = None
    intra_period: int = 0
    reset_interval: int = DEFAULT_RESET_INTERVAL
    scenecut: float | None = DEFAULT_SCENECUT
    mode_decision: str = DEFAULT_MODE_DECISION
    skip_threshold: float = DEFAULT_SKIP_THRESHOLD
    precision: str = DEFAULT_PRECISION
    compile: bool = False
    cuda_graphs: bool = False
    pipeline: bool | None = None
    device: str = "cpu"
    threads: int | None = None

    def __post_init__(self) -> None:
        check_quality(self.quality)
        precision_dtype(self.precision)
        if self.reset_interval < 0 or self.intra_period < 0:
            raise InputFormatError("reset interval and intra period must be >= 0")
        if not (self.skip_threshold >= 0 and math.isfinite(self.skip_threshold)):
            raise InputFormatError(f"skip threshold must be >= 0, got {self.skip_threshold}")
        if self.mode_decision not in MODE_DECISIONS:
            raise InputFormatError(f"mode decision must be one of {', '.join(MODE_DECISIONS)}, "
                                   f"got {self.mode_decision!r}")
        if self.scenecut is not None and not 0 < self.scenecut <= 100:
            raise InputFormatError(f"scene-cut threshold must be in (0, 100], got {self.scenecut}")
        for name in ("bitrate", "maxrate", "bufsize"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, parse_rate(value))
        if (self.maxrate is None) != (self.bufsize is None):
            raise InputFormatError("--maxrate and --bufsize go together")
        if self.bitrate is not None and self.maxrate is not None and self.bitrate > self.maxrate:
            raise InputFormatError(f"bitrate {self.bitrate:g} exceeds maxrate {self.maxrate:g}")
        if self.threads is not None and self.threads < 1:
            raise InputFormatError(f"threads must be >= 1, got {self.threads}")
        object.__setattr__(self, "device", str(self.device))

    @property
    def rate_controlled(self) -> bool:
        """Whether a controller picks the qp of each record (ABR and/or VBV)."""
        return self.bitrate is not None or self.maxrate is not None

    @property
    def effective_mode_decision(self) -> str:
        """The decision the encoder makes: rate control keeps the structure fixed."""
        return "fixed" if self.rate_controlled else self.mode_decision

    def with_(self, **changes: Any) -> CodingOptions:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def describe(self) -> str:
        """The options as `key=value` words, for result rows and logs."""
        rate = (f"bitrate={self.bitrate:g}" if self.bitrate is not None
                else f"quality={self.quality}")
        vbv = (f" maxrate={self.maxrate:g} bufsize={self.bufsize:g}"
               if self.maxrate is not None else "")
        scenecut = "off" if self.scenecut is None else f"{self.scenecut:g}"
        return (f"{rate}{vbv} reset_interval={self.reset_interval} "
                f"intra_period={self.intra_period} scenecut={scenecut} "
                f"mode_decision={self.effective_mode_decision} "
                f"skip_threshold={self.skip_threshold:g} precision={self.precision}")


def coding_options(options: CodingOptions | None = None, **changes: Any) -> CodingOptions:
    """`options` (default: `CodingOptions()`) with `changes` applied: the Python API's
    keyword arguments (`encode(src, dst, quality=40)`) land here."""
    base = options or CodingOptions()
    unknown = set(changes) - set(CodingOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown coding option(s): {', '.join(sorted(unknown))}")
    return replace(base, **changes) if changes else base


@contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """Run a block with `count` intra-op threads (None: torch's default); restores after."""
    previous = torch.get_num_threads()
    if count is not None:
        if count < 1:
            raise InputFormatError(f"threads must be >= 1, got {count}")
        torch.set_num_threads(count)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
