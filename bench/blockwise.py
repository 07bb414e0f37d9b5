"""Blockwise predict/segment against the single-process path: throughput, peak memory of parent and workers, resume.

Run: PYTHONPATH=$PWD .venv/bin/python bench/blockwise.py --sizes 128 256 [--workers 1 2] [--dir D]
A 3D U-Net (model_for(affinities_task(3), 3), untrained: the timing does not depend on the weights) on random raw.
Peak memory: ru_maxrss of this process (parent) and of its waited-for children (the workers, the largest one).
"""
import argparse, json, resource, subprocess, sys, tempfile, textwrap, time
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np, torch
    from funlib.geometry import Roi
    from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray
    from dacapo_nb.tasks import affinities_task
    from dacapo_nb.models import model_for
    mode, size, workers, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.manual_seed(0)
    model = model_for(affinities_task(3), 3)
    raw = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(d + "/raw.zarr", f"raw{size}"), ["z", "y", "x"],
                                                 Roi((0, 0, 0), (size,) * 3), None, (1, 1, 1), np.uint8)
    if not (raw.file_name / raw.dataset / "0").exists():
        for z in range(0, size, 64): raw[Roi((z, 0, 0), (min(64, size - z), size, size))] = np.random.default_rng(z).integers(0, 255, (min(64, size - z), size, size), np.uint8)
    t = time.perf_counter()
    if mode == "predict":
        from dacapo_nb.inference import predict
        out = predict(model, raw, d + "/single.zarr", f"p{size}", progress=False, overwrite=True)
    elif mode == "blockwise":
        from dacapo_nb.blockwise import predict_blockwise
        out = predict_blockwise(model, raw, d + "/bw.zarr", f"p{size}w{workers}", num_workers=workers, progress=False, overwrite=True)
    elif mode == "model":   # the model alone on in-memory blocks of the same shape: the limit
        from dacapo_nb.inference import prediction_layout
        lay = prediction_layout(model, raw)
        n = int(np.prod([-(-s // o) for s, o in zip(lay.output_roi.shape, lay.output_size)]))
        x = torch.rand(1, 1, *(lay.input_size)); model.eval()
        with torch.no_grad():
            for _ in range(n): model(x)
    elif mode == "segment":
        from dacapo_nb.blockwise import segment_blockwise
        pred = ZarrArray.open_from_array_identifier(LocalArrayIdentifier(d + "/bw.zarr", f"p{size}w1"))
        segment_blockwise(pred, d + "/seg.zarr", f"s{size}", num_workers=workers, progress=False, overwrite=True)
    elif mode == "segment_memory":
        from dacapo_nb.segmentation import affinities_to_segmentation
        pred = ZarrArray.open_from_array_identifier(LocalArrayIdentifier(d + "/bw.zarr", f"p{size}w1"))
        affinities_to_segmentation(pred[pred.roi])
    wall = time.perf_counter() - t
    print(json.dumps({"mode": mode, "size": size, "workers": workers, "seconds": round(wall, 1),
                      "parent_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                      "worker_MiB": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}))
""")

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--modes", nargs="+", default=["model", "predict", "blockwise", "segment", "segment_memory"])
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    d = a.dir or tempfile.mkdtemp()
    for size in a.sizes:
        for mode in a.modes:
            for w in (a.workers if mode in ("blockwise", "segment") else [1]):
                r = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(size), str(w), d], capture_output=True, text=True)
                print(r.stdout.strip().splitlines()[-1] if r.returncode == 0 else f"{mode} {size} {w}: failed {r.stderr[-500:]}", flush=True)
