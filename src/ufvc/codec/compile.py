"""Optional `torch.compile` of the networks, with a persistent cache.

`compiled_networks(model)` gives each heavy sub-module of the intra and chunk codecs (the
direct children with parameters, except the factorized z density, which only builds
tables) a compiled call, active inside the context manager it returns and nowhere else,
so one model object can serve compiled and eager coders. Shapes are static: each frame
size gets its own graph.

Compiled networks round differently from eager PyTorch in the last bits (inductor
reorders the small channel-group sums and fuses element-wise code), so compilation is a
property of a stream, like its compute precision: the header records it
(docs/bitstream.md, section 2.4) and the decoder runs the networks the way the stream
says. Both sides then compile the same modules at the same shapes and run the same
generated code (docs/determinism.md).

Before a coder relies on compilation, `compile_available` compiles a small probe: without
a working compiler stack (no C compiler, an unsupported Python) the networks run eagerly,
with a one-line warning. Compiled graphs and kernels are cached in `$UFVC_COMPILE_CACHE`
(default `~/.cache/ufvc/torch-compile`), so only the first run per model, frame size
and thread count pays for compilation.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ufvc.models.registry import CodecModel
from ufvc.nn.entropy import FactorizedDensity

COMPILE_CACHE_ENV = "UFVC_COMPILE_CACHE"
# Dynamo keeps at most this many graphs per code object; modules of one class share their
# `forward` code, and every frame size needs graphs of its own.
RECOMPILE_LIMIT = 64


def cache_dir() -> Path:
    """The folder of the persistent compile cache: $UFVC_COMPILE_CACHE or the default."""
    configured = os.environ.get(COMPILE_CACHE_ENV)
    return Path(configured or Path.home() / ".cache" / "ufvc" / "torch-compile").expanduser()


class _State:
    """Per process: whether compilation works here, and the warnings already printed."""

    def __init__(self) -> None:
        self.available: bool | None = None  # None: not probed yet
        self.notes: list[str] = []


_STATE = _State()
_ACTIVE = threading.local()  # depth of compiled contexts on this thread


def warn(message: str) -> None:
    """Print a one-line warning once per process."""
    if message not in _STATE.notes:
        _STATE.notes.append(message)
        print(f"ufvc: warning: {message}", file=sys.stderr)


def compile_notes() -> list[str]:
    """The compilation warnings of this process, in order."""
    return list(_STATE.notes)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:160]}" if lines else type(error).__name__


def _configure() -> None:
    """Point inductor's caches at the persistent folder, before anything is compiled."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        warn(f"cannot create the compile cache {folder} ({error.strerror}); torch uses its "
             "default cache")
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    import torch._dynamo.config as dynamo_config
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    inductor_config.autotune_local_cache = True
    functorch_config.enable_autograd_cache = True
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, RECOMPILE_LIMIT)


def _probe(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(4.0 * x)


def compile_available() -> bool:
    """Whether torch.compile works here (checked once per process with a small probe)."""
    if _STATE.available is None:
        _configure()
        try:
            torch.compile(_probe, dynamic=False)(torch.linspace(-1.0, 1.0, 37))
        except Exception as error:  # whatever breaks in the compiler stack: run eagerly
            warn(f"torch.compile is not usable here ({_first_line(error)}); the networks run "
                 "eagerly")
            _STATE.available = False
        else:
            _STATE.available = True
    return _STATE.available


class _CompiledCall:
    """Replaces a module's call: compiled inside a compiled context, eager elsewhere."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.compiled = None
        self.failed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not getattr(_ACTIVE, "depth", 0) or self.failed:
            return self.module._call_impl(*args, **kwargs)
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.module.forward, dynamic=False)
            return self.compiled(*args, **kwargs)
        except Exception as error:
            # A module dynamo cannot handle fails alike on both sides, and runs eagerly on
            # both; a genuine error of the model raises again from the eager call.
            self.failed = True
            warn(f"torch.compile failed on {type(self.module).__name__} "
                 f"({_first_line(error)}); it runs eagerly")
            return self.module._call_impl(*args, **kwargs)


class _CompiledContext(AbstractContextManager):
    """Reusable context in which the installed compiled calls run (on this thread)."""

    def __enter__(self) -> None:
        _ACTIVE.depth = getattr(_ACTIVE, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.depth -= 1


def network_parts(model: CodecModel) -> list[nn.Module]:
    """The sub-networks that compilation (and CUDA graphs) apply to, in a fixed order."""
    return [part for codec in (model.intra, model.video) for part in codec.children()
            if not isinstance(part, FactorizedDensity) and any(True for _ in part.parameters())]


def compiled_networks(model: CodecModel) -> AbstractContextManager:
    """Install compiled calls on `model`'s networks (once); they run inside the context.

    A graphed call (`ufvc.codec.graphs`) already installed keeps its place and gets the
    compiled call inside it, so graphs capture compiled kernels.
    """
    for part in network_parts(model):
        installed = part._compiled_call_impl
        if isinstance(installed, _CompiledCall):
            continue
        if installed is not None and hasattr(installed, "inner"):  # a graphed call
            if not isinstance(installed.inner, _CompiledCall):
                installed.inner = _CompiledCall(part)
        else:
            part._compiled_call_impl = _CompiledCall(part)
    return _CompiledContext()
