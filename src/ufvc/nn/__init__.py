"""Building blocks of the DCVC-UF networks (see docs/architecture in the paper's release).

Submodule names follow the official state-dict keys (`adaptor`, `dc`, `ffn`, `down`,
`up`, `conv`) so official checkpoints load without renaming.
"""

from ufvc.nn.blocks import DCBlock, DownBlock, SubPixelConv, UpBlock, WSiLU
from ufvc.nn.entropy import (
    FactorizedDensity,
    gaussian_bits,
    quantize_ste,
)
from ufvc.nn.masks import checkerboard_masks, quadtree_masks

__all__ = [
    "DCBlock",
    "DownBlock",
    "FactorizedDensity",
    "SubPixelConv",
    "UpBlock",
    "WSiLU",
    "checkerboard_masks",
    "gaussian_bits",
    "quadtree_masks",
    "quantize_ste",
]
