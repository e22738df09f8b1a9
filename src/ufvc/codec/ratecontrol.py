"""Rate control: a qp per record, for an average bitrate (ABR) and a leaky-bucket limit (VBV).

The model: a record of `frames` frames of `pixels` samples, coded at qp q, takes
`pixels * frames * exp(a_kind + slope_kind * q)` bits. The training lambdas are
log-spaced over qp, so log(bits) is close to linear in q; the slopes are the model's
(measured on the sample clips), and `a_kind` is fitted online, one per record kind
(intra frame, first chunk after it, steady chunks), by a moving average over about two
records.

ABR plans the rest of the sequence (all remaining frames when the frame count is known,
else `WINDOW_SECONDS`): it picks the q whose predicted cost for the current record plus
the rest at the same q meets the budget left, i.e. the target for the whole sequence
minus the bits spent so far (overflow compensation). Keeping one q for every kind is
what a constant-quality encode does, so control costs little rate-distortion. q moves at
most `MAX_QP_STEP` between records.

Bits are known in two steps: after the networks, the entropy model's likelihoods give
the y payload's bits (`estimate_bits`), scaled by a per-kind factor fitted from the
records written (z, headers and coder overhead); after arithmetic coding, the exact
size. The estimate drives decisions while the previous record is still being coded on
the pipeline's worker, and lets the encoder retry a record at a corrected q before
coding it when the model missed badly (the first intra frame, a scene change).

VBV: the encoder-side bucket (docs/rate-control.md) starts empty, takes each record's
bits when it is written and drains `maxrate / fps` per frame of the record; a record must
fit in `bufsize` minus the level. The encoder checks the exact size of every record
before writing it and re-encodes at a lower q when it would overflow, so the limit holds
unless even q 0 overflows (then it warns and counts the overflow).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from ufvc.codec.options import NUM_QUALITY_LEVELS, CodingOptions
from ufvc.entropy.tables import GaussianTables

MAX_QP_STEP = 4  # most the qp moves from one record to the next (VBV may lower it more)
WINDOW_SECONDS = 2.0  # ABR horizon when the sequence's length is unknown
MODEL_WEIGHT = 0.5  # weight of the newest record in the moving average of a_kind
RETRY_MISS = math.log(1.4)  # retry a record whose estimate misses its plan by more
VBV_AIM = 0.9  # plan records to fill at most this share of the free buffer
ESCAPE_BITS = 24.0  # a rough cost of an escaped y symbol (escapes are rare)
# The container around the records (docs/bitstream.md 4): the index record's header and
# frame count with the footer, and one index entry per intra record.
INDEX_BITS = 8 * (16 + 4 + 12)
INDEX_ENTRY_BITS = 8 * 16


class RecordKind(Enum):
    """Record types with their own rate model."""

    INTRA = "intra"
    FIRST = "first chunk"  # the chunk after an intra frame: no temporal memory yet
    STEADY = "chunk"


# d ln(bits) / d qp, and log bits per pixel at q = 0 before any record is seen: ufvc-s on
# the sample clips at qualities 20 and 50 (the medians of the three clips).
QP_LOG_SLOPE = {RecordKind.INTRA: 0.046, RecordKind.FIRST: 0.058, RecordKind.STEADY: 0.058}
PRIOR_LOG_BPP = {RecordKind.INTRA: math.log(0.055), RecordKind.FIRST: math.log(0.0048),
                 RecordKind.STEADY: math.log(0.0046)}


def estimate_y_bits(tables: GaussianTables, steps: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Bits the Gaussian tables give the y symbols of a record (skipped ones cost none)."""
    cost = _cost_table(tables)
    total = 0.0
    for symbols, bins in steps:
        coded = bins >= 0
        if not coded.any():
            continue
        values, index = symbols[coded].astype(np.int64), bins[coded].astype(np.int64)
        ranges = tables.ranges[index].astype(np.int64)
        escaped = np.abs(values) > ranges
        column = np.where(escaped, 2 * ranges + 1, values + ranges)
        total += float(cost[index, column].sum(dtype=np.float64))
        total += ESCAPE_BITS * int(escaped.sum())
    return total


