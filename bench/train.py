"""Training throughput: our data pipeline, our trainer, and the in-memory limit; optionally the reference (dacapo-ml).

Same data (synthetic 192^3, voxel 8), model (UNet 108^3 -> 68^3, 12 fmaps, x2 per level, two 2x down-samplings),
task (3D affinities), batch size and augments on both sides. Warm-up batches/iterations are not timed.
Always exits 0: a benchmark reports, it does not fail on timing.

    python bench/train.py [--iterations 10 --train-iterations 6 --fetchers 2 --augments elastic]
                          [--reference-venv /work/refvenv | --skip-reference]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

INPUT_SHAPE, FMAPS, FMAP_INC_FACTOR, DOWNSAMPLE = (108, 108, 108), 12, 2, ((2, 2, 2), (2, 2, 2))
DATA_SHAPE, VOXEL_SIZE, BATCH_SIZE, LEARNING_RATE = (192, 192, 192), (8, 8, 8), 2, 1e-4
# Elastic: control points 80 world units (10 voxels) apart, displaced by sigma 8 world units (1 voxel), uniformly
# random 3D rotation, no sub-sampling; plus mirror/transpose and intensity scale/shift (the reference's defaults).
ELASTIC_SPACING_WORLD, ELASTIC_SIGMA_WORLD = (80, 80, 80), (8.0, 8.0, 8.0)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def steps_per_s(step, warmup: int, count: int) -> float:
    "Rate of `step()` calls over `count` calls, after `warmup` untimed ones."
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(count):
        step()
    return rate(count, time.perf_counter() - start)


def fmt(x: float | None, unit: str) -> str:
    return "n/a" if x is None or math.isnan(x) or x <= 0 else f"{x:.3f} {unit} ({1 / x:.2f} s each)"


def ratio(a, b) -> str:
    return "n/a" if a is None or b is None or not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}"


def matmul_gflops(dtype, n: int = 4096, repeat: int = 3, device: str = "cpu") -> float:
    "GFLOP/s of an n^3 matrix product in `dtype` on `device` (on the CPU, this process's threads): the practical peak."
    import torch
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    if device == "cuda": torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    if device == "cuda": torch.cuda.synchronize()
    return 2 * n ** 3 * repeat / (time.perf_counter() - start) / 1e9


def descendants_cpu_seconds() -> float:
    "CPU seconds (user + system) used so far by the live descendants of this process (Linux /proc; 0 elsewhere)."
    try:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, utime + stime
        tick, family, total = os.sysconf("SC_CLK_TCK"), {os.getpid()}, 0
        grew = True
        while grew:
            grew = False
            for pid, (ppid, _) in stats.items():
                if ppid in family and pid not in family:
                    family.add(pid); grew = True
        return sum(t for pid, (_, t) in stats.items() if pid in family and pid != os.getpid()) / tick
    except (OSError, ValueError):
        return 0.0


def bench_compile(model, task, x, y, w, args, precision: str, dtype) -> dict:
    "torch.compile (through CompiledModel) on the CPU step: compile time, then the compiled step's rate, and when it pays."
    import torch
    from dacapo_nb.models import CompiledModel
    out = {}

    def stepper(forward, opt):
        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
                prediction = forward(x)
            task.loss.compute(prediction.float(), y, w).backward()
            opt.step()
        return step
    eager_rate = steps_per_s(stepper(model, torch.optim.RAdam(model.parameters(), lr=LEARNING_RATE)), 1, args.train_iterations)
    compiled_step = stepper(CompiledModel(model), torch.optim.RAdam(model.parameters(), lr=LEARNING_RATE))
    start = time.perf_counter()
    compiled_step()
    out[f"compile_{precision}_s"] = time.perf_counter() - start
    rate_ = out[f"compiled_{precision}_iterations_per_s"] = steps_per_s(compiled_step, 1, args.train_iterations)
    out[f"eager_{precision}_iterations_per_s"] = eager_rate
    gain = 1 / eager_rate - 1 / rate_
    pays = f"pays after {(out[f'compile_{precision}_s'] - 1 / rate_) / gain:.0f} iterations" if gain > 0 else "never pays (not faster)"
    print(f"(h) torch.compile, {precision}: first step {out[f'compile_{precision}_s']:.1f} s, then {fmt(rate_, 'iterations/s')} "
          f"against eager {fmt(eager_rate, 'iterations/s')} ({ratio(rate_, eager_rate)}x): {pays}", flush=True)
    return out


# ----------------------------------------------------------------------------------------------------------------
# ours

def setup_ours(args, data_path: Path):
    "The bench's dataset, task, model and trainer config (seeded): what (a)-(c) and bench/fetcher_sched.py train on."
    import torch
    from dacapo_nb.datasets import make_synthetic_data
    from dacapo_nb.models import Model, UNet
    from dacapo_nb.tasks import affinities_task
    from dacapo_nb.augments import ElasticAugmentConfig, IntensityAugmentConfig, SimpleAugmentConfig
    from dacapo_nb.trainer import GunpowderTrainerConfig

    dataset = make_synthetic_data(data_path, dims=3, shape=DATA_SHAPE, voxel_size=VOXEL_SIZE, seed=0)
    task = affinities_task(3)
    torch.manual_seed(0)
    model = Model(UNet(INPUT_SHAPE, fmaps=FMAPS, fmap_inc_factor=FMAP_INC_FACTOR, downsample_factors=DOWNSAMPLE,
                       constant_upsample=True),  # nearest-neighbour up-sampling, as the reference's CNNectomeUNet default
                  task.predictor.embedding_dims)
    augments = [] if args.augments == "none" else [
        SimpleAugmentConfig(),
        ElasticAugmentConfig(control_point_spacing=ELASTIC_SPACING_WORLD,
                             control_point_displacement_sigma=ELASTIC_SIGMA_WORLD, rotate=True, uniform_3d_rotation=True),
        IntensityAugmentConfig()]
    config = GunpowderTrainerConfig(batch_size=BATCH_SIZE, num_data_fetchers=args.fetchers, learning_rate=LEARNING_RATE,
                                    warmup_iterations=1000, augments=augments, seed=0, snapshot_interval=None)
    return dataset, task, model, config


def trainer_rate(config, dataset, model, task, warmup: int, count: int, device: str = "cpu", **changes) -> tuple[float, float, float]:
    "Iterations/s of our trainer (config with `changes`) over `count` iterations after `warmup`, its mean wait for data and mean step."
    from dacapo_nb.trainer import GunpowderTrainer, GunpowderTrainerConfig
    trainer = GunpowderTrainer(GunpowderTrainerConfig(**{**vars(config), **changes}))
    trainer.build_batch_provider([dataset], model, task)
    optimizer = trainer.create_optimizer(model)
    stamps, data_times, step_times = [], [], []
    with trainer:
        for stats in trainer.iterate(warmup + count, model, optimizer, device):
            stamps.append(time.perf_counter())
            data_times.append(stats.data_time)
            step_times.append(stats.step_time)
    # from the end of the last warm-up iteration to the end of the last one
    mean = lambda xs: sum(xs[warmup:]) / max(len(xs[warmup:]), 1)
    return rate(count, stamps[-1] - stamps[warmup - 1]), mean(data_times), mean(step_times)


def in_memory_step(model, task, config, batch, dtype, device: str = "cpu"):
    "One training step of `model` on one in-memory batch (raw, target, weight), as the trainer does it: the limit (c)."
    import numpy as np
    import torch
    from dacapo_nb.models import place_model
    from dacapo_nb.trainer import GunpowderTrainer
    x, y, w = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device) for a in batch)
    place_model(model, device)
    trainer = GunpowderTrainer(config)
    optimizer = trainer.create_optimizer(model)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            prediction = model(x)
        loss = task.loss.compute(prediction.float(), y, w)
        loss.backward()
        optimizer.step()
        trainer.scheduler.step()
        return float(loss.detach())
    return step, (x, y, w)


def pipeline_rate(config, dataset, model, task, warmup: int, count: int):
    "Batches/s of `trainer.next()` over `count` batches after `warmup`, CPU seconds per batch in the fetchers and in this process, and the last batch."
    from dacapo_nb.trainer import GunpowderTrainer
    trainer = GunpowderTrainer(config)
    trainer.build_batch_provider([dataset], model, task)
    with trainer:
        for _ in range(warmup):
            batch = trainer.next()
        start, cpu, workers = time.perf_counter(), time.process_time(), descendants_cpu_seconds()
        for _ in range(count):
            batch = trainer.next()
        return (rate(count, time.perf_counter() - start), (descendants_cpu_seconds() - workers) / count,
                (time.process_time() - cpu) / count, batch)


def bench_ours(args, data_path: Path) -> dict:
    import torch
    from dacapo_nb.models import autocast_dtype

    dataset, task, model, config = setup_ours(args, data_path)
    out = {"model": f"{tuple(model.input_shape)} -> {tuple(model.output_shape)}",
           "parameters": sum(p.numel() for p in model.parameters())}
    print(f"ours: model {out['model']}, {out['parameters']} parameters, {task.predictor.embedding_dims} output channels",
          flush=True)

    # (a) data pipeline alone
    out["pipeline_batches_per_s"], out["pipeline_worker_core_s"], out["pipeline_parent_core_s"], batch = pipeline_rate(
        config, dataset, model, task, args.warmup, args.iterations)
    raw, gt, target, weight, mask = batch
    print(f"(a) ours, data pipeline: {fmt(out['pipeline_batches_per_s'], 'batches/s')}  "
          f"[raw {raw.data.shape}, target {target.data.shape}]; CPU per batch: {out['pipeline_worker_core_s']:.3f} "
          f"core-s in the fetchers, {out['pipeline_parent_core_s']:.3f} in the training process", flush=True)

    # (b) full training through our trainer, (c) the same step on one in-memory batch (the limit), per precision
    for precision in args.precision:
        dtype = autocast_dtype(args.device, precision == "bf16")  # float16 on CUDA
        if precision == "bf16" and dtype is None:
            print("(b, c) bf16 skipped: this CPU has no bfloat16 units", flush=True)
            continue
        out[f"trainer_{precision}_iterations_per_s"], wait, step_s = trainer_rate(
            config, dataset, model, task, args.train_warmup, args.train_iterations, args.device, mixed_precision=precision == "bf16")
        print(f"(b) ours, trainer, {precision}: {fmt(out[f'trainer_{precision}_iterations_per_s'], 'iterations/s')}  "
              f"[mean wait for data {wait:.3f} s, step {step_s:.3f} s per iteration]", flush=True)

        step, (x, y, w) = in_memory_step(model, task, config, (raw.data, target.data, weight.data), dtype, args.device)
        cpu = time.process_time()
        out[f"in_memory_{precision}_iterations_per_s"] = steps_per_s(step, args.train_warmup, args.train_iterations)
        step_core_s = (time.process_time() - cpu) / (args.train_warmup + args.train_iterations)
        step_s, cores = 1 / out[f"in_memory_{precision}_iterations_per_s"], os.cpu_count()
        # the fetchers' CPU time must come out of the cores the step leaves idle, or the iteration grows
        pipeline_core_s = out["pipeline_worker_core_s"] + out["pipeline_parent_core_s"]
        bound = step_s / max(step_s, (step_core_s + pipeline_core_s) / cores)
        out[f"step_{precision}_core_s"], out[f"limit_bound_{precision}"] = step_core_s, bound
        print(f"(i) {precision}: the step takes {step_s:.2f} s and {step_core_s:.2f} core-s ({step_core_s / step_s:.2f} of "
              f"{cores} cores busy, {cores * step_s - step_core_s:.2f} core-s idle); the pipeline needs {pipeline_core_s:.2f} "
              f"core-s per batch: (b)/(c) can reach at most {bound:.2f}", flush=True)
        print(f"(c) ours, in-memory tensors (the limit), {precision}: "
              f"{fmt(out[f'in_memory_{precision}_iterations_per_s'], 'iterations/s')}; (b)/(c) = "
              f"{ratio(out[f'trainer_{precision}_iterations_per_s'], out[f'in_memory_{precision}_iterations_per_s'])}", flush=True)
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as counter:
            step()
        out["step_gflop"] = counter.get_total_flops() / 1e9
        peak = matmul_gflops(dtype or torch.float32, args.matmul_size, device=args.device)
        achieved = out["step_gflop"] * out[f"in_memory_{precision}_iterations_per_s"]
        out[f"matmul_peak_{precision}_gflops"], out[f"step_{precision}_gflops"] = peak, achieved
        print(f"(g) step {out['step_gflop']:.0f} GFLOP: {achieved:.0f} GFLOP/s in {precision}, "
              f"{achieved / peak:.2f} of a {args.matmul_size}^3 {precision} matmul's {peak:.0f} GFLOP/s", flush=True)
        if args.compile:
            out.update(bench_compile(model, task, x, y, w, args, precision, dtype))

    # (c0) the same, with the weights in torch's default layout: what place_model's channels-last layout saves
    if "fp32" in args.precision and args.device == "cpu":  # elsewhere place_model keeps the default layout
        for p in model.parameters():
            p.data = p.data.contiguous()
        # fresh optimizer state in the same layout: torch's fast multi-tensor update
        step, _ = in_memory_step(model, task, config, (raw.data, target.data, weight.data), None)
        out["in_memory_default_layout_iterations_per_s"] = steps_per_s(step, args.train_warmup, args.train_iterations)
        print(f"(c0) ours, in-memory tensors, torch's default layout: "
              f"{fmt(out['in_memory_default_layout_iterations_per_s'], 'iterations/s')}", flush=True)
    return out


# ----------------------------------------------------------------------------------------------------------------
# reference: run with the reference venv's python; prints one line "RESULT {json}"

REFERENCE_SCRIPT = r'''
import json, math, sys, time, types
import torch
from funlib.geometry import Coordinate
from funlib.persistence import open_ds
import dacapo
from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.tasks import AffinitiesTaskConfig
from dacapo.experiments.trainers import GunpowderTrainerConfig
from dacapo.experiments.trainers.gp_augments import ElasticAugmentConfig, IntensityAugmentConfig, SimpleAugmentConfig

a = json.loads(sys.argv[1])
raw, gt = open_ds(a["data"] + "/raw"), open_ds(a["data"] + "/gt")
dataset = types.SimpleNamespace(name="synthetic", raw=raw, gt=gt, mask=None, weight=1, sample_points=None)
task_config = AffinitiesTaskConfig(name="affs", neighborhood=[Coordinate(1, 0, 0), Coordinate(0, 1, 0), Coordinate(0, 0, 1)])
task = task_config.task_type(task_config)
arch_config = CNNectomeUNetConfig(name="unet", input_shape=Coordinate(a["input_shape"]), fmaps_out=a["fmaps"], fmaps_in=1,
                                  num_fmaps=a["fmaps"], fmap_inc_factor=a["fmap_inc_factor"],
                                  downsample_factors=[Coordinate(d) for d in a["downsample"]])
torch.manual_seed(0)
model = task.create_model(arch_config.architecture_type(arch_config))
augments = [] if a["augments"] == "none" else [
    SimpleAugmentConfig(),
    ElasticAugmentConfig(control_point_spacing=a["elastic_spacing_voxels"], control_point_displacement_sigma=a["elastic_sigma"],
                         rotation_interval=(0, math.pi / 2), subsample=1, uniform_3d_rotation=True),
    IntensityAugmentConfig(scale=(0.8, 1.2), shift=(-0.1, 0.1), clip=True)]
config = GunpowderTrainerConfig(name="ref", batch_size=a["batch_size"], learning_rate=a["learning_rate"],
                                num_data_fetchers=a["fetchers"], augments=augments, snapshot_interval=None, min_masked=0.15)
out = {"version": dacapo.__version__ if hasattr(dacapo, "__version__") else "?",
       "model": f"{tuple(model.input_shape)} -> {tuple(model.output_shape)}",
       "parameters": sum(p.numel() for p in model.parameters())}
print(f"reference: model {out['model']}, {out['parameters']} parameters", flush=True)

trainer = config.trainer_type(config)
trainer.build_batch_provider([dataset], model, task)
with trainer:
    for _ in range(a["warmup"]):
        batch = trainer.next()
    start = time.perf_counter()
    for _ in range(a["iterations"]):
        batch = trainer.next()
    out["pipeline_batches_per_s"] = a["iterations"] / (time.perf_counter() - start)
print(f"(d) reference, data pipeline: {out['pipeline_batches_per_s']:.3f} batches/s", flush=True)

if a["train_iterations"] > 0:
    trainer = config.trainer_type(config)
    trainer.build_batch_provider([dataset], model, task)
    optimizer = trainer.create_optimizer(model)
    stamps = []
    with trainer:
        for stats in trainer.iterate(a["train_warmup"] + a["train_iterations"], model, optimizer, torch.device("cpu")):
            stamps.append(time.perf_counter())
    w, n = a["train_warmup"], a["train_iterations"]
    out["trainer_iterations_per_s"] = n / (stamps[-1] - stamps[w - 1])
    print(f"(e) reference, trainer: {out['trainer_iterations_per_s']:.3f} iterations/s", flush=True)

    # (f) the reference's model and loss on one in-memory batch: the reference's own limit
    x, y, wt = (torch.as_tensor(b[b.roi]).float() for b in (batch[0], batch[2], batch[3]))
    model.train()
    def step():
        for p in model.parameters():
            p.grad = None
        task.loss.compute(model.forward(x), y, wt).backward()
        optimizer.step()
    for _ in range(w):
        step()
    start = time.perf_counter()
    for _ in range(n):
        step()
    out["in_memory_iterations_per_s"] = n / (time.perf_counter() - start)
    print(f"(f) reference, in-memory tensors (its limit): {out['in_memory_iterations_per_s']:.3f} iterations/s", flush=True)
print("RESULT " + json.dumps(out), flush=True)
'''


def bench_reference(args, data_path: Path) -> dict | None:
    python = Path(args.reference_venv) / "bin" / "python"
    if not python.exists():
        print(f"reference skipped: no python at {python} (create the venv as in bench/README.md, section train)")
        return None
    params = dict(data=str(data_path), input_shape=INPUT_SHAPE, fmaps=FMAPS, fmap_inc_factor=FMAP_INC_FACTOR,
                  downsample=DOWNSAMPLE, augments=args.augments, fetchers=args.fetchers, batch_size=BATCH_SIZE,
                  learning_rate=LEARNING_RATE, warmup=args.warmup, iterations=args.iterations,
                  train_warmup=args.train_warmup, train_iterations=args.train_iterations,
                  elastic_spacing_voxels=[s // v for s, v in zip(ELASTIC_SPACING_WORLD, VOXEL_SIZE)],
                  elastic_sigma=list(ELASTIC_SIGMA_WORLD))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONWARNINGS"] = "ignore"
    try:
        proc = subprocess.Popen([str(python), "-c", REFERENCE_SCRIPT, json.dumps(params)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, cwd=tempfile.gettempdir())
        result, tail = None, []
        for line in proc.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
            elif line.startswith(("reference:", "(d)", "(e)", "(f)")):
                print(line, end="", flush=True)
            else:
                tail = (tail + [line])[-25:]
        proc.wait(timeout=args.reference_timeout)
    except Exception as e:  # a benchmark reports, never fails
        print(f"reference skipped: could not run {python}: {e!r}")
        return None
    if result is None:
        print(f"reference failed (exit {proc.returncode}); last output:\n" + "".join(tail))
    return result


# ----------------------------------------------------------------------------------------------------------------

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=10, help="timed batches of the data pipelines (a, d)")
    p.add_argument("--warmup", type=int, default=3, help="untimed batches before (a, d)")
    p.add_argument("--train-iterations", type=int, default=6, help="timed training iterations (b, c, c0, e, f)")
    p.add_argument("--train-warmup", type=int, default=1, help="untimed training iterations before (b, c, c0, e, f), >= 1")
    p.add_argument("--fetchers", type=int, default=2, help="data fetcher processes (num_data_fetchers)")
    p.add_argument("--augments", choices=("none", "elastic"), default="elastic",
                   help="none, or elastic = mirror/transpose + elastic + intensity")
    p.add_argument("--reference-venv", default=None, help="venv with dacapo-ml installed (e.g. /work/refvenv)")
    p.add_argument("--skip-reference", action="store_true", help="do not run the reference even if a venv is given")
    p.add_argument("--reference-timeout", type=int, default=900, help="seconds the reference run may take")
    p.add_argument("--dir", default=None, help="where to write the synthetic data (default: a temporary directory)")
    p.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"],
                   help="precisions of our trainer and its limit (b, c, g): bf16 = mixed_precision=True")
    p.add_argument("--matmul-size", type=int, default=4096, help="n of the n^3 matrix product that measures the peak (g)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where ours trains (the reference always runs on the CPU); 'bf16' means float16 on CUDA")
    p.add_argument("--compile", action="store_true", help="also try torch.compile on the in-memory step, each precision (h)")
    args = p.parse_args()
    if args.iterations < 1 or args.train_iterations < 1 or args.warmup < 0 or args.train_warmup < 1:
        p.error("--iterations, --train-iterations and --train-warmup must be >= 1, --warmup >= 0")

    import torch
    print(f"batch {BATCH_SIZE}, augments {args.augments}, {args.fetchers} fetchers, {args.iterations} timed batches "
          f"(+{args.warmup} warm-up), {args.train_iterations} timed training iterations (+{args.train_warmup} warm-up), "
          f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads", flush=True)
    tmp = tempfile.TemporaryDirectory(prefix="bench_train_") if args.dir is None else None
    data_path = Path(args.dir or tmp.name) / "synthetic.zarr"
    ours, ref = None, None
    try:
        ours = bench_ours(args, data_path)
    except Exception:
        print("ours failed:\n" + traceback.format_exc())
    if args.skip_reference or args.reference_venv is None:
        print("reference skipped: " + ("--skip-reference given" if args.skip_reference else "no --reference-venv given"))
    elif data_path.exists():
        ref = bench_reference(args, data_path)

    print("\nsummary")
    ours = ours or {}
    print(f"  (a) ours pipeline        {fmt(ours.get('pipeline_batches_per_s'), 'batches/s')}")
    for pr in args.precision:
        print(f"  (b) ours trainer, {pr}   {fmt(ours.get(f'trainer_{pr}_iterations_per_s'), 'iterations/s')}")
        print(f"  (c) in-memory limit, {pr} {fmt(ours.get(f'in_memory_{pr}_iterations_per_s'), 'iterations/s')}")
        print(f"      (b)/(c)              {ratio(ours.get(f'trainer_{pr}_iterations_per_s'), ours.get(f'in_memory_{pr}_iterations_per_s'))}")
        print(f"  (g) step GFLOP/s, {pr}   {ours.get(f'step_{pr}_gflops', float('nan')):.0f} of a matmul's {ours.get(f'matmul_peak_{pr}_gflops', float('nan')):.0f}")
        print(f"  (i) (b)/(c) bound, {pr}  {ours.get(f'limit_bound_{pr}', float('nan')):.2f} (step {ours.get(f'step_{pr}_core_s', float('nan')):.2f} core-s, "
              f"pipeline {ours.get('pipeline_worker_core_s', float('nan')) + ours.get('pipeline_parent_core_s', float('nan')):.2f} core-s)")
    print(f"      bf16/fp32 trainer    {ratio(ours.get('trainer_bf16_iterations_per_s'), ours.get('trainer_fp32_iterations_per_s'))}")
    print(f"  (c0) limit, default layout {fmt(ours.get('in_memory_default_layout_iterations_per_s'), 'iterations/s')}")
    print(f"      (c)/(c0) channels-last gain {ratio(ours.get('in_memory_fp32_iterations_per_s'), ours.get('in_memory_default_layout_iterations_per_s'))}")
    if ref:
        print(f"  (d) reference pipeline   {fmt(ref.get('pipeline_batches_per_s'), 'batches/s')}")
        print(f"  (e) reference trainer    {fmt(ref.get('trainer_iterations_per_s'), 'iterations/s')}")
        print(f"      (a)/(d) ours/ref pipeline  {ratio(ours.get('pipeline_batches_per_s'), ref.get('pipeline_batches_per_s'))}")
        for pr in args.precision:
            print(f"      (b)/(e) ours {pr}/ref trainer {ratio(ours.get(f'trainer_{pr}_iterations_per_s'), ref.get('trainer_iterations_per_s'))}")
        print(f"  (f) reference limit      {fmt(ref.get('in_memory_iterations_per_s'), 'iterations/s')}")
        print(f"      (e)/(f) reference/its limit {ratio(ref.get('trainer_iterations_per_s'), ref.get('in_memory_iterations_per_s'))}")
        print(f"      (c0)/(f) our step/reference's, same layout {ratio(ours.get('in_memory_default_layout_iterations_per_s'), ref.get('in_memory_iterations_per_s'))}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    from _main import run_main
    run_main(main)
