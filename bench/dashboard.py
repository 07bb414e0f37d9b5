"""What the training dashboard costs: iterations/s of a short CPU run with and without a TrainingDashboard attached.

Both sides run the same training loop (`run_training`) on the same data, model initialisation and settings; the
"bare" side consumes the generator in a plain background thread (`--bare-in-main-thread`: in the main thread), the "dashboard" side runs it through `TrainingDashboard`
(background thread; a refresher updates the numbers every `--refresh` seconds and redraws curves and snapshots
within the dashboard's redraw budget). Runs alternate
bare/dashboard for `--rounds` rounds; iterations/s is measured from the end of iteration `--warmup` to the end of the
last one (wall clock), so pipeline set-up and the first slow iterations are not counted. Target: at most 5% slower.
"""
import argparse, statistics, tempfile, threading, time
from pathlib import Path

import torch

from dacapo_nb.datasets import make_synthetic_data
from dacapo_nb.models import model_for
from dacapo_nb.tasks import affinities_task
from dacapo_nb.trainer import GunpowderTrainerConfig
from dacapo_nb.training import run_training
from dacapo_nb.widgets import TrainingDashboard


def rate(times, warmup):
    t = times[warmup:]
    return (len(t) - 1) / (t[-1] - t[0])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--refresh", type=float, default=0.5, help="dashboard refresh_interval (s)")
    p.add_argument("--snapshot-interval", type=int, default=10)
    p.add_argument("--fetchers", type=int, default=0)
    p.add_argument("--dims", type=int, default=2, choices=(2, 3))
    p.add_argument("--dir", type=Path, default=None)
    p.add_argument("--bare-in-main-thread", action="store_true", help="run the bare loop in the main thread instead of a thread")
    a = p.parse_args()
    work = a.dir or Path(tempfile.mkdtemp(prefix="bench_dashboard_"))
    shape = (256, 256) if a.dims == 2 else (96, 96, 96)
    data = make_synthetic_data(work / "data.zarr", dims=a.dims, shape=shape, seed=0)
    task = affinities_task(a.dims)
    config = GunpowderTrainerConfig(batch_size=1, num_data_fetchers=a.fetchers, snapshot_interval=a.snapshot_interval, seed=0)

    def model():
        torch.manual_seed(0)
        return model_for(task, 2) if a.dims == 2 else model_for(task, 3, input_shape=(60, 60, 60))

    def bare(run):
        times = []
        def loop():
            for _ in run_training(run, model(), task, [data], config, a.iterations, device="cpu", checkpoint_interval=None):
                times.append(time.perf_counter())
        if a.bare_in_main_thread: loop()
        else:   # the dashboard trains in a background thread; so does the bare side, so that only the dashboard differs
            t = threading.Thread(target=loop); t.start(); t.join()
        return rate(times, a.warmup), {}

    def dashboard(run):
        dash = TrainingDashboard(run, model(), task, [data], config, a.iterations, device="cpu",
                                 checkpoint_interval=None, refresh_interval=a.refresh)
        dash.start()
        status = dash.wait(timeout=3600)
        assert status == "finished", (status, dash.error)
        return rate(dash.history.wall_times, a.warmup), {"refreshes": dash.refreshes, "curve redraws": dash.plot.draws,
                                                 "snapshot redraws": dash.viewer.draws,
                                                 "refresh total s": dash.refresh_seconds}

    print(f"{a.dims}D {shape}, UNet {tuple(model().input_shape)} -> {tuple(model().output_shape)}, batch 1, "
          f"{a.fetchers} fetchers, {a.iterations} iterations ({a.warmup} warm-up), snapshot every {a.snapshot_interval}, "
          f"refresh {a.refresh} s, torch threads {torch.get_num_threads()}")
    results = {"bare": [], "dashboard": []}
    for r in range(a.rounds):
        for name, side in (("bare", bare), ("dashboard", dashboard)) if r % 2 == 0 else (("dashboard", dashboard), ("bare", bare)):
            its, extra = side(work / f"{name}_{r}")
            results[name].append(its)
            print(f"round {r} {name:9s} {its:6.3f} it/s " + " ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                                              for k, v in extra.items()), flush=True)
    b, d = statistics.median(results["bare"]), statistics.median(results["dashboard"])
    print(f"median bare {b:.3f} it/s, dashboard {d:.3f} it/s: dashboard/bare {d / b:.3f} "
          f"({100 * (1 - d / b):+.1f}% slower; target <= 5%)")


if __name__ == "__main__":
    main()
