"""Benchmark: random 64^3 ROI reads through dacapo_nb.formats (TIFF, image folder, HDF5, N5, zarr v3) vs zarr 2.

One volume (uint8, --size^3 voxels) is written once into each format by its own library: zarr 2 through `ZarrArray`
(chunks 64^3, blosc-lz4, the baseline), a TIFF stack uncompressed (memory-mapped) and zlib-compressed (read page by
page), a folder of PNGs, HDF5 (h5py, chunks 64^3, uncompressed), N5 (zarr 2's N5 store, chunks 64^3) and zarr v3
(tensorstore, chunks 64^3). The same random 64^3 ROIs (not chunk aligned) are read from each format and from the zarr 2
copy, alternating, in one process; each read is checked against the other. Target: chunked formats within 2x of zarr.

Then the peak memory of a fresh process that opens a large TIFF stack (--big-gb, uncompressed; --big-zlib-gb,
compressed) and reads one 64^3 ROI and one whole section: its peak RSS (Linux's VmHWM, reset after the imports through
/proc/self/clear_refs) minus its RSS before opening, which must stay far below the file's size. Timing never fails the run (exit 0).

    python bench/formats.py [--size 256] [--crops 30] [--reps 3] [--big-gb 4] [--big-zlib-gb 1] [--dir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate, Roi

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray  # noqa: E402
from dacapo_nb.formats import open_array  # noqa: E402

EDGE = 64
VOXEL_SIZE = Coordinate(8, 4, 4)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="edge of the cubic volume in voxels (default 256 = 16 MiB uint8)")
    p.add_argument("--crops", type=int, default=30, help="random 64^3 ROIs (default 30)")
    p.add_argument("--reps", type=int, default=3, help="repetitions over all ROIs (default 3)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the ROIs (default 0)")
    p.add_argument("--big-gb", type=float, default=4.0, help="size of the uncompressed TIFF stack of the memory test (0 skips)")
    p.add_argument("--big-zlib-gb", type=float, default=1.0, help="size of the zlib TIFF stack of the memory test (0 skips)")
    p.add_argument("--dir", type=Path, default=None, help="where to write the data (default: a fresh temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the data written by this run")
    a = p.parse_args(argv)
    if a.size < 2 * EDGE: p.error(f"--size must be at least {2 * EDGE}, got {a.size}")
    return a


def volume(size: int) -> np.ndarray:
    "Smooth but non-constant uint8 data (compresses like EM, not like zeros)."
    z, y, x = np.ogrid[:size, :size, :size]
    v = 100 + 60 * np.sin(x * 0.05) * np.cos(y * 0.031) + 40 * np.sin(z * 0.017) + ((x + 3 * y + 7 * z) % 13)
    return v.astype(np.uint8)


def write_all(data: np.ndarray, where: Path) -> dict[str, Path]:
    "The volume in every format, each written by its own library; returns {name: path for open_array}."
    import h5py, tensorstore as ts, tifffile, zarr
    from PIL import Image
    n = data.shape[0]
    paths = {}
    z = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(where / "v.zarr", "raw"), ["z", "y", "x"],
                                               Roi((0, 0, 0), Coordinate(data.shape) * VOXEL_SIZE), None, VOXEL_SIZE,
                                               np.uint8, write_size=Coordinate(EDGE, EDGE, EDGE) * VOXEL_SIZE)
    z[z.roi] = data
    paths["zarr 2"] = where / "v.zarr" / "raw"
    tifffile.imwrite(where / "v.tif", data, photometric="minisblack")
    paths["tiff (memmap)"] = where / "v.tif"
    tifffile.imwrite(where / "vz.tif", data, photometric="minisblack", compression="zlib", compressionargs={"level": 1})
    paths["tiff zlib (pages)"] = where / "vz.tif"
    (where / "png").mkdir()
    for i in range(n): Image.fromarray(data[i]).save(where / "png" / f"section_{i}.png", compress_level=1)
    paths["png folder"] = where / "png"
    with h5py.File(where / "v.h5", "w") as f:
        f.create_dataset("raw", data=data, chunks=(EDGE,) * 3).attrs.update({"resolution": list(VOXEL_SIZE), "offset": [0, 0, 0]})
    paths["hdf5"] = where / "v.h5" / "raw"
    n5 = zarr.open_array(store=zarr.N5Store(str(where / "v.n5")), path="raw", mode="w", shape=data.shape,
                         chunks=(EDGE,) * 3, dtype=data.dtype)
    n5[:] = data
    n5.attrs["resolution"] = list(VOXEL_SIZE)[::-1]
    paths["n5"] = where / "v.n5" / "raw"
    store = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(where / "v3.zarr" / "raw")},
                     "metadata": {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [EDGE] * 3}},
                                  "codecs": [{"name": "bytes"}, {"name": "zstd", "configuration": {"level": 1}}]}},
                    create=True, dtype="uint8", shape=data.shape).result()
    store[...] = data
    meta = json.loads((where / "v3.zarr" / "raw" / "zarr.json").read_text())
    meta["attributes"] = {"voxel_size": list(VOXEL_SIZE)}
    (where / "v3.zarr" / "raw" / "zarr.json").write_text(json.dumps(meta))
    (where / "v3.zarr" / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    paths["zarr v3 (tensorstore)"] = where / "v3.zarr" / "raw"
    return paths


def random_rois(n: int, size: int, seed: int) -> list[Roi]:
    rng = np.random.default_rng(seed)
    starts = [rng.integers(1, size - EDGE, size=3) for _ in range(n)]
    return [Roi(Coordinate(s) * VOXEL_SIZE, Coordinate(EDGE, EDGE, EDGE) * VOXEL_SIZE) for s in starts]


def compare(array, baseline, rois, reps: int) -> tuple[float, float]:
    "Total seconds of `array` and of `baseline` over the ROIs, alternating who goes first; each pair checked equal."
    ours, base = [], []
    for rep in range(reps):
        for i, roi in enumerate(rois):
            out = [None, None]
            for side in ((0, 1) if (rep + i) % 2 == 0 else (1, 0)):
                t0 = time.perf_counter()
                out[side] = (array if side == 0 else baseline)[roi]
                (ours if side == 0 else base).append(time.perf_counter() - t0)
            assert np.array_equal(out[0], out[1]), f"{array} and {baseline} differ in {roi}"
    return sum(ours), sum(base)


PEAK = """
import re, sys, warnings
warnings.simplefilter("ignore")
from funlib.geometry import Coordinate, Roi
from dacapo_nb.formats import open_array
rss = lambda: int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024  # peak RSS, MiB
open("/proc/self/clear_refs", "w").write("5")  # the peak starts again after the imports (torch peaks higher than a read)
before = rss()
a = open_array(sys.argv[1], voxel_size=(1, 1, 1))
mid = a.roi.shape / 2
box = a[Roi((0, mid[1], mid[2]), (min(64, a.roi.shape[0]), 64, 64))]
section = a[Roi((mid[0], 0, 0), (1, a.roi.shape[1], a.roi.shape[2]))]
print(before, rss(), int(box.sum() > 0), section.nbytes / 2**20, a.memory_mapped)
"""


def big_stack(path: Path, gb: float, compression) -> tuple[tuple, float]:
    "A uint8 TIFF stack of about `gb` GB (sections 4096^2), written one section at a time; (shape, seconds)."
    import tifffile
    edge = 4096
    depth = max(1, int(gb * 1e9 / edge**2))
    page = volume(256)[0]
    page = np.tile(page, (edge // 256, edge // 256))
    t0 = time.perf_counter()
    tifffile.imwrite(path, (page for _ in range(depth)), shape=(depth, edge, edge), dtype=np.uint8, photometric="minisblack",
                     compression=compression, compressionargs={"level": 1} if compression else None)
    return (depth, edge, edge), time.perf_counter() - t0


def peak_memory(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, timeout=1800,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if out.returncode != 0: raise RuntimeError(out.stderr[-3000:])
    before, after, _, section_mib, mapped = out.stdout.split()
    return {"rss_before_mib": float(before), "rss_after_mib": float(after), "grown_mib": float(after) - float(before),
            "section_mib": float(section_mib), "memory_mapped": mapped == "True"}


def main(argv=None) -> int:
    a = parse_args(argv)
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="bench_formats_", dir=a.dir))
    try:
        t0 = time.perf_counter()
        data = volume(a.size)
        paths = write_all(data, tmp)
        print(f"wrote {a.size}^3 uint8 ({data.nbytes / 2**20:.0f} MiB) in {len(paths)} formats in {time.perf_counter() - t0:.1f} s")
        rois = random_rois(a.crops, a.size, a.seed)
        baseline = ZarrArray.open_from_array_identifier(LocalArrayIdentifier(tmp / "v.zarr", "raw"), mode="r")
        print(f"{a.crops} random 64^3 ROIs x {a.reps} reps; ratio = format / zarr 2 (same ROIs, same process, alternating)")
        for name, path in paths.items():
            if name == "zarr 2": continue
            array = open_array(path, voxel_size=VOXEL_SIZE)
            compare(array, baseline, rois[:2], 1)  # warm-up: imports, first opens
            ours, base = compare(array, baseline, rois, a.reps)
            n = a.crops * a.reps
            print(f"  {name:24s} {1e3 * ours / n:8.2f} ms/ROI   zarr 2 {1e3 * base / n:7.2f} ms/ROI   ratio {ours / base:6.2f}"
                  f"   ({type(array).__name__})")
        shutil.rmtree(tmp / "png")
        for gb, compression in ((a.big_gb, None), (a.big_zlib_gb, "zlib")):
            if gb <= 0: continue
            path = tmp / f"big_{compression or 'raw'}.tif"
            shape, seconds = big_stack(path, gb, compression)
            size = path.stat().st_size
            m = peak_memory(path)
            print(f"big TIFF {compression or 'uncompressed'}: {shape} uint8 = {np.prod(shape) / 1e9:.2f} GB of voxels "
                  f"({size / 1e9:.2f} GB on disk, written in {seconds:.0f} s); open + one 64^3 ROI + one section "
                  f"({m['section_mib']:.0f} MiB): max RSS {m['rss_before_mib']:.0f} -> {m['rss_after_mib']:.0f} MiB "
                  f"(+{m['grown_mib']:.0f} MiB, {100 * m['grown_mib'] * 2**20 / np.prod(shape):.2f}% of the voxels), "
                  f"memory-mapped {m['memory_mapped']}")
            path.unlink()
    finally:
        if a.keep: print(f"kept {tmp}")
        else: shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from _main import run_main
    run_main(main)
