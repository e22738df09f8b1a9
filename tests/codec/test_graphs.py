"""CUDA graphs of the networks: static buffers in, cloned outputs out, recorded in the
stream, refused off CUDA. A fake capture (replays by re-running the captured call into the
same output tensors, as a CUDA graph overwrites its outputs) checks the buffer handling on
any machine; the real capture is checked when a CUDA device is present."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn
from torch.utils import _pytree as pytree

from tests.codec.conftest import tiny_model
from ufvc.cli import main
from ufvc.codec import Decoder, Encoder
from ufvc.codec import graphs as codec_graphs
from ufvc.errors import InputFormatError
from ufvc.io.types import VideoInfo
from ufvc.samples import synthetic_video


class FakeGraphs:
    """A stand-in for CUDA graph capture that counts captures and replays."""

    def __init__(self) -> None:
        self.captures = 0
        self.replays = 0

    def __call__(self, run, static_inputs):
        self.captures += 1
        outputs = run()

        def replay() -> None:
            self.replays += 1
            fresh = run()
            for target, value in zip(pytree.tree_leaves(outputs), pytree.tree_leaves(fresh),
                                     strict=True):
                if isinstance(target, torch.Tensor):
                    target.copy_(value)

        return replay, outputs


def _always(tensors) -> bool:
    return True


def _graph_every_part(model, fake: FakeGraphs) -> None:
    for part in codec_graphs.network_parts(model):
        part._compiled_call_impl = codec_graphs._GraphedCall(part, None, fake, _always)


def _encode(model, frames, networks=None):
    info = VideoInfo(frames[0].width, frames[0].height, Fraction(25), len(frames))
    encoder = Encoder(model, info, quality=40, pipeline=False)
    if networks is not None:
        encoder._networks = networks
    coded = [c for frame in frames for c in encoder.encode(frame)] + encoder.flush()
    return encoder.header, [c.record for c in coded], [f for c in coded for f in c.recon]


def test_replayed_outputs_are_copies_and_inputs_are_copied_in():
    fake = FakeGraphs()
    layer = nn.Linear(4, 3)
    graphed = codec_graphs._GraphedCall(layer, None, fake, _always)
    a, b = torch.randn(2, 4), torch.randn(2, 4)
    with codec_graphs._GraphedContext():
        first = graphed(a)
        second = graphed(b)  # replays the same graph: must not overwrite `first`
        other_shape = graphed(torch.randn(5, 4))
    assert torch.equal(first, layer(a)) and torch.equal(second, layer(b))
    assert other_shape.shape == (5, 3)
    assert fake.captures == 2 and fake.replays == 3
    assert graphed(a).data_ptr() != first.data_ptr()  # outside the context: eager


def test_graphed_networks_give_the_eager_stream_byte_for_byte(assert_same_frames):
    frames = list(synthetic_video(64, 48, 6, seed=3))
    _, eager_records, eager_recon = _encode(tiny_model(), frames)
    fake = FakeGraphs()
    model = tiny_model()
    _graph_every_part(model, fake)
    header, records, recon = _encode(model, frames, networks=codec_graphs._GraphedContext())
    assert [r.pack() for r in records] == [r.pack() for r in eager_records]
    assert_same_frames(eager_recon, recon)
    assert fake.replays > fake.captures > 0
    decoder = Decoder(model, header)
    decoder._networks = codec_graphs._GraphedContext()
    assert_same_frames(eager_recon, list(decoder.decode_all(records)))


def test_a_failed_capture_runs_eagerly_with_one_warning(capsys):
    def broken(run, static_inputs):
        raise RuntimeError("operation not permitted when stream is capturing")

    layer = nn.Linear(4, 3)
    graphed = codec_graphs._GraphedCall(layer, None, broken, _always)
    x = torch.randn(2, 4)
    with codec_graphs._GraphedContext():
        out = [graphed(x), graphed(x)]
    assert all(torch.equal(o, layer(x)) for o in out)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA graph capture failed on Linear" in err[0]


def test_graphs_are_refused_off_cuda(tmp_path, clip, capsys):
    info = VideoInfo(64, 48, Fraction(25), 2)
    with pytest.raises(InputFormatError, match="CUDA graphs need a CUDA device"):
        Encoder(tiny_model(), info, cuda_graphs=True, device="cpu")
    out = tmp_path / "s.ufv"
    code = main(["encode", str(clip(64, 48, 2)), "-o", str(out), "--model", "ufvc-tiny",
                 "--cuda-graphs", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "CUDA graphs" in err[0]
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_stream_decodes_bit_exact_on_cuda(assert_same_frames):
    frames = list(synthetic_video(64, 48, 6, seed=4))
    model = tiny_model()
    info = VideoInfo(64, 48, Fraction(25), len(frames))
    encoder = Encoder(model, info, quality=40, device="cuda", cuda_graphs=True,
                      precision="fp16")
    coded = [c for frame in frames for c in encoder.encode(frame)] + encoder.flush()
    assert encoder.header.cuda_graphs
    decoded = Decoder(model, encoder.header, device="cuda").decode_all(
        [c.record for c in coded])
    assert_same_frames([f for c in coded for f in c.recon], list(decoded))
