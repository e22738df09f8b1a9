"""Integer tables: valid distributions, exact scale bins, faithful z tables, fixed digests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ufvc.entropy.tables import (
    SKIPPED,
    FactorizedTables,
    GaussianTables,
    entropy_digest,
    quantize_pmf,
)
from ufvc.errors import CheckpointError, InputFormatError


def excess_bits(p: np.ndarray, freq: np.ndarray, precision_bits: int) -> float:
    """KL(p || q) in bits: what coding with the integer table q costs over the ideal p.

    Giving each of n entries at least one count costs at most -log2(1 - n / 2**P).
    """
    q = freq / (1 << precision_bits)
    inside = p > 0
    return float(np.sum(p[inside] * np.log2(p[inside] / q[inside])))


def reference_official_cdf(x: np.ndarray, h: np.ndarray, b: np.ndarray, a: np.ndarray):
    """The release's factorized CDF written out in numpy float64, for one (qp, channel)."""
    h, b, a = (np.asarray(t, dtype=np.float64) for t in (h, b, a))
    for i in range(4):
        x = x * np.log1p(np.exp(h[i])) + b[i]
        if i < 3:
            x = x + np.tanh(x) * np.tanh(a[i])
    return 1.0 / (1.0 + np.exp(-x))


def test_gaussian_rows_are_symmetric_distributions_with_no_zero_entry():
    tables = GaussianTables()
    for b, size in enumerate(tables.table_sizes):
        row = tables.pmf[b]
        assert row[:size].sum() == 1 << tables.precision_bits
        assert (row[:size] >= 1).all() and (row[size:] == 0).all()
        values = row[: size - 1]
        assert np.abs(values - values[::-1]).max() <= 1  # only leftover counts break symmetry
        assert values.argmax() == tables.ranges[b]  # the mode is symbol 0


def test_gaussian_rows_follow_the_discretised_gaussian():
    tables = GaussianTables()
    for b in (0, 40, 90, 127):
        sigma, half = float(tables.scale_table[b]), int(tables.ranges[b])
        points = np.arange(-half - 1, half + 1) + 0.5
        cdf = np.array([0.5 * math.erfc(-x / (sigma * math.sqrt(2))) for x in points])
        p = np.append(np.diff(cdf), cdf[0] + 1.0 - cdf[-1])
        freq = tables.pmf[b, : 2 * half + 2]
        assert excess_bits(p, freq, tables.precision_bits) <= -math.log2(1 - freq.size / 65536)
        assert np.abs(freq - p * 65536).max() <= freq.size


def test_gaussian_ranges_grow_with_scale_and_respect_the_cap():
    tables = GaussianTables()
    assert (np.diff(tables.ranges) >= 0).all()
    assert tables.ranges[0] >= 1 and tables.ranges.max() == tables.max_range
    upper = np.append(tables.scale_table[1:], tables.scale_max)
    uncapped = tables.ranges < tables.max_range
    assert (tables.ranges[uncapped] >= tables.tail_sigmas * upper[uncapped]).all()


def test_scale_to_index_matches_the_log_formula_and_clamps():
    tables = GaussianTables()
    rng = np.random.default_rng(0)
    scales = np.exp(rng.uniform(math.log(0.01), math.log(40.0), 200_000))
    step = math.log(tables.scale_max / tables.scale_min) / (tables.num_bins - 1)
    clamped = np.clip(scales, tables.scale_min, tables.scale_max)
    position = (np.log(clamped) - math.log(tables.scale_min)) / step
    away_from_edges = np.abs(position - np.round(position)) > 1e-9
    expected = np.floor(position).astype(np.int64)
    index = tables.scale_to_index(scales)
    assert index.dtype == np.int16
    assert (index[away_from_edges] == expected[away_from_edges]).all()
    assert (index[scales < tables.scale_min] == 0).all()
    assert (index[scales >= tables.scale_max] == tables.num_bins - 1).all()


def test_scale_to_index_is_exact_at_every_bin_edge():
    tables = GaussianTables()
    edges = tables.scale_table[1:]
    assert (tables.scale_to_index(edges) == np.arange(1, tables.num_bins)).all()
    just_below = np.nextafter(edges, 0.0)
    assert (tables.scale_to_index(just_below) == np.arange(0, tables.num_bins - 1)).all()


def test_scale_to_index_accepts_tensors_and_rejects_nan():
    tables = GaussianTables()
    scales = torch.tensor([[0.05, 0.5], [5.0, 100.0]], dtype=torch.float32)
    assert tables.scale_to_index(scales).shape == (2, 2)
    assert (tables.scale_to_index(scales) == tables.scale_to_index(scales.numpy())).all()
    with pytest.raises(InputFormatError):
        tables.scale_to_index(np.array([1.0, np.nan]))


