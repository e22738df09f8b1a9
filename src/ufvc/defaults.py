"""Defaults and choices the command line shows, kept free of heavy imports.

`ufvc --help`, `--version` and argument errors build every sub-command's parser; they
stay fast because the parsers take their defaults from here, not from modules that
import torch, PyAV or scipy (those load only when a sub-command runs).
"""

from __future__ import annotations

DEFAULT_MODEL = "ufvc-s"
NUM_QUALITY_LEVELS = 64  # quality 63 is the best; the networks' qp index
DEFAULT_QUALITY = 40
DEFAULT_RESET_INTERVAL = 32  # frames between memory resets, as in the release
DEFAULT_SKIP_THRESHOLD = 0.15  # the release's test setting; 0 disables skipping
DEFAULT_SCENECUT = 10.0  # ufvc.codec.scenecut: % mean luma change that starts a new scene
# ufvc.codec.modedecision: "fixed" codes every chunk with the chunk codec; "rd" codes a
# chunk as intra frames where that costs less (constant quality only)
MODE_DECISIONS = ("fixed", "rd")
DEFAULT_MODE_DECISION = "fixed"
# The networks' arithmetic: "portable" decodes to the same bytes on every machine
# (ufvc.nn.exact); the float ones only where the encoder's kernels are reproduced.
PRECISIONS = ("portable", "fp32", "bf16", "fp16")
DEFAULT_PRECISION = "portable"

# ufvc bench
NAMED_SIZES: dict[str, tuple[int, int]] = {
    "240p": (426, 240),
    "360p": (640, 360),
    "480p": (854, 480),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "2160p": (3840, 2160),
}
DEFAULT_SIZES = ("720p",)
DEFAULT_BENCH_QUALITY = 40

# ufvc anchor
ANCHOR_CODECS = ("svt-av1", "vvc", "x264", "x265")  # the keys of ufvc.eval.anchors.CODECS
ANCHOR_MODES = ("ld", "ra", "ai")

# ufvc bdrate
BDRATE_METRICS = ("psnr_yuv", "psnr_y", "psnr_u", "psnr_v")
BDRATE_METHODS = ("pchip", "akima")

# ufvc info
DEFAULT_FRAME_SIZE = (1080, 1920)  # (H, W) of the MAC count
MAC_CONVENTIONS = {
    "ufvc": "MACs = FlopCounterMode FLOPs / 2 (convolutions only, no bias), frame padded up "
            "to a multiple of 16; per frame (video: one N-frame call / N, steady state)",
    "paper": "convolution MACs + 1 per output element of a biased convolution, frame "
             "cropped down to a multiple of 64; per frame (video: one N-frame call / N)",
}

# Raw video layouts (`ufvc.io.planar.SUPPORTED_PIX_FMTS` maps each to chroma and bit depth).
PIX_FMTS = ("yuv420p", "yuv420p10le", "yuv444p", "yuv444p10le")
