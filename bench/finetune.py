"""Fine-tuning (issue 31): how many iterations a model trained on the built-in synthetic 2D data needs to reach a fixed
validation score on real EM it never saw (ISBI 2012), against the same model trained from scratch; 3 seeds.

Protocol: the source trains `--source-iterations` on `make_synthetic_data(dims=2, seed=0)` (2D affinities, the default
2D U-Net, `GunpowderTrainerConfig.quick`). Each target run trains on ISBI sections 0-11 and validates on sections 12-14
every `--interval` iterations with one post-processing (`DEFAULT_POST_PROCESSING`, agglomeration at 0.2): from scratch,
fine-tuned (`init_from=` the source run), and fine-tuned with the encoder frozen for the first 100 iterations. Each
variant uses the same seeds (weights of the scratch model, samples). The report gives the iterations each run needs to
reach the score that every scratch run reaches by its end (the worst final VOI of the scratch runs), and the scores
on the way. CPU, one thread: `OMP_NUM_THREADS=1`.

    OMP_NUM_THREADS=1 python bench/finetune.py run [--iterations 400] [--interval 50] [--seeds 0 1 2]
    python bench/finetune.py report

Runs resume (each target run is a run directory under `--workdir`; a finished one is skipped).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _main import run_main  # noqa: E402
from quality import SPLITS, available, prepare  # noqa: E402

VARIANTS = {"scratch": {}, "finetune": {"init": True},
            "finetune-freeze100": {"init": True, "freeze": "encoder", "freeze_iterations": 100}}


def source_run(workdir: Path, iterations: int) -> Path:
    "The source: the default 2D U-Net trained on the built-in synthetic data (once)."
    import torch
    from dacapo_nb.datasets import make_synthetic_data
    from dacapo_nb.models import model_for
    from dacapo_nb.tasks import affinities_task
    from dacapo_nb.trainer import GunpowderTrainerConfig
    from dacapo_nb.training import run_training
    run_dir = workdir / "source"
    data = make_synthetic_data(workdir / "source_data.zarr", dims=2, seed=0)
    task = affinities_task(2)
    torch.manual_seed(0)
    start = time.perf_counter()
    for _ in run_training(run_dir, model_for(task, 2), task, [data], GunpowderTrainerConfig.quick(seed=0, snapshot_interval=None),
                          iterations, device="cpu", checkpoint_interval=None):
        pass
    print(f"source: {iterations} iterations on synthetic data in {time.perf_counter() - start:.0f} s", flush=True)
    return run_dir


def target_run(workdir: Path, container: Path, variant: str, seed: int, iterations: int, interval: int, source: Path) -> dict:
    "Train one variant on the ISBI training sections, validating on the validation sections; its curve and time."
    import torch
    from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray
    from dacapo_nb.datasets import Dataset
    from dacapo_nb.models import model_for
    from dacapo_nb.tasks import affinities_task
    from dacapo_nb.trainer import GunpowderTrainerConfig
    from dacapo_nb.training import read_jsonl, run_training
    from dacapo_nb.validation import DEFAULT_POST_PROCESSING
    result = workdir / f"{variant}_s{seed}.json"
    if result.exists() and json.loads(result.read_text())["iterations"] == iterations: return json.loads(result.read_text())
    array = lambda name: ZarrArray.open_from_array_identifier(LocalArrayIdentifier(container, name), mode="r")
    train = [Dataset(f"section_{k}", array(f"raw_{k}"), array(f"gt_{k}")) for k in SPLITS["isbi"]["train"]]
    val = [Dataset(f"section_{k}", array(f"raw_{k}"), array(f"gt_{k}")) for k in SPLITS["isbi"]["val"]]
    task, options = affinities_task(2), VARIANTS[variant]
    torch.manual_seed(seed)
    model = model_for(task, 2)
    run_dir = workdir / f"{variant}_s{seed}.run"
    start = time.perf_counter()
    for _ in run_training(run_dir, model, task, train, GunpowderTrainerConfig.quick(seed=seed, snapshot_interval=None), iterations,
                          device="cpu", checkpoint_interval=None, validation_datasets=val, validation_interval=interval,
                          validation_sweep=[dict(DEFAULT_POST_PROCESSING["affinities"])],
                          init_from=source if options.get("init") else None, freeze=options.get("freeze"),
                          freeze_iterations=options.get("freeze_iterations", 0)):
        pass
    rows, _ = read_jsonl(run_dir / "validation.jsonl")
    curve = {}
    for r in rows: curve.setdefault(r["iteration"], []).append(r["scores"]["voi"])
    out = {"variant": variant, "seed": seed, "iterations": iterations, "seconds": time.perf_counter() - start,
           "voi": {str(i): float(np.mean(v)) for i, v in sorted(curve.items())}}
    result.write_text(json.dumps(out))
    print(f"{variant} seed {seed}: {out['seconds']:.0f} s, VOI {out['voi']}", flush=True)
    return out


def first_reaching(voi: dict, threshold: float):
    "The first validated iteration whose VOI is at most `threshold` (None: never)."
    return next((int(i) for i, v in voi.items() if v <= threshold), None)


def report(workdir: Path, strict: float = 0.8) -> None:
    results = [json.loads(p.read_text()) for p in sorted(workdir.glob("*_s*.json"))]
    by = {v: [r for r in results if r["variant"] == v] for v in VARIANTS}
    if not by["scratch"]: print("no results yet"); return
    threshold = max(list(r["voi"].values())[-1] for r in by["scratch"])
    its = sorted({int(i) for r in results for i in r["voi"]})
    print(f"targets: VOI <= {threshold:.3f} on ISBI sections 12-14 (the worst final VOI of the scratch runs), and VOI <= {strict}\n")
    print(f"| variant | iterations to VOI <= {threshold:.2f} (seeds 0, 1, 2) | to VOI <= {strict} | s/iteration (with validation) | "
          + " | ".join(f"VOI @{i}" for i in its) + " |")
    print("|---|---|---|---|" + "---|" * len(its))
    for v, rs in by.items():
        if not rs: continue
        rs = sorted(rs, key=lambda r: r["seed"])
        reach = lambda t: ", ".join("never" if x is None else str(x) for x in (first_reaching(r["voi"], t) for r in rs))
        per_it = np.mean([r["seconds"] / r["iterations"] for r in rs])
        cells = [f"{np.mean([r['voi'][str(i)] for r in rs]):.2f} ± {np.std([r['voi'][str(i)] for r in rs]):.2f}" for i in its]
        print(f"| {v} | {reach(threshold)} | {reach(strict)} | {per_it:.2f} | " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("run", "report"))
    p.add_argument("--iterations", type=int, default=400)
    p.add_argument("--source-iterations", type=int, default=600)
    p.add_argument("--interval", type=int, default=50)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    p.add_argument("--workdir", type=Path, default=Path(os.environ.get("FINETUNE_DIR", "/work/finetune_bench")))
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.command == "report": return report(args.workdir)
    if not available("isbi"): return
    container = prepare(args.workdir, "isbi")
    source = source_run(args.workdir, args.source_iterations)
    for seed in args.seeds:
        for variant in args.variants:
            target_run(args.workdir, container, variant, seed, args.iterations, args.interval, source)
    report(args.workdir)


if __name__ == "__main__":
    run_main(main)
