"""How data fetchers share 2 cores with the step: our trainer's (b)/(c) per fetcher setting, in alternating runs.

The bench of bench/train.py (same data, model, augments, 2 fetchers at niceness 19). Settings compared:
  before: fetchers only niced, batches through the pipe (main before 2026-12-02)
  idle:   fetchers also in Linux's SCHED_IDLE class (`data_fetcher_idle=True`), batches through the pipe
  shared: SCHED_IDLE and batches through shared memory (`PreCache(shared_memory=...)`)
  default: niced only, batches through shared memory: today's default (SCHED_IDLE is opt-in)
The default run compares `default` and `shared`; name others with --settings.
Each round measures (a) the pipeline's CPU per batch for each setting, then per precision the in-memory limit (c),
the trainer (b) with each setting (their order rotates between rounds), and (c) again; (b)/(c) is taken against the
mean step time of the two (c)s around it, so a machine that slows down within a round shows as a gap between them.
Always exits 0 on timing: a benchmark reports.

    python bench/fetcher_sched.py [--rounds 3 --train-iterations 12 --train-warmup 2 --precision fp32 bf16 --threads N]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from train import fmt, in_memory_step, pipeline_rate, setup_ours, steps_per_s, trainer_rate

SETTINGS = {"before": dict(idle=False, shared_memory=0), "idle": dict(idle=True, shared_memory=0),
            "shared": dict(idle=True, shared_memory=1 << 30), "default": dict(idle=False, shared_memory=1 << 30)}


def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"


@contextlib.contextmanager
def fetchers(idle: bool, shared_memory: int):
    "Trainers built inside get fetchers with this scheduling class and transport (the trainer's PreCache, swapped)."
    import dacapo_nb.trainer as trainer_module
    from dacapo_nb.pipeline import PreCache

    class Fetchers(PreCache):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "idle": idle, "shared_memory": shared_memory})
    trainer_module.PreCache = Fetchers
    try:
        yield
    finally:
        trainer_module.PreCache = PreCache


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds of (a) per setting, then per precision (c), (b) per setting, (c)")
    p.add_argument("--train-iterations", type=int, default=12, help="timed iterations of each (b) and (c), and batches of (a)")
    p.add_argument("--train-warmup", type=int, default=2, help="untimed iterations before each, >= 1")
    p.add_argument("--fetchers", type=int, default=2, help="data fetcher processes (num_data_fetchers)")
    p.add_argument("--augments", choices=("none", "elastic"), default="elastic", help="as bench/train.py")
    p.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    p.add_argument("--settings", nargs="+", choices=tuple(SETTINGS), default=["default", "shared"])
    p.add_argument("--dir", default=None, help="where to write the synthetic data (default: a temporary directory)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of the step (default: torch's, one per core); fewer leave cores to the fetchers")
    args = p.parse_args()
    if args.rounds < 1 or args.train_iterations < 1 or args.train_warmup < 1 or args.fetchers < 1:
        p.error("--rounds, --train-iterations, --train-warmup and --fetchers must be >= 1")
    if args.threads is not None and args.threads < 1: p.error("--threads must be >= 1")

    import torch
    if args.threads is not None: torch.set_num_threads(args.threads)
    from dacapo_nb.models import autocast_dtype, place_model
    from dacapo_nb.trainer import GunpowderTrainer, GunpowderTrainerConfig
    print(f"{args.fetchers} fetchers, {args.rounds} rounds of {args.train_iterations} timed iterations "
          f"(+{args.train_warmup} warm-up), {os.cpu_count()} CPUs, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, load {load_average()}", flush=True)
    tmp = tempfile.TemporaryDirectory(prefix="bench_sched_") if args.dir is None else None
    dataset, task, model, config = setup_ours(args, Path(args.dir or tmp.name) / "synthetic.zarr")
    place_model(model, "cpu")  # channels-last weights, as the trainer trains them: (c) before any (b) needs them too
    trainer = GunpowderTrainer(GunpowderTrainerConfig(**{**vars(config), "num_data_fetchers": 0}))
    trainer.build_batch_provider([dataset], model, task)
    with trainer:
        raw, gt, target, weight, mask = trainer.next()
    batch = (raw.data, target.data, weight.data)
    dtypes = {precision: autocast_dtype("cpu", precision == "bf16") for precision in args.precision}
    for precision, dtype in dtypes.items():  # the first steps of a precision are slow (oneDNN builds its kernels)
        if precision == "fp32" or dtype is not None:
            steps_per_s(in_memory_step(model, task, config, batch, dtype)[0], 3, 1)

    ratios, pipeline = {}, {}  # (precision, setting) -> [(b)/(c) per round]; setting -> [(fetchers, training) core-s]
    for r in range(args.rounds):
        order = args.settings[r % len(args.settings):] + args.settings[:r % len(args.settings)]
        for name in order:
            with fetchers(**SETTINGS[name]):
                _, fetcher_core_s, training_core_s, _ = pipeline_rate(config, dataset, model, task, args.train_warmup + 2,
                                                                      args.train_iterations)
                pipeline.setdefault(name, []).append((fetcher_core_s, training_core_s))
        print(f"round {r + 1} (a) core-s per batch, fetchers + training process: " + "; ".join(
            f"{name} {pipeline[name][-1][0]:.3f} + {pipeline[name][-1][1]:.3f}" for name in order), flush=True)
        for precision in args.precision:
            dtype = dtypes[precision]
            if precision == "bf16" and dtype is None:
                print("bf16 skipped: this CPU has no bfloat16 units", flush=True)
                continue
            limits, rates = [], {}
            cpu = time.process_time()
            limits.append(steps_per_s(in_memory_step(model, task, config, batch, dtype)[0],
                                      args.train_warmup, args.train_iterations))
            step_core_s = (time.process_time() - cpu) / (args.train_warmup + args.train_iterations)
            for name in order:
                with fetchers(**SETTINGS[name]):
                    rates[name] = trainer_rate(config, dataset, model, task, args.train_warmup, args.train_iterations,
                                               mixed_precision=precision == "bf16")
            limits.append(steps_per_s(in_memory_step(model, task, config, batch, dtype)[0],
                                      args.train_warmup, args.train_iterations))
            limit = 2 / (1 / limits[0] + 1 / limits[1])  # the mean step time of the two
            # the step's and the pipeline's CPU both come out of the same cores: (b)/(c) can reach at most
            bound = {name: (1 / limits[0]) / max(1 / limits[0], (step_core_s + sum(pipeline[name][-1])) / os.cpu_count())
                     for name in order}
            for name, (it_s, *_) in rates.items():
                ratios.setdefault((precision, name), []).append(it_s / limit)
            print(f"round {r + 1} {precision} (load {load_average()}): (c) {fmt(limits[0], 'it/s')}, {step_core_s:.2f} "
                  f"core-s per step, then {fmt(limits[1], 'it/s')}; " + "; ".join(
                      f"{name} (b) {fmt(rates[name][0], 'it/s')} [wait {rates[name][1]:.2f} s] (b)/(c) {rates[name][0] / limit:.2f} "
                      f"(bound {bound[name]:.2f})"
                      for name in order), flush=True)

    print("\nsummary: per round, then the median")
    for name, values in pipeline.items():
        print(f"  (a) {name}: core-s per batch, fetchers + training process: "
              f"{' '.join(f'{f:.3f}+{t:.3f}' for f, t in values)}  median "
              f"{statistics.median(f + t for f, t in values):.3f}")
    for (precision, name), values in sorted(ratios.items()):
        print(f"  (b)/(c) {precision} {name}: {' '.join(f'{v:.2f}' for v in values)}  median {statistics.median(values):.2f}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    from _main import run_main
    run_main(main)
