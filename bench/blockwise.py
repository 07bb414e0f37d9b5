"""Blockwise predict/segment against the single-process path: throughput, peak memory of parent and workers, resume.

Run: PYTHONPATH=$PWD .venv/bin/python bench/blockwise.py --sizes 128 256 [--workers 1 2] [--dir D]
       [--model unet|tiny] [--prediction blockwise|fixed] [--resume]
--model unet (default): a 3D U-Net (model_for(affinities_task(3), 3), untrained: the timing does not depend on the
  weights) on random uint8 raw. --model tiny: a U-Net of 206 weights (1 feature map, one level, one convolution per
  level; input 84^3, output 76^3 per block), for peak memory across sizes in reasonable time (the pipeline, the
  blocks and the zarr writes are those of the real model; only the convolutions are cheap).
--prediction blockwise (default): the segment modes read the affinities `predict_blockwise` wrote at 1 worker;
  fixed: they read affinities written directly (`prepare`, not timed): cells of 12 voxels behind membranes,
  stronger deeper inside, with noise and leaky links, 3 channels float32 in 64^3 chunks (the segmentation's blocks).
--resume: a full `predict_blockwise` (1 worker) timed, then the same run in a child process killed with kill -9 of
  its process group (the parent and its workers) when half the blocks are logged, then the rerun timed.
Peak memory: VmHWM (the peak resident set of the process's own memory) of the measuring process (parent) and of its
largest descendant (a worker), read from /proc every 0.2 s while the run lasts. Not ru_maxrss for workers: Linux
carries the parent's peak into a child's ru_maxrss through fork/vfork and exec, so a worker started after the
parent's global step reported the parent's peak as its own (the 771 MiB 'worker' at 1024^3 of 2026-12-02).
Each configuration runs in a fresh process.
"""
import argparse, json, os, signal, subprocess, sys, tempfile, textwrap, time
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np, torch
    from funlib.geometry import Roi
    from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray
    from dacapo_nb.tasks import affinities_task
    from dacapo_nb.models import model_for
    mode, size, workers, d, model_kind, source = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
    torch.manual_seed(0)
    if model_kind == "tiny":
        model = model_for(affinities_task(3), 3, input_shape=(36, 36, 36), fmaps=1, downsample_factors=((2, 2, 2),), num_convs=1,
                          eval_shape_increase=(48, 48, 48))
    else:
        model = model_for(affinities_task(3), 3)
    tag = f"{size}{model_kind}"
    def raw_array():
        raw = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(d + "/raw.zarr", f"raw{size}"), ["z", "y", "x"],
                                                     Roi((0, 0, 0), (size,) * 3), None, (1, 1, 1), np.uint8)
        if raw.data.nchunks_initialized == 0:  # written once, by prepare (a chunk file name test missed and rewrote it each run)
            for z in range(0, size, 64): raw[Roi((z, 0, 0), (min(64, size - z), size, size))] = np.random.default_rng(z).integers(0, 255, (min(64, size - z), size, size), np.uint8)
        return raw
    def fixed_affinities():
        "Cells of 12 voxels behind one-voxel membranes: affinities stronger deeper inside, noise, 0.2% leaky links."
        ident = LocalArrayIdentifier(d + "/fixed.zarr", f"affs{size}")
        affs = ZarrArray.create_from_array_identifier(ident, ["c", "z", "y", "x"], Roi((0, 0, 0), (size,) * 3), 3, (1, 1, 1), np.float32,
                                                      write_size=(64, 64, 64))
        for z in range(0, size, 64):
            zz, yy, xx = np.ogrid[z:min(z + 64, size), 0:size, 0:size]
            rng = np.random.default_rng(z)
            depth = np.minimum(np.minimum(zz % 12, yy % 12), xx % 12)        # 0 on the membranes
            a = np.empty((3, *np.broadcast_shapes(zz.shape, yy.shape, xx.shape)), np.float32)
            for c, q in enumerate((zz, yy, xx)):
                link = (depth > 0) & ((q + 1) % 12 != 0)                      # the voxel and its + neighbour are inside one cell
                a[c] = link * (0.55 + 0.45 * np.tanh(depth / 2.5)) + rng.normal(0, 0.03, a.shape[1:])
            leak = (a < 0.5) & (rng.random(a.shape, np.float32) < 0.002); a[leak] = 0.7
            affs[Roi((z, 0, 0), (a.shape[1], size, size))] = np.clip(a, 0, 1)
        return affs
    def prediction():
        if source == "fixed": return ZarrArray.open_from_array_identifier(LocalArrayIdentifier(d + "/fixed.zarr", f"affs{size}"))
        return ZarrArray.open_from_array_identifier(LocalArrayIdentifier(d + "/bw.zarr", f"p{tag}w1"))
    if mode == "prepare":
        raw_array()
        if source == "fixed": fixed_affinities()
        print(json.dumps({"mode": mode, "size": size})); sys.exit()
    raw = raw_array()
    import psutil, threading
    def vm_hwm(pid="self"):
        try:
            with open(f"/proc/{pid}/status") as f: return next(int(l.split()[1]) // 1024 for l in f if l.startswith("VmHWM"))
        except (OSError, StopIteration): return 0
    peaks, done = {}, threading.Event()
    def watch():  # the workers' peaks, as long as the run lasts
        while not done.wait(0.2):
            for c in psutil.Process().children(recursive=True): peaks[c.pid] = max(peaks.get(c.pid, 0), vm_hwm(c.pid))
    threading.Thread(target=watch, daemon=True).start()
    t = time.perf_counter()
    if mode == "predict":
        from dacapo_nb.inference import predict
        out = predict(model, raw, d + "/single.zarr", f"p{tag}", progress=False, overwrite=True)
    elif mode in ("blockwise", "rerun"):  # rerun: resume what is there
        from dacapo_nb.blockwise_predict import predict_blockwise
        out = predict_blockwise(model, raw, d + "/bw.zarr", f"p{tag}w{workers}", num_workers=workers, progress=False,
                                overwrite=mode == "blockwise")
    elif mode == "model":   # the model alone on in-memory blocks of the same shape: the limit
        from dacapo_nb.inference import prediction_layout
        lay = prediction_layout(model, raw)
        n = int(np.prod([-(-s // o) for s, o in zip(lay.output_roi.shape, lay.output_size)]))
        x = torch.rand(1, 1, *(lay.input_size)); model.eval()
        with torch.no_grad():
            for _ in range(n): model(x)
    elif mode in ("segment", "segment_seeded"):
        from dacapo_nb.blockwise_segmentation import segment_blockwise
        segment_blockwise(prediction(), d + "/seg.zarr", f"{mode}{tag}{source}", num_workers=workers, progress=False, overwrite=True,
                          seed_threshold=0.9 if mode == "segment_seeded" else None)
    elif mode in ("segment_memory", "segment_memory_seeded"):
        from dacapo_nb.segmentation import affinities_to_segmentation
        pred = prediction()
        affinities_to_segmentation(pred[pred.roi], seed_threshold=0.9 if mode == "segment_memory_seeded" else None)
    wall = time.perf_counter() - t
    done.set()
    extra = {}
    if mode in ("segment", "segment_seeded"):  # what the global step holds: fragments and edges
        import sqlite3
        con = sqlite3.connect(f"{d}/seg.zarr/.blockwise/{mode}{tag}{source}/graph.db")
        extra = {"fragments": con.execute("SELECT COUNT(*) FROM nodes").fetchone()[0], "edges": con.execute("SELECT COUNT(*) FROM edges").fetchone()[0]}
    print(json.dumps({"mode": mode, "size": size, "workers": workers, "model": model_kind, "prediction": source,
                      "seconds": round(wall, 1), "parent_MiB": vm_hwm(), "worker_MiB": max(peaks.values(), default=0), **extra}))
""")

BLOCKWISE = ("blockwise", "segment", "segment_seeded")


def run(mode, size, workers, d, model, source):
    r = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(size), str(workers), d, model, source], capture_output=True, text=True)
    print(r.stdout.strip().splitlines()[-1] if r.returncode == 0 else f"{mode} {size} {workers}: failed {r.stderr[-800:]}", flush=True)


def resume(size, d, model):
    "Seconds of a full blockwise predict (1 worker), and of its rerun after kill -9 of the whole run at half the blocks."
    import shutil
    state = Path(d) / "bw.zarr" / ".blockwise" / f"p{size}{model}w1"
    run("blockwise", size, 1, d, model, "blockwise")                     # the full run
    log = state / "predict.log"
    total = len(log.read_text().splitlines())
    shutil.rmtree(state)                                                 # the killed run starts fresh, as the full one did
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT, "blockwise", str(size), "1", d, model, "blockwise"],
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.perf_counter()
    while not (log.exists() and len(log.read_text().splitlines()) >= total // 2): time.sleep(0.05)
    os.killpg(parent.pid, signal.SIGKILL); parent.wait()                 # kill -9 of the parent and its workers
    killed_after, at_kill = time.perf_counter() - t0, len(log.read_text().splitlines())
    print(json.dumps({"blocks": total, "killed_after_s": round(killed_after, 1), "blocks_logged_at_kill": at_kill}), flush=True)
    run("rerun", size, 1, d, model, "blockwise")
    print(json.dumps({"blocks_in_rerun": len(log.read_text().splitlines()) - at_kill}), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--modes", nargs="+", default=["model", "predict", "blockwise", "segment", "segment_memory"])
    ap.add_argument("--model", choices=["unet", "tiny"], default="unet")
    ap.add_argument("--prediction", choices=["blockwise", "fixed"], default="blockwise")
    ap.add_argument("--resume", action="store_true", help="time a full run, and the rerun after a kill -9 at half (sizes[0])")
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    d = a.dir or tempfile.mkdtemp()
    if a.resume:
        run("prepare", a.sizes[0], 1, d, a.model, "blockwise"); resume(a.sizes[0], d, a.model); sys.exit()
    for size in a.sizes:
        run("prepare", size, 1, d, a.model, a.prediction)
        for mode in a.modes:
            for w in (a.workers if mode in BLOCKWISE else [1]):
                run(mode, size, w, d, a.model, a.prediction)
