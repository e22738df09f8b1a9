"""Integer probability tables for the entropy coder.

Two kinds of table, both built once and then only indexed:

* `GaussianTables`: one table per scale bin for the latent y, whose residual
  symbols follow a zero-mean discretised Gaussian with a predicted scale. The
  table depends only on its configuration, so encoder and decoder build it alone.
* `FactorizedTables`: one table per (qp, channel) for the hyper-latent z, built
  from the network's learned CDF (or directly from the official h, b, a layout).

Every table is a row of integer frequencies >= 1 that sum to 2**precision_bits:
symbol values in a finite range first, then one ESCAPE entry. A value outside
the range is coded as ESCAPE followed by a bypass code (see `ufvc.entropy.coder`),
so every symbol in [SYMBOL_MIN, SYMBOL_MAX] can be coded. The byte-level rules are
in docs/bitstream.md, section "Entropy tables".
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from ufvc.defaults import DEFAULT_SKIP_THRESHOLD
from ufvc.errors import CheckpointError, InputFormatError

SYMBOL_MIN = -(2**15)  # smallest symbol the coder accepts
SYMBOL_MAX = 2**15 - 1  # largest symbol the coder accepts
SKIPPED = -1  # bin index of a symbol that is not coded (decoded as 0)
MAX_PRECISION_BITS = 24  # constriction's range coder works with 24-bit probabilities


def quantize_pmf(pmf: np.ndarray, precision_bits: int) -> np.ndarray:
    """Integer frequencies along the last axis: each >= 1, each row summing to 2**precision_bits.

    Every entry gets 1 plus the floor of its share of the remaining mass; the counts
    left over go to the entries with the largest fractional parts (ties to the lower
    index). Only float64 arithmetic, floor and a stable sort: the same everywhere.
    """
    pmf = np.asarray(pmf, dtype=np.float64)
    n = pmf.shape[-1]
    total = 1 << precision_bits
    if n > total:
        raise InputFormatError(f"{n} table entries do not fit in {precision_bits}-bit precision")
    normalised = pmf / pmf.sum(axis=-1, keepdims=True)
    scaled = normalised * (total - n)
    base = np.floor(scaled)
    freq = base.astype(np.int64) + 1
    leftover = total - freq.sum(axis=-1, keepdims=True)
    order = np.argsort(-(scaled - base), axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n), order.shape), axis=-1)
    freq += rank < leftover
    return freq.astype(np.int32)


def _as_float64(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


def _check_precision(precision_bits: int) -> None:
    if not 8 <= precision_bits <= MAX_PRECISION_BITS:
        raise InputFormatError(
            f"precision_bits must be in [8, {MAX_PRECISION_BITS}], got {precision_bits}"
        )


def _gaussian_pmf(sigma: float, half_range: int) -> np.ndarray:
    """P(v) for v in [-R, R] of a unit-bin discretised N(0, sigma^2), then P(|v| > R).

    Written with erfc of |v| so the tails keep their relative precision.
    """
    scale = 1.0 / (sigma * math.sqrt(2.0))
    tail = [math.erfc((v - 0.5) * scale) for v in range(1, half_range + 2)]  # P(|X| > v - 0.5)
    one_side = [0.5 * (tail[i] - tail[i + 1]) for i in range(half_range)]
    centre = math.erf(0.5 * scale)
    escape = tail[half_range]
    return np.array([*one_side[::-1], centre, *one_side, escape], dtype=np.float64)


@dataclass(frozen=True)
class GaussianTables:
    """Integer tables of a zero-mean discretised Gaussian, one per log-spaced scale bin.

    Bin b holds the scales in [scale_table[b], scale_table[b+1]); scales below
    scale_min fall into bin 0 and scales >= scale_max into the last bin. Bin b is coded
    with sigma = scale_table[b] (the release's convention) over the values
    [-R_b, R_b], R_b = clip(ceil(tail_sigmas * upper edge of b), 1, max_range),
    plus ESCAPE. The configuration decides every bit; nothing is loaded.
    """

    scale_min: float = 0.11
    scale_max: float = 16.0
    num_bins: int = 128
    precision_bits: int = 16
    tail_sigmas: float = 8.0  # the value range covers this many upper-edge sigmas ...
    max_range: int = 64  # ... but never more than +-max_range

    def __post_init__(self) -> None:
        if not (0.0 < self.scale_min < self.scale_max and math.isfinite(self.scale_max)):
            raise InputFormatError(
                f"need 0 < scale_min < scale_max, got {self.scale_min}, {self.scale_max}"
            )
        if not 2 <= self.num_bins <= 2**15:
            raise InputFormatError(f"num_bins must be in [2, 32768], got {self.num_bins}")
        _check_precision(self.precision_bits)
        if not (self.tail_sigmas > 0 and math.isfinite(self.tail_sigmas)):
            raise InputFormatError(f"tail_sigmas must be positive, got {self.tail_sigmas}")
        if not 1 <= self.max_range <= 2**14 or 2 * self.max_range + 2 > 1 << self.precision_bits:
            raise InputFormatError(
                f"max_range {self.max_range} does not fit {self.precision_bits}-bit tables"
            )

    @cached_property
    def scale_table(self) -> np.ndarray:
        """Lower scale edge of each bin (float64 [num_bins]); also the sigma it is coded with."""
        step = math.log(self.scale_max / self.scale_min) / (self.num_bins - 1)
        table = [self.scale_min * math.exp(b * step) for b in range(self.num_bins)]
        table[-1] = self.scale_max
        return np.array(table, dtype=np.float64)

    @cached_property
    def ranges(self) -> np.ndarray:
        """R_b per bin (int32 [num_bins]): bin b codes values in [-R_b, R_b] without escape."""
        upper = np.append(self.scale_table[1:], self.scale_max)
        # Clipped as floats: a huge scale or tail (from a damaged header) must not overflow.
        half = np.clip(np.ceil(self.tail_sigmas * upper), 1, self.max_range)
        return half.astype(np.int32)

    @property
    def table_sizes(self) -> np.ndarray:
        """Entries per bin (2 R_b + 1 values and ESCAPE, the last entry)."""
        return 2 * self.ranges + 2

    @cached_property
    def pmf(self) -> np.ndarray:
        """Integer frequencies (int32 [num_bins, 2*max_range + 2]); zero past a bin's size."""
        table = np.zeros((self.num_bins, 2 * self.max_range + 2), dtype=np.int32)
        for b, (sigma, half) in enumerate(zip(self.scale_table, self.ranges, strict=True)):
            table[b, : 2 * half + 2] = quantize_pmf(
                _gaussian_pmf(float(sigma), int(half)), self.precision_bits
            )
        return table

    def scale_to_index(self, scales: np.ndarray | torch.Tensor) -> np.ndarray:
        """Scale bin (int16, same shape) of each scale, by comparison with `scale_table`.

        Equal to floor((ln clamp(s, scale_min, scale_max) - ln scale_min) / step), but
        decided by exact comparisons, so encoder and decoder agree on every boundary.
        """
        s = _as_float64(scales)
        if np.isnan(s).any():
            raise InputFormatError("Gaussian scales contain NaN")
        index = np.searchsorted(self.scale_table[1:], s, side="right")
        return index.astype(np.int16)

    def coding_bins(
        self,
        scales: np.ndarray | torch.Tensor,
        skip_threshold: float = DEFAULT_SKIP_THRESHOLD,
    ) -> np.ndarray:
        """`scale_to_index`, with SKIPPED (-1) where scale <= skip_threshold.

        The one rule both sides apply. The threshold is rounded to float32 first, as the
        stream header stores it; 0 disables skipping for positive scales.
        """
        if not (skip_threshold >= 0 and math.isfinite(skip_threshold)):
            raise InputFormatError(f"skip threshold must be >= 0, got {skip_threshold}")
        s = _as_float64(scales)
        bins = self.scale_to_index(s)
        bins[s <= float(np.float32(skip_threshold))] = SKIPPED
        return bins

    def digest(self) -> bytes:
        """SHA-256 of the configuration, bin edges and integer tables."""
        h = hashlib.sha256(b"ufvc gaussian tables v1\0")
        h.update(
            struct.pack(
                "<ddIIdI",
                self.scale_min,
                self.scale_max,
                self.num_bins,
                self.precision_bits,
                self.tail_sigmas,
                self.max_range,
            )
        )
        h.update(self.scale_table.astype("<f8").tobytes())
        h.update(self.pmf.astype("<i4").tobytes())
        return h.digest()


@dataclass(frozen=True, eq=False)
class FactorizedTables:
    """Integer tables of the factorized z density, one per (qp, channel).

    `pmf[qp, c]` holds the frequencies of symbol_min..symbol_max followed by ESCAPE.
    """

    pmf: np.ndarray = field(repr=False)  # int32 [num_qp, num_channels, symbol_max - symbol_min + 2]
    symbol_min: int = -64
    symbol_max: int = 63
    precision_bits: int = 16

    def __post_init__(self) -> None:
        check_factorized_range(self.symbol_min, self.symbol_max, self.precision_bits)
        expected = self.symbol_max - self.symbol_min + 2
        if self.pmf.ndim != 3 or self.pmf.shape[2] != expected or self.pmf.dtype != np.int32:
            raise InputFormatError(
                f"factorized pmf must be int32 [qp, channel, {expected}], "
                f"got {self.pmf.dtype} {list(self.pmf.shape)}"
            )
        if (self.pmf < 1).any() or (self.pmf.sum(-1) != 1 << self.precision_bits).any():
            raise InputFormatError("factorized pmf rows must be >= 1 and sum to 2**precision_bits")

    @property
    def num_qp(self) -> int:
        return int(self.pmf.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.pmf.shape[1])

    @property
    def escape_index(self) -> int:
        """Index of ESCAPE in every row (the number of in-range values)."""
        return self.symbol_max - self.symbol_min + 1

    @classmethod
    def from_cdf(
        cls,
        cdf_fn: Callable[[torch.Tensor], torch.Tensor],
        num_qp: int,
        num_channels: int,
        symbol_min: int = -64,
        symbol_max: int = 63,
        precision_bits: int = 16,
    ) -> FactorizedTables:
        """Tables from a continuous CDF evaluated at the half-integers.

        `cdf_fn(x)` takes float64 x of shape [num_qp, num_channels, K] (every row the
        same points symbol_min - 0.5 .. symbol_max + 0.5) and returns F(x), same shape.
        P(v) = F(v + 0.5) - F(v - 0.5); ESCAPE gets the mass of both tails.
        """
        check_factorized_range(symbol_min, symbol_max, precision_bits)
        points = torch.arange(symbol_min, symbol_max + 2, dtype=torch.float64) - 0.5
        x = points.expand(num_qp, num_channels, points.numel()).contiguous()
        with torch.no_grad():
            cdf = cdf_fn(x)
        if not isinstance(cdf, torch.Tensor) or cdf.shape != x.shape:
            raise InputFormatError(f"cdf_fn must return a tensor of shape {list(x.shape)}")
        cdf = cdf.detach().to("cpu", torch.float64).numpy()
        return cls._from_cdf_values(cdf, symbol_min, symbol_max, precision_bits)

    @classmethod
    def from_official(
        cls,
        h: np.ndarray | torch.Tensor,
        b: np.ndarray | torch.Tensor,
        a: np.ndarray | torch.Tensor,
        symbol_min: int = -64,
        symbol_max: int = 63,
        precision_bits: int = 16,
    ) -> FactorizedTables:
        """Tables from the release's factorized density: h, b [Q, C, 4], a [Q, C, 3].

        Per channel, for i in 0..3: x <- x * softplus(h_i) + b_i, then for i < 3
        x <- x + tanh(x) * tanh(a_i); F = sigmoid(x). Computed in float64 with numpy.
        """
        h64, b64, a64 = (_as_float64(t) for t in (h, b, a))
        if h64.ndim != 3 or h64.shape[2] != 4 or b64.shape != h64.shape:
            raise CheckpointError(
                f"factorized h and b must be [qp, channel, 4], got {list(h64.shape)}, "
                f"{list(b64.shape)}"
            )
        if a64.shape != (*h64.shape[:2], 3):
            raise CheckpointError(f"factorized a must be [qp, channel, 3], got {list(a64.shape)}")
        check_factorized_range(symbol_min, symbol_max, precision_bits)
        # numpy on one thread: the result cannot depend on how torch splits work over threads.
        gain, gate = np.logaddexp(0.0, h64), np.tanh(a64)
        x = np.arange(symbol_min, symbol_max + 2, dtype=np.float64) - 0.5
        x = np.broadcast_to(x, (*h64.shape[:2], x.size))
        for i in range(4):
            x = x * gain[..., i : i + 1] + b64[..., i : i + 1]
            if i < 3:
                x = x + np.tanh(x) * gate[..., i : i + 1]
        cdf = 0.5 + 0.5 * np.tanh(0.5 * x)  # sigmoid, without overflow in exp
        return cls._from_cdf_values(cdf, symbol_min, symbol_max, precision_bits)

    @classmethod
    def _from_cdf_values(
        cls, cdf: np.ndarray, symbol_min: int, symbol_max: int, precision_bits: int
    ) -> FactorizedTables:
        """Tables from F at symbol_min - 0.5 .. symbol_max + 0.5 (float64 [Q, C, K])."""
        if not np.isfinite(cdf).all():
            raise InputFormatError("the factorized CDF has non-finite values")
        inside = np.clip(np.diff(cdf, axis=-1), 0.0, None)
        escape = np.clip(cdf[..., :1], 0.0, None) + np.clip(1.0 - cdf[..., -1:], 0.0, None)
        pmf = quantize_pmf(np.concatenate([inside, escape], axis=-1), precision_bits)
        return cls(pmf, symbol_min, symbol_max, precision_bits)

    def digest(self) -> bytes:
        """SHA-256 of the symbol range, precision and integer tables."""
        h = hashlib.sha256(b"ufvc factorized tables v1\0")
        h.update(
            struct.pack(
                "<iiIII",
                self.symbol_min,
                self.symbol_max,
                self.precision_bits,
                self.num_qp,
                self.num_channels,
            )
        )
        h.update(self.pmf.astype("<i4").tobytes())
        return h.digest()


def check_factorized_range(symbol_min: int, symbol_max: int, precision_bits: int) -> None:
    """Raise InputFormatError unless [symbol_min, symbol_max] can be a z table range."""
    _check_precision(precision_bits)
    # The escape code needs 0 inside the range (docs/bitstream.md, section 6.3).
    if not SYMBOL_MIN < symbol_min <= 0 <= symbol_max < SYMBOL_MAX:
        raise InputFormatError(
            f"factorized symbol range [{symbol_min}, {symbol_max}] must contain 0 and lie "
            f"inside [{SYMBOL_MIN}, {SYMBOL_MAX}]"
        )
    if symbol_max - symbol_min + 2 > 1 << precision_bits:
        raise InputFormatError(
            f"factorized symbol range [{symbol_min}, {symbol_max}] does not fit "
            f"{precision_bits}-bit tables"
        )


def entropy_digest(gaussian: GaussianTables, *factorized: FactorizedTables) -> bytes:
    """16-byte digest of all tables a stream needs (the Gaussian ones, then each z table
    set in the codec's order), stored in the stream header so that a decoder can tell
    that it built exactly the encoder's tables."""
    joined = gaussian.digest() + b"".join(tables.digest() for tables in factorized)
    return hashlib.sha256(joined).digest()[:16]
