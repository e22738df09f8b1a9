"""Range coding of integer symbols: the only module that talks to constriction.

The coder sees int32 symbols and integer table indexes, never a network float.
`SymbolWriter` and `SymbolReader` code a sequence of calls into one payload; the
reader must make the same calls with the same bins/channels, in the same order.
Within a call nothing loops over symbols in Python: symbols are grouped by table
(stable sort on the bin or channel) and each group is one constriction call with one
fixed model. The byte layout and the symbol order are in docs/bitstream.md, section
"Entropy payload".

Everything that affects the bits is fixed here:

* coder: `constriction.stream.queue.RangeEncoder/RangeDecoder` (32-bit words, 64-bit
  state, 24-bit probabilities), first in first out, so a decoder can parse one payload
  in several calls (one per spatial-prior step) while the networks run in between;
* models: `Categorical(frequencies as float64, perfect=False)`. constriction turns the
  2**P integer frequencies into 24-bit ones with its fast rule
  (`from_floating_point_probabilities_fast`):
  left_cumulative_i = floor(C_i * (2**24 - n) / 2**P) + i, deterministic because the
  inputs are exact integers. A golden test pins the resulting bytes, so a constriction
  release that changed the rule would be caught;
* escapes: `Uniform(32)` for (sign, length) and `Uniform(2**k)` for k mantissa bits;
* a 16-bit check value closes every stream, so parsing with the wrong tables or too
  little data is detected by `SymbolReader.ensure_consumed`.

Parallel streams: `num_streams` splits each call's symbols into contiguous segments,
each coded into its own range coder; given an `executor`, the segments are coded
concurrently. constriction 0.5 holds the GIL for the whole of each encode or decode
call (a 0.5 s decode call stalled another Python thread for 0.5 s), so threads only
overlap the numpy work between those calls; benchmarks/bench_entropy.py measures what
that gains. The split is in the format regardless, so that a GIL-free decoder can
parse the segments fully in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import TypeVar

import constriction
import numpy as np

from ufvc.entropy.tables import SKIPPED, SYMBOL_MAX, SYMBOL_MIN, FactorizedTables, GaussianTables
from ufvc.errors import CorruptStreamError, InputFormatError

# constriction's extension modules are attributes, not importable submodules.
Categorical = constriction.stream.model.Categorical
Uniform = constriction.stream.model.Uniform
RangeEncoder = constriction.stream.queue.RangeEncoder
RangeDecoder = constriction.stream.queue.RangeDecoder

CODER_ID = 1  # stream header value for this coder and model construction (docs/bitstream.md)
MAX_STREAMS = 255
CHECK_VALUE = 0x5A3C  # closes every stream (16 bits)
_CHECK_MODEL = Uniform(1 << 16)
# Escape prefix: 2 * k + below, k = number of mantissa bits (0..15), below = value < range.
_ESCAPE_PREFIX_SIZE = 32
_ESCAPE_PREFIX_MODEL = Uniform(_ESCAPE_PREFIX_SIZE)
_UNIFORM_FAMILY = Uniform()
T = TypeVar("T")


def _categorical(frequencies: np.ndarray) -> Categorical:
    return Categorical(frequencies.astype(np.float64), perfect=False)


class CoderModels:
    """constriction models built once from the integer tables of one checkpoint.

    Gaussian models are built at construction; factorized ones per qp, on first use.
    Either kind of table may be omitted if the caller never codes that kind.
    """

    def __init__(
        self, gaussian: GaussianTables | None = None, factorized: FactorizedTables | None = None
    ) -> None:
        self.gaussian = gaussian
        self.factorized = factorized
        self._gaussian_models: list[Categorical] = []
        if gaussian is not None:
            sizes = gaussian.table_sizes
            self._gaussian_models = [
                _categorical(gaussian.pmf[b, : sizes[b]]) for b in range(gaussian.num_bins)
            ]
        self._factorized_models: dict[int, list[Categorical]] = {}

    def gaussian_models(self) -> list[Categorical]:
        if self.gaussian is None:
            raise InputFormatError("no Gaussian tables were given to CoderModels")
        return self._gaussian_models

    def factorized_models(self, qp: int) -> list[Categorical]:
        tables = self.factorized
        if tables is None:
            raise InputFormatError("no factorized tables were given to CoderModels")
        if not 0 <= qp < tables.num_qp:
            raise InputFormatError(f"qp must be in [0, {tables.num_qp - 1}], got {qp}")
        models = self._factorized_models.get(qp)
        if models is None:
            models = [_categorical(row) for row in tables.pmf[qp]]
            self._factorized_models[qp] = models
        return models


def _segments(count: int, num_streams: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) of each stream: floor(i n / S) to floor((i + 1) n / S)."""
    bounds = [i * count // num_streams for i in range(num_streams + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _group_bounds(keys_sorted: np.ndarray, num_keys: int) -> list[tuple[int, int, int]]:
    """(key, start, stop) of each non-empty run of equal keys in a sorted array."""
    counts = np.bincount(keys_sorted, minlength=num_keys)
    stops = np.cumsum(counts)
    return [(int(k), int(stops[k] - counts[k]), int(stops[k])) for k in np.flatnonzero(counts)]


def _as_symbols(symbols: np.ndarray) -> np.ndarray:
    symbols = np.asarray(symbols)
    if symbols.dtype.kind not in "iu":
        raise InputFormatError(f"symbols must be integers, got dtype {symbols.dtype}")
    if symbols.size and (symbols.min() < SYMBOL_MIN or symbols.max() > SYMBOL_MAX):
        raise InputFormatError(
            f"symbols must lie in [{SYMBOL_MIN}, {SYMBOL_MAX}], "
            f"got [{symbols.min()}, {symbols.max()}]"
        )
    return symbols.astype(np.int32, copy=False)


def _as_indexes(indexes: np.ndarray, low: int, high: int, what: str) -> np.ndarray:
    indexes = np.asarray(indexes)
    if indexes.dtype.kind not in "iu":
        raise InputFormatError(f"{what} must be integers, got dtype {indexes.dtype}")
    if indexes.size and (indexes.min() < low or indexes.max() > high):
        raise InputFormatError(f"{what} must lie in [{low}, {high}]")
    # int16 keys let numpy's stable argsort use radix sort.
    return indexes.astype(np.int16, copy=False)


def _encode_escapes(encoder: RangeEncoder, values: np.ndarray, low, high) -> None:
    """Bypass code of values outside [low, high] (arrays, one bound pair per value)."""
    if values.size == 0:
        return
    below = values < low
    magnitude = np.where(below, low - 1 - values, values - high - 1).astype(np.int64)
    n = magnitude + 1  # >= 1; Exp-Golomb: k = floor(log2 n), then the k bits under the top one
    k = np.frexp(n.astype(np.float64))[1] - 1  # exact for integers below 2**53
    encoder.encode((2 * k + below).astype(np.int32), _ESCAPE_PREFIX_MODEL)
    has_bits = k > 0
    encoder.encode(
        (n - (1 << k))[has_bits].astype(np.int32),
        _UNIFORM_FAMILY,
        (1 << k)[has_bits].astype(np.int32),
    )


def _decode_escapes(decoder: RangeDecoder, count: int, low, high) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=np.int32)
    prefix = decoder.decode(_ESCAPE_PREFIX_MODEL, count).astype(np.int64)
    k, below = prefix >> 1, (prefix & 1).astype(bool)
    n = np.left_shift(1, k)
    has_bits = k > 0
    sizes = n[has_bits].astype(np.int32)
    n[has_bits] += decoder.decode(_UNIFORM_FAMILY, sizes)
    values = np.where(below, low - n, high + n)
    if values.size and (values.min() < SYMBOL_MIN or values.max() > SYMBOL_MAX):
        raise CorruptStreamError("entropy payload: escaped value out of range")
    return values.astype(np.int32)


