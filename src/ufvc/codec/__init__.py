"""Encode videos into `.ufv` files and decode them back.

    summary = encode("clip.y4m", "clip.ufv", quality=40)   # or bitrate="800k"
    for frame in decode("clip.ufv"):
        ...

`quality` runs 0..63 and higher is better (the networks' qp index).
"""

from ufvc.codec.api import (
    DEFAULT_MODEL,
    EncodeSummary,
    decode,
    encode,
    encode_frames,
    load_model,
    open_stream,
    write_stream,
)
from ufvc.codec.core import CodedRecord, Decoder, Encoder
from ufvc.codec.options import DEFAULT_QUALITY, DEFAULT_RESET_INTERVAL, CodingOptions

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_QUALITY",
    "DEFAULT_RESET_INTERVAL",
    "CodedRecord",
    "CodingOptions",
    "Decoder",
    "EncodeSummary",
    "Encoder",
    "decode",
    "encode",
    "encode_frames",
    "load_model",
    "open_stream",
    "write_stream",
]
