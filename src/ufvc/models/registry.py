"""Named models: an intra codec plus a chunk video codec, with a stable id for bitstreams.

    model = create_model("dcvc-uf-hts")                        # official structure, untrained
    model = create_model("dcvc-uf-hts", checkpoint="cvpr2026_video_hts.pth.tar",
                         intra_checkpoint="cvpr2026_image.pth.tar")
    model = create_model("ufvc-s")                             # our model, shipped weights
    model = load_model_file("runs/x/model.ufvm")               # any .ufvm, its own configs

A model's `model_id` and `weights_digest()` go into every stream header, so a decoder can
tell which network and which weights a stream needs. Ids are never reused or renumbered.
Without weights, a model gets the deterministic recipe weights of the reference fixtures
(`ufvc.models.recipe`): every process builds the same untrained model, so encoder and
decoder agree on its digest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ufvc.errors import CheckpointError, InputFormatError
from ufvc.models import checkpoint as ckpt
from ufvc.models.intra import INTRA, INTRA_S, INTRA_TINY, IntraCodec, IntraCodecConfig
from ufvc.models.qp_tables import step_table
from ufvc.models.recipe import recipe_state_dict
from ufvc.models.spatial_prior import EntropyMode
from ufvc.models.video import HTL, HTS, LD, TINY, ChunkCodec, ChunkCodecConfig, ReconLayout
from ufvc.nn.exact import make_portable

WEIGHTS_PACKAGE = "ufvc.weights"  # shipped .ufvm files live in src/ufvc/weights/

# Our own default model: 8-frame chunks, streamlined 4-step entropy coding, narrow
# half-width blocks; about 1/20 of HT-S's MACs per frame (see `ufvc info --model ufvc-s`).
# Initial quantisation step multipliers at qp 0 and qp 63 of ufvc-s (both codecs): spreads
# the rates of all levels from the first step of training (see benchmarks/respread_qp.py).
UFVC_S_STEP_RANGE = (3.0, 0.1)
# The intra decoder is twice INTRA_S's width: it learned faster per step in the campaign's
# A/B (docs/training.md, session 7) for +10 % of the average MACs per frame. The latent is
# twice as wide too (prior networks kept at 256, their width before): a 128-channel latent
# bounded the top quality (docs/training.md, session 9), for +10.5 % of an intra frame's MACs.
UFVC_S_INTRA = dataclasses.replace(INTRA_S, qp_step_range=UFVC_S_STEP_RANGE, decoder_width=256,
                                   latent_channels=256, prior_width=256)
UFVC_S_VIDEO = ChunkCodecConfig(
    frames=8, y_channels=128, z_channels=64, feature_channels=128, memory_channels=128,
    recon_channels=64, encoder_blocks=3, decoder_blocks=3, adaptor_i_blocks=2,
    adaptor_m_blocks=3, extractor_blocks=2, recon_blocks=2,
    entropy_mode=EntropyMode.STREAMLINED_QUADTREE, recon_layout=ReconLayout.SHARED_GROUPS,
    recon_shared_blocks=1, recon_group_size=2, fusion_blocks=2, spatial_prior_blocks=2,
    half_main=True, half_prior=True, half_recon=True, qp_step_range=UFVC_S_STEP_RANGE,
    # Each decoded frame is blended with the reference frame by a learnt gate per 8x8
    # block: the memory alone could not copy a still scene; held out, the gate gained
    # 10 % on OpenCV's clips (docs/training.md, session 42) for 0.05 % more MACs.
    reference_skip=True,
)


@dataclass(frozen=True)
class RegisteredModel:
    """One row of the model table."""

    name: str
    model_id: int  # stable id written to streams; 1..255, never reused
    intra: IntraCodecConfig
    video: ChunkCodecConfig
    description: str
    weights: str | None = None  # file name of shipped weights in `ufvc.weights`
    # weights_digest() of the recipe weights a model without shipped weights gets (hex):
    # lets a decoder refuse a stream of other weights before building a large model.
    recipe_digest: str | None = None


_MODELS: dict[str, RegisteredModel] = {}
_IDS: dict[int, str] = {}


def register_model(
    name: str, *, model_id: int, weights: str | None = None, recipe_digest: str | None = None
) -> Callable[[Callable[[], tuple[IntraCodecConfig, ChunkCodecConfig]]], Callable]:
    """Decorator: register a function returning (intra config, video config) as `name`.

    The function's docstring becomes the model's description. `recipe_digest` is the
    digest of the model's recipe weights (tests/models/test_registry.py checks it).
    """

    def decorate(build: Callable[[], tuple[IntraCodecConfig, ChunkCodecConfig]]) -> Callable:
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is already registered")
        if model_id in _IDS or not 1 <= model_id <= 255:
            raise ValueError(f"model id {model_id} is taken or outside 1..255")
        intra, video = build()
        description = (build.__doc__ or "").strip().splitlines()[0] if build.__doc__ else ""
        _MODELS[name] = RegisteredModel(name, model_id, intra, video, description, weights,
                                        recipe_digest)
        _IDS[model_id] = name
        return build

    return decorate


@register_model("dcvc-uf-ld", model_id=1,
                recipe_digest="8ef1ff99c2f41a8c4f5041e4d2be7636")
def _dcvc_uf_ld() -> tuple[IntraCodecConfig, ChunkCodecConfig]:
    """DCVC-UF LD (official structure): one frame per call, 2-step checkerboard prior."""
    return INTRA, LD


@register_model("dcvc-uf-hts", model_id=2,
                recipe_digest="7af377e0e20dc152dd3600539956c657")
def _dcvc_uf_hts() -> tuple[IntraCodecConfig, ChunkCodecConfig]:
    """DCVC-UF HT-S (official structure): 8-frame chunks, streamlined 4-step prior."""
    return INTRA, HTS


@register_model("dcvc-uf-htl", model_id=3,
                recipe_digest="6ae4478ad7054e8280d6405d1fbb9290")
def _dcvc_uf_htl() -> tuple[IntraCodecConfig, ChunkCodecConfig]:
    """DCVC-UF HT-L (official structure): 8-frame chunks, per-step 4-step prior."""
    return INTRA, HTL


@register_model("ufvc-s", model_id=16, weights="ufvc-s.ufvm")
def _ufvc_s() -> tuple[IntraCodecConfig, ChunkCodecConfig]:
    """ufvc's small model: 8-frame chunks, streamlined prior, narrow half-width blocks."""
    return UFVC_S_INTRA, UFVC_S_VIDEO


