"""Throughput of the entropy coder on latents shaped like a 720p chunk.

Prints one table: symbols per second for encoding and decoding y (one call for the
whole chunk, as the streamlined models parse, or four calls, one per spatial-prior
step) with 1 to 8 streams, coded one after the other or on a thread pool with one
thread per stream, and z; then whether decoding two independent payloads on two
threads beats decoding them one after the other. constriction holds the GIL inside
each of its calls, so threads can only overlap the numpy work around them.

    PYTHONPATH=src python benchmarks/bench_entropy.py [--repeats 5]

Rates count every latent position, skipped ones included; times are the best of
`--repeats` runs, measured with time.perf_counter on the CPU. The scale bins are
computed before timing (both sides need them); their cost is printed separately.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ufvc.entropy import (
    DEFAULT_SKIP_THRESHOLD,
    CoderModels,
    FactorizedTables,
    GaussianTables,
    SymbolReader,
    SymbolWriter,
)

Y_SHAPE = (256, 45, 80)  # y of one 720p chunk: 256 channels at 1/16 resolution
Z_SHAPE = (128, 12, 20)  # z at 1/64 resolution


def best_time(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def realistic_y(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scales log-normal around the 0.11 floor (about half of them below, as in the
    reference fixtures), residuals Laplacian with the same standard deviation."""
    scales = np.exp(rng.normal(math.log(0.12), 1.4, Y_SHAPE))
    symbols = np.round(rng.laplace(0.0, scales / math.sqrt(2))).astype(np.int32)
    return scales, symbols


def official_like_tables(rng: np.random.Generator) -> FactorizedTables:
    h = 1.0 + 0.5 * rng.standard_normal((64, 128, 4))
    b = 0.1 * rng.standard_normal((64, 128, 4))
    a = 0.5 * rng.standard_normal((64, 128, 3))
    return FactorizedTables.from_official(h, b, a)


