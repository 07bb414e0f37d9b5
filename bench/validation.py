"""What validation costs during training: iterations/s of a short CPU run with validation every N iterations against
none, the validation's own time apart, and the dashboard (with its validation panel) against the bare loop, both
validating.

All sides run `run_training` on the same data, model initialisation and settings (2D affinities, batch 1, the
default U-Net, no data fetchers). "wall it/s" counts everything between the end of iteration `--warmup` and the last
one; "training it/s" leaves the validations out (wall time minus the seconds validation.jsonl records); the
validation time is the rows' prediction and post-processing seconds. Sides alternate for `--rounds` rounds; medians
are printed. Target: the dashboard with validation within 5% of the bare loop with validation.
"""
import argparse, json, statistics, tempfile, threading, time
from pathlib import Path

import torch

from dacapo_nb.datasets import make_synthetic_data
from dacapo_nb.models import model_for
from dacapo_nb.tasks import affinities_task
from dacapo_nb.trainer import GunpowderTrainerConfig
from dacapo_nb.training import run_training
from dacapo_nb.widgets import TrainingDashboard


def validation_seconds(run, after_iteration):
    "Seconds of the validations after `after_iteration` (each prediction once, plus every row's post-processing)."
    f = run / "validation.jsonl"
    rows = [json.loads(l) for l in f.read_text().splitlines()] if f.exists() else []
    rows = [r for r in rows if r["iteration"] > after_iteration]
    return sum({(r["iteration"], r["dataset"]): r["predict_seconds"] for r in rows}.values()) + sum(r["seconds"] for r in rows)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=80)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--interval", type=int, default=20, help="validate every this many iterations")
    p.add_argument("--val-shape", type=int, default=128, help="the validation image's edge (voxels)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--dir", type=Path, default=None)
    a = p.parse_args()
    work = a.dir or Path(tempfile.mkdtemp(prefix="bench_validation_"))
    data = make_synthetic_data(work / "data.zarr", dims=2, shape=(256, 256), seed=0)
    val = make_synthetic_data(work / "val.zarr", dims=2, shape=(a.val_shape,) * 2, seed=3)
    task = affinities_task(2)
    config = GunpowderTrainerConfig(batch_size=1, num_data_fetchers=0, seed=0)
    validating = {"validation_datasets": [val], "validation_interval": a.interval}

    def model():
        torch.manual_seed(0)
        return model_for(task, 2)

    def loop(run, **kwargs):
        times = []
        def go():
            for _ in run_training(run, model(), task, [data], config, a.iterations, device="cpu", checkpoint_interval=None, **kwargs):
                times.append(time.perf_counter())
        t = threading.Thread(target=go); t.start(); t.join()   # a background thread, as the dashboard's
        return times

    def measure(run, times):
        span = times[-1] - times[a.warmup]
        v = validation_seconds(run, a.warmup)
        n = len(times) - 1 - a.warmup
        return {"wall it/s": n / span, "training it/s": n / (span - v), "validation s": v}

    def dashboard(run):
        dash = TrainingDashboard(run, model(), task, [data], config, a.iterations, device="cpu", checkpoint_interval=None, **validating)
        dash.start()
        assert dash.wait(timeout=3600) == "finished", dash.error
        return dash.history.wall_times

    sides = {"none": lambda run: loop(run), f"every {a.interval}": lambda run: loop(run, **validating), "dashboard": dashboard}
    print(f"2D (256, 256), validation image {a.val_shape}^2 ({len(validating['validation_datasets'])} dataset, 4 parameter sets), "
          f"{a.iterations} iterations ({a.warmup} warm-up), torch threads {torch.get_num_threads()}")
    results = {k: [] for k in sides}
    for r in range(a.rounds):
        for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            run = work / f"{name.replace(' ', '_')}_{r}"
            m = measure(run, sides[name](run))
            results[name].append(m)
            print(f"round {r} {name:10s} " + "  ".join(f"{k} {v:.3f}" for k, v in m.items()), flush=True)
    med = {n: {k: statistics.median(m[k] for m in ms) for k in ms[0]} for n, ms in results.items()}
    none, every, dash = med["none"], med[f"every {a.interval}"], med["dashboard"]
    print(f"median: none {none['wall it/s']:.3f} it/s; every {a.interval}: wall {every['wall it/s']:.3f} it/s, training "
          f"{every['training it/s']:.3f} it/s, validation {every['validation s']:.2f} s "
          f"({every['validation s'] / max(1, a.iterations // a.interval - a.warmup // a.interval):.2f} s each); "
          f"dashboard with validation {dash['wall it/s']:.3f} it/s = {dash['wall it/s'] / every['wall it/s']:.3f} x bare with validation "
          f"({100 * (1 - dash['wall it/s'] / every['wall it/s']):+.1f}% slower; target <= 5%)")


if __name__ == "__main__":
    main()