def test_coding_bins_skip_scales_at_or_below_the_float32_threshold():
    tables = GaussianTables()
    threshold = 0.15
    at = float(np.float32(threshold))
    scales = np.array([0.01, at, np.nextafter(at, 1.0), 0.2, 3.0], dtype=np.float64)
    bins = tables.coding_bins(scales, threshold)
    assert (bins[:2] == SKIPPED).all() and (bins[2:] >= 0).all()
    assert (tables.coding_bins(scales, 0.0) >= 0).all()  # 0 disables skipping
    with pytest.raises(InputFormatError):
        tables.coding_bins(scales, -1.0)


def test_quantize_pmf_keeps_every_entry_and_the_total():
    rng = np.random.default_rng(1)
    pmf = rng.dirichlet(np.full(50, 0.05), size=200)  # many tiny probabilities
    freq = quantize_pmf(pmf, 12)
    assert (freq >= 1).all() and (freq.sum(-1) == 4096).all()
    assert np.abs(freq - pmf * 4096).max() <= 50


def test_invalid_gaussian_configuration_is_rejected():
    with pytest.raises(InputFormatError):
        GaussianTables(scale_min=1.0, scale_max=0.5)
    with pytest.raises(InputFormatError):
        GaussianTables(precision_bits=30)
    with pytest.raises(InputFormatError):
        GaussianTables(precision_bits=8, max_range=200)


def test_factorized_tables_follow_the_official_density(official_like_params):
    h, b, a = official_like_params(num_qp=4, channels=8)
    tables = FactorizedTables.from_official(h, b, a)
    assert tables.pmf.shape == (4, 8, 129)
    x = np.arange(-64, 65, dtype=np.float64) - 0.5
    for qp in range(4):
        for c in range(8):
            cdf = reference_official_cdf(x, h[qp, c], b[qp, c], a[qp, c])
            p = np.append(np.diff(cdf), cdf[0] + 1.0 - cdf[-1])
            freq = tables.pmf[qp, c]
            assert excess_bits(p, freq, tables.precision_bits) <= -math.log2(1 - freq.size / 65536)
            assert np.abs(freq - p * 65536).max() <= freq.size


def test_factorized_escape_takes_the_mass_outside_the_range():
    def wide_logistic(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x / 40.0)  # much wider than [-4, 3]

    tables = FactorizedTables.from_cdf(wide_logistic, 1, 1, symbol_min=-4, symbol_max=3)
    row = tables.pmf[0, 0]
    assert row.size == 9 and row.sum() == 1 << 16
    outside = 1.0 - (1.0 / (1.0 + math.exp(-3.5 / 40)) - 1.0 / (1.0 + math.exp(4.5 / 40)))
    assert abs(row[-1] - outside * 65536) <= row.size


def test_factorized_tables_reject_bad_shapes_and_bad_cdfs(official_like_params):
    h, b, a = official_like_params(num_qp=2, channels=3)
    with pytest.raises(CheckpointError):
        FactorizedTables.from_official(h[..., :3], b, a)
    with pytest.raises(CheckpointError):
        FactorizedTables.from_official(h, b, a[..., :2])
    with pytest.raises(InputFormatError):
        FactorizedTables.from_cdf(lambda x: x * float("nan"), 1, 1)
    with pytest.raises(InputFormatError):
        FactorizedTables.from_cdf(lambda x: x[..., :3], 1, 1)
    with pytest.raises(InputFormatError):
        FactorizedTables.from_cdf(torch.sigmoid, 1, 1, symbol_min=1, symbol_max=5)


def test_table_digests_are_fixed(check_golden, official_like_params):
    gaussian = GaussianTables()
    factorized = FactorizedTables.from_official(*official_like_params())
    check_golden("gaussian_tables_sha256", gaussian.digest().hex())
    check_golden("factorized_tables_sha256", factorized.digest().hex())
    check_golden("entropy_digest", entropy_digest(gaussian, factorized).hex())
    assert GaussianTables().digest() == gaussian.digest()
    assert GaussianTables(num_bins=64).digest() != gaussian.digest()


def test_official_layout_and_generic_cdf_give_the_same_tables(official_like_params):
    h, b, a = (torch.from_numpy(t).double() for t in official_like_params(num_qp=8, channels=32))

    def cdf(x: torch.Tensor) -> torch.Tensor:
        gain, gate = torch.nn.functional.softplus(h), torch.tanh(a)
        for i in range(4):
            x = x * gain[..., i : i + 1] + b[..., i : i + 1]
            if i < 3:
                x = x + torch.tanh(x) * gate[..., i : i + 1]
        return torch.sigmoid(x)

    generic = FactorizedTables.from_cdf(cdf, 8, 32)
    assert generic.digest() == FactorizedTables.from_official(h, b, a).digest()