@register_model("ufvc-tiny", model_id=250,
                recipe_digest="e4dbfd8befb77595e80f34bfa04643c5")
def _ufvc_tiny() -> tuple[IntraCodecConfig, ChunkCodecConfig]:
    """Test-sized model (2-frame chunks); computes in milliseconds, codes nothing well."""
    return INTRA_TINY, TINY


def list_models() -> list[str]:
    """Registered model names, in id order."""
    return [_IDS[model_id] for model_id in sorted(_IDS)]


def get_model_spec(name: str) -> RegisteredModel:
    """The registry row of `name`; an unknown name is an InputFormatError listing the known."""
    try:
        return _MODELS[name]
    except KeyError:
        raise InputFormatError(
            f"unknown model {name!r} (known: {', '.join(list_models())})"
        ) from None


def model_name_for_id(model_id: int) -> str:
    """The name registered under a stream's model id."""
    try:
        return _IDS[model_id]
    except KeyError:
        raise InputFormatError(f"unknown model id {model_id}") from None


class CodecModel(nn.Module):
    """An intra codec and a chunk video codec that are used together, plus their identity."""

    def __init__(
        self,
        name: str,
        model_id: int,
        intra_config: IntraCodecConfig,
        video_config: ChunkCodecConfig,
    ) -> None:
        super().__init__()
        self.name = name
        self.model_id = model_id
        self.intra = IntraCodec(intra_config)
        self.video = ChunkCodec(video_config)
        self.weights_source = "untrained"  # where the current weights came from

    @property
    def frames_per_chunk(self) -> int:
        return self.video.config.frames

    def weights_digest(self) -> bytes:
        """16-byte SHA-256 prefix of both codecs' weights (see `checkpoint.state_digest`)."""
        return ckpt.state_digest(
            {"intra": self.intra.state_dict(), "video": self.video.state_dict()}
        )

    def make_portable(self) -> CodecModel:
        """Run everything a decoder recomputes in the portable arithmetic (`ufvc.nn.exact`),
        in place; the encoders' analysis transforms stay in float."""
        for codec in (self.intra, self.video):
            for name in codec.DECODER_PARTS:
                part = getattr(codec, name, None)
                if part is not None:
                    make_portable(part)
        return self

    def load_recipe_weights(self) -> None:
        """The deterministic fixture-recipe weights (the official keys decide every value)."""
        for codec in (self.intra, self.video):
            state = recipe_state_dict(codec)
            if "q_step" in state:  # ours, not an official key: its configured start
                state["q_step"] = step_table(codec.config.qp_step_range,
                                             codec.config.num_qp).detach()
            codec.load_state_dict(state, strict=True, assign=True)
        self.weights_source = "recipe (untrained)"

    def load_ufvm(self, data: ckpt.UfvmFile, *, source: str) -> None:
        """Load a verified `.ufvm` whose configs must equal this model's (its tensors become
        the parameters, so this also fills a model built on the meta device)."""
        for part, config, stored in (("intra", self.intra.config, data.intra_config),
                                     ("video", self.video.config, data.video_config)):
            ours = ckpt.config_to_data(config)
            # Files written before a field existed hold its default.
            stored = {**ckpt.config_defaults(type(config)), **stored}
            differing = sorted(key for key in set(ours) | set(stored)
                               if ours.get(key) != stored.get(key) and key != "name")
            if differing:
                shown = ", ".join(f"{key}={stored.get(key)!r} (model: {ours.get(key)!r})"
                                  for key in differing[:5])
                raise CheckpointError(
                    f"{source} holds a {part} codec of another structure: {shown}; "
                    f"load it with load_model_file to use its own configuration"
                )
        ckpt.load_weights(self.intra, data.intra_state, source=f"{source} (intra)", assign=True)
        ckpt.load_weights(self.video, data.video_state, source=f"{source} (video)", assign=True)
        self.weights_source = source


