"""Issue 14: nothing lost, nothing silent. Seed streams, workers that die with their parent, the run directory's
lock, checkpoint fallback, torn stats lines, bad inputs refused early, and kill -9 of `dacapo-nb train` at random moments."""
import json, os, random, signal, subprocess, sys, time, warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dacapo_nb.augments import IntensityAugmentConfig, SimpleAugmentConfig
from dacapo_nb.datasets import make_synthetic_data
from dacapo_nb.models import model_for
from dacapo_nb.tasks import affinities_task
from dacapo_nb.trainer import GunpowderTrainer, GunpowderTrainerConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    "A small 2D synthetic dataset, the affinities task and its model."
    tmp = tmp_path_factory.mktemp("small")
    torch.manual_seed(0)
    task = affinities_task(2)
    return make_synthetic_data(tmp / "data.zarr", dims=2, shape=(192, 192), seed=1), task, model_for(task, 2)


def _batches(small, fetchers, seed, n=5):
    dataset, task, model = small
    trainer = GunpowderTrainer(GunpowderTrainerConfig(batch_size=1, num_data_fetchers=fetchers, data_fetcher_niceness=0,
                                                      seed=seed, augments=[SimpleAugmentConfig(), IntensityAugmentConfig()]))
    trainer.build_batch_provider([dataset], model, task)
    raws = []
    with trainer:
        for i in range(n):
            raws.append(trainer.next()[0].data.copy()); trainer.iteration += 1
    return raws


@pytest.mark.parametrize("seed", [3, None])
def test_seed_streams_give_distinct_samples(small, seed):
    "N batches are N different samples with 0, 1 and 2 fetchers; seeded, they are the same samples for every count."
    runs = {f: _batches(small, f, seed) for f in (0, 1, 2)}
    for f, raws in runs.items():
        same = [(i, j) for i in range(len(raws)) for j in range(i) if np.array_equal(raws[i], raws[j])]
        assert same == [], (f, seed, same)
    if seed is not None:
        for f in (1, 2):
            differ = [i for i, (a, b) in enumerate(zip(runs[0], runs[f])) if not np.array_equal(a, b)]
            assert differ == [], (f, differ)
