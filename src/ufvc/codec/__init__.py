"""Encode videos into `.ufv` files and decode them back.

    summary = encode("clip.y4m", "clip.ufv", quality=40)
    for frame in decode("clip.ufv"):
        ...

`quality` runs 0..63 and higher is better (the networks' qp index).
"""

from ufvc.codec.api import (
    DEFAULT_MODEL,
    EncodeSummary,
    decode,
    encode,
    load_model,
    open_stream,
)
from ufvc.codec.core import (
    DEFAULT_QUALITY,
    DEFAULT_RESET_INTERVAL,
    CodedRecord,
    Decoder,
    Encoder,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_QUALITY",
    "DEFAULT_RESET_INTERVAL",
    "CodedRecord",
    "Decoder",
    "EncodeSummary",
    "Encoder",
    "decode",
    "encode",
    "load_model",
    "open_stream",
]
