"""Optional CUDA graphs for the networks: each sub-network is captured once per input shape
and replayed, so a chunk launches a handful of graphs instead of thousands of kernels.

`graphed_networks(model)` gives the same sub-modules as `ufvc.codec.compile` (the direct
children of the intra and chunk codecs that hold parameters, except the factorized z
density) a graphed call, active inside the context manager it returns and nowhere else.
Inside the context, a call whose tensor arguments all live on a CUDA device is looked up
by its signature (shapes, dtypes, devices and the non-tensor arguments, plus the autocast
and grad modes); the first call of a signature warms the module up on a side stream and
captures it into a `torch.cuda.CUDAGraph` with static input buffers. Every call then
copies its arguments into those buffers, replays the graph and returns *clones* of the
static outputs: the next replay overwrites the graph's own output memory, and a codec
keeps outputs of one chunk (the temporal state) while running the next.

The signatures of a codec are few and fixed by the frame size (batch 1, one shape per
sub-network and step), so capture happens during the first chunk and costs one extra
eager run per signature. The entropy coder runs between graphs on the CPU, unchanged.

A replay launches the kernels the capture recorded, which are the kernels an eager call
picks; a stream still records that its encoder used graphs (docs/bitstream.md 2.4) and
the decoder follows, so a difference between captured and eager kernel choices can never
break a stream. A module that cannot be captured (it synchronises with the host, say)
runs eagerly on both sides, with a one-line warning.

Autocast must not cache cast weights across a capture (the cache would hold tensors
allocated outside the graph's pool), so `compute_context` disables the cache when graphs
are on; casting is exact, so the results do not change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from ufvc.codec.compile import network_parts, warn
from ufvc.models.registry import CodecModel

WARMUP_CALLS = 2  # eager calls on a side stream before capture (lazy cuDNN/cuBLAS init)

_ACTIVE = threading.local()  # depth of graphed contexts on this thread

# capture(run, static_inputs) -> (replay, static_outputs); replaceable in tests.
Capture = Callable[[Callable[[], Any], Sequence[torch.Tensor]], tuple[Callable[[], None], Any]]


def capture_cuda_graph(run: Callable[[], Any], static_inputs: Sequence[torch.Tensor]
                       ) -> tuple[Callable[[], None], Any]:
    """Warm `run` up on a side stream, capture it into a CUDA graph; (replay, outputs)."""
    del static_inputs  # `run` reads them; captured by address
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP_CALLS):
            run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = run()
    return graph.replay, outputs


def _on_cuda(tensors: Sequence[torch.Tensor]) -> bool:
    return bool(tensors) and all(t.is_cuda for t in tensors)


class _Graph:
    """One captured signature: its static inputs, outputs and replay call."""

    def __init__(self, static_inputs: list[torch.Tensor], replay: Callable[[], None],
                 outputs: Any) -> None:
        self.static_inputs = static_inputs
        self.replay = replay
        self.outputs = outputs


class _GraphedCall:
    """Replaces a module's call: replayed from CUDA graphs inside a graphed context.

    `inner` is the call it wraps (a torch.compile'd call of `ufvc.codec.compile`, or None
    for the module's own), so compiled kernels can be captured too.
    """

    def __init__(self, module: nn.Module, inner: Callable[..., Any] | None,
                 capture: Capture = capture_cuda_graph,
                 eligible: Callable[[Sequence[torch.Tensor]], bool] = _on_cuda) -> None:
        self.module = module
        self.inner = inner
        self.capture = capture
        self.eligible = eligible
        self.graphs: dict[tuple, _Graph] = {}
        self.failed = False

    def _eager(self, *args: Any, **kwargs: Any) -> Any:
        call = self.inner if self.inner is not None else self.module._call_impl
        return call(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not getattr(_ACTIVE, "depth", 0) or self.failed:
            return self._eager(*args, **kwargs)
        leaves, spec = pytree.tree_flatten((args, kwargs))
        tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
        if not self.eligible(tensors):
            return self._eager(*args, **kwargs)
        key = self._signature(leaves)
        if key is None:
            return self._eager(*args, **kwargs)
        graph = self.graphs.get(key)
        if graph is None:
            try:
                graph = self._capture(leaves, spec)
            except Exception as error:  # capture is impossible for this module: run eagerly
                self.failed = True
                first = str(error).strip().splitlines()
                warn(f"CUDA graph capture failed on {type(self.module).__name__} "
                     f"({type(error).__name__}: {first[0][:160] if first else ''}); "
                     "it runs eagerly")
                return self._eager(*args, **kwargs)
            self.graphs[key] = graph
        for static, tensor in zip(graph.static_inputs, tensors, strict=True):
            static.copy_(tensor)
        graph.replay()
        return pytree.tree_map(
            lambda x: x.clone() if isinstance(x, torch.Tensor) else x, graph.outputs)

    @staticmethod
    def _signature(leaves: list[Any]) -> tuple | None:
        """What a graph is specific to; None when an argument cannot be part of a key."""
        key: list[Any] = [torch.is_grad_enabled(), torch.is_inference_mode_enabled(),
                          torch.is_autocast_enabled("cuda"),
                          torch.get_autocast_dtype("cuda")]
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                key.append(("tensor", tuple(leaf.shape), leaf.stride(), leaf.dtype,
                            leaf.device, leaf.requires_grad))
            elif leaf is None or isinstance(leaf, (bool, int, float, str)):
                key.append(("value", type(leaf).__name__, leaf))
            else:
                return None
        return tuple(key)

    def _capture(self, leaves: list[Any], spec: pytree.TreeSpec) -> _Graph:
        static_inputs = [leaf.clone() for leaf in leaves if isinstance(leaf, torch.Tensor)]
        feed = iter(static_inputs)
        static_leaves = [next(feed) if isinstance(leaf, torch.Tensor) else leaf
                         for leaf in leaves]
        args, kwargs = pytree.tree_unflatten(static_leaves, spec)

        def run() -> Any:
            return self._eager(*args, **kwargs)

        replay, outputs = self.capture(run, static_inputs)
        return _Graph(static_inputs, replay, outputs)


class _GraphedContext(AbstractContextManager):
    """Reusable context in which the installed graphed calls replay (on this thread)."""

    def __enter__(self) -> None:
        _ACTIVE.depth = getattr(_ACTIVE, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.depth -= 1


def graphed_networks(model: CodecModel, capture: Capture = capture_cuda_graph
                     ) -> AbstractContextManager:
    """Install graphed calls on `model`'s networks (once); they replay inside the context.

    An installed compiled call (ufvc.codec.compile) stays inside the graphed one.
    """
    for part in network_parts(model):
        if not isinstance(part._compiled_call_impl, _GraphedCall):
            part._compiled_call_impl = _GraphedCall(part, part._compiled_call_impl, capture)
    return _GraphedContext()
