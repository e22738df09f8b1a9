"""Checkpoint files: the official release's state dicts and ufvc's own `.ufvm` model files.

Official checkpoints (`cvpr2026_image.pth.tar`, `cvpr2026_video_{hts,htl,ld}.pth.tar`) are
state dicts, possibly wrapped in a `state_dict` or `net` entry and with `module.` prefixes
left by DataParallel. Our modules use the official key names, so after unwrapping they
load with a strict `load_state_dict`.

A `.ufvm` file is one `torch.save` of plain types only (dicts, lists, strings, numbers,
tensors), read back with `torch.load(weights_only=True)`, so loading never runs pickled
code::

    {"format": "ufvm", "version": 1,
     "name": str, "model_id": int,
     "config": {"intra": {...}, "video": {...}},     # dataclass fields as plain data
     "state": {"intra": {key: tensor}, "video": {key: tensor}},
     "digest": str,                                  # hex of weights_digest, checked on load
     "metadata": {...}}                              # training facts, plain types only

Version 2 files may store convolution weights (4-d `.weight` tensors) as int8, one
symmetric level per weight, with a float16 scale per output channel in
`"scales": {"intra": {key: tensor}, "video": {key: tensor}}`. Such a weight is int8 x scale
evaluated in float32: the product of an 8-bit integer and a float16 needs 19 significant
bits, so it is exact on every machine. Files without integer weights are written as
version 1, which every ufvc reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import re
import struct
import typing
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ufvc.errors import CheckpointError

if TYPE_CHECKING:
    from ufvc.models.registry import CodecModel

UFVM_FORMAT = "ufvm"
UFVM_VERSION = 2
INTEGER_WEIGHTS_VERSION = 2  # the first version that may hold int8 weights
STORAGE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int8)
_INT8_TOP = 127
DIGEST_BYTES = 16
_WRAPPER_KEYS = ("state_dict", "net")
_DP_PREFIX = "module."
_LISTED = 5  # keys named per category in a mismatch message


# --------------------------------------------------------------------------- digests


def state_digest(states: Mapping[str, Mapping[str, torch.Tensor]]) -> bytes:
    """SHA-256 (first 16 bytes) over several state dicts, e.g. {"intra": ..., "video": ...}.

    Canonical order: entries sorted by "<part>.<key>"; each contributes its UTF-8 name, a
    NUL, its shape (uint32 count then int64 sizes, little-endian) and its values as
    little-endian float32 in C order. Hashing float32 values means a model cast to
    float64 from float32 weights keeps its digest.
    """
    entries = sorted(
        (f"{part}.{key}", tensor) for part, state in states.items() for key, tensor in state.items()
    )
    hasher = hashlib.sha256()
    for name, tensor in entries:
        hasher.update(name.encode("utf-8") + b"\0")
        hasher.update(struct.pack(f"<I{tensor.dim()}q", tensor.dim(), *tensor.shape))
        values = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
        hasher.update(values.astype("<f4", copy=False).tobytes())
    return hasher.digest()[:DIGEST_BYTES]


# --------------------------------------------------------------------------- loading weights


def _first(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (", ..." if len(keys) > _LISTED else "")


def load_weights(
    module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, assign: bool = False
) -> None:
    """Strictly load `state` into `module`; on any mismatch raise a CheckpointError that
    names (the first few of) the missing, unexpected and mis-shaped keys, with counts.

    `assign=True` makes the given tensors (cast to the module's dtypes) the parameters, so
    a module built on the meta device can be filled without first initialising it.
    """
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    misshaped = [
        f"{key} {tuple(state[key].shape)} vs {tuple(tensor.shape)}"
        for key, tensor in expected.items()
        if isinstance(state.get(key), torch.Tensor)
        and tuple(state[key].shape) != tuple(tensor.shape)
    ]
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_first(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
    if misshaped:
        problems.append(f"{len(misshaped)} mis-shaped (file vs model: {_first(misshaped)})")
    if not_tensors:
        problems.append(f"{len(not_tensors)} not tensors ({_first(not_tensors)})")
    if problems:
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(problems))
    if assign:
        state = {key: value.to(expected[key].dtype) for key, value in state.items()}
    module.load_state_dict(state, strict=True, assign=assign)


def load_checkpoint_object(path: str | Path) -> Any:
    """torch.load restricted to tensors and plain types; any failure is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch explains a refused load at length; the "WeightsUnpickler error" line says why.
        reason = re.search(r"WeightsUnpickler error: *\n*\s*([^\n]+)", str(error))
        detail = reason[1].strip() if reason else (str(error).strip().splitlines() or ["?"])[0]
        unsafe = re.match(r"Unsupported global: GLOBAL (\S+)", detail)
        if unsafe:
            raise CheckpointError(
                f"{path} holds objects other than tensors and plain data ({unsafe[1]}); "
                f"refusing to unpickle it"
            ) from error
        raise CheckpointError(f"{path} is not a checkpoint or is damaged ({detail})") from error
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        # First sentence only: torch appends paragraphs of advice.
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].split(". ")[0]
        raise CheckpointError(f"{path} is not a checkpoint or is damaged ({reason})") from error
    except Exception as error:  # noqa: BLE001 - the unpickler fails on junk in many ways
        raise CheckpointError(
            f"{path} is not a checkpoint or is damaged ({type(error).__name__})") from error


