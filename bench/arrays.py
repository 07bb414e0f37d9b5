"""Benchmark: random-crop reads of `dacapo_nb.arrays.ZarrArray` (`array[roi]`, world units) vs plain zarr slicing.

Both sides read the same crops (64^3..128^3 voxels, random, not chunk aligned) from the same zarr array, in
alternating order, over several repetitions; each pair of reads is checked for equality. Target: ours/zarr <= 1.10.
Timing never fails the run (exit 0).

    python bench/arrays.py [--size 512] [--crops 40] [--reps 5] [--seed 0] [--dir DIR] [--keep] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate, Roi

from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray

CHUNK = 64
VOXEL_SIZE = Coordinate(4, 4, 4)
OFFSET = Coordinate(1000, -200, 40)  # world units, on the voxel grid, non-zero


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512, help="edge of the cubic array in voxels (default 512 = 512 MiB float32)")
    p.add_argument("--crops", type=int, default=40, help="number of random crops (default 40)")
    p.add_argument("--reps", type=int, default=5, help="repetitions over all crops (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the crops (default 0)")
    p.add_argument("--dir", type=Path, default=None, help="container directory (default: a fresh temp dir); "
                   "an array already filled there is reused")
    p.add_argument("--keep", action="store_true", help="keep the data written by this run")
    p.add_argument("--profile", action="store_true", help="also cProfile our reads and print the top functions")
    a = p.parse_args(argv)
    if a.size < 2 * CHUNK: p.error(f"--size must be at least {2 * CHUNK} voxels (crops are up to 128^3), got {a.size}")
    if a.crops < 1 or a.reps < 1: p.error(f"--crops and --reps must be >= 1, got {a.crops} and {a.reps}")
    return a


def pattern(z0: int, n: int, size: int) -> np.ndarray:
    "Smooth but non-constant float32 data for z-slab [z0, z0+n) of a size^3 volume (cheap to compute)."
    z = np.arange(z0, z0 + n, dtype=np.float32)[:, None, None]
    y = np.arange(size, dtype=np.float32)[None, :, None]
    x = np.arange(size, dtype=np.float32)[None, None, :]
    out = np.sin(x * 0.05, dtype=np.float32) * np.cos(y * 0.031, dtype=np.float32)  # (1, size, size)
    out = out + np.sin(z * 0.017, dtype=np.float32) + (((x + 3 * y + 7 * z) % 13) * np.float32(0.01))
    return out.astype(np.float32, copy=False)


def get_array(container: Path, size: int) -> tuple[ZarrArray, bool]:
    "Open the benchmark array in `container`, creating and filling it chunk-slab-wise if needed; returns (array, created)."
    ident = LocalArrayIdentifier(container, "raw")
    roi = Roi(OFFSET, Coordinate(size, size, size) * VOXEL_SIZE)
    array = ZarrArray.create_from_array_identifier(ident, ["z", "y", "x"], roi, None, VOXEL_SIZE, np.float32,
                                                   write_size=Coordinate(CHUNK, CHUNK, CHUNK) * VOXEL_SIZE)
    if array.attrs.get("bench_filled"):
        print(f"reusing filled array {ident}")
        return array, False
    t0 = time.perf_counter()
    for z0 in range(0, size, CHUNK):  # one slab of whole chunks at a time
        n = min(CHUNK, size - z0)
        slab = Roi(OFFSET + Coordinate(z0, 0, 0) * VOXEL_SIZE, Coordinate(n, size, size) * VOXEL_SIZE)
        array[slab] = pattern(z0, n, size)
    array.add_metadata({"bench_filled": True})
    print(f"filled {ident} ({size}^3 float32, {size**3 * 4 / 2**20:.0f} MiB, chunks {CHUNK}^3) "
          f"in {time.perf_counter() - t0:.1f} s")
    return array, True


def make_crops(n: int, size: int, seed: int) -> list[tuple[Roi, tuple]]:
    "n random crops (64..128 voxels per axis, not chunk aligned): the world ROI and the matching voxel slices."
    rng = np.random.default_rng(seed)
    crops = []
    while len(crops) < n:
        shape = rng.integers(64, 129, size=3)
        start = np.array([rng.integers(0, size - s + 1) for s in shape])
        if np.any(start % CHUNK == 0): continue  # keep every axis off the chunk grid
        roi = Roi(OFFSET + Coordinate(start) * VOXEL_SIZE, Coordinate(shape) * VOXEL_SIZE)
        crops.append((roi, tuple(slice(int(b), int(b + s)) for b, s in zip(start, shape))))
    return crops


def run(array: ZarrArray, crops, reps: int) -> tuple[list[float], list[float]]:
    "Alternate ours/plain on each crop (who goes first flips every read); return per-read times of each side."
    z = array.data  # the same zarr.Array object both sides read
    ours, plain = [], []
    for rep in range(reps):
        for i, (roi, sl) in enumerate(crops):
            order = (0, 1) if (rep + i) % 2 == 0 else (1, 0)
            out = [None, None]
            for side in order:
                t0 = time.perf_counter()
                out[side] = array[roi] if side == 0 else z[sl]
                dt = time.perf_counter() - t0
                (ours if side == 0 else plain).append(dt)
            assert out[0].shape == out[1].shape == tuple(s.stop - s.start for s in sl), (out[0].shape, out[1].shape, sl)
            assert np.array_equal(out[0], out[1]), f"reads differ for {roi}"
    return ours, plain


def main(argv=None) -> int:
    a = parse_args(argv)
    container_given = a.dir is not None
    tmp = Path(tempfile.mkdtemp(prefix="bench_arrays_")) if not container_given else None
    container = (a.dir if container_given else tmp) / "bench_arrays.zarr"
    existed = container.exists()
    created = False
    try:
        array, created = get_array(container, a.size)
        crops = make_crops(a.crops, a.size, a.seed)
        vox = [int(np.prod([s.stop - s.start for s in sl])) for _, sl in crops]
        print(f"array {array!r}")
        print(f"{len(crops)} crops x {a.reps} reps, crop voxels {min(vox)}..{max(vox)} (mean {np.mean(vox) / 1e6:.2f} M)")
        run(array, crops[:3], 1)  # warm-up: imports, first opens
        ours, plain = run(array, crops, a.reps)
        ms = lambda xs: f"mean {1e3 * statistics.fmean(xs):7.2f} ms  median {1e3 * statistics.median(xs):7.2f} ms  " \
                        f"min {1e3 * min(xs):7.2f} ms"
        print(f"ours  (ZarrArray[roi]) per crop: {ms(ours)}")
        print(f"plain (zarr[slices])   per crop: {ms(plain)}")
        pair = [o / p for o, p in zip(ours, plain)]
        print(f"per-crop ratio ours/zarr: median {statistics.median(pair):.3f}  "
              f"mean {statistics.fmean(pair):.3f}  (total-time ratio {sum(ours) / sum(plain):.3f})")
        roi = crops[0][0]
        n = 20000
        t0 = time.perf_counter()
        for _ in range(n): array._index(roi)
        print(f"index overhead (Array._index, no I/O): {1e6 * (time.perf_counter() - t0) / n:.1f} us per crop")
        if a.profile:
            prof = cProfile.Profile()
            prof.enable()
            for roi, _ in crops: array[roi]
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        print(f"ratio ours/zarr: {sum(ours) / sum(plain):.2f} (target <= 1.10)")
    finally:
        if a.keep:
            print(f"kept {container}")
        elif tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        elif created:
            shutil.rmtree(container if not existed else container / "raw", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
