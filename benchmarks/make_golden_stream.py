"""Write the golden stream of the default model and the digest of its decoded frames.

    python benchmarks/make_golden_stream.py          # tests/fixtures/golden/

`tests/codec/test_portable.py` decodes the committed stream and compares the digest, on
whatever machine the test suite runs on: a portable stream must decode to these bytes
everywhere. Run this again (and commit both files) only when the shipped `ufvc-s`
weights change: the stream names the weights it was made with.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from fractions import Fraction
from pathlib import Path

from ufvc.codec.api import decode, encode
from ufvc.io import open_writer
from ufvc.io.types import VideoInfo, frames_sha256
from ufvc.models.registry import create_model
from ufvc.samples import synthetic_video

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden"
WIDTH, HEIGHT, FRAMES, QUALITY = 96, 64, 17, 40  # intra frame + two 8-frame chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GOLDEN)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)


    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.y4m"
        with open_writer(source, VideoInfo(WIDTH, HEIGHT, Fraction(25), FRAMES)) as writer:
            for frame in synthetic_video(WIDTH, HEIGHT, FRAMES, seed=14):
                writer.write(frame)
        stream = args.out / "ufvc-s-portable.ufv"
        encode(source, stream, quality=QUALITY, precision="portable", model="ufvc-s")
    model = create_model("ufvc-s")
    record = {
        "stream": stream.name,
        "model": "ufvc-s",
        "weights_digest": model.weights_digest().hex(),
        "frames": FRAMES,
        "size": [WIDTH, HEIGHT],
        "quality": QUALITY,
        "decoded_sha256": frames_sha256(decode(stream)),
    }
    (args.out / "ufvc-s-portable.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