def unwrap_official(data: Any, *, source: str) -> dict[str, torch.Tensor]:
    """The state dict inside an official checkpoint object: unwrap `state_dict`/`net`,
    strip the DataParallel `module.` prefix."""
    if isinstance(data, Mapping):
        for wrapper in _WRAPPER_KEYS:
            if wrapper in data and isinstance(data[wrapper], Mapping):
                data = data[wrapper]
                break
    if not isinstance(data, Mapping) or not data:
        raise CheckpointError(f"{source} holds no state dict")
    return {
        (key[len(_DP_PREFIX):] if key.startswith(_DP_PREFIX) else key): value
        for key, value in data.items()
    }


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of an official checkpoint file, unwrapped and with prefixes stripped."""
    return unwrap_official(load_checkpoint_object(path), source=str(path))


def load_official(
    model: CodecModel,
    video_path: str | Path | None = None,
    intra_path: str | Path | None = None,
    *,
    assign: bool = False,
) -> None:
    """Load official checkpoints into `model.video` and/or `model.intra` (strict)."""
    if video_path is not None:
        load_weights(model.video, read_official(video_path), source=str(video_path),
                     assign=assign)
    if intra_path is not None:
        load_weights(model.intra, read_official(intra_path), source=str(intra_path),
                     assign=assign)


# --------------------------------------------------------------------------- configs as data


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_data(value)
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def config_to_data(config: Any) -> dict[str, Any]:
    """A frozen config dataclass as plain data (enums by value, tuples as lists)."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def config_defaults(cls: type) -> dict[str, Any]:
    """The defaulted fields of config dataclass `cls`, as plain data like `config_to_data`."""
    return {f.name: _plain(f.default) for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING}


