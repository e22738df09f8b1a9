"""torch.compile of the networks: recorded in the stream, followed by the decoder, cached,
and replaced by eager networks (with one warning line) where it does not work."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from tests.codec.conftest import tiny_model
from ufvc.codec import Decoder, Encoder
from ufvc.codec import compile as codec_compile
from ufvc.codec.core import prepare_model
from ufvc.errors import InputFormatError
from ufvc.io.types import VideoInfo
from ufvc.samples import synthetic_video


@pytest.fixture
def compile_state(monkeypatch, tmp_path):
    """A fresh per-process compile state (not probed, no warnings) and a cache folder."""
    monkeypatch.setattr(codec_compile, "_STATE", codec_compile._State())
    monkeypatch.setenv(codec_compile.COMPILE_CACHE_ENV, str(tmp_path / "compile-cache"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "unused"))  # restored after
    return codec_compile._STATE


def _encode(model, frames, *, compile, precision="fp32"):
    """Float streams by default: their header records compilation, which these tests
    are about; portable streams decode the same either way (the last test)."""
    info = VideoInfo(frames[0].width, frames[0].height, Fraction(25), len(frames))
    encoder = Encoder(model, info, quality=40, compile=compile, precision=precision)
    coded = [c for frame in frames for c in encoder.encode(frame)] + encoder.flush()
    return encoder.header, [c.record for c in coded], [f for c in coded for f in c.recon]


def _payloads(records):
    return [record.pack() for record in records]


@pytest.fixture
def compile_cache(request, tmp_path, monkeypatch):
    """A real compile state whose cache lives with pytest's (when its cache plugin is on),
    so reruns reuse the kernels: the first run compiles for one to two minutes on one
    core, later ones take seconds."""
    cache_plugin = getattr(request.config, "cache", None)
    cache = tmp_path if cache_plugin is None else cache_plugin.mkdir("ufvc-torch-compile")
    monkeypatch.setenv(codec_compile.COMPILE_CACHE_ENV, str(cache))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache))  # restored after the test
    monkeypatch.setattr(codec_compile, "_STATE", codec_compile._State())
    return cache


def test_compiled_stream_says_so_decodes_bit_exact_with_other_threads_only_if_asked(
    compile_cache, assert_same_frames
):
    cache = compile_cache
    model = tiny_model()
    frames = list(synthetic_video(64, 64, 3, seed=5))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        header, records, recon = _encode(model, frames, compile=True)
        torch.set_num_threads(max(2, threads))
        decoded = list(Decoder(model, header, compile=True).decode_all(records))
        # Without --compile the decoder refuses: a stream never makes it run a compiler.
        with pytest.raises(InputFormatError, match="pass --compile"):
            Decoder(model, header)
    finally:
        torch.set_num_threads(threads)
    assert header.compiled_networks
    assert_same_frames(recon, decoded)
    assert any(cache.iterdir())


def test_without_a_working_compiler_streams_are_eager_and_say_so_once(
    compile_state, monkeypatch, capsys
):
    def broken(*args, **kwargs):
        raise RuntimeError("no C compiler here\nsecond line of a long report")

    frames = list(synthetic_video(64, 48, 3))
    eager_header, eager_records, _ = _encode(tiny_model(), frames, compile=False)
    capsys.readouterr()
    monkeypatch.setattr(torch, "compile", broken)
    header, records, _ = _encode(tiny_model(), frames, compile=True)
    _encode(tiny_model(), frames, compile=True)
    assert header == eager_header and not header.compiled_networks
    assert _payloads(records) == _payloads(eager_records)
    assert capsys.readouterr().err.strip().splitlines() == [
        "ufvc: warning: torch.compile is not usable here (RuntimeError: no C compiler here); "
        "the networks run eagerly"]


def test_a_module_that_fails_to_compile_runs_eagerly_on_both_sides(
    compile_state, monkeypatch, capsys, assert_same_frames
):
    def probe_only(function, **options):
        if function is codec_compile._probe:
            return function
        raise RuntimeError("dynamo cannot trace this")

    frames = list(synthetic_video(64, 48, 3))
    _, eager_records, _ = _encode(tiny_model(), frames, compile=False)
    monkeypatch.setattr(torch, "compile", probe_only)
    model = tiny_model()
    header, records, recon = _encode(model, frames, compile=True)
    assert header.compiled_networks
    assert _payloads(records) == _payloads(eager_records)
    assert_same_frames(recon, list(Decoder(model, header, compile=True).decode_all(records)))
    notes = codec_compile.compile_notes()
    assert notes and all("it runs eagerly" in note for note in notes)
    assert len(capsys.readouterr().err.strip().splitlines()) == len(notes)


def test_compiled_calls_run_only_inside_their_context(compile_state, monkeypatch):
    def off_by_a_bit(function, **options):
        return lambda *args, **kwargs: function(*args, **kwargs) + 1e-3

    monkeypatch.setattr(torch, "compile", off_by_a_bit)
    model = tiny_model()
    context = codec_compile.compiled_networks(model)
    x, q_scale = torch.zeros(1, 3, 64, 64), model.intra.q_scale_enc[[40]]
    with torch.inference_mode():
        eager = model.intra.enc(x, q_scale)
        with context:
            compiled = model.intra.enc(x, q_scale)
        assert torch.equal(model.intra.enc(x, q_scale), eager)
    assert torch.allclose(compiled, eager + 1e-3)


def test_eager_stream_decodes_eagerly_when_compile_is_asked_for(
    compile_state, monkeypatch, capsys, assert_same_frames
):
    model = tiny_model()
    header, records, recon = _encode(model, list(synthetic_video(64, 48, 3)), compile=False)
    monkeypatch.setattr(torch, "compile", lambda *args, **kwargs: pytest.fail("compiled"))
    assert_same_frames(recon, list(Decoder(model, header, compile=True).decode_all(records)))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "encoded without torch.compile" in err[0]


def test_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(codec_compile.COMPILE_CACHE_ENV, str(tmp_path / "c"))
    assert codec_compile.cache_dir() == tmp_path / "c"
    monkeypatch.delenv(codec_compile.COMPILE_CACHE_ENV)
    assert codec_compile.cache_dir().parts[-3:] == (".cache", "ufvc", "torch-compile")


def test_portable_networks_compute_the_same_bits_compiled_or_eager(compile_cache, capsys):
    """The portable arithmetic really compiles (no eager fallback) and gives eager's bits,
    for inputs on different grids. One network stands for all: the same exact
    convolutions, WSiLU tables and grid derivations make up every network, and compiling
    a whole codec's portable networks costs minutes."""
    if not codec_compile.compile_available():
        pytest.skip("torch.compile does not work here")
    model = prepare_model(tiny_model(), "portable")
    hyper_decoder = model.intra.hyper_dec
    generator = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        z_hat = torch.randn(1, model.intra.config.hyper_channels, 2, 3, generator=generator)
        inputs = [torch.round(z_hat * scale) for scale in (4.0, 150.0)]
        eager = [hyper_decoder(z) for z in inputs]
        with codec_compile.compiled_networks(model):
            compiled = [hyper_decoder(z) for z in inputs]
    installed = hyper_decoder._compiled_call_impl
    assert installed.compiled is not None and not installed.failed
    assert not codec_compile.compile_notes() and not capsys.readouterr().err
    assert all(torch.equal(c, e) for c, e in zip(compiled, eager, strict=True))
