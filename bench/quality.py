"""Segmentation quality at equal iterations: dacapo_nb beside DaCapo 0.3.5, on real EM (ISBI 2012) and synthetic data.

Protocol (both trainers alike): 2D affinities (offsets (1, 0), (0, 1)); the default 2D U-Net size of each package
(12 feature maps, x2, two 2x2 levels, input 132^2 -> 92^2); batch 2; RAdam at 5e-3; mirror/transpose + intensity
augments; the same number of iterations. Each trained model predicts the validation and test sections, and the
*same* dacapo_nb post-processing is applied to both trainers' predictions:
- `default`: what `segment` does with no arguments (`DEFAULT_POST_PROCESSING`);
- `validated`: the parameter set of `parameter_sweep` with the lowest mean VOI on the validation sections, applied to
  the test sections (what validation during training chooses);
- `grid best`: the best parameter set chosen on the test sections themselves (optimistic: an upper bound);
- `before_default` and `before_validated`: the same with the post-processing of before 2026-12-05 (`segment` at threshold
  0.5; a sweep of four seeded watersheds at 0.5/0.7 and seeds 0.8/0.95).
Scores (`dacapo_nb.evaluation.evaluate`, membrane = gt label 0 ignored) are means over the test sections.

Data: `../shared/data/isbi2012/` (20 sections of 512^2, 4 x 4 x 50 nm; instances = 4-connected components of the
inside, per section): sections 0-11 train, 12-14 validate, 15-19 test. Synthetic: `make_synthetic_data(dims=2)`, seed 0
trains, seed 1 validates, seed 2 tests. When the ISBI files are absent the benchmark says so and runs synthetic only.

    python bench/quality.py run --trainer ours --variant default --data isbi synthetic --seeds 0 1 2 --iterations 1500
    python bench/quality.py run --trainer reference --reference-venv /work/refvenv ...
    python bench/quality.py report [--iterations 1500]      # the table, from the saved predictions

Each run saves its predictions (`<workdir>/<data>/<trainer>-<variant>_<iterations>_s<seed>.npz`), so runs resume by
skipping what exists and the report can re-score without retraining.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ISBI = HERE.parent.parent / "shared" / "data" / "isbi2012"
SPLITS = {"isbi": {"train": range(0, 12), "val": range(12, 15), "test": range(15, 20)},
          "synthetic": {"train": [0], "val": [1], "test": [2]}}
VOXEL_SIZE = {"isbi": (4, 4), "synthetic": (8, 8)}
INPUT_SHAPE, LEARNING_RATE, BATCH_SIZE = (132, 132), 5e-3, 2

# Variants of our trainer: keyword arguments of affinities_task, model_for and GunpowderTrainerConfig.quick ("default" =
# exactly what a user gets; the others spell out the U-Net's up-sampling and the warm-up they were run with, so that they
# keep meaning the same set-up when the package's defaults move, as they did on 2026-12-05).
VARIANTS = {
    "default": ({}, {}, {}),
    "balanced": ({"balance_classes": True}, {"constant_upsample": False}, {"warmup_iterations": 20}),      # the class-balanced weights (the default before 2026-12-05)
    "unbalanced": ({"balance_classes": False}, {"constant_upsample": False}, {"warmup_iterations": 20}),   # BCE weighted by the mask only
    "unbalanced-kaiming": ({"balance_classes": False}, {"init": "kaiming", "constant_upsample": False}, {"warmup_iterations": 20}),   # + the reference's weight init
    "balanced-kaiming": ({"balance_classes": True}, {"init": "kaiming", "constant_upsample": False}, {"warmup_iterations": 20}),
    "unbalanced-warmup1000": ({"balance_classes": False}, {"constant_upsample": False}, {"warmup_iterations": 1000}),
    "balanced-nnup": ({"balance_classes": True}, {"constant_upsample": True}, {"warmup_iterations": 20}),   # DaCapo's nearest-neighbour up-sampling
    "balanced-warmup1000": ({"balance_classes": True}, {"constant_upsample": False}, {"warmup_iterations": 1000}),   # DaCapo's warm-up
    "balanced-nnup-warmup1000": ({"balance_classes": True}, {"constant_upsample": True}, {"warmup_iterations": 1000}),  # both
    "balanced-nnup-warmup250": ({"balance_classes": True}, {"constant_upsample": True}, {"warmup_iterations": 250}),  # a warm-up of a sixth of 1500
}


# ---------------------------------------------------------------------------------------------------------------
# data

def prepare(workdir: Path, data: str) -> Path:
    "Write `<workdir>/<data>.zarr` once: `raw_<k>` (float32 in [0, 1]) and `gt_<k>` (uint64 instances) per section."
    import zarr
    path = workdir / f"{data}.zarr"
    if (path / ".done").exists(): return path
    root = zarr.open_group(str(path), mode="w")
    vs = VOXEL_SIZE[data]

    def put(name, array):
        a = root.create_dataset(name, data=array, chunks=(256, 256), overwrite=True)
        a.attrs.update({"voxel_size": list(vs), "resolution": list(vs), "offset": [0, 0], "axes": ["y", "x"],
                        "axis_names": ["y", "x"], "units": ["nm", "nm"]})

    if data == "isbi":
        import tifffile
        from dacapo_nb.datasets import labels_from_boundaries
        raw, labels = tifffile.imread(ISBI / "train-volume-sections-00-19.tif"), tifffile.imread(ISBI / "train-labels-sections-00-19.tif")
        gt = labels_from_boundaries(labels, per_section=True)  # 4-connected components of the inside (255), per section
        for k in range(raw.shape[0]):
            put(f"raw_{k}", (raw[k] / 255.0).astype(np.float32))
            put(f"gt_{k}", gt[k])
    else:
        from dacapo_nb.datasets import make_synthetic_data
        for k in range(3):
            d = make_synthetic_data(workdir / f"synthetic_{k}.zarr", dims=2, seed=k)
            put(f"raw_{k}", d.raw[d.raw.roi].astype(np.float32)); put(f"gt_{k}", d.gt[d.gt.roi].astype(np.uint64))
    (path / ".done").touch()
    return path


def available(data: str) -> bool:
    ok = data != "isbi" or (ISBI / "train-volume-sections-00-19.tif").exists()
    if not ok: print(f"ISBI 2012 sections not found at {ISBI}: skipping the real-EM part (CI never needs it)", flush=True)
    return ok


# ---------------------------------------------------------------------------------------------------------------
# ours

def run_ours(container: Path, data: str, seed: int, iterations: int, variant: str, out: Path) -> None:
    import torch
    from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray
    from dacapo_nb.datasets import Dataset
    from dacapo_nb.inference import predict
    from dacapo_nb.models import model_for
    from dacapo_nb.tasks import affinities_task
    from dacapo_nb.trainer import GunpowderTrainerConfig
    from dacapo_nb.training import run_training

    task_kwargs, model_kwargs, config_kwargs = VARIANTS[variant]
    array = lambda name: ZarrArray.open_from_array_identifier(LocalArrayIdentifier(container, name), mode="r")
    datasets = [Dataset(f"section_{k}", array(f"raw_{k}"), array(f"gt_{k}")) for k in SPLITS[data]["train"]]
    task = affinities_task(2, **task_kwargs)
    torch.manual_seed(seed)
    model = model_for(task, 2, **model_kwargs)
    config = GunpowderTrainerConfig.quick(iterations=iterations, seed=seed, snapshot_interval=None, **config_kwargs)  # the warm-up the CLI gives
    run_dir = out.with_suffix(".run")
    start = time.perf_counter()
    for _ in run_training(run_dir, model, task, datasets, config, iterations=iterations, device="cpu",
                          checkpoint_interval=None):
        pass
    seconds = time.perf_counter() - start
    predictions = {}
    for k in [*SPLITS[data]["val"], *SPLITS[data]["test"]]:
        predictions[f"pred_{k}"] = np.asarray(predict(model, array(f"raw_{k}"), run_dir / "predictions.zarr", f"raw_{k}",
                                                      device="cpu", progress=False, overwrite=True).data[:])
    np.savez_compressed(out, seconds=seconds, iterations=iterations, **predictions)


# ---------------------------------------------------------------------------------------------------------------
# reference: DaCapo 0.3.5 in its own venv (see bench/README.md, section train); prints "RESULT {json}"

REFERENCE_SCRIPT = r'''
import json, sys, time, types
import numpy as np, torch, zarr
from funlib.geometry import Coordinate
from funlib.persistence import open_ds
from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.tasks import AffinitiesTaskConfig
from dacapo.experiments.trainers import GunpowderTrainerConfig
from dacapo.experiments.trainers.gp_augments import IntensityAugmentConfig, SimpleAugmentConfig

a = json.loads(sys.argv[1])
ds = lambda name: open_ds(a["container"] + "/" + name)
datasets = [types.SimpleNamespace(name=f"section_{k}", raw=ds(f"raw_{k}"), gt=ds(f"gt_{k}"), mask=None, weight=1,
                                  sample_points=None) for k in a["train"]]
task_config = AffinitiesTaskConfig(name="affs", neighborhood=[Coordinate(1, 0), Coordinate(0, 1)])
task = task_config.task_type(task_config)
arch = CNNectomeUNetConfig(name="unet", input_shape=Coordinate(a["input_shape"]), fmaps_out=12, fmaps_in=1, num_fmaps=12,
                           fmap_inc_factor=2, downsample_factors=[Coordinate(2, 2), Coordinate(2, 2)])
torch.manual_seed(a["seed"]); np.random.seed(a["seed"])
model = task.create_model(arch.architecture_type(arch))
config = GunpowderTrainerConfig(name="ref", batch_size=a["batch_size"], learning_rate=a["learning_rate"], num_data_fetchers=0,
                                augments=[SimpleAugmentConfig(), IntensityAugmentConfig(scale=(0.8, 1.2), shift=(-0.1, 0.1), clip=True)],
                                snapshot_interval=None, min_masked=0.15)
trainer = config.trainer_type(config)
trainer.build_batch_provider(datasets, model, task)
optimizer = trainer.create_optimizer(model)
start = time.perf_counter()
with trainer:
    for stats in trainer.iterate(a["iterations"], model, optimizer, torch.device("cpu")):
        pass
seconds = time.perf_counter() - start

# a plain tiled forward pass: zero padding of the context, as dacapo_nb's predict does
model.eval()
inp, outp = tuple(a["input_shape"]), tuple(int(s) for s in model.compute_output_shape(Coordinate(a["input_shape"]))[1])
ctx = [(i - o) // 2 for i, o in zip(inp, outp)]
predictions = {}
with torch.no_grad():
    for k in a["predict"]:
        raw = zarr.open(a["container"] + f"/raw_{k}", mode="r")[:]
        padded = np.pad(raw, [(c, c + o) for c, o in zip(ctx, outp)])
        pred = np.zeros((2,) + raw.shape, np.float32)
        for y in range(0, raw.shape[0], outp[0]):
            for x in range(0, raw.shape[1], outp[1]):
                y0, x0 = min(y, raw.shape[0] - outp[0]), min(x, raw.shape[1] - outp[1])
                window = torch.as_tensor(padded[None, None, y0:y0 + inp[0], x0:x0 + inp[1]])
                out = model(window)[0].numpy()
                pred[:, y0:y0 + outp[0], x0:x0 + outp[1]] = out
        if pred.min() < 0 or pred.max() > 1: pred = 1 / (1 + np.exp(-pred))   # logits: the model had no eval activation
        predictions[f"pred_{k}"] = pred
np.savez_compressed(a["out"], seconds=seconds, iterations=a["iterations"], **predictions)
print("RESULT " + json.dumps({"seconds": seconds, "parameters": sum(p.numel() for p in model.parameters()),
                              "model": f"{inp} -> {outp}"}), flush=True)
'''


def run_reference(container: Path, data: str, seed: int, iterations: int, venv: Path, out: Path) -> None:
    args = {"container": str(container), "train": list(SPLITS[data]["train"]), "seed": seed, "iterations": iterations,
            "input_shape": list(INPUT_SHAPE), "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE,
            "predict": [*SPLITS[data]["val"], *SPLITS[data]["test"]], "out": str(out)}
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", REFERENCE_SCRIPT, json.dumps(args)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"reference run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    print("  " + [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][-1], flush=True)


# ---------------------------------------------------------------------------------------------------------------
# scoring

def scores_of(predictions: dict, container: Path, sections, parameters: dict) -> dict:
    "Mean scores over `sections` of the post-processing `parameters` applied to each section's prediction."
    import zarr
    from dacapo_nb.evaluation import evaluate
    from dacapo_nb.validation import post_process
    from dacapo_nb.tasks import affinities_task
    task = affinities_task(2)
    rows = []
    for k in sections:
        gt = zarr.open(str(container / f"gt_{k}"), mode="r")[:]
        rows.append(evaluate(post_process(predictions[f"pred_{k}"], task, parameters), gt))
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def score_run(npz: Path, container: Path, data: str) -> dict:
    "default / validated / grid-best scores of one saved run (cached beside it)."
    from dacapo_nb.validation import DEFAULT_POST_PROCESSING, parameter_sweep
    from dacapo_nb.tasks import affinities_task
    cache = npz.with_suffix(".scores.json")
    sweep = parameter_sweep(affinities_task(2))
    default = DEFAULT_POST_PROCESSING["affinities"]
    p = dict(np.load(npz))
    result = json.loads(cache.read_text()) if cache.exists() and cache.stat().st_mtime >= npz.stat().st_mtime else {}
    if json.loads(result.get("key", "{}")).get("sweep") != sweep:   # the sweep's scores are cached; the default is cheap
        val = [scores_of(p, container, SPLITS[data]["val"], s) for s in sweep]
        test = [scores_of(p, container, SPLITS[data]["test"], s) for s in sweep]
        chosen, best = int(np.argmin([v["voi"] for v in val])), int(np.argmin([t["voi"] for t in test]))
        result = {"key": json.dumps({"sweep": sweep}), "seconds": float(p["seconds"]),
                  "validated": {**test[chosen], "parameters": sweep[chosen]}, "grid_best": {**test[best], "parameters": sweep[best]}}
        cache.write_text(json.dumps(result))
    return {**result, "default": {**scores_of(p, container, SPLITS[data]["test"], default), "parameters": default}}


# the post-processing before 2026-12-05: `segment`'s threshold 0.5, and validation's sweep of 4 seeded watersheds
BEFORE = {"default": {"threshold": 0.5},
          "sweep": [{"threshold": t, "seed_threshold": s} for t in (0.5, 0.7) for s in (0.8, 0.95)]}


def score_run_before(npz: Path, container: Path, data: str) -> dict:
    "The same run scored with the post-processing of before (cached beside it)."
    cache = npz.with_suffix(".before.json")
    if cache.exists() and cache.stat().st_mtime >= npz.stat().st_mtime: return json.loads(cache.read_text())
    p = dict(np.load(npz))
    val = [scores_of(p, container, SPLITS[data]["val"], s) for s in BEFORE["sweep"]]
    chosen = int(np.argmin([v["voi"] for v in val]))
    result = {"default": {**scores_of(p, container, SPLITS[data]["test"], BEFORE["default"]), "parameters": BEFORE["default"]},
              "validated": {**scores_of(p, container, SPLITS[data]["test"], BEFORE["sweep"][chosen]),
                            "parameters": BEFORE["sweep"][chosen]}}
    cache.write_text(json.dumps(result))
    return result


def cremi(s: dict) -> float:
    return float(np.sqrt(s["voi"] * s["adapted_rand_error"]))


def report(workdir: Path, iterations: list[int], datas=tuple(SPLITS)) -> None:
    import re
    for data in datas:
        container = workdir / f"{data}.zarr"
        runs: dict = {}
        for npz in sorted((workdir / data).glob("*.npz")):
            m = re.fullmatch(r"(.+)_(\d+)_s(\d+)", npz.stem)
            if m and (not iterations or int(m[2]) in iterations):
                runs.setdefault((m[1], int(m[2])), []).append(
                    {**score_run(npz, container, data),
                     **{f"before_{k}": v for k, v in score_run_before(npz, container, data).items()}})
        if not runs: continue
        print(f"\n{data}: test sections {list(SPLITS[data]['test'])}; mean over sections, then median (min-max) over seeds\n")
        print("| trainer | iterations | seeds | post-processing | VOI | VOI split | VOI merge | adapted Rand error | CREMI score | chosen |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for (name, its), rs in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            for pp in ("before_default", "before_validated", "default", "validated", "grid_best"):
                col = lambda f: f"{np.median([f(r[pp]) for r in rs]):.3f} ({min(f(r[pp]) for r in rs):.2f}-{max(f(r[pp]) for r in rs):.2f})"
                chosen = "; ".join(sorted({json.dumps(r[pp].get("parameters", "")) for r in rs})) if pp != "default" else ""
                print(f"| {name} | {its} | {len(rs)} | {pp} | {col(lambda s: s['voi'])} | {col(lambda s: s['voi_split'])} | "
                      f"{col(lambda s: s['voi_merge'])} | {col(lambda s: s['adapted_rand_error'])} | {col(cremi)} | {chosen} |")
        print(f"\n(seconds of training, median: " + ", ".join(
            f"{n} {i}: {np.median([r['seconds'] for r in rs]):.0f}" for (n, i), rs in sorted(runs.items())) + ")")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("run", "report"))
    p.add_argument("--trainer", choices=("ours", "reference"), default="ours")
    p.add_argument("--variant", choices=sorted(VARIANTS), default="default", help="our trainer's settings (see VARIANTS)")
    p.add_argument("--data", nargs="+", choices=sorted(SPLITS), default=["isbi", "synthetic"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iterations", type=int, nargs="+", default=[1500])
    p.add_argument("--reference-venv", type=Path, default=Path("/work/refvenv"))
    p.add_argument("--workdir", type=Path, default=Path(os.environ.get("QUALITY_DIR", "/work/quality")))
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.command == "report":
        return report(args.workdir, args.iterations, args.data)
    for data in args.data:
        if not available(data): continue
        container = prepare(args.workdir, data)
        (args.workdir / data).mkdir(exist_ok=True)
        for its, seed in itertools.product(args.iterations, args.seeds):
            name = "reference" if args.trainer == "reference" else f"ours-{args.variant}"
            out = args.workdir / data / f"{name}_{its}_s{seed}.npz"
            if out.exists(): continue
            print(f"{data}: {name}, {its} iterations, seed {seed} ...", flush=True)
            start = time.perf_counter()
            if args.trainer == "reference": run_reference(container, data, seed, its, args.reference_venv, out)
            else: run_ours(container, data, seed, its, args.variant, out)
            print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    from _main import run_main
    run_main(main)
