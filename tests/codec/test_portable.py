"""Portable streams decode to the same bytes in every environment (issue 14).

The golden stream was made by `benchmarks/make_golden_stream.py` with the shipped
weights; its digest is checked on whatever machine runs the suite, so a drift between
machine types shows up in CI. The environment matrix runs the decoder in subprocesses
under PyTorch's other kernel sets and thread counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ufvc.bitstream.stream import StreamReader
from ufvc.codec.api import decode, encode
from ufvc.io import open_reader
from ufvc.io.types import frames_sha256
from ufvc.models.checkpoint import save_ufvm
from ufvc.models.registry import CodecModel, create_model, load_model_file
from ufvc.models.video import REFERENCE_GATE_GAIN
from ufvc.models.widen import add_reference_skip

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
RECORD = json.loads((GOLDEN / "ufvc-s-portable.json").read_text())


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _environments() -> list:
    flags = _cpu_flags()
    cases = [
        pytest.param({"ATEN_CPU_CAPABILITY": "default"}, 2, id="scalar-kernels"),
        pytest.param({"ATEN_CPU_CAPABILITY": "avx2"}, 2, id="avx2",
                     marks=pytest.mark.skipif("avx2" not in flags, reason="no AVX2")),
        pytest.param({"ATEN_CPU_CAPABILITY": "avx512"}, 2, id="avx512",
                     marks=pytest.mark.skipif("avx512f" not in flags, reason="no AVX-512")),
        pytest.param({"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, 2, id="mkl-sse4.2"),
        pytest.param({}, 1, id="1-thread"),
        pytest.param({}, 2, id="2-threads"),
    ]
    return cases


def _ufvc(args: list[str], env: dict[str, str]) -> None:
    full_env = {**os.environ, **env}
    done = subprocess.run([sys.executable, "-m", "ufvc", *args], env=full_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _decoded_digest(path: Path) -> str:
    with open_reader(path) as reader:
        return frames_sha256(reader)


def _check_weights() -> None:
    if create_model("ufvc-s").weights_digest().hex() != RECORD["weights_digest"]:
        pytest.fail("the shipped ufvc-s weights changed: make a new golden stream with "
                    "`python benchmarks/make_golden_stream.py` and commit it")


def test_golden_stream_decodes_to_its_digest():
    _check_weights()
    frames = list(decode(GOLDEN / RECORD["stream"]))
    assert len(frames) == RECORD["frames"]
    assert frames_sha256(frames) == RECORD["decoded_sha256"]


@pytest.mark.parametrize("env,threads", _environments())
def test_golden_stream_decodes_identically_everywhere(tmp_path, env, threads):
    _check_weights()
    out = tmp_path / "out.y4m"
    _ufvc(["decode", str(GOLDEN / RECORD["stream"]), "-o", str(out), "--threads",
           str(threads)], env)
    assert _decoded_digest(out) == RECORD["decoded_sha256"]


def test_stream_encoded_with_scalar_kernels_decodes_here(clip, tmp_path):
    source = clip(64, 48, 9, seed=3)
    stream, recon = tmp_path / "scalar.ufv", tmp_path / "recon.y4m"
    _ufvc(["encode", str(source), "-o", str(stream), "--recon", str(recon), "-q", "30",
           "--threads", "1"], {"ATEN_CPU_CAPABILITY": "default"})
    assert frames_sha256(decode(stream)) == _decoded_digest(recon)


@pytest.mark.parametrize("name", ["dcvc-uf-ld", "dcvc-uf-hts", "dcvc-uf-htl"])
def test_official_structures_integerised_from_float_weights_agree(name, clip, tmp_path):
    """Post-training integerisation of an official structure (its recipe weights): the
    decoder reproduces the encoder's reconstruction, here and (HT-S) with the scalar
    kernels in another process."""
    model = create_model(name)
    source = clip(64, 64, 1 + model.frames_per_chunk, seed=6)
    stream, recon = tmp_path / "s.ufv", tmp_path / "recon.y4m"
    encode(source, stream, model=model, recon=recon, quality=40)
    expected = _decoded_digest(recon)
    assert frames_sha256(decode(stream, model=model)) == expected
    if name == "dcvc-uf-hts":
        out = tmp_path / "scalar.y4m"
        _ufvc(["decode", str(stream), "-o", str(out), "--threads", "1"],
              {"ATEN_CPU_CAPABILITY": "default"})
        assert _decoded_digest(out) == expected


def test_reference_skip_streams_decode_identically_with_scalar_kernels(clip, tmp_path):
    """ufvc-s with an open reference gate (`reference_skip`): the decoder, here and with
    the scalar kernels in another process, reproduces the encoder's reconstruction."""
    shipped = create_model("ufvc-s")
    video = (shipped.video if shipped.video.config.reference_skip
             else add_reference_skip(shipped.video))
    with torch.no_grad():
        video.reference_gate.weight.normal_(0.0, 1e-3)
        video.reference_gate.bias.fill_(0.5 / REFERENCE_GATE_GAIN)
    model = CodecModel(shipped.name, shipped.model_id, shipped.intra.config, video.config)
    model.intra.load_state_dict(shipped.intra.state_dict())
    model.video.load_state_dict(video.state_dict())
    weights = tmp_path / "skip.ufvm"
    save_ufvm(model, weights)
    source = clip(64, 48, 17, seed=7)
    stream, recon = tmp_path / "s.ufv", tmp_path / "recon.y4m"
    encode(source, stream, model=load_model_file(weights), recon=recon, quality=40)
    expected = _decoded_digest(recon)
    out = tmp_path / "scalar.y4m"
    _ufvc(["decode", str(stream), "-o", str(out), "--model", str(weights), "--threads", "1"],
          {"ATEN_CPU_CAPABILITY": "default"})
    assert _decoded_digest(out) == expected
    # Every convolution a decoder runs, the gate's included, is in the portable arithmetic.
    portable = load_model_file(weights).make_portable()
    float_convs = [name for name, sub in portable.video.named_modules()
                   if type(sub) is nn.Conv2d and not name.startswith(("encoder", "hyper_encoder"))]
    assert float_convs == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_decode_each_others_streams_identically(clip, tmp_path):
    source = clip(96, 64, 9, seed=4)
    for encoder_device, decoder_device in (("cpu", "cuda"), ("cuda", "cpu")):
        stream, recon = tmp_path / f"{encoder_device}.ufv", tmp_path / f"{encoder_device}.y4m"
        encode(source, stream, model="ufvc-s", recon=recon, device=encoder_device)
        decoded = decode(stream, model="ufvc-s", device=decoder_device)
        assert frames_sha256(decoded) == _decoded_digest(recon)


def test_portable_is_the_default_and_the_header_says_so(clip, tmp_path):
    stream = tmp_path / "x.ufv"
    encode(clip(32, 32, 2), stream, model="ufvc-s")
    with StreamReader(stream) as reader:
        header = reader.header
    assert header.compute_precision == "portable"
    assert not header.compiled_networks
