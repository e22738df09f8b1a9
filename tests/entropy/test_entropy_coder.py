"""The range coder: bit-exact round trips, near-ideal rates, damage always detected."""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ufvc.entropy.coder import CoderModels, SymbolReader, SymbolWriter
from ufvc.entropy.tables import SKIPPED, SYMBOL_MAX, SYMBOL_MIN, FactorizedTables, GaussianTables
from ufvc.errors import CorruptStreamError, InputFormatError


@pytest.fixture
def models(official_like_params) -> CoderModels:
    h, b, a = official_like_params(num_qp=64, channels=16)
    return CoderModels(GaussianTables(), FactorizedTables.from_official(h, b, a))


def realistic_y(count: int, seed: int, skip_threshold: float = 0.15):
    """Laplacian-ish residuals with log-uniform scales, some far in the tails."""
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.uniform(math.log(0.03), math.log(30.0), count))
    symbols = np.round(rng.laplace(0.0, scales / math.sqrt(2))).astype(np.int32)
    bins = GaussianTables().coding_bins(scales, skip_threshold)
    symbols[bins == SKIPPED] = 0
    return symbols, bins


def code_gaussian(models, calls, num_streams=1) -> bytes:
    writer = SymbolWriter(models, num_streams)
    for symbols, bins in calls:
        writer.write_gaussian(symbols, bins)
    return writer.finish()


def decode_gaussian(models, data, bin_calls) -> list[np.ndarray]:
    reader = SymbolReader(models, data)
    out = [reader.read_gaussian(bins) for bins in bin_calls]
    reader.ensure_consumed()
    return out


def test_gaussian_round_trip_is_bit_exact_with_escapes_and_extremes(models):
    symbols, bins = realistic_y(50_000, seed=1)
    rng = np.random.default_rng(2)
    extreme = rng.choice(symbols.size, 300, replace=False)
    symbols[extreme] = rng.integers(SYMBOL_MIN, SYMBOL_MAX + 1, 300)
    symbols[extreme[:2]] = (SYMBOL_MIN, SYMBOL_MAX)
    bins[extreme] = rng.integers(0, 128, 300)
    ranges = models.gaussian.ranges[np.maximum(bins, 0)]
    assert (np.abs(symbols) > ranges)[bins >= 0].sum() > 300  # many escapes
    data = code_gaussian(models, [(symbols, bins)])
    (decoded,) = decode_gaussian(models, data, [bins])
    assert decoded.dtype == np.int32
    assert (decoded == np.where(bins == SKIPPED, 0, symbols)).all()


def test_skipped_symbols_cost_nothing_and_decode_as_zero(models):
    symbols = np.arange(-500, 500, dtype=np.int32).reshape(10, 100)
    skipped = np.full(symbols.shape, SKIPPED, dtype=np.int16)
    data = code_gaussian(models, [(symbols, skipped)])
    assert data == code_gaussian(models, [])  # nothing but the stream closing
    (decoded,) = decode_gaussian(models, data, [skipped])
    assert decoded.shape == (10, 100) and not decoded.any()


def test_empty_calls_round_trip(models):
    empty = np.zeros((0, 4), dtype=np.int32)
    writer = SymbolWriter(models, num_streams=3)
    writer.write_gaussian(empty, empty.astype(np.int16))
    writer.write_factorized(empty, 5, empty)
    data = writer.finish()
    reader = SymbolReader(models, data)
    assert reader.read_gaussian(empty.astype(np.int16)).shape == (0, 4)
    assert reader.read_factorized(5, empty).shape == (0, 4)
    reader.ensure_consumed()


def test_factorized_round_trip_with_out_of_range_values(models):
    rng = np.random.default_rng(3)
    z = np.round(rng.laplace(0.0, 3.0, (16, 9, 11))).astype(np.int32)
    z[0, 0, :4] = (-65, 64, SYMBOL_MIN, SYMBOL_MAX)
    z[5, 2, 3] = 1000
    channels = np.broadcast_to(np.arange(16)[:, None, None], z.shape)
    writer = SymbolWriter(models)
    writer.write_factorized(z, 17, channels)
    reader = SymbolReader(models, writer.finish())
    decoded = reader.read_factorized(17, channels)
    reader.ensure_consumed()
    assert (decoded == z).all()


