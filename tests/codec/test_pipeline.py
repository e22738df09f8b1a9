"""Pipelining (coding one record on a worker thread while the networks run on the next)
changes neither the bytes, nor the frames, nor the errors."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
import torch

from tests.codec.conftest import TINY_FAMILIES, tiny_model
from ufvc.cli import main
from ufvc.codec import Decoder, Encoder, decode, encode
from ufvc.errors import CorruptStreamError
from ufvc.io import open_reader
from ufvc.io.types import VideoInfo
from ufvc.samples import synthetic_video


def _encode(model, frames, *, pipeline, **options):
    """(header, records, recon frames) of coding `frames`, checking when records come out."""
    info = VideoInfo(frames[0].width, frames[0].height, Fraction(25), len(frames))
    encoder = Encoder(model, info, quality=45, pipeline=pipeline, **options)
    coded = []
    for frame in frames:
        coded += encoder.encode(frame)
    if pipeline:
        assert len(coded) >= 1  # records flow out before the end, one behind the networks
    coded += encoder.flush()
    assert [c.record.first_frame for c in coded] == sorted(c.record.first_frame for c in coded)
    return encoder.header, [c.record for c in coded], [f for c in coded for f in c.recon]


def _frames_and_error(model, header, records, *, pipeline):
    """The frames a decoder yields before it fails, and the error it fails with."""
    decoder = Decoder(model, header, pipeline=pipeline)
    frames = []
    try:
        for frame in decoder.decode_all(records):
            frames.append(frame)
    except CorruptStreamError as error:
        return frames, str(error)
    return frames, None


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
def test_pipelined_and_sequential_encoders_write_the_same_bytes(family, assert_same_frames):
    model = tiny_model(family)
    frames = list(synthetic_video(64, 64, 9, seed=3))
    # An intra period and a reset interval put an intra record after a chunk, and resets.
    options = {"intra_period": 6, "reset_interval": 3}
    header, records, recon = _encode(model, frames, pipeline=True, **options)
    header_seq, records_seq, recon_seq = _encode(model, frames, pipeline=False, **options)
    assert header.pack() == header_seq.pack()
    assert [r.pack() for r in records] == [r.pack() for r in records_seq]
    assert_same_frames(recon_seq, recon)
    for pipeline in (True, False):
        decoded, error = _frames_and_error(model, header, records, pipeline=pipeline)
        assert error is None
        assert_same_frames(recon, decoded)


def test_pipelined_stream_decodes_bit_exact_with_another_thread_count(tmp_path, clip,
                                                                     assert_same_frames):
    model = tiny_model()
    stream, recon = tmp_path / "out.ufv", tmp_path / "recon.y4m"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        encode(clip(128, 64, 7), stream, model=model, quality=40, recon=recon, pipeline=True)
        torch.set_num_threads(max(2, threads))
        decoded = list(decode(stream, model=model, pipeline=True))
    finally:
        torch.set_num_threads(threads)
    with open_reader(recon) as reader:
        assert_same_frames(list(reader), decoded)


def _damaged(records, index, **changes):
    records = list(records)
    records[index] = dataclasses.replace(records[index], **changes)
    return records


def test_damaged_records_fail_alike_with_and_without_pipelining():
    model = tiny_model()
    header, records, _ = _encode(model, list(synthetic_video(64, 48, 7, seed=1)),
                                 pipeline=True)
    assert len(records) == 4  # intra, then chunks of 2
    wrong_crc = (*records[2].parts[:2], bytes(4))
    flipped_y = bytearray(records[1].parts[1])
    flipped_y[len(flipped_y) // 2] ^= 0x5A
    cases = {
        "reconstruction CRC (checked on the worker)": _damaged(records, 2, parts=wrong_crc),
        "y payload (parsed by the networks' thread)": _damaged(
            records, 1, parts=(records[1].parts[0], bytes(flipped_y), records[1].parts[2])),
        "missing parts (found on the worker)": _damaged(records, 3, parts=records[3].parts[:2]),
        "chunk before any intra record": records[1:],
    }
    for what, damaged in cases.items():
        sequential = _frames_and_error(model, header, damaged, pipeline=False)
        pipelined = _frames_and_error(model, header, damaged, pipeline=True)
        assert sequential[1] is not None, what
        assert pipelined[1] == sequential[1], what
        assert len(pipelined[0]) == len(sequential[0]), what


def test_sink_gets_every_frame_before_it_is_yielded():
    model = tiny_model()
    header, records, recon = _encode(model, list(synthetic_video(64, 48, 6)), pipeline=False)
    for pipeline in (True, False):
        sunk = []
        decoder = Decoder(model, header, pipeline=pipeline)
        for count, frame in enumerate(decoder.decode_all(records, sink=sunk.append), 1):
            assert len(sunk) >= count and sunk[count - 1] is frame
        assert len(sunk) == len(recon) == decoder.timing.frames


def test_abandoned_pipelined_decode_stops_its_worker():
    model = tiny_model()
    header, records, _ = _encode(model, list(synthetic_video(64, 48, 7)), pipeline=True)
    frames = Decoder(model, header, pipeline=True).decode_all(records)
    next(frames)
    frames.close()  # waits for the worker's job in progress and cancels the rest


def test_cli_flags_and_a_cut_stream_leave_no_output(tmp_path, clip, capsys):
    source = clip(64, 48, 5)
    piped, plain = tmp_path / "p.ufv", tmp_path / "s.ufv"
    for path, flags in ((piped, []), (plain, ["--no-pipeline"])):
        assert main(["encode", str(source), "-o", str(path), "--model", "ufvc-tiny",
                     "--quiet", *flags]) == 0
    assert piped.read_bytes() == plain.read_bytes()
    outputs = {flag: tmp_path / f"d{flag}.y4m" for flag in ("", "--no-pipeline")}
    for flag, out in outputs.items():
        assert main(["decode", str(piped), "-o", str(out), "--quiet", *filter(None, [flag])]) == 0
    assert outputs[""].read_bytes() == outputs["--no-pipeline"].read_bytes()
    cut = tmp_path / "cut.ufv"
    data = piped.read_bytes()
    cut.write_bytes(data[: len(data) * 3 // 4])
    capsys.readouterr()
    out = tmp_path / "cut.y4m"
    assert main(["decode", str(cut), "-o", str(out), "--quiet"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ufvc: error:")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".cut")]


def test_pipelining_by_default_only_when_a_core_is_free(monkeypatch):
    from ufvc.codec.core import default_pipeline

    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1}, raising=False)
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not default_pipeline(cpu)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert default_pipeline(cpu)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert default_pipeline(torch.device("cuda"))  # the networks leave the CPU alone


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_large_y_payloads_are_split_into_streams_and_decode_exactly(
    monkeypatch, family, assert_same_frames
):
    from ufvc.codec import core

    assert core.y_stream_count(1) == 1
    assert core.y_stream_count(core.SYMBOLS_PER_Y_STREAM + 1) == 2
    assert core.y_stream_count(10**9) == core.MAX_Y_STREAMS
    # Small positions per stream, so a 64x64 clip already gets several streams.
    monkeypatch.setattr(core, "SYMBOLS_PER_Y_STREAM", 100)
    model = tiny_model(family)
    frames = list(synthetic_video(64, 64, 5, seed=2))
    header, records, recon = _encode(model, frames, pipeline=False)
    stream_counts = [record.parts[1][0] for record in records]
    assert all(count > 1 for count in stream_counts), stream_counts
    assert_same_frames(recon, list(Decoder(model, header).decode_all(records)))