def _encode_gaussian_segment(
    encoder: RangeEncoder, symbols: np.ndarray, bins: np.ndarray, models: CoderModels
) -> None:
    tables, categoricals = models.gaussian, models.gaussian_models()
    coded = bins != SKIPPED
    order = np.argsort(bins[coded], kind="stable")
    sorted_bins = bins[coded][order]
    values = symbols[coded][order]
    half = tables.ranges[sorted_bins]
    inside = np.abs(values) <= half
    index = np.where(inside, values + half, 2 * half + 1).astype(np.int32)
    for b, lo, hi in _group_bounds(sorted_bins, tables.num_bins):
        encoder.encode(index[lo:hi], categoricals[b])
    escaped = ~inside
    _encode_escapes(encoder, values[escaped], -half[escaped], half[escaped])


def _decode_gaussian_segment(
    decoder: RangeDecoder, bins: np.ndarray, models: CoderModels
) -> np.ndarray:
    tables, categoricals = models.gaussian, models.gaussian_models()
    positions = np.flatnonzero(bins != SKIPPED)
    order = np.argsort(bins[positions], kind="stable")
    sorted_bins = bins[positions][order]
    index = np.empty(sorted_bins.size, dtype=np.int32)
    with _corrupt_on_decoder_error():
        for b, lo, hi in _group_bounds(sorted_bins, tables.num_bins):
            index[lo:hi] = decoder.decode(categoricals[b], hi - lo)
        half = tables.ranges[sorted_bins]
        values = index - half
        escaped = index == 2 * half + 1
        values[escaped] = _decode_escapes(
            decoder, int(escaped.sum()), -half[escaped], half[escaped]
        )
    out = np.zeros(bins.size, dtype=np.int32)
    out[positions[order]] = values
    return out


