"""What one training sample costs: the codecs run on it, scored by the RD loss.

Each objective is an `nn.Module` whose forward runs a whole sample through the codec, so a
stage can wrap it in DistributedDataParallel as it is. The rates come from an
`EstimateChannel`: noisy rates with rounded, straight-through values in training mode, the
rates of the rounded symbols in eval mode (validation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ufvc.models.channel import EstimateChannel
from ufvc.models.intra import IntraCodec
from ufvc.models.video import ChunkCodec, ChunkState
from ufvc.train.losses import RDTerms, distortion, normalized_frame_weights


def frames_to_model_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 YCbCr frames to the model's float32 range [-0.5, 0.5]."""
    return frames.float() / 255.0 - 0.5


def _total_bits(channel: EstimateChannel, like: torch.Tensor) -> torch.Tensor:
    bits = channel.bits_y + channel.bits_z
    if not isinstance(bits, torch.Tensor):
        return torch.zeros(like.shape[0], device=like.device)
    return bits.float()


class IntraObjective(nn.Module):
    """lambda * D + bpp of the intra codec on single frames [B, 1, 3, H, W]."""

    def __init__(self, intra: IntraCodec, lambdas: torch.Tensor) -> None:
        super().__init__()
        self.intra = intra
        self.register_buffer("lambdas", lambdas.float(), persistent=False)

    def forward(self, x: torch.Tensor, qp: torch.Tensor) -> RDTerms:
        frame = x[:, 0]
        channel = EstimateChannel(noisy_rate=self.training)
        x_hat = self.intra.code_frame(frame, qp, channel).x_hat
        d, mse = distortion(x_hat, frame)
        bpp = _total_bits(channel, frame) / (frame.shape[-2] * frame.shape[-1])
        loss = self.lambdas[qp] * d + bpp
        return RDTerms(loss=loss, bpp=bpp, distortion=d, plane_mse=mse)


class SequenceObjective(nn.Module):
    """lambda * D + bpp over a sequence [B, 1 + k*N, 3, H, W], the temporal context carried.

    Frame 0 is coded by the intra codec, which is frozen here (no gradient), and its
    unclamped reconstruction starts the chunk codec's state, as in the release's
    training; then k chunks of N frames follow, each conditioned on the state the previous
    one left. The loss is the mean over chunks of lambda * (weighted mean distortion of the
    chunk's frames) + the chunk's bpp. With `grad_checkpoint` each chunk is recomputed in
    the backward pass, so memory stays that of one chunk whatever k is.
    """

    def __init__(
        self,
        intra: IntraCodec,
        video: ChunkCodec,
        lambdas: torch.Tensor,
        frame_weights: Sequence[float],
        *,
        grad_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.intra = intra
        self.video = video
        self.chunk_size = video.config.frames
        if len(frame_weights) != self.chunk_size:
            raise ValueError(
                f"{len(frame_weights)} frame weights for chunks of {self.chunk_size} frames"
            )
        self.register_buffer("lambdas", lambdas.float(), persistent=False)
        self.register_buffer(
            "frame_weights", normalized_frame_weights(frame_weights), persistent=False
        )
        self.grad_checkpoint = grad_checkpoint

    def _code_chunk(
        self, x: torch.Tensor, qp: torch.Tensor, state: ChunkState
    ) -> tuple[torch.Tensor, torch.Tensor, ChunkState]:
        # A fresh channel per call: a checkpointed chunk runs twice, and its rate must be
        # counted once.
        channel = EstimateChannel(noisy_rate=self.training)
        result = self.video.code_chunk(x, qp, state, channel)
        return result.x_hat, _total_bits(channel, x), result.state

    def forward(self, x: torch.Tensor, qp: torch.Tensor) -> RDTerms:
        n = self.chunk_size
        chunks = (x.shape[1] - 1) // n
        if chunks < 1 or x.shape[1] != 1 + chunks * n:
            raise ValueError(f"a sequence needs 1 + k*{n} frames, got {x.shape[1]}")
        with torch.no_grad():
            intra_recon = self.intra.code_frame(x[:, 0], qp, EstimateChannel()).x_hat
        state = self.video.init_state(intra_recon)
        pixels = n * x.shape[-2] * x.shape[-1]
        losses, rates, distortions, mses = [], [], [], []
        for k in range(chunks):
            frames = x[:, 1 + k * n : 1 + (k + 1) * n]
            if self.grad_checkpoint and torch.is_grad_enabled():
                x_hat, bits, state = checkpoint(
                    self._code_chunk, frames, qp, state, use_reentrant=False
                )
            else:
                x_hat, bits, state = self._code_chunk(frames, qp, state)
            d, mse = distortion(x_hat, frames)  # [B, N], [B, N, 3]
            weighted = (d * self.frame_weights).mean(dim=1)
            bpp = bits / pixels
            losses.append(self.lambdas[qp] * weighted + bpp)
            rates.append(bpp)
            distortions.append(weighted)
            mses.append(mse.mean(dim=1))
        return RDTerms(
            loss=torch.stack(losses).mean(0),
            bpp=torch.stack(rates).mean(0),
            distortion=torch.stack(distortions).mean(0),
            plane_mse=torch.stack(mses).mean(0),
        )