def test_four_step_decoding_from_one_payload(models):
    """Per-step models parse each quadtree step separately; the streamlined model all at once."""
    symbols, bins = realistic_y(4 * 8 * 12 * 16, seed=4)
    symbols, bins = symbols.reshape(8, 24, 32), bins.reshape(8, 24, 32)
    rows, cols = np.meshgrid(np.arange(24), np.arange(32), indexing="ij")
    position = (rows % 2) * 2 + (cols % 2)
    steps = [np.broadcast_to(position == k, symbols.shape) for k in range(4)]
    z = np.arange(-40, 40, dtype=np.int32).reshape(16, 5)
    z_channels = np.broadcast_to(np.arange(16)[:, None], z.shape)

    writer = SymbolWriter(models, num_streams=2)
    writer.write_factorized(z, 63, z_channels)
    for mask in steps:
        writer.write_gaussian(symbols[mask], bins[mask])
    per_step_payload = writer.finish()

    reader = SymbolReader(models, per_step_payload)
    assert (reader.read_factorized(63, z_channels) == z).all()
    decoded = np.zeros_like(symbols)
    for mask in steps:
        decoded[mask] = reader.read_gaussian(bins[mask])
    reader.ensure_consumed()
    assert (decoded == np.where(bins == SKIPPED, 0, symbols)).all()

    streamlined = np.concatenate([bins[mask] for mask in steps])
    writer.write_gaussian(np.concatenate([symbols[mask] for mask in steps]), streamlined)
    (all_at_once,) = decode_gaussian(models, writer.finish(), [streamlined])
    assert (all_at_once == np.concatenate([decoded[mask] for mask in steps])).all()


@pytest.mark.parametrize("num_streams", [2, 3, 8])
def test_multi_stream_round_trip(models, num_streams):
    calls = [realistic_y(n, seed=10 + n) for n in (5, 20_001, 0, 777)]
    data = code_gaussian(models, calls, num_streams)
    assert data[0] == num_streams
    decoded = decode_gaussian(models, data, [bins for _, bins in calls])
    for (symbols, bins), out in zip(calls, decoded, strict=True):
        assert (out == np.where(bins == SKIPPED, 0, symbols)).all()


def test_thread_pool_gives_the_same_bytes_and_symbols(models):
    symbols, bins = realistic_y(30_000, seed=14)
    z = np.arange(-80, 80, dtype=np.int32).reshape(16, 10)
    channels = np.broadcast_to(np.arange(16)[:, None], z.shape)
    payloads = []
    with ThreadPoolExecutor(4) as pool:
        for executor in (None, pool):
            writer = SymbolWriter(models, num_streams=4, executor=executor)
            writer.write_gaussian(symbols, bins)
            writer.write_factorized(z, 3, channels)
            payloads.append(writer.finish())
        assert payloads[0] == payloads[1]
        reader = SymbolReader(models, payloads[0], executor=pool)
        assert (reader.read_gaussian(bins) == np.where(bins == SKIPPED, 0, symbols)).all()
        assert (reader.read_factorized(3, channels) == z).all()
        reader.ensure_consumed()


def table_bits(models, symbols, bins) -> float:
    """-log2 of the table probabilities, plus the escape codes' bits (docs 6.3)."""
    tables = models.gaussian
    coded = bins != SKIPPED
    symbols, bins = symbols[coded].astype(np.int64), bins[coded]
    half = tables.ranges[bins]
    escaped = np.abs(symbols) > half
    index = np.where(escaped, 2 * half + 1, symbols + half)
    freq = tables.pmf[bins, index]
    n = np.abs(symbols[escaped]) - half[escaped]
    escape_bits = 5 + np.floor(np.log2(n))
    return float(-np.log2(freq / 2**tables.precision_bits).sum() + escape_bits.sum())


def test_coded_size_is_close_to_the_table_probabilities(models):
    symbols, bins = realistic_y(300_000, seed=5)
    data = code_gaussian(models, [(symbols, bins)])
    ideal = table_bits(models, symbols, bins)
    actual = 8 * len(data)
    assert ideal * 0.999 - 64 < actual < ideal * 1.005 + 64  # measured: +0.01 %


