"""Widen a trained codec, keeping what it has learnt: the intra codec's latent, encoder or
decoder, the video codec's feature or memory width.

Latent (`widen_intra`): the old channels keep their quadtree step (the masks give channel
i of C to group i // (C/4)), so channel i moves to the same place in its group of the
wider latent. The new channels start at zero in the encoder (they round to zero, so the
output does not change) and small in the decoder's input (so a gradient reaches the
encoder's new rows through the straight-through rounding); their prior starts at zero
mean with a scale just above the floor at the finest step (a gradient reaches it, almost
no bits are spent). The prior networks keep their width (`prior_width`) and only grow
where they read or write the latent; new input columns start at zero, so the old
channels' prior is unchanged.

Transforms (`widen_encoder`, `widen_decoder`, `widen_video`, `widen_video_memory`): the usual
function-preserving widening (`grown_state`). `add_reference_skip` gives the video codec a
direct path from the reference frame to its output, closed at first.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ufvc.models.intra import IntraCodec
from ufvc.models.video import ChunkCodec
from ufvc.nn.entropy import SCALE_FLOOR

NEW_WEIGHT_GAIN = 0.1  # new weights of a widened layer, relative to the RMS of the old ones
DECODER_INPUT = "dec.dec_1.0.up.conv.0.weight"
DECODER_CONCAT = "decoder.conv1.0.adaptor.weight"  # the video decoder's first layer
MEMORY_CONCAT = "feature_adaptor_m.conv.0.adaptor.weight"  # the video memory's first layer


def latent_index(old: int, new: int) -> torch.Tensor:
    """Where each of `old` latent channels goes among `new` (same quadtree group)."""
    channel = torch.arange(old)
    return (channel // (old // 4)) * (new // 4) + channel % (old // 4)


def pair_index(old: int, new: int) -> torch.Tensor:
    """The same for two latent-sized halves side by side (scales|means, y_hat|condition)."""
    half = latent_index(old, new)
    return torch.cat((half, half + new))


def reads_hyper_features(key: str, dim: int) -> bool:
    """Whether dimension `dim` of `key` counts hyper-decoder features or its inner units."""
    return key.startswith("hyper_dec.") or (key == "y_prior_fusion.conv.0.adaptor.weight"
                                            and dim == 1)


def _dims(key: str, old_c: int, new_c: int, old_shape, new_shape) -> list[torch.Tensor]:
    """Per dimension, the indices of the new tensor that the old entries take."""
    index = []
    for dim, (a, b) in enumerate(zip(old_shape, new_shape, strict=True)):
        if a == b:
            index.append(torch.arange(a))
        elif reads_hyper_features(key, dim):
            # Hyper features and inner widths are not tied to the quadtree groups: the old
            # units take the first places (groups of four consecutive channels stay whole).
            index.append(torch.arange(a))
        elif a == old_c and b == new_c:
            index.append(latent_index(a, b))
        elif a == 2 * old_c and b == 2 * new_c:
            index.append(pair_index(old_c, new_c))
        else:
            raise ValueError(f"{key}: no rule to widen dimension {dim} from {a} to {b}")
    return index


def widen_intra(old: IntraCodec, latent: int, prior_width: int) -> IntraCodec:
    """A copy of `old` with `latent` channels and prior networks `prior_width` wide."""
    old_c = old.config.latent_channels
    if latent <= old_c or latent % 4:
        raise ValueError(f"the new latent width must be a multiple of 4 above {old_c}")
    if prior_width and prior_width < old.config.prior_network_width:
        raise ValueError(f"the prior width can grow, not shrink below "
                         f"{old.config.prior_network_width}")
    config = dataclasses.replace(old.config, latent_channels=latent,
                                 prior_width=prior_width or old.config.prior_network_width)
    generator = torch.Generator().manual_seed(0)
    new = IntraCodec(config)
    old_state, new_state = old.state_dict(), new.state_dict()
    if set(old_state) != set(new_state):
        raise ValueError("the widened codec has other parameters: structure mismatch")
    prior_outputs = (f"y_prior_fusion.conv.{config.fusion_depth}.bias",
                     f"y_spatial_prior.conv.{config.spatial_prior_depth}.bias")
    widened = {}
    for key, target in new_state.items():
        source = old_state[key]
        if source.shape == target.shape:
            widened[key] = source.clone()
            continue
        value = torch.zeros_like(target)
        index = _dims(key, old_c, latent, source.shape, target.shape)
        value[torch.meshgrid(*index, indexing="ij")] = source
        fresh = torch.ones_like(value, dtype=torch.bool)
        fresh[torch.meshgrid(*index, indexing="ij")] = False
        rms = source.float().square().mean().sqrt()
        if key.startswith("q_scale_y_"):
            # Rows are per qp: new channels take the row's mean.
            value = torch.where(fresh, source.mean(dim=1, keepdim=True).expand_as(value),
                                value)
        elif key == DECODER_INPUT:
            noise = torch.randn(value.shape, generator=generator) * rms * NEW_WEIGHT_GAIN
            value = torch.where(fresh, noise, value)
        elif key in prior_outputs:
            # Output is scales|means: new scales start just above the floor, means at 0.
            # The floor applies after division by the qp's step, so "just above" is
            # measured against the finest step.
            scales = torch.zeros_like(value)
            finest = old.q_step.abs().min().item() if old.q_step is not None else 1.0
            scales[: latent] = SCALE_FLOOR * 1.05 * finest
            value = torch.where(fresh, scales, value)
        widened[key] = value
    new.load_state_dict(widened)
    return new


def widen_decoder(old: IntraCodec, width: int) -> IntraCodec:
    """A copy of `old` whose synthesis transform works at `width` channels."""
    return _widen_transform(old, "decoder_width", "q_scale_dec", width)


def widen_encoder(old: IntraCodec, width: int) -> IntraCodec:
    """A copy of `old` whose analysis transform works at `width` channels."""
    return _widen_transform(old, "encoder_width", "q_scale_enc", width)


def _widen_transform(old: IntraCodec, field: str, qp_table: str, width: int) -> IntraCodec:
    """Widen one transform of the intra codec (`field` of its config), keeping its output."""
    if width <= getattr(old.config, field):
        raise ValueError(f"the new {field.replace('_', ' ')} must be above "
                         f"{getattr(old.config, field)}")
    new = IntraCodec(dataclasses.replace(old.config, **{field: width}))
    new.load_state_dict(grown_state(old, new, qp_tables=(qp_table,)))
    return new


def widen_video(old: ChunkCodec, feature_channels: int) -> ChunkCodec:
    """A copy of `old` whose encoder, decoder and decoded feature are `feature_channels` wide.

    The decoded feature is what the reconstruction head turns into the chunk's frames and
    what the next chunk's memory reads, so its width bounds the detail a chunk can carry.
    """
    old_f = old.config.feature_channels
    if feature_channels <= old_f:
        raise ValueError(f"the new feature width must be above {old_f}")
    new = ChunkCodec(dataclasses.replace(old.config, feature_channels=feature_channels))
    # The decoder reads cat(upsampled latent, context): the context moves up.
    ctx = old.config.memory_channels
    places = {(DECODER_CONCAT, 1): torch.cat((torch.arange(old_f),
                                              feature_channels + torch.arange(ctx)))}
    new.load_state_dict(grown_state(old, new, qp_tables=("q_encoder", "q_decoder"),
                                    places=places))
    return new


def widen_video_memory(old: ChunkCodec, memory_channels: int) -> ChunkCodec:
    """A copy of `old` whose temporal memory and context are `memory_channels` wide.

    The memory is the only way the reference reaches the decoder (at 1/8 resolution);
    the release's HT-S gives it 512 channels, `ufvc-s` 128 (docs/training.md, session 41).
    """
    old_m, feature = old.config.memory_channels, old.config.feature_channels
    if memory_channels <= old_m:
        raise ValueError(f"the new memory width must be above {old_m}")
    new = ChunkCodec(dataclasses.replace(old.config, memory_channels=memory_channels))
    # The memory adaptor reads cat(memory, decoded feature): the feature moves up. Every
    # other layer that reads the context has it last, where new channels are appended.
    places = {(MEMORY_CONCAT, 1): torch.cat((torch.arange(old_m),
                                             memory_channels + torch.arange(feature)))}
    new.load_state_dict(grown_state(old, new, qp_tables=("q_feature",), places=places))
    return new


def add_reference_skip(old: ChunkCodec) -> ChunkCodec:
    """A copy of `old` with the reference skip (`ChunkCodecConfig.reference_skip`): its gate
    starts at zero, so the copy codes exactly what `old` did until training moves it."""
    if old.config.reference_skip:
        raise ValueError("the video codec already has the reference skip")
    new = ChunkCodec(dataclasses.replace(old.config, reference_skip=True))
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    if unexpected or set(missing) != {"reference_gate.weight", "reference_gate.bias"}:
        raise ValueError(f"unexpected state: missing {missing}, unexpected {unexpected}")
    return new


def grown_state(old: nn.Module, new: nn.Module, *, qp_tables: tuple[str, ...] = (),
                places: dict[tuple[str, int], torch.Tensor] | None = None
                ) -> dict[str, torch.Tensor]:
    """`new`'s state holding `old`'s weights, so that `new` computes what `old` did.

    The usual function-preserving widening: the old units keep their weights (by default
    the first places of every grown dimension, so the groups of pixel_shuffle and of the
    DC blocks' feed-forward branches stay whole; `places` says otherwise for a dimension
    (key, dim) that concatenates several inputs). New units read the old ones through
    small random weights and are read by nothing at first (zero columns), so the output
    does not change and every new weight receives a gradient once its neighbours move.
    In a per-qp table (`qp_tables`, [qp, channel]) new channels take each row's mean.
    """
    places = places or {}
    generator = torch.Generator().manual_seed(0)
    old_state = old.state_dict()
    grown = {}
    for key, target in new.state_dict().items():
        source = old_state[key]
        if source.shape == target.shape:
            grown[key] = source.clone()
            continue
        index = [places.get((key, dim), torch.arange(size))
                 for dim, size in enumerate(source.shape)]
        if key in qp_tables:
            value = source.mean(dim=1, keepdim=True).expand(target.shape).clone()
        elif source.dim() == 1:  # biases of new units start at zero
            value = torch.zeros_like(target)
        else:
            rms = source.float().square().mean().sqrt()
            value = torch.randn(target.shape, generator=generator) * rms * NEW_WEIGHT_GAIN
            old_rows = torch.zeros(target.shape[0], dtype=torch.bool)
            old_rows[index[0]] = True
            new_columns = torch.ones(target.shape[1], dtype=torch.bool)
            new_columns[index[1]] = False
            value[torch.outer(old_rows, new_columns)] = 0  # old units ignore new inputs
        value[torch.meshgrid(*index, indexing="ij")] = source
        grown[key] = value
    return grown