def config_from_data(cls: type, data: Mapping[str, Any], *, source: str) -> Any:
    """Rebuild a config dataclass from `config_to_data` output; bad data -> CheckpointError."""
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{source}: config of {cls.__name__} is not a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CheckpointError(f"{source}: unknown {cls.__name__} fields: {', '.join(unknown)}")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        try:
            if isinstance(hint, type) and issubclass(hint, Enum):
                value = hint(value)
            elif dataclasses.is_dataclass(hint):
                value = config_from_data(hint, value, source=source)
            elif typing.get_origin(hint) is tuple:
                value = tuple(value)
        except (ValueError, TypeError) as error:
            raise CheckpointError(f"{source}: bad {cls.__name__}.{name}: {value!r}") from error
        values[name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{source}: invalid {cls.__name__}: {error}") from error


# --------------------------------------------------------------------------- .ufvm files


@dataclass
class UfvmFile:
    """The contents of a `.ufvm` file, after its digest was checked."""

    name: str
    model_id: int
    intra_config: dict[str, Any]
    video_config: dict[str, Any]
    intra_state: dict[str, torch.Tensor]
    video_state: dict[str, torch.Tensor]
    digest: bytes
    metadata: dict[str, Any] = field(default_factory=dict)
    storage: str = "float32"  # the stored dtypes, e.g. "float16" or "float16+int8"


def is_ufvm(data: Any) -> bool:
    """True when a loaded checkpoint object is a ufvc model file."""
    return isinstance(data, Mapping) and data.get("format") == UFVM_FORMAT


def save_ufvm(model: CodecModel, path: str | Path, *, metadata: Mapping[str, Any] | None = None,
              storage_dtype: torch.dtype = torch.float32) -> bytes:
    """Write `model` (configs, weights of both codecs, digest) to `path`; return the digest.

    `metadata` (training steps, data, losses...) must hold plain types only.
    `storage_dtype=torch.float16` halves the file (shipped weights use it);
    `torch.int8` stores convolution weights as 8-bit integers with a float16 scale per
    output channel and the rest as float16 (about a quarter of float32). The digest is that
    of the stored values, which is what a model loaded from the file holds.
    """
    _check_plain(dict(metadata or {}), "metadata")
    if storage_dtype not in STORAGE_DTYPES:
        raise CheckpointError(f"weights are stored as float32, float16, bfloat16 or int8, "
                              f"not {storage_dtype}")
    states: dict[str, dict[str, torch.Tensor]] = {}
    scales: dict[str, dict[str, torch.Tensor]] = {}
    for part, codec in (("intra", model.intra), ("video", model.video)):
        states[part], scales[part] = {}, {}
        for key, value in codec.state_dict().items():
            value = value.detach().to("cpu", torch.float32)
            if storage_dtype == torch.int8 and is_integer_storable(key, value):
                states[part][key], scales[part][key] = quantize_int8(value)
            else:
                float_dtype = torch.float16 if storage_dtype == torch.int8 else storage_dtype
                states[part][key] = value.to(float_dtype).clone()
    integer = any(scales.values())
    digest = state_digest({part: _dequantized(states[part], scales[part], source=str(path))
                           for part in states})
    payload = {
        "format": UFVM_FORMAT,
        "version": INTEGER_WEIGHTS_VERSION if integer else 1,
        "name": model.name,
        "model_id": int(model.model_id),
        "config": {"intra": config_to_data(model.intra.config),
                   "video": config_to_data(model.video.config)},
        "state": states,
        "digest": digest.hex(),
        "metadata": dict(metadata or {}),
    }
    if integer:
        payload["scales"] = scales
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return digest


def is_integer_storable(key: str, value: torch.Tensor) -> bool:
    """Whether int8 storage applies to this state entry: a convolution's weight."""
    return key.endswith(".weight") and value.dim() == 4 and value.is_floating_point()


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric 8-bit levels per output channel (dim 0) and their float16 scales.

    A channel's largest magnitude maps to level 127 (a channel of zeros gets scale 1).
    Quantising the result of `dequantize_int8` again gives the same levels and scales.
    """
    weight = weight.detach().to(torch.float32)
    peak = weight.abs().flatten(1).amax(1)
    scale = (peak / _INT8_TOP).to(torch.float16)
    if not bool(torch.isfinite(scale).all()):
        raise CheckpointError("a convolution weight is too large for a float16 scale")
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    shape = (-1,) + (1,) * (weight.dim() - 1)
    levels = torch.round(weight / scale.float().view(shape)).clamp(-_INT8_TOP, _INT8_TOP)
    return levels.to(torch.int8), scale


def dequantize_int8(levels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """int8 levels times their per-channel float16 scales, exactly, as float32."""
    shape = (-1,) + (1,) * (levels.dim() - 1)
    return levels.to(torch.float32) * scale.to(torch.float32).view(shape)


def _dequantized(state: Mapping[str, Any], scales: Mapping[str, Any], *,
                 source: str) -> dict[str, torch.Tensor]:
    """`state` with its int8 entries replaced by their float32 values; refuse an integer
    tensor without a valid scale, a scale without its integer tensor, or other dtypes."""
    result = dict(state)
    for key, scale in scales.items():
        levels = state.get(key)
        if not isinstance(levels, torch.Tensor) or levels.dtype != torch.int8:
            raise CheckpointError(f"{source} is a damaged .ufvm file "
                                  f"(a scale for {key}, which is not int8)")
        if (not isinstance(scale, torch.Tensor) or scale.dtype != torch.float16
                or levels.dim() < 1 or tuple(scale.shape) != (levels.shape[0],)
                or not bool(torch.isfinite(scale).all()) or not bool((scale > 0).all())):
            raise CheckpointError(f"{source} is a damaged .ufvm file (bad scale for {key})")
        result[key] = dequantize_int8(levels, scale)
    for key, value in result.items():
        if isinstance(value, torch.Tensor) and not value.is_floating_point():
            raise CheckpointError(f"{source} is a damaged .ufvm file "
                                  f"({key} is {value.dtype} without a scale)")
    return result


def _check_plain(value: Any, where: str) -> None:
    """Refuse what a weights-only load could not read back."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{where}: keys must be strings, got {key!r}")
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
    elif not isinstance(value, str | int | float | bool | type(None)):
        raise CheckpointError(f"{where}: {type(value).__name__} is not plain data")