# Keyed by the tables' (frozen, hashable) configuration: equal tables share one cost
# table, and an id() key could be reused by other tables once the first are freed.
@functools.lru_cache(maxsize=4)
def _cost_table(tables: GaussianTables) -> np.ndarray:
    """-log2 of every table entry's probability (float32 [bins, entries])."""
    pmf = tables.pmf.astype(np.float64)
    return (tables.precision_bits - np.log2(np.maximum(pmf, 1.0))).astype(np.float32)


@dataclass
class VbvBucket:
    """The encoder-side leaky bucket: bits in, `maxrate / fps` out per frame."""

    bufsize: float
    drain_per_frame: float
    level: float = 0.0

    def space(self) -> float:
        """Bits the next record may take."""
        return self.bufsize - self.level

    def add(self, bits: float, frames: int) -> None:
        self.level = max(0.0, self.level + bits - frames * self.drain_per_frame)


@dataclass
class _Written:
    """A record decided on whose exact size is not known yet."""

    kind: RecordKind
    predicted: float


@dataclass
class RateController:
    """Chooses each record's qp; told each record's estimated and exact bits."""

    options: CodingOptions
    pixels: int
    fps: float
    frames_per_chunk: int
    total_frames: int | None = None
    header_bits: int = 0  # the sequence header's: spent before the first record
    log_bpp: dict[RecordKind, float] = field(default_factory=dict)  # fitted a_kind
    overhead: dict[RecordKind, float] = field(default_factory=dict)  # exact / estimated
    spent: float = 0.0  # exact bits of written records, predicted for those in coding
    frames_done: int = 0
    last_qp: int | None = None
    vbv: VbvBucket | None = None
    vbv_overflows: int = 0

    def __post_init__(self) -> None:
        if self.options.maxrate is not None and self.options.bufsize is not None:
            self.vbv = VbvBucket(self.options.bufsize, self.options.maxrate / self.fps)
        self._frames_since_intra = 0
        self.spent = float(self.header_bits + INDEX_BITS)

    # The model.

    def _log_bpp(self, kind: RecordKind) -> float:
        if kind in self.log_bpp:
            return self.log_bpp[kind]
        for known in (RecordKind.STEADY, RecordKind.FIRST, RecordKind.INTRA):
            if known in self.log_bpp:  # shift the prior by what this clip showed
                return self.log_bpp[known] + PRIOR_LOG_BPP[kind] - PRIOR_LOG_BPP[known]
        return PRIOR_LOG_BPP[kind]

    def predict(self, kind: RecordKind, frames: int, qp: float) -> float:
        """Bits the model gives a record."""
        return self.pixels * frames * math.exp(self._log_bpp(kind) + QP_LOG_SLOPE[kind] * qp)

    def _fit(self, kind: RecordKind, frames: int, qp: int, bits: float) -> None:
        observed = math.log(max(bits, 1.0) / (self.pixels * frames)) - QP_LOG_SLOPE[kind] * qp
        if kind in self.log_bpp:
            observed = MODEL_WEIGHT * observed + (1 - MODEL_WEIGHT) * self.log_bpp[kind]
        self.log_bpp[kind] = observed

    def from_estimate(self, kind: RecordKind, estimated: float) -> float:
        """Predicted exact bits of a record from its y-bit estimate."""
        return estimated * self.overhead.get(kind, 1.05)

    # Decisions.

    def _plan_cost(self, kind: RecordKind, frames: int, qp: float, horizon: int) -> float:
        """Predicted bits of this record and of `horizon - frames` frames after it."""
        cost = self.predict(kind, frames, qp)
        if kind == RecordKind.INTRA:
            cost += INDEX_ENTRY_BITS
        rest = max(horizon - frames, 0)
        period = self.options.intra_period
        since = 0 if kind == RecordKind.INTRA else self._frames_since_intra + frames
        first_pending = kind == RecordKind.INTRA
        while rest > 0:
            if period and since >= period:
                cost += self.predict(RecordKind.INTRA, 1, qp)
                rest, since, first_pending = rest - 1, 0, True
                continue
            step = min(rest, self.frames_per_chunk, period - since if period else rest)
            cost += self.predict(RecordKind.FIRST if first_pending else RecordKind.STEADY,
                                 step, qp)
            rest, since, first_pending = rest - step, since + step, False
        return cost

    def choose(self, kind: RecordKind, frames: int, *, bounded: bool = True) -> int:
        """The qp for the next record of `kind` holding `frames` frames; within
        `MAX_QP_STEP` of the last record's when `bounded`."""
        qp = self.options.quality
        if self.options.bitrate is not None:
            per_frame = self.options.bitrate / self.fps
            if self.total_frames and self.total_frames >= self.frames_done + frames:
                horizon = self.total_frames - self.frames_done
                budget = per_frame * self.total_frames - self.spent
            else:
                horizon = max(frames, round(WINDOW_SECONDS * self.fps))
                budget = per_frame * (horizon + self.frames_done) - self.spent
            budget = max(budget, 0.2 * per_frame * horizon)
            qp = min(range(NUM_QUALITY_LEVELS), key=lambda q: abs(
                math.log(self._plan_cost(kind, frames, q, horizon) / budget)))
            if bounded and self.last_qp is not None:
                qp = min(max(qp, self.last_qp - MAX_QP_STEP), self.last_qp + MAX_QP_STEP)
        if self.vbv is not None:
            qp = min(qp, self.vbv_ceiling(kind, frames))
        return qp

    def vbv_ceiling(self, kind: RecordKind, frames: int) -> int:
        """The highest qp whose predicted bits fit the aimed share of the free buffer."""
        assert self.vbv is not None
        room = VBV_AIM * self.vbv.space()
        fitting = [q for q in range(NUM_QUALITY_LEVELS) if self.predict(kind, frames, q) <= room]
        return max(fitting, default=0)

    def review(self, kind: RecordKind, frames: int, qp: int, estimated: float,
               first_try: bool) -> int | None:
        """After the networks: a qp to code the record at instead, or None to keep `qp`.

        The estimate refits the record's model. A record is redone when it would overflow
        the VBV buffer, or on its first try when the estimate misses the plan badly."""
        predicted = self.from_estimate(kind, estimated)
        planned = self.predict(kind, frames, qp)
        self._fit(kind, frames, qp, predicted)
        if self.vbv is not None and predicted > self.vbv.space():
            if qp == 0:
                return None
            drop = math.log(predicted / (VBV_AIM * self.vbv.space())) / QP_LOG_SLOPE[kind]
            return max(0, qp - max(1, math.ceil(drop)))
        if first_try and abs(math.log(predicted / planned)) > RETRY_MISS:
            # The model was wrong (a new scene, the first records): move freely.
            better = self.choose(kind, frames, bounded=False)
            if abs(better - qp) >= 2:
                return better
        return None

    def accept(self, kind: RecordKind, frames: int, qp: int, estimated: float) -> None:
        """The record is coded at `qp`; its exact size follows with `written`."""
        self.spent += self.from_estimate(kind, estimated)
        if kind == RecordKind.INTRA:
            self.spent += INDEX_ENTRY_BITS
        self.frames_done += frames
        self.last_qp = qp
        self._frames_since_intra = 0 if kind == RecordKind.INTRA else \
            self._frames_since_intra + frames

    def written(self, kind: RecordKind, frames: int, estimated: float, bits: int) -> None:
        """A record's exact size: correct the spent bits and the overhead factor."""
        self.spent += bits - self.from_estimate(kind, estimated)
        if estimated > 0:
            ratio = bits / estimated
            self.overhead[kind] = (ratio if kind not in self.overhead else
                                   MODEL_WEIGHT * ratio + (1 - MODEL_WEIGHT) * self.overhead[kind])
        if self.vbv is not None:
            self.vbv.add(bits, frames)

    def fits(self, bits: int) -> bool:
        """Whether a record of `bits` fits the VBV buffer now (always, without VBV)."""
        return self.vbv is None or bits <= self.vbv.space()
