"""The pipeline as a torch IterableDataset in DataLoader worker processes started by spawn (the notebook tests fork)."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import dacapo_nb as dn


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    data = dn.make_synthetic_data(tmp_path_factory.mktemp("data") / "d.zarr", dims=2, shape=(192, 192), seed=0)
    task = dn.affinities_task(2)
    model = dn.model_for(task, 2)
    return dn.iterable_dataset([data], model, task, dn.GunpowderTrainerConfig(augments=[dn.SimpleAugmentConfig()]),
                               seed=5, num_samples=2)


def raws(stream, context):
    loader = DataLoader(stream, batch_size=2, num_workers=2, multiprocessing_context=context)
    return torch.cat([b["raw"] for b in loader]).numpy()


def test_spawned_workers_yield_distinct_samples_and_repeat_with_the_seed(stream):
    spawned = raws(stream, "spawn")
    assert spawned.shape == (4, 1, 132, 132), spawned.shape
    assert len({r.tobytes() for r in spawned}) == 4, "two workers yielded the same sample"
    np.testing.assert_array_equal(spawned, raws(stream, "fork"))  # the stream depends on the seed, not on how workers start


def test_without_a_seed_every_run_differs(stream):
    unseeded = dn.GunpowderIterableDataset.__new__(dn.GunpowderIterableDataset)
    unseeded.__dict__.update({**stream.__dict__, "seed": None})
    first, second = raws(unseeded, "fork"), raws(unseeded, "fork")
    assert len({r.tobytes() for r in np.concatenate([first, second])}) == 8, "fresh entropy repeated a sample"


class _BlasProbe(dn.GunpowderIterableDataset):
    "Each sample also says how many threads numpy's BLAS has in the process that made it."
    def __iter__(self):
        from threadpoolctl import threadpool_info
        for sample in super().__iter__():
            sample["blas_threads"] = torch.tensor(max([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] or [1]))
            yield sample


def test_workers_run_numpy_blas_in_one_thread(stream):
    probe = _BlasProbe.__new__(_BlasProbe)
    probe.__dict__.update(stream.__dict__)
    threads = torch.cat([b["blas_threads"] for b in DataLoader(probe, batch_size=2, num_workers=2, multiprocessing_context="fork")])
    assert threads.tolist() == [1, 1, 1, 1], threads.tolist()   # idle BLAS threads would spin on the training cores
