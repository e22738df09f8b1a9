"""Latent channels that connect the networks to the arithmetic coder.

`EncoderChannel` rounds the residuals the model hands it, applies the skip rule and
keeps the integer symbols with their scale bins; `DecoderChannel` gives the model
the same integers back from a payload. Both call the same table functions on the
scales their own model computed, so the two sides agree whenever the two models
compute the same scales (see docs/determinism.md).
"""

from __future__ import annotations

import time
from functools import wraps

import numpy as np
import torch

from ufvc.entropy.coder import SymbolReader, SymbolWriter
from ufvc.entropy.tables import GaussianTables
from ufvc.errors import CorruptStreamError
from ufvc.nn.entropy import FactorizedDensity

# Symbols outside this range never occur in practice; clamping keeps them codable.
SYMBOL_LIMIT = (1 << 15) - 1
# Both channels hand integers back as float32, whatever the model computes in: under
# bf16 autocast the encoder's z is bf16 while the decoder's comes from the stream, and
# mixed dtypes downstream would round differently on the two sides.
SYMBOL_DTYPE = torch.float32


def _masked(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """The values at `mask` positions, in C order over [B, C, H, W], as a numpy array."""
    selected = values[mask.expand_as(values) > 0]
    return selected.detach().to("cpu", torch.float64).numpy()


def _z_channels(shape: tuple[int, ...]) -> np.ndarray:
    """Channel index of every element of a z tensor of `shape`, in C order."""
    batch, channels, height, width = shape
    index = np.arange(channels, dtype=np.int32)[None, :, None, None]
    return np.broadcast_to(index, (batch, channels, height, width)).reshape(-1)


def _timed(method):
    """Add the wall-clock time of `method` to the channel's `coding_seconds`."""

    @wraps(method)
    def run(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.coding_seconds += time.perf_counter() - started

    return run


class EncoderChannel:
    """Quantises residuals and records the symbols an encoder must write."""

    def __init__(self, tables: GaussianTables, skip_threshold: float) -> None:
        self.tables = tables
        self.skip_threshold = skip_threshold
        self.z_symbols: np.ndarray | None = None
        self.z_channels: np.ndarray | None = None
        self.streamlined = False
        self.y_steps: list[tuple[np.ndarray, np.ndarray]] = []  # (symbols, bins) per step
        self.coding_seconds = 0.0  # time in symbol handling and arithmetic coding

    @_timed
    def exchange_z(self, z, density: FactorizedDensity, qp, shape):
        z_hat = torch.round(z.to(SYMBOL_DTYPE)).clamp(-SYMBOL_LIMIT, SYMBOL_LIMIT)
        self.z_symbols = z_hat.detach().to("cpu", torch.int32).numpy().reshape(-1)
        self.z_channels = _z_channels(tuple(z_hat.shape))
        return z_hat

    @_timed
    def begin_y(self, scales, masks) -> None:
        self.streamlined = scales is not None

    @_timed
    def exchange_y(self, step, residual, scales, mask):
        bins = self.tables.coding_bins(_masked(scales, mask), self.skip_threshold)
        coded = torch.zeros(residual.shape, dtype=SYMBOL_DTYPE, device=residual.device)
        position = mask.expand_as(residual) > 0
        q = torch.round(residual[position].to(SYMBOL_DTYPE)).clamp(-SYMBOL_LIMIT, SYMBOL_LIMIT)
        q[torch.from_numpy(bins < 0).to(q.device)] = 0
        coded[position] = q
        self.y_steps.append((q.to("cpu", torch.int32).numpy(), bins))
        return coded

    @_timed
    def write(self, z_writer: SymbolWriter, y_writer: SymbolWriter, qp: int) -> None:
        """Code the recorded symbols: z per channel, y in one call (streamlined) or per step."""
        if self.z_symbols is None:
            raise RuntimeError("the model did not code z")  # a model bug, not user input
        z_writer.write_factorized(self.z_symbols, qp, self.z_channels)
        if self.streamlined:
            symbols = np.concatenate([s for s, _ in self.y_steps])
            bins = np.concatenate([b for _, b in self.y_steps])
            y_writer.write_gaussian(symbols, bins)
        else:
            for symbols, bins in self.y_steps:
                y_writer.write_gaussian(symbols, bins)


class DecoderChannel:
    """Gives a model the symbols of one record, parsed from its z and y payloads."""

    def __init__(
        self,
        tables: GaussianTables,
        skip_threshold: float,
        z_reader: SymbolReader,
        y_reader: SymbolReader,
        qp: int,
    ) -> None:
        self.tables = tables
        self.skip_threshold = skip_threshold
        self.z_reader = z_reader
        self.y_reader = y_reader
        self.qp = qp
        self._z: torch.Tensor | None = None
        self._parsed: list[np.ndarray] | None = None
        self.coding_seconds = 0.0  # time in symbol handling and arithmetic decoding

    @_timed
    def read_z(self, shape: tuple[int, ...]) -> None:
        """Parse the whole z payload for a z of `shape`, ahead of the networks.

        z needs nothing the networks compute, so a pipelined decoder parses it on its worker
        thread while the networks run on the previous record.
        """
        symbols = self.z_reader.read_factorized(self.qp, _z_channels(tuple(shape)))
        self.z_reader.ensure_consumed()
        self._z = torch.from_numpy(symbols.astype(np.float32)).view(*shape)

    @_timed
    def exchange_z(self, z, density, qp, shape):
        if self._z is None or tuple(self._z.shape) != tuple(shape):
            # The decoder predicts the model's z shape from the header; a model bug otherwise.
            raise RuntimeError(f"the model asks for z of shape {tuple(shape)}, the decoder "
                               f"parsed {None if self._z is None else tuple(self._z.shape)}")
        return self._z.to(density.h.device)

    @_timed
    def begin_y(self, scales, masks) -> None:
        if scales is None:
            return
        # Streamlined: every scale is known, so all y symbols are parsed in one call.
        bins = [self.tables.coding_bins(_masked(s, m), self.skip_threshold)
                for s, m in zip(scales, masks, strict=True)]
        symbols = self.y_reader.read_gaussian(np.concatenate(bins))
        bounds = np.cumsum([len(b) for b in bins])[:-1]
        self._parsed = list(np.split(symbols, bounds))

    @_timed
    def exchange_y(self, step, residual, scales, mask):
        if self._parsed is not None:
            symbols = self._parsed[step]
        else:
            symbols = self.y_reader.read_gaussian(
                self.tables.coding_bins(_masked(scales, mask), self.skip_threshold)
            )
        coded = torch.zeros(scales.shape, dtype=SYMBOL_DTYPE, device=scales.device)
        position = mask.expand_as(scales) > 0
        if int(position.sum()) != symbols.size:
            raise CorruptStreamError("y payload does not match the model's latent size")
        coded[position] = torch.from_numpy(symbols.astype(np.float32)).to(coded.device)
        return coded