def read_ufvm(path: str | Path) -> UfvmFile:
    """Read and verify a `.ufvm` file (format, version, structure, weights digest)."""
    return parse_ufvm(load_checkpoint_object(path), source=str(path))


def parse_ufvm(data: Any, *, source: str) -> UfvmFile:
    """Check a loaded `.ufvm` object and return its contents."""
    if not is_ufvm(data):
        raise CheckpointError(f"{source} is not a ufvc model file (.ufvm)")
    version = data.get("version")
    if not isinstance(version, int) or version > UFVM_VERSION:
        raise CheckpointError(
            f"{source} has model-file version {version!r}; this ufvc reads up to {UFVM_VERSION}"
        )
    try:
        config, state = data["config"], data["state"]
        scales = dict(data.get("scales") or {})
        stored = {part: dict(state[part]) for part in ("intra", "video")}
        stored_dtypes = {value.dtype for part in stored.values() for value in part.values()
                         if isinstance(value, torch.Tensor)}
        dequantized = {part: _dequantized(stored[part], dict(scales.get(part) or {}),
                                          source=source) for part in stored}
        parsed = UfvmFile(
            name=str(data["name"]),
            model_id=int(data["model_id"]),
            intra_config=dict(config["intra"]),
            video_config=dict(config["video"]),
            intra_state=dequantized["intra"],
            video_state=dequantized["video"],
            digest=bytes.fromhex(data["digest"]),
            metadata=dict(data.get("metadata") or {}),
            storage="+".join(sorted(str(dtype).removeprefix("torch.")
                                    for dtype in stored_dtypes)),
        )
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{source} is a damaged .ufvm file (missing {error})") from error
    tensors = list(parsed.intra_state.values()) + list(parsed.video_state.values())
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise CheckpointError(f"{source} is a damaged .ufvm file (non-tensor weights)")
    actual = state_digest({"intra": parsed.intra_state, "video": parsed.video_state})
    if actual != parsed.digest:
        raise CheckpointError(
            f"{source}: weights digest {actual.hex()} does not match the recorded "
            f"{parsed.digest.hex()} (file damaged or edited)"
        )
    return parsed

