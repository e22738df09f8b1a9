"""An exponential moving average of a model's parameters (Polyak averaging).

A campaign that restarts from its committed weights each session pays for every restart:
the learning rate rises again and the weights leave the annealed point they were
written at (session 10's intra run lost about 1,500 of its 3,500 steps climbing back).
The average of the recent iterates sits close to where annealing would have taken them,
so validation, checkpoints and the exported model can use it at any step, and a long
schedule can be cut anywhere without a worse model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ufvc.errors import CheckpointError


class WeightAverage:
    """`average = decay * average + (1 - decay) * parameter` after every step, for every
    parameter of `model` (float32, the parameters' device), starting from its weights."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the averaging decay must lie in (0, 1), not {decay}")
        self.decay = decay
        named = list(model.named_parameters())
        self.names = [name for name, _ in named]
        self.params = [param for _, param in named]
        self.average = [param.detach().float().clone() for param in self.params]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.average, [p.detach().float() for p in self.params],
                             1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: avg.detach().cpu().clone()
                for name, avg in zip(self.names, self.average, strict=True)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.names):
            raise CheckpointError("the checkpoint's weight average does not match the model")
        for name, avg in zip(self.names, self.average, strict=True):
            avg.copy_(state[name])

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own after it."""
        own = [param.detach().clone() for param in self.params]
        try:
            _copy(self.params, self.average)
            yield
        finally:
            _copy(self.params, own)


@torch.no_grad()
def _copy(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    for target, source in zip(targets, sources, strict=True):
        target.copy_(source)
