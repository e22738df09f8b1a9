"""Entropy coding: integer probability tables and the range coder around them."""

from ufvc.entropy.coder import CODER_ID, CoderModels, SymbolReader, SymbolWriter
from ufvc.entropy.tables import (
    DEFAULT_SKIP_THRESHOLD,
    SKIPPED,
    SYMBOL_MAX,
    SYMBOL_MIN,
    FactorizedTables,
    GaussianTables,
    entropy_digest,
)

__all__ = [
    "CODER_ID",
    "DEFAULT_SKIP_THRESHOLD",
    "SKIPPED",
    "SYMBOL_MAX",
    "SYMBOL_MIN",
    "CoderModels",
    "FactorizedTables",
    "GaussianTables",
    "SymbolReader",
    "SymbolWriter",
    "entropy_digest",
]