def shipped_weights_path(spec: RegisteredModel) -> Path | None:
    """The installed weights file of a registered model, or None when it has none."""
    if spec.weights is None:
        return None
    try:
        candidate = resources.files(WEIGHTS_PACKAGE).joinpath(spec.weights)
    except ModuleNotFoundError:
        return None
    return Path(str(candidate)) if candidate.is_file() else None


def create_model(
    name: str,
    *,
    checkpoint: str | Path | None = None,
    intra_checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> CodecModel:
    """Build the registered model `name`, in eval mode, on `device`.

    `checkpoint` is a `.ufvm` file (both codecs) or an official video checkpoint
    (`cvpr2026_video_*.pth.tar`), which then needs `intra_checkpoint`
    (`cvpr2026_image.pth.tar`). Without a checkpoint, shipped weights are used when the
    model has them, else the deterministic recipe weights (`weights_source` says which).
    `intra_checkpoint` (official image checkpoint) replaces the intra codec's weights.
    """
    spec = get_model_spec(name)
    # Built without initialising: every path below assigns all weights.
    with torch.device("meta"):
        model = CodecModel(spec.name, spec.model_id, spec.intra, spec.video)
    if checkpoint is not None:
        _load_checkpoint(model, checkpoint, with_intra=intra_checkpoint is not None)
    else:
        shipped = shipped_weights_path(spec)
        if shipped is None:
            model.load_recipe_weights()
        else:
            model.load_ufvm(ckpt.read_ufvm(shipped), source=str(shipped))
    if intra_checkpoint is not None:
        ckpt.load_official(model, intra_path=intra_checkpoint, assign=True)
        model.weights_source += f" + {intra_checkpoint}"
    return model.to(device).eval()


def _load_checkpoint(model: CodecModel, path: str | Path, *, with_intra: bool) -> None:
    """Load a .ufvm or an official video checkpoint into `model`."""
    data = ckpt.load_checkpoint_object(path)
    if ckpt.is_ufvm(data):
        parsed = ckpt.parse_ufvm(data, source=str(path))
        if parsed.name != model.name:
            raise CheckpointError(f"{path} holds model {parsed.name!r}, not {model.name!r}")
        model.load_ufvm(parsed, source=str(path))
        return
    if not with_intra:
        raise CheckpointError(
            f"{path} is an official video checkpoint and holds no intra codec; "
            f"also give the image checkpoint (cvpr2026_image.pth.tar)"
        )
    state = ckpt.unwrap_official(data, source=str(path))
    ckpt.load_weights(model.video, state, source=str(path), assign=True)
    model.weights_source = str(path)


def _file_configs(parsed: ckpt.UfvmFile, source: str
                  ) -> tuple[IntraCodecConfig, ChunkCodecConfig]:
    return (ckpt.config_from_data(IntraCodecConfig, parsed.intra_config, source=source),
            ckpt.config_from_data(ChunkCodecConfig, parsed.video_config, source=source))


def model_file_spec(path: str | Path) -> RegisteredModel:
    """The model table row a `.ufvm` file describes: its own name, id and configs, with
    the file as its weights (the weights are read but not built)."""
    parsed = ckpt.read_ufvm(path)
    return RegisteredModel(parsed.name, parsed.model_id, *_file_configs(parsed, str(path)),
                           f"model file {path}", weights=str(path))


def load_model_file(path: str | Path, *, device: str | torch.device = "cpu") -> CodecModel:
    """Build a model from a `.ufvm` file's own configs (e.g. a model trained with changed
    widths), in eval mode. Its name and id are the file's."""
    parsed = ckpt.read_ufvm(path)
    source = str(path)
    with torch.device("meta"):
        model = CodecModel(parsed.name, parsed.model_id, *_file_configs(parsed, source))
    model.load_ufvm(parsed, source=source)
    return model.to(device).eval()