def _encode_factorized_segment(
    encoder: RangeEncoder, symbols: np.ndarray, channels: np.ndarray, models: CoderModels, qp: int
) -> None:
    tables, categoricals = models.factorized, models.factorized_models(qp)
    order = np.argsort(channels, kind="stable")
    sorted_channels = channels[order]
    values = symbols[order]
    inside = (values >= tables.symbol_min) & (values <= tables.symbol_max)
    index = np.where(inside, values - tables.symbol_min, tables.escape_index).astype(np.int32)
    for c, lo, hi in _group_bounds(sorted_channels, tables.num_channels):
        encoder.encode(index[lo:hi], categoricals[c])
    _encode_escapes(encoder, values[~inside], tables.symbol_min, tables.symbol_max)


def _decode_factorized_segment(
    decoder: RangeDecoder, channels: np.ndarray, models: CoderModels, qp: int
) -> np.ndarray:
    tables, categoricals = models.factorized, models.factorized_models(qp)
    order = np.argsort(channels, kind="stable")
    sorted_channels = channels[order]
    index = np.empty(sorted_channels.size, dtype=np.int32)
    with _corrupt_on_decoder_error():
        for c, lo, hi in _group_bounds(sorted_channels, tables.num_channels):
            index[lo:hi] = decoder.decode(categoricals[c], hi - lo)
        values = index + tables.symbol_min
        escaped = index == tables.escape_index
        values[escaped] = _decode_escapes(
            decoder, int(escaped.sum()), tables.symbol_min, tables.symbol_max
        )
    out = np.empty(channels.size, dtype=np.int32)
    out[order] = values
    return out


def _map(executor: Executor | None, function: Callable[..., T], jobs: list[tuple]) -> list[T]:
    """function(*job) for every job, on `executor` when there is one and more than one job."""
    if executor is None or len(jobs) < 2:
        return [function(*job) for job in jobs]
    return list(executor.map(lambda job: function(*job), jobs))


class SymbolWriter:
    """Collects coding calls into one payload; `finish()` returns its bytes.

    With `num_streams` > 1 and an `executor` (e.g. a ThreadPoolExecutor), the streams of
    each call are coded concurrently; the bytes do not depend on the executor.
    """

    def __init__(
        self, models: CoderModels, num_streams: int = 1, executor: Executor | None = None
    ) -> None:
        if not 1 <= num_streams <= MAX_STREAMS:
            raise InputFormatError(f"num_streams must be in [1, {MAX_STREAMS}], got {num_streams}")
        self.models = models
        self.num_streams = num_streams
        self.executor = executor
        self._encoders = [RangeEncoder() for _ in range(num_streams)]

    def write_gaussian(self, symbols: np.ndarray, bins: np.ndarray) -> None:
        """Code `symbols` with the Gaussian table of each bin; bins == SKIPPED are not coded."""
        num_bins = len(self.models.gaussian_models())
        symbols = _as_symbols(symbols)
        bins = _as_indexes(bins, SKIPPED, num_bins - 1, "bins")
        if symbols.shape != bins.shape:
            raise InputFormatError(f"symbols {symbols.shape} and bins {bins.shape} differ")
        self._encode(_encode_gaussian_segment, symbols.reshape(-1), bins.reshape(-1))

    def write_factorized(self, symbols: np.ndarray, qp: int, channels: np.ndarray) -> None:
        """Code z `symbols` with the tables of (qp, channel of each symbol)."""
        num_channels = len(self.models.factorized_models(qp))
        symbols = _as_symbols(symbols)
        channels = _as_indexes(channels, 0, num_channels - 1, "channels")
        if symbols.shape != channels.shape:
            raise InputFormatError(f"symbols {symbols.shape} and channels {channels.shape} differ")
        self._encode(_encode_factorized_segment, symbols.reshape(-1), channels.reshape(-1), qp)

    def _encode(self, encode_segment: Callable, symbols: np.ndarray, keys: np.ndarray, *extra):
        jobs = [
            (encoder, symbols[start:stop], keys[start:stop], self.models, *extra)
            for encoder, (start, stop) in zip(
                self._encoders, _segments(keys.size, self.num_streams), strict=True
            )
        ]
        _map(self.executor, encode_segment, jobs)

    def finish(self) -> bytes:
        """The payload of everything written so far; the writer starts a new, empty one."""
        words = []
        for encoder in self._encoders:
            encoder.encode(CHECK_VALUE, _CHECK_MODEL)
            words.append(encoder.get_compressed())
        self._encoders = [RangeEncoder() for _ in range(self.num_streams)]
        counts = np.array([w.size for w in words[:-1]], dtype="<u4")
        return b"".join(
            [bytes([self.num_streams]), counts.tobytes()]
            + [w.astype("<u4").tobytes() for w in words]
        )


