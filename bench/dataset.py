"""The pipeline as a torch IterableDataset against our PreCache path, and a 2-rank DDP step against 1 rank, on the CPU.

(a) PreCache: `GunpowderTrainer.next()` with 2 data fetchers at normal priority (niceness 0, as DataLoader workers), batch 2.
(b) DataLoader(iterable_dataset(...), batch_size=2, num_workers=2): the same samples (same augments), collated by
    torch. Both after a warm-up of 2 batches.
(c) One training step (2D default U-Net, batch 4 of fixed tensors) in 1 process, against (d) 2 gloo ranks with batch 2
    each under DistributedDataParallel (the same work per step, split in two; on a 2-core machine the ranks share the
    cores, so (d) cannot be faster than (c)).
Always exits 0.

    python bench/dataset.py [--batches 20]
"""
from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path


def setup(tmp: Path):
    import dacapo_nb as dn
    data = dn.make_synthetic_data(tmp / "data.zarr", dims=2, shape=(512, 512), seed=0)
    task = dn.affinities_task(2)
    model = dn.model_for(task, 2)
    augments = [dn.SimpleAugmentConfig(), dn.ElasticAugmentConfig(control_point_spacing=(80, 80),
                                                                  control_point_displacement_sigma=(8.0, 8.0)),
                dn.IntensityAugmentConfig()]
    config = dn.GunpowderTrainerConfig(batch_size=2, num_data_fetchers=2, data_fetcher_niceness=0, augments=augments, seed=0)  # same priority as the DataLoader workers
    return dn, data, task, model, config


def rate(fn, n: int, warmup: int = 2) -> float:
    for _ in range(warmup): fn()
    start = time.perf_counter()
    for _ in range(n): fn()
    return n / (time.perf_counter() - start)


def step_rate(rank, world, port, n, out):
    import torch, torch.distributed as dist
    import dacapo_nb as dn
    torch.set_num_threads(max(1, 2 // world))
    if world > 1: dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    task = dn.affinities_task(2)
    torch.manual_seed(0)
    model = dn.model_for(task, 2)
    trained = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.RAdam(model.parameters(), lr=1e-3)
    b = 4 // world
    x, y = torch.rand(b, 1, 132, 132), torch.rand(b, 2, 92, 92)
    def step():
        optimizer.zero_grad(set_to_none=True)
        task.loss.compute(trained(x), y, torch.ones_like(y)).backward()
        optimizer.step()
    r = rate(step, n)
    if rank == 0: Path(out).write_text(str(r))
    if world > 1: dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=20, help="timed batches of (a) and (b), timed steps of (c) and (d)")
    args = p.parse_args()
    import torch
    from torch.utils.data import DataLoader
    print(f"{args.batches} timed batches, torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_dataset_") as tmp:
        tmp = Path(tmp)
        dn, data, task, model, config = setup(tmp)
        trainer = dn.GunpowderTrainer(config)
        trainer.build_batch_provider([data], model, task)
        with trainer:
            precache = 2 * rate(trainer.next, args.batches)
        print(f"(a) PreCache, 2 fetchers: {precache:.1f} samples/s", flush=True)
        loader = iter(DataLoader(trainer.iterable_dataset(seed=0), batch_size=2, num_workers=2))
        dataloader = 2 * rate(lambda: next(loader), args.batches)
        del loader
        print(f"(b) DataLoader(iterable_dataset), 2 workers: {dataloader:.1f} samples/s; (b)/(a) = {dataloader / precache:.2f}",
              flush=True)
        import torch.multiprocessing as mp
        one = tmp / "one.txt"; step_rate(0, 1, 0, args.batches, one)
        with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
        two = tmp / "two.txt"
        mp.spawn(step_rate, args=(2, port, args.batches, two), nprocs=2)
        r1, r2 = float(one.read_text()), float(two.read_text())
        print(f"(c) 1 process, batch 4: {r1:.2f} steps/s\n(d) 2 ranks, batch 2 each: {r2:.2f} steps/s; (d)/(c) = {r2 / r1:.2f}")


if __name__ == "__main__":
    from _main import run_main
    run_main(main)