def test_coded_size_is_close_to_the_gaussian_entropy(models):
    rng = np.random.default_rng(6)
    sigma = np.exp(rng.uniform(math.log(0.3), math.log(6.0), 200_000))
    symbols = np.round(rng.normal(0.0, sigma)).astype(np.int32)
    bins = models.gaussian.coding_bins(sigma, 0.0)
    v = np.abs(symbols)
    root2 = math.sqrt(2.0)
    erfc = np.vectorize(math.erfc)
    p = 0.5 * (erfc((v - 0.5) / (sigma * root2)) - erfc((v + 0.5) / (sigma * root2)))
    p = np.where(v == 0, 1.0 - erfc(0.5 / (sigma * root2)), p)
    entropy = float(-np.log2(p).sum())
    actual = 8 * len(code_gaussian(models, [(symbols, bins)]))
    assert entropy * 0.995 < actual < entropy * 1.01  # measured: +0.06 %


def test_payload_bytes_are_fixed(models, check_golden):
    """Pins constriction's output: streams must decode across machines and releases."""
    symbols, bins = realistic_y(20_000, seed=7)
    writer = SymbolWriter(models, num_streams=2)
    writer.write_gaussian(symbols, bins)
    z = np.arange(-70, 70, dtype=np.int32).reshape(14, 10)
    writer.write_factorized(z, 9, np.broadcast_to(np.arange(14)[:, None], z.shape))
    check_golden("payload_sha256", hashlib.sha256(writer.finish()).hexdigest())


def test_writer_starts_a_new_payload_after_finish(models):
    symbols, bins = realistic_y(1000, seed=8)
    writer = SymbolWriter(models)
    writer.write_gaussian(symbols, bins)
    first = writer.finish()
    writer.write_gaussian(symbols, bins)
    assert writer.finish() == first


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:-4],
        lambda d: d + b"\x00\x00\x00\x00\x01\x02\x03\x04",
        lambda d: d[:-1],
        lambda d: b"",
        lambda d: b"\x00" + d[1:],
        lambda d: b"\x03" + d[1:],
    ],
    ids=["cut-word", "garbage", "odd-length", "empty", "zero-streams", "wrong-stream-count"],
)
def test_damaged_payload_raises_corrupt_stream(models, damage):
    symbols, bins = realistic_y(5000, seed=9)
    data = damage(code_gaussian(models, [(symbols, bins)]))
    with pytest.raises(CorruptStreamError):
        decode_gaussian(models, data, [bins])


def test_decoding_with_other_bins_raises_corrupt_stream(models):
    symbols, bins = realistic_y(5000, seed=11)
    data = code_gaussian(models, [(symbols, bins)])
    other = np.where(bins == SKIPPED, SKIPPED, np.minimum(bins + 3, 127)).astype(np.int16)
    with pytest.raises(CorruptStreamError):
        decode_gaussian(models, data, [other])


def test_random_bytes_never_crash_the_reader(models):
    rng = np.random.default_rng(12)
    _, bins = realistic_y(2000, seed=13)
    for size in range(0, 400, 7):
        data = b"\x01" + rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        with pytest.raises(CorruptStreamError):
            decode_gaussian(models, data, [bins])


def test_bad_symbols_and_indexes_are_rejected(models):
    writer = SymbolWriter(models)
    ok_bins = np.zeros(3, dtype=np.int16)
    with pytest.raises(InputFormatError):
        writer.write_gaussian(np.array([0, SYMBOL_MAX + 1, 0]), ok_bins)
    with pytest.raises(InputFormatError):
        writer.write_gaussian(np.array([0.5, 1.0, 2.0]), ok_bins)
    with pytest.raises(InputFormatError):
        writer.write_gaussian(np.zeros(3, dtype=np.int32), np.array([0, 128, 0]))
    with pytest.raises(InputFormatError):
        writer.write_gaussian(np.zeros(4, dtype=np.int32), ok_bins)
    with pytest.raises(InputFormatError):
        writer.write_factorized(np.zeros(3, dtype=np.int32), 64, np.zeros(3, dtype=np.int16))
    with pytest.raises(InputFormatError):
        writer.write_factorized(np.zeros(3, dtype=np.int32), 0, np.array([0, 16, 0]))
    with pytest.raises(InputFormatError):
        SymbolWriter(models, num_streams=0)
