"""Multi-process training with torch.distributed on the CPU (gloo, 2 ranks, a tiny model)."""
import json
import os
import socket
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import dacapo_nb as dn
from funlib.geometry import Roi

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_model(task):
    torch.manual_seed(0)
    return dn.Model(dn.UNet((44, 44), fmaps=2, downsample_factors=((2, 2),)), task.predictor.embedding_dims,
                    eval_activation=task.eval_activation)


def tiny_run(root):
    data = dn.make_synthetic_data(root / "data.zarr", dims=2, shape=(96, 96), seed=0)
    task = dn.affinities_task(2)
    config = dn.GunpowderTrainerConfig(batch_size=1, num_data_fetchers=0, learning_rate=1e-2, warmup_iterations=2,
                                       seed=0, snapshot_interval=2)
    return data, task, config


def init(rank, port):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)


def leave():
    "End a rank that finished its work without the interpreter's C++ teardown, where gloo's threads abort now and then."
    # ("terminate called without an active exception", SIGABRT: once in CI in each of the two tests that spawn ranks);
    # `dacapo_nb.cli.exit_process` leaves a torchrun rank the same way. Exit status 0: mp.spawn counts it as done.
    import sys
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)


def fixed_batch(n):
    "A fixed batch of n samples (raw, gt, target, weight, mask) as train_step takes it."
    rng = np.random.default_rng(1)
    wrap = lambda a: dn.NumpyArray.from_np_array(a, Roi((0, 0), a.shape[2:]), (1, 1), ["b", "c", "y", "x"])
    raw = rng.random((n, 1, 44, 44), dtype=np.float32)
    target = (rng.random((n, 2, 28, 28)) > 0.5).astype(np.float32)
    ones = np.ones((n, 1, 28, 28), np.float32)
    return [wrap(raw), wrap(ones), wrap(target), wrap(np.ones_like(target)), wrap(ones)]


def steps(trainer, model, optimizer, batch, n=5):
    return [trainer.train_step(batch, model, optimizer, torch.device("cpu"))[0] for _ in range(n)]


def step_worker(rank, port, root):
    init(rank, port)
    data, task, config = tiny_run(root)
    model = tiny_model(task)
    trainer = dn.GunpowderTrainer(config)
    trainer.build_batch_provider([data], model, task)
    optimizer = trainer.create_optimizer(model)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    half = [dn.NumpyArray.from_np_array(a.data[rank::WORLD], a.roi, a.voxel_size, a.axes) for a in fixed_batch(4)]
    losses = steps(trainer, ddp, optimizer, half)
    torch.save({"losses": losses, "state": model.state_dict()}, root / f"rank{rank}.pt")
    # both ranks done with their collectives, and DDP's reducer gone, before the group closes: a rank that closed its
    # gloo connections while the other was still in DDP's teardown aborted once in CI ("terminate called without an
    # active exception", SIGABRT)
    del ddp
    dist.barrier()
    dist.destroy_process_group()
    leave()


def test_two_ranks_train_like_one_process_with_the_combined_batch(tmp_path):
    tiny_run(tmp_path)  # the data, made once before the ranks open it
    mp.spawn(step_worker, args=(free_port(), tmp_path), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for name, w in ranks[0]["state"].items():  # DDP keeps the ranks' weights identical
        assert torch.equal(w, ranks[1]["state"][name]), name
    data, task, config = tiny_run(tmp_path)
    model = tiny_model(task)
    trainer = dn.GunpowderTrainer(config)
    trainer.build_batch_provider([data], model, task)
    optimizer = trainer.create_optimizer(model)
    batch = fixed_batch(4)
    one = steps(trainer, model, optimizer, [dn.NumpyArray.from_np_array(np.concatenate([a.data[0::2], a.data[1::2]]), a.roi,
                                                                        a.voxel_size, a.axes) for a in batch])
    # the mean of the ranks' losses is the combined batch's loss; the weights follow it to float rounding
    np.testing.assert_allclose(np.mean([r["losses"] for r in ranks], axis=0), one, rtol=1e-4)
    for name, w in model.state_dict().items():
        torch.testing.assert_close(ranks[0]["state"][name], w, rtol=1e-4, atol=1e-5, msg=name)


def run_worker(rank, port, root, iterations, fail_at):
    init(rank, port)
    data, task, config = tiny_run(root)
    model = tiny_model(task)
    losses = []
    for stats in dn.run_training(root / "run", model, task, [data], config, iterations, device="cpu", checkpoint_interval=2):
        if rank == 1 and stats.iteration == fail_at: raise RuntimeError(f"rank 1 fails at iteration {fail_at}")
        losses.append(stats.loss)
    torch.save(model.state_dict(), root / f"weights{rank}.pt")
    torch.save(losses, root / f"losses{rank}.pt")
    dist.barrier()  # both ranks done before the group closes
    dist.destroy_process_group()
    leave()


def test_rank_zero_alone_writes_and_a_run_resumes(tmp_path):
    tiny_run(tmp_path)
    mp.spawn(run_worker, args=(free_port(), tmp_path, 4, None), nprocs=WORLD)
    run = tmp_path / "run"
    assert [json.loads(l)["iteration"] for l in (run / "stats.jsonl").read_text().splitlines()] == [0, 1, 2, 3]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iteration_00000002.pt", "iteration_00000004.pt"]
    assert json.loads((run / "run.json").read_text())["processes"] == WORLD
    w0, w1 = (torch.load(tmp_path / f"weights{r}.pt") for r in range(WORLD))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    l0, l1 = (torch.load(tmp_path / f"losses{r}.pt") for r in range(WORLD))
    assert l0[0] != l1[0], (l0, l1)  # the same weights, other samples: each rank draws its own (`rank_seed`), from one seed
    assert json.loads((run / "run.json").read_text())["seed"] == 0  # run.json keeps the run's seed
    mp.spawn(run_worker, args=(free_port(), tmp_path, 6, None), nprocs=WORLD)  # resume to 6
    assert [json.loads(l)["iteration"] for l in (run / "stats.jsonl").read_text().splitlines()] == list(range(6))
    assert torch.load(dn.latest_checkpoint(run / "checkpoints"), weights_only=False)["iteration"] == 6


def test_an_error_in_one_rank_stops_every_rank(tmp_path):
    tiny_run(tmp_path)
    start = time.monotonic()
    with pytest.raises(mp.ProcessRaisedException, match="rank 1 fails at iteration 1"):
        mp.spawn(run_worker, args=(free_port(), tmp_path, 50, 1), nprocs=WORLD)
    assert time.monotonic() - start < 120
    assert mp.active_children() == []


def test_the_command_trains_in_two_processes(tmp_path):
    "dacapo-nb train --nproc 2: torchrun starts two ranks, rank 0 alone writes the run, no process is left behind."
    import subprocess, sys
    from pathlib import Path
    out = tmp_path / "run"
    cmd = [str(Path(sys.executable).parent / "dacapo-nb"), "train", "--nproc", "2", "--iterations", "3", "--out", str(out),
           "--fetchers", "0", "--batch-size", "1", "--snapshot-interval", "2", "--checkpoint-interval", "2", "--device", "cpu"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "starting 2 training processes" in result.stderr, result.stderr[-2000:]
    assert [json.loads(l)["iteration"] for l in (out / "stats.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert json.loads((out / "run.json").read_text())["processes"] == 2
    assert (out / "snapshot.png").exists()
    leftover = subprocess.run(["pgrep", "-f", f"dacapo_nb.cli train --nproc 2 --iterations 3 --out {out}"], capture_output=True, text=True)
    assert leftover.stdout == "", leftover.stdout
