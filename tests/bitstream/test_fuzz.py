"""The decoder fuzzed: a fixed-seed run of mutated streams, every outcome a clean one."""

from __future__ import annotations

import random

from ufvc.bitstream.format import SequenceHeader
from ufvc.bitstream.fuzz import (
    FAILURES,
    MUTATIONS,
    FuzzConfig,
    generate_cases,
    header_field,
    parse_layout,
    run_fuzz,
)


def test_field_table_matches_the_spec_offsets():
    # docs/bitstream.md 2.2: width at 40, the Gaussian scale max at 80, the model id length
    # at 104.
    assert header_field("width") == (40, "I")
    assert header_field("gaussian_scale_max") == (80, "d")
    assert header_field("model_id_length") == (104, "B")
    assert len(SequenceHeader.FIELD_NAMES) == len(SequenceHeader.FIELDS.unpack(
        bytes(SequenceHeader.FIELDS.size)))


def test_every_mutation_class_makes_a_parseable_case_deterministically(tmp_path):
    from ufvc.bitstream.fuzz import make_sources

    sources = make_sources(("tiny-resets",), tmp_path)
    parse_layout(sources["tiny-resets"])
    for name, mutate in MUTATIONS.items():
        first = mutate(sources["tiny-resets"], random.Random(3))
        again = mutate(sources["tiny-resets"], random.Random(3))
        assert first == again, name
    cases = generate_cases(sources, 50, seed=9)
    assert cases == generate_cases(sources, 50, seed=9)
    assert sum(case.data != sources["tiny-resets"] for _, case in cases) >= 45


def test_fixed_seed_fuzz_run_has_no_traceback_hang_memory_or_silent_difference():
    report = run_fuzz(FuzzConfig(cases=300, seed=20261130))
    outcomes = {o for counts in report.counts.values() for o in counts}
    assert report.cases == 300 and len(report.counts) == len(MUTATIONS)
    assert report.failures == [], report.failures[:3]
    assert not outcomes & set(FAILURES)
    assert "error" in outcomes and "identical" in outcomes and "warned" in outcomes


def test_outcomes_are_classified_strictly(monkeypatch):
    import struct

    import ufvc.codec
    from ufvc.bitstream.fuzz import _classify, _decode_case

    reference = ["a", "b", "c"]
    limit = 1 << 30

    def classify(result, rss=1 << 20):
        return _classify((result, rss, 0.1), reference, limit)[0]

    assert classify(("decoded", reference, [])) == "identical"
    assert classify(("decoded", ["a", "x", "c"], [])) == "different"
    assert classify(("decoded", ["a", "b"], [])) == "different"  # fewer frames, no word
    assert classify(("decoded", ["a", "b"], ["cut short"])) == "warned"
    assert classify(("decoded", ["x"], ["cut short"])) == "different"  # not the first frames
    assert classify(("decoded", reference, []), rss=limit + 1) == "memory"
    assert classify(("error", "CorruptStreamError: bad")) == "error"
    assert _classify("hang", reference, limit)[0] == "hang"

    def broken(*args, **kwargs):
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(ufvc.codec, "decode", broken)
    assert _decode_case("x.ufv", False)[0] == "traceback"