class SymbolReader:
    """Parses a payload made by `SymbolWriter`, call by call, in the writer's order.

    With an `executor`, the streams of each call are decoded concurrently.
    """

    def __init__(self, models: CoderModels, data: bytes, executor: Executor | None = None) -> None:
        self.models = models
        self.executor = executor
        if len(data) < 1 or data[0] == 0:
            raise CorruptStreamError("entropy payload: missing stream count")
        self.num_streams = data[0]
        table_end = 1 + 4 * (self.num_streams - 1)
        if len(data) < table_end or (len(data) - table_end) % 4:
            raise CorruptStreamError(f"entropy payload: bad length {len(data)}")
        counts = np.frombuffer(data, dtype="<u4", count=self.num_streams - 1, offset=1)
        words = np.frombuffer(data, dtype="<u4", offset=table_end).astype(np.uint32)
        bounds = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        if bounds[-1] > words.size:
            raise CorruptStreamError("entropy payload: stream lengths exceed the payload")
        bounds = np.append(bounds, words.size)
        self._decoders = [
            RangeDecoder(_with_end_word(words[bounds[i] : bounds[i + 1]]))
            for i in range(self.num_streams)
        ]

    def read_gaussian(self, bins: np.ndarray) -> np.ndarray:
        """Symbols (int32, shape of `bins`) written by `write_gaussian` with these bins."""
        num_bins = len(self.models.gaussian_models())
        bins = _as_indexes(bins, SKIPPED, num_bins - 1, "bins")
        return self._decode(_decode_gaussian_segment, bins.reshape(-1)).reshape(bins.shape)

    def read_factorized(self, qp: int, channels: np.ndarray) -> np.ndarray:
        """Symbols (int32, shape of `channels`) written by `write_factorized`."""
        num_channels = len(self.models.factorized_models(qp))
        channels = _as_indexes(channels, 0, num_channels - 1, "channels")
        decoded = self._decode(_decode_factorized_segment, channels.reshape(-1), qp)
        return decoded.reshape(channels.shape)

    def _decode(self, decode_segment: Callable, keys: np.ndarray, *extra) -> np.ndarray:
        jobs = [
            (decoder, keys[start:stop], self.models, *extra)
            for decoder, (start, stop) in zip(
                self._decoders, _segments(keys.size, self.num_streams), strict=True
            )
        ]
        return np.concatenate(_map(self.executor, decode_segment, jobs))

    def ensure_consumed(self) -> None:
        """Check each stream's closing value and that no data is left over.

        Raises CorruptStreamError when the payload was cut, has trailing garbage or was
        parsed with other bins, channels or tables than it was written with.
        """
        for i, decoder in enumerate(self._decoders):
            with _corrupt_on_decoder_error():
                check = decoder.decode(_CHECK_MODEL)
            if check != CHECK_VALUE:
                raise CorruptStreamError(
                    f"entropy payload: stream {i} does not end where expected "
                    "(damaged, cut, or decoded with other tables)"
                )
            if not decoder.maybe_exhausted():
                raise CorruptStreamError(f"entropy payload: stream {i} has trailing data")


def _with_end_word(words: np.ndarray) -> np.ndarray:
    """A stream's words without trailing zero words, and then one zero word.

    constriction's decoder pads a stream with zero words, and an encoder's stream always
    makes it read one word past its last nonzero word (the range decoder reads two words
    ahead). With that word given explicitly, a decoder that stops short of it has words
    left over (docs/bitstream.md, section 6.4), which `maybe_exhausted` then reports;
    trailing zeros change nothing the decoder reads, so they are not counted.
    """
    nonzero = np.flatnonzero(words)
    end = int(nonzero[-1]) + 1 if nonzero.size else 0
    return np.append(words[:end], np.uint32(0))


@contextmanager
def _corrupt_on_decoder_error() -> Iterator[None]:
    """Turns constriction's complaints about invalid compressed data into CorruptStreamError.

    constriction raises AssertionError (and ValueError for some inputs) when the data
    cannot come from the model; both mean a damaged payload here.
    """
    try:
        yield
    except CorruptStreamError:
        raise
    except (AssertionError, ValueError) as error:
        raise CorruptStreamError(f"entropy payload: invalid data ({error})") from error