def quadtree_steps(shape: tuple[int, int, int]) -> list[np.ndarray]:
    """The four masks of the 4-step spatial prior (channel quarters x 2x2 positions)."""
    c, h, w = shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    position = (rows % 2) * 2 + (cols % 2)
    quarter = np.arange(c)[:, None, None] * 4 // c
    order = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [2, 3, 0, 1], [1, 0, 3, 2]])
    return [position[None] == order[k][quarter] for k in range(4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="ufvc-s",
                        help="also time a real 720p chunk with this model ('' to skip)")
    parser.add_argument("--quality", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    start = time.perf_counter()
    gaussian = GaussianTables()
    gaussian.pmf  # noqa: B018 (builds the cached tables)
    gaussian_build = time.perf_counter() - start
    start = time.perf_counter()
    factorized = official_like_tables(rng)
    factorized_build = time.perf_counter() - start
    models = CoderModels(gaussian, factorized)
    print(f"Gaussian tables: {gaussian_build * 1e3:.1f} ms; ", end="")
    print(f"factorized tables (64 qp x 128 channels): {factorized_build * 1e3:.1f} ms")

    scales, y = realistic_y(rng)
    bins = gaussian.coding_bins(scales, DEFAULT_SKIP_THRESHOLD)
    y[bins < 0] = 0
    coded = int((bins >= 0).sum())
    print(f"y: {y.size} symbols, {coded} coded ({coded / y.size:.0%}), skip threshold 0.15")
    steps = quadtree_steps(Y_SHAPE)
    step_bins = [bins[mask] for mask in steps]
    t_bins = best_time(lambda: gaussian.coding_bins(scales), args.repeats)
    print(f"coding_bins (scale -> bin, skip): {y.size / t_bins / 1e6:.1f} Msym/s")

    rows = []

    def add_row(name: str, count: int, encode: Callable[[], bytes], decode: Callable) -> None:
        data = encode()
        decode(data)
        t_enc = best_time(encode, args.repeats)
        t_dec = best_time(lambda: decode(data), args.repeats)
        rows.append((name, count, len(data), count / t_enc / 1e6, count / t_dec / 1e6))

    for num_streams in (1, 2, 4, 8):
        for num_calls in (1, 4):
            for threads in (0, num_streams) if num_streams > 1 else (0,):
                pool = ThreadPoolExecutor(threads) if threads else None

                def encode(num_streams=num_streams, num_calls=num_calls, pool=pool) -> bytes:
                    writer = SymbolWriter(models, num_streams, executor=pool)
                    if num_calls == 1:
                        writer.write_gaussian(y, bins)
                    else:
                        for mask, mask_bins in zip(steps, step_bins, strict=True):
                            writer.write_gaussian(y[mask], mask_bins)
                    return writer.finish()

                def decode(data: bytes, num_calls=num_calls, pool=pool) -> None:
                    reader = SymbolReader(models, data, executor=pool)
                    if num_calls == 1:
                        reader.read_gaussian(bins)
                    else:
                        for mask_bins in step_bins:
                            reader.read_gaussian(mask_bins)
                    reader.ensure_consumed()

                calls = f"{num_calls} call{'s' if num_calls > 1 else ''}"
                name = f"y, {calls}, {num_streams} streams, {threads or 'no'} threads"
                add_row(name, y.size, encode, decode)
                if pool is not None:
                    pool.shutdown()

    z = np.round(rng.laplace(0.0, 1.5, Z_SHAPE)).astype(np.int32)
    channels = np.broadcast_to(np.arange(Z_SHAPE[0])[:, None, None], Z_SHAPE)

    def encode_z() -> bytes:
        writer = SymbolWriter(models)
        writer.write_factorized(z, 40, channels)
        return writer.finish()

    def decode_z(data: bytes) -> None:
        reader = SymbolReader(models, data)
        reader.read_factorized(40, channels)
        reader.ensure_consumed()

    add_row("z, 1 call, 1 stream", z.size, encode_z, decode_z)

    print()
    print(
        f"{'case':<38} {'symbols':>9} {'bytes':>8} {'bits/sym':>9} {'enc Msym/s':>11} "
        f"{'dec Msym/s':>11}"
    )
    for name, count, size, enc, dec in rows:
        print(f"{name:<38} {count:>9} {size:>8} {8 * size / count:>9.3f} {enc:>11.1f} {dec:>11.1f}")

    # Threads: two whole-chunk payloads decoded one after the other, then on two threads.
    payload = SymbolWriter(models)
    payload.write_gaussian(y, bins)
    data = payload.finish()

    def decode_one(_: int = 0) -> None:
        reader = SymbolReader(models, data)
        reader.read_gaussian(bins)
        reader.ensure_consumed()

    serial = best_time(lambda: [decode_one() for _ in range(2)], args.repeats)
    with ThreadPoolExecutor(2) as pool:
        threaded = best_time(lambda: list(pool.map(decode_one, range(2))), args.repeats)
    print()
    print(
        f"decode 2 payloads: serial {serial * 1e3:.1f} ms, 2 threads {threaded * 1e3:.1f} ms "
        f"(speed-up {serial / threaded:.2f}x)"
    )
    if args.model:
        codec_share(args.model, args.quality)


def codec_share(model_name: str, quality: int) -> None:
    """Share of real 720p encode/decode time spent in symbol handling and range coding."""
    from ufvc.codec import CodingOptions, load_model
    from ufvc.eval.bench import measure_size

    model = load_model(model_name)
    speed = measure_size(model, 1280, 720, CodingOptions(quality=quality),
                         frames=model.frames_per_chunk)
    print()
    print(f"720p, {model_name}, quality {quality}, {speed.bpp:.4f} bpp:")
    for name, run in (("encode", speed.encode), ("decode", speed.decode)):
        share = run.entropy_seconds / run.seconds
        print(f"  {name}: {run.frames / run.seconds:.2f} frames/s, entropy coding "
              f"{run.entropy_seconds * 1e3:.0f} ms of {run.seconds * 1e3:.0f} ms ({share:.1%})")


if __name__ == "__main__":
    main()
