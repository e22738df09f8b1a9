"""What `ufvc info FILE.ufv` reports: the header, each record's size, the bit rate."""

from __future__ import annotations

import os
from typing import Any

from ufvc.bitstream.format import RecordType
from ufvc.bitstream.stream import StreamReader

RECORD_HEADER_BYTES = 16  # docs/bitstream.md section 3.1


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Header fields, per-record sizes and the bit rate of a `.ufv` file (read fully; a cut
    file is described as far as it goes, with a StreamWarning)."""
    size = os.path.getsize(path)
    records = []
    with StreamReader(path, allow_truncated=True) as reader:
        header = reader.header
        for record in reader:
            payload = sum(len(part) for part in record.parts) + 1 + 4 * len(record.parts)
            records.append({
                "type": RecordType(record.type).name,
                "first_frame": record.first_frame,
                "frames": record.num_frames,
                "quality": record.qp,
                "reset": record.reset,
                "bytes": RECORD_HEADER_BYTES + payload,
                "part_bytes": [len(part) for part in record.parts],
            })
        has_index = reader.index is not None
    frames = sum(r["frames"] for r in records)
    pixels = frames * header.width * header.height
    seconds = frames / header.fps if frames else 0
    return {
        "file": os.fspath(path),
        "bytes": size,
        "model": header.model_id,
        "model_digest": header.model_digest.hex(),
        "width": header.width,
        "height": header.height,
        "fps": f"{header.fps.numerator}/{header.fps.denominator}",
        "frames": frames,
        "chunk_size": header.chunk_size,
        "chroma": header.chroma,
        "bit_depth": header.bit_depth,
        "skip_threshold": header.skip_threshold,
        "compute_precision": header.compute_precision,
        "compiled_networks": header.compiled_networks,
        "cuda_graphs": header.cuda_graphs,
        "indexed": has_index,
        "bpp": 8 * size / pixels if pixels else 0.0,
        "kbps": 8 * size / float(seconds) / 1000 if seconds else 0.0,
        "records": records,
    }


def describe_text(report: dict[str, Any]) -> str:
    """`describe`'s report as lines of text, one per record at the end."""
    lines = [
        f"file        {report['file']} ({report['bytes']} bytes)",
        f"model       {report['model']} (weights digest {report['model_digest']})",
        f"video       {report['width']}x{report['height']} at {report['fps']} fps, "
        f"{report['frames']} frames, chunk size {report['chunk_size']}, "
        f"{report['chroma']} {report['bit_depth']}-bit",
        f"rate        {report['kbps']:.1f} kbps, {report['bpp']:.4f} bpp",
        f"coding      skip threshold {report['skip_threshold']:g}, networks "
        f"{_arithmetic(report)}"
        f"{' CUDA graphs' if report.get('cuda_graphs') else ''}, "
        f"index {'present' if report['indexed'] else 'absent'}",
        "records     type    frames    quality  reset      bytes  (z, y, crc)",
    ]
    for r in report["records"]:
        last = r["first_frame"] + r["frames"] - 1
        lines.append(
            f"            {r['type']:<6} {r['first_frame']:>4}..{last:<4} {r['quality']:>6}  "
            f"{'yes' if r['reset'] else 'no':<5} {r['bytes']:>9}  {tuple(r['part_bytes'])}"
        )
    return "\n".join(lines)


def _arithmetic(report: dict) -> str:
    """How both sides run the networks, as `ufvc info` prints it."""
    if report["compute_precision"] == "portable":
        return "portable (same bytes on every machine, eager or compiled)"
    mode = "torch.compile" if report["compiled_networks"] else "eager"
    return f"{report['compute_precision']} {mode} (same machine type only)"
