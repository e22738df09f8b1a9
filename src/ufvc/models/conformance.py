"""Replay a reference fixture (the layout of the shared reference set) and compare.

A fixture names its model (`intra`, `hts`, `htl`, `ld`) and carries its own frames, qps,
batching, reset flags and outputs, so this works for any fixture of that layout: any
size, number of calls and qp schedule. The replay follows the reference README:

* recipe weights (sec. 2) for the named model, cast to float64, on the CPU;
* inputs `u8 / 255 - 0.5` in float64;
* intra: one `code_frame` per entry of `call_batch`, with per-sample qps;
* video: frame 0 is intra-coded at `intra_qp` (checked against `ref0_x_hat`), that
  unclamped reconstruction becomes the reference, then one `code_chunk` per entry of
  `qp`/`reset`, each on the next N frames;
* rates of the actual integer symbols (no noise).

Tolerances are the README's (sec. 6) for a float64 replay; symbols must match exactly.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ufvc.errors import InputFormatError
from ufvc.models.channel import EstimateChannel
from ufvc.models.intra import INTRA, IntraCodec
from ufvc.models.recipe import recipe_state_dict
from ufvc.models.video import HTL, HTS, LD, ChunkCodec, ChunkCodecConfig, ChunkState

VIDEO_CONFIGS: dict[str, ChunkCodecConfig] = {"hts": HTS, "htl": HTL, "ld": LD}
MODELS = ("intra", *VIDEO_CONFIGS)

# README sec. 6, float64 replay. Symbols (y_q, z_hat) must match exactly at any scale.
X_HAT_ABS = 1e-5
LATENT_ABS = 1e-5  # y_hat, y_res, scales_hat
BITS_REL = 1e-5
STATS_REL = 1e-6  # ctx/mem/feat statistics (debugging aids, compared when present)

_INTRA_KEYS = ("frames_u8", "qp", "call_batch", "x_hat", "bits_y", "bits_z")
_VIDEO_KEYS = ("frames_u8", "intra_qp", "ref0_x_hat", "qp", "reset", "x_hat", "bits_y",
               "bits_z")


@dataclass(frozen=True)
class Check:
    """One compared output: its largest deviation and the limit it must stay within."""

    name: str
    measure: str  # "max abs", "max rel" or "mismatches"
    deviation: float
    limit: float

    @property
    def passed(self) -> bool:
        return bool(self.deviation <= self.limit)  # NaN fails


@dataclass
class ConformanceReport:
    """The result of replaying one fixture."""

    path: str
    model: str
    frame_size: tuple[int, int]
    calls: int
    frames: int
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def verdict(self) -> str:
        """One line: PASS, or FAIL with the first failing check."""
        failed = [check for check in self.checks if not check.passed]
        if not failed:
            return (f"PASS: {self.path} ({self.model}): all {len(self.checks)} checks within "
                    f"tolerance")
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return (f"FAIL: {self.path} ({self.model}): {first.name} {first.measure} "
                f"{first.deviation:.3g} > {first.limit:.3g}{more}")

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "model": self.model,
            "frame_size": list(self.frame_size),
            "calls": self.calls,
            "frames": self.frames,
            "passed": self.passed,
            "checks": [
                {"name": c.name, "measure": c.measure, "deviation": c.deviation,
                 "limit": c.limit, "passed": c.passed}
                for c in self.checks
            ],
        }


def _max_abs(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))


def _max_rel(actual: np.ndarray, expected: np.ndarray) -> float:
    expected = expected.astype(np.float64)
    diff = np.abs(actual.astype(np.float64) - expected)
    return float(np.max(diff / np.maximum(np.abs(expected), np.finfo(np.float64).tiny)))


def _mismatches(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.count_nonzero(np.rint(actual).astype(np.int64) != expected.astype(np.int64)))


class _Comparer:
    """Builds the checks, with the tolerance scale applied to every non-exact limit."""

    def __init__(self, data: dict[str, np.ndarray], scale: float) -> None:
        self.data = data
        self.scale = scale
        self.checks: list[Check] = []

    def _add(self, key: str, measure: str, function: Callable, actual: np.ndarray,
             limit: float) -> None:
        expected = self.data[key]
        if actual.shape != expected.shape:
            raise InputFormatError(
                f"fixture entry {key!r} has shape {expected.shape}, the replay gives "
                f"{actual.shape}"
            )
        self.checks.append(Check(key, measure, function(actual, expected), limit))

    def abs(self, key: str, actual: np.ndarray, limit: float) -> None:
        self._add(key, "max abs", _max_abs, actual, limit * self.scale)

    def rel(self, key: str, actual: np.ndarray, limit: float) -> None:
        self._add(key, "max rel", _max_rel, actual, limit * self.scale)

    def exact(self, key: str, actual: np.ndarray) -> None:
        self._add(key, "mismatches", _mismatches, actual, 0.0)

    def optional_abs(self, key: str, actual: np.ndarray, limit: float) -> None:
        if key in self.data:
            self.abs(key, actual, limit)

    def optional_exact(self, key: str, actual: np.ndarray) -> None:
        if key in self.data:
            self.exact(key, actual)


def read_fixture(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of a fixture `.npz`, with its model name checked."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(f"fixture not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise InputFormatError(f"{path} is not a readable .npz fixture ({error})") from error
    if "model" not in data:
        raise InputFormatError(f"{path} has no 'model' entry: not a reference fixture")
    model = str(data["model"])
    if model not in MODELS:
        raise InputFormatError(f"{path}: unknown model {model!r} (known: {', '.join(MODELS)})")
    required = _INTRA_KEYS if model == "intra" else _VIDEO_KEYS
    missing = [key for key in required if key not in data]
    if missing:
        raise InputFormatError(f"{path}: {model} fixture lacks {', '.join(missing)}")
    return data


def _model_input(frames_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames_u8.astype(np.float64) / 255.0 - 0.5)


def _recipe_model(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """The module `build()` makes, with the recipe weights, in float64 and eval mode."""
    with torch.device("meta"):  # skip the default initialisation: every weight is assigned
        module = build()
    module.load_state_dict(recipe_state_dict(module), strict=True, assign=True)
    return module.double().eval()


def _stats(tensor: torch.Tensor) -> np.ndarray:
    """(mean, std, mean |.|) as the fixtures store them (std with Bessel's correction)."""
    t = tensor.detach().double()
    return np.array([t.mean().item(), t.std().item(), t.abs().mean().item()])


def _replay_intra(data: dict[str, np.ndarray], compare: _Comparer) -> int:
    frames = _model_input(data["frames_u8"])
    qps = torch.from_numpy(data["qp"].astype(np.int64))
    batches = [int(b) for b in data["call_batch"]]
    if sum(batches) != frames.shape[0] or len(qps) != frames.shape[0] or min(batches) < 1:
        raise InputFormatError("fixture call_batch/qp do not match its number of frames")
    intra = _recipe_model(lambda: IntraCodec(INTRA))
    outputs: dict[str, list[np.ndarray]] = {k: [] for k in (
        "x_hat", "bits_y", "bits_z", "y_q", "z_hat", "y_hat", "y_res", "scales_hat")}
    start = 0
    with torch.no_grad():
        for batch in batches:
            channel = EstimateChannel()
            result = intra.code_frame(frames[start:start + batch], qps[start:start + batch],
                                      channel)
            outputs["x_hat"].append(result.x_hat.numpy())
            outputs["bits_y"].append(channel.bits_y.numpy())
            outputs["bits_z"].append(channel.bits_z.numpy())
            outputs["y_q"].append(result.y_symbols.numpy())
            outputs["z_hat"].append(result.z_hat.numpy())
            outputs["y_hat"].append(result.y_hat.numpy())
            outputs["y_res"].append(result.y_residual.numpy())
            outputs["scales_hat"].append(result.y_scales.numpy())
            start += batch
    out = {key: np.concatenate(values) for key, values in outputs.items()}
    compare.abs("x_hat", out["x_hat"], X_HAT_ABS)
    compare.optional_exact("y_q", out["y_q"])
    compare.optional_exact("z_hat", out["z_hat"])
    compare.rel("bits_y", out["bits_y"], BITS_REL)
    compare.rel("bits_z", out["bits_z"], BITS_REL)
    compare.optional_abs("y_hat", out["y_hat"], LATENT_ABS)
    compare.optional_abs("y_res", out["y_res"], LATENT_ABS)
    compare.optional_abs("scales_hat", out["scales_hat"], LATENT_ABS)
    return len(batches)


def _replay_video(model: str, data: dict[str, np.ndarray], compare: _Comparer) -> int:
    config = VIDEO_CONFIGS[model]
    frames = _model_input(data["frames_u8"])
    qps = [int(q) for q in np.atleast_1d(data["qp"])]
    resets = [bool(r) for r in np.atleast_1d(data["reset"])]
    n = config.frames
    if not qps or len(resets) != len(qps) or frames.shape[0] != 1 + n * len(qps):
        raise InputFormatError(
            f"{model} fixture: {frames.shape[0]} frames do not make 1 intra frame plus "
            f"{len(qps)} calls of {n}"
        )

    intra = _recipe_model(lambda: IntraCodec(INTRA))
    with torch.no_grad():
        intra_qp = torch.tensor([int(np.asarray(data["intra_qp"]).reshape(-1)[0])])
        ref0 = intra.code_frame(frames[:1], intra_qp, EstimateChannel()).x_hat
    del intra
    compare.abs("ref0_x_hat", ref0.numpy(), X_HAT_ABS)

    video = _recipe_model(lambda: ChunkCodec(config))
    used: list[tuple[torch.Tensor, torch.Tensor]] = []  # (memory, ctx) of each call
    hook = video.feature_extractor.register_forward_hook(
        lambda _module, inputs, output: used.append((inputs[0], output)))
    outputs: dict[str, list[np.ndarray]] = {k: [] for k in (
        "x_hat", "bits_y", "bits_z", "y_q", "z_hat", "ctx_stats", "mem_stats", "feat_stats")}
    first = None
    try:
        with torch.no_grad():
            state: ChunkState = video.init_state(ref0)
            for call, (qp, reset) in enumerate(zip(qps, resets, strict=True)):
                chunk = frames[1 + call * n: 1 + (call + 1) * n].unsqueeze(0)
                channel = EstimateChannel()
                result = video.code_chunk(chunk, torch.tensor([qp]), state, channel,
                                          reset=reset)
                state = result.state
                memory, ctx = used[-1]
                outputs["x_hat"].append(result.x_hat[0].numpy())
                outputs["bits_y"].append(channel.bits_y.numpy())
                outputs["bits_z"].append(channel.bits_z.numpy())
                outputs["y_q"].append(result.latent.symbols.numpy())
                outputs["z_hat"].append(result.z_hat.numpy())
                outputs["ctx_stats"].append(_stats(ctx)[None])
                outputs["mem_stats"].append(_stats(memory)[None])
                outputs["feat_stats"].append(_stats(state.ref_feature)[None])
                if first is None:
                    first = result.latent
    finally:
        hook.remove()
    out = {key: np.concatenate(values) for key, values in outputs.items()}
    compare.abs("x_hat", out["x_hat"], X_HAT_ABS)
    compare.optional_exact("y_q", out["y_q"])
    compare.optional_exact("z_hat", out["z_hat"])
    compare.rel("bits_y", out["bits_y"], BITS_REL)
    compare.rel("bits_z", out["bits_z"], BITS_REL)
    compare.optional_abs("y_hat_first", first.y_hat[0].numpy(), LATENT_ABS)
    compare.optional_abs("y_res_first", first.residual[0].numpy(), LATENT_ABS)
    compare.optional_abs("scales_hat_first", first.scales[0].numpy(), LATENT_ABS)
    for key in ("ctx_stats", "mem_stats", "feat_stats"):
        if key in data:
            compare.rel(key, out[key], STATS_REL)
    return len(qps)


def run_conformance(path: str | Path, *, tolerance_scale: float = 1.0) -> ConformanceReport:
    """Replay the fixture at `path` in float64 on the CPU and compare every stored output.

    `tolerance_scale` multiplies every tolerance except the exact symbol matches.
    """
    if not tolerance_scale > 0:
        raise InputFormatError(f"tolerance scale must be positive, got {tolerance_scale}")
    data = read_fixture(path)
    model = str(data["model"])
    compare = _Comparer(data, tolerance_scale)
    if model == "intra":
        calls = _replay_intra(data, compare)
    else:
        calls = _replay_video(model, data, compare)
    height, width = data["frames_u8"].shape[-2:]
    return ConformanceReport(
        path=str(path), model=model, frame_size=(int(height), int(width)), calls=calls,
        frames=int(data["frames_u8"].shape[0]), checks=compare.checks,
    )
