"""Issue 14: nothing lost, nothing silent. Seed streams, workers that die with their parent, the run directory's
lock, checkpoint fallback, torn stats lines, bad inputs refused early, and kill -9 of `dacapo-nb train` at random moments."""
import json, os, random, re, signal, subprocess, sys, time, warnings
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


# ---- processes: what is left of a process tree ---------------------------------------------------------------------

def _stat(pid):
    "(state, ppid) of a live process, or None."
    try: fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError): return None
    return fields[0], int(fields[1])

def descendants(pid):
    "The pids of every live process below `pid`."
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (s := _stat(int(entry.name))) is not None: children.setdefault(s[1], []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []): found.append(child); todo.append(child)
    return found

def alive(pids):
    "Those of `pids` still running (zombies, waiting for a reaper, are dead)."
    return [p for p in pids if (s := _stat(p)) is not None and s[0] not in "ZX"]

def wait_gone(pids, timeout=10.0):
    "The pids still alive after up to `timeout` seconds."
    end = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < end: time.sleep(0.1)
    return alive(pids)


def shm_files() -> set:
    "The named shared-memory segments on this machine (Linux's /dev/shm)."
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def test_workers_die_with_a_killed_trainer(small, tmp_path):
    "kill -9 of a process whose trainer has data workers leaves no worker and no shared-memory segment behind."
    script = tmp_path / "hold.py"
    script.write_text(
        "import sys, time, torch\n"
        "from dacapo_nb.datasets import make_synthetic_data\nfrom dacapo_nb.models import model_for\n"
        "from dacapo_nb.tasks import affinities_task\nfrom dacapo_nb.trainer import GunpowderTrainer, GunpowderTrainerConfig\n"
        "task = affinities_task(2); model = model_for(task, 2)\n"
        f"data = make_synthetic_data({str(tmp_path / 'd.zarr')!r}, dims=2, shape=(192, 192))\n"
        "t = GunpowderTrainer(GunpowderTrainerConfig(batch_size=1, num_data_fetchers=2, data_fetcher_niceness=0))\n"
        "t.build_batch_provider([data], model, task)\n"
        "with t:\n    raw = t.next()[0].data\n"
        "    while raw.base is not None and not isinstance(raw.base, memoryview): raw = raw.base\n"
        "    print('ready', type(raw.base.obj).__name__, flush=True); time.sleep(600)\n")
    before = shm_files()
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "ready mmap"  # the batch came through the workers' shared memory
    below = descendants(proc.pid)
    assert len(below) >= 3, below  # the watch-dog and two workers
    proc.kill(); proc.wait()
    assert wait_gone(below) == [], below
    assert shm_files() - before == set(), shm_files() - before  # anonymous memory: nothing named to leak


# ---- the run directory: lock, checkpoint fallback, torn stats --------------------------------------------------------

def test_lock_names_the_holder_and_dies_with_it(tmp_path):
    from dacapo_nb.training import RunDirectoryLock
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom dacapo_nb.training import RunDirectoryLock\n"
                               f"with RunDirectoryLock({str(tmp_path)!r}): print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RuntimeError, match=f"is in use: process {holder.pid} trains there"):
        with RunDirectoryLock(tmp_path): pass
    holder.kill(); holder.wait()
    with RunDirectoryLock(tmp_path): pass  # a killed holder leaves no stale lock


def test_resume_skips_a_damaged_checkpoint_and_a_torn_stats_line(tmp_path):
    from dacapo_nb.training import _stats_before, resume_checkpoint, save_checkpoint
    model = torch.nn.Linear(2, 2); optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for it in (4, 8): save_checkpoint(tmp_path / "checkpoints", model, optimizer, None, it)
    newest = tmp_path / "checkpoints" / "iteration_00000008.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="skipped the damaged checkpoint .*iteration_00000008.pt"):
        assert resume_checkpoint(tmp_path / "checkpoints", model, optimizer) == 4
    stats = tmp_path / "stats.jsonl"
    stats.write_text("".join(json.dumps({"iteration": i, "loss": 1.0}) + "\n" for i in range(6)) + '{"iteration": 6, "lo')
    with pytest.warns(UserWarning, match="dropped 1 unreadable line"):
        _stats_before(stats, 4)
    assert [json.loads(l)["iteration"] for l in stats.read_text().splitlines()] == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "stats.jsonl"]  # no temporary file left


# ---- bad inputs: each class refused early, with the value named ------------------------------------------------------

def _array(data, vs=(8, 8)):
    from funlib.geometry import Coordinate, Roi
    from dacapo_nb.arrays import NumpyArray
    return NumpyArray.from_np_array(data, Roi((0, 0), Coordinate(data.shape) * Coordinate(vs)), vs, ["y", "x"])

def _check(dataset):
    "What the trainer runs on a dataset before any worker starts."
    from dacapo_nb.datasets import check_dataset_values
    check_dataset_values(dataset)

BAD = {
    "float labels": (lambda D, raw: D("d", raw, _array(np.ones((64, 64), np.float32))), "gt must hold integer labels, got dtype float32"),
    "negative labels": (lambda D, raw: _check(D("d", raw, _array(np.full((64, 64), -1, np.int32)))), "gt holds negative labels (e.g. -1): pass ignore_label=-1"),
    "float raw in [0, 255]": (lambda D, raw: _check(D("d", _array(np.full((64, 64), 200, np.float32)), _array(np.ones((64, 64), np.uint32)))), "pass raw_range=(low, high)"),
    "infinite raw": (lambda D, raw: _check(D("d", _array(np.full((64, 64), np.inf, np.float32)), _array(np.ones((64, 64), np.uint32)))), "raw holds 4096 non-finite values"),
    "boolean raw": (lambda D, raw: D("d", _array(np.ones((64, 64), bool)), None), "raw must hold integers or floats, got dtype bool"),
    "bad raw_range": (lambda D, raw: D("d", raw, None, raw_range=(1, 1)), "raw_range must be (low, high)"),
    "learning rate as a string": (lambda D, raw: GunpowderTrainerConfig(learning_rate="1e-3"), "learning_rate='1e-3' (str), expected a finite number"),
    "float batch size": (lambda D, raw: GunpowderTrainerConfig(batch_size=2.0), "batch_size=2.0 (float), expected an integer"),
    "float seed": (lambda D, raw: GunpowderTrainerConfig(seed=0.5), "seed=0.5 (float), expected an integer or None"),
    "negative seed": (lambda D, raw: GunpowderTrainerConfig(seed=-1), "seed=-1, expected None or an integer"),
    "augment axis that does not exist": (lambda D, raw: SimpleAugmentConfig(mirror_only=[0, 2]).node(None, None, None, raw.voxel_size), "mirror_only names axes [2] that 2D data does not have"),
    "elastic spacing 0": (lambda D, raw: __import__("dacapo_nb.augments", fromlist=["x"]).ElasticAugmentConfig(control_point_spacing=(0, 8)), "control_point_spacing=(0, 8), expected values in [1, inf]"),
    "intensity scale reversed": (lambda D, raw: IntensityAugmentConfig(scale=(1.2, 0.8)), "scale=(1.2, 0.8), expected (min, max) with min <= max"),
}

@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_refused_early(name):
    from dacapo_nb.datasets import Dataset
    make, message = BAD[name]
    with pytest.raises(ValueError) as caught: make(Dataset, _array(np.zeros((64, 64), np.uint8)))
    assert message in str(caught.value), str(caught.value)

def test_issue_29_values_are_named(small, tmp_path):
    "Round three: each of these errors names its bad value, before anything is written."
    from funlib.geometry import Roi
    from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray
    from dacapo_nb.training import run_training
    dataset, task, model = small
    config = GunpowderTrainerConfig(batch_size=1, num_data_fetchers=0)
    with pytest.raises(ValueError, match="iterations must be an integer >= 0, got '10'"):
        next(run_training(tmp_path / "run", model, task, [dataset], config, iterations="10"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device='cuda': (this torch is built without CUDA|no CUDA GPU is visible)"):
            next(run_training(tmp_path / "run", model, task, [dataset], config, iterations=10, device="cuda"))
    with pytest.raises(ValueError, match="num_channels must be None \\(no channel axis\\) or an integer >= 1, got 0"):
        ZarrArray.create_from_array_identifier(LocalArrayIdentifier(tmp_path / "o.zarr", "x"), ["c", "y", "x"], Roi((0, 0), (8, 8)), 0, (1, 1), np.uint8)
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())

def test_gt_beyond_raw_is_warned_about():
    from funlib.geometry import Roi
    from dacapo_nb.arrays import NumpyArray
    from dacapo_nb.datasets import Dataset
    with pytest.warns(UserWarning, match=r"gt ROI \[256:768, 0:512\] \(512, 512\) reaches beyond raw ROI \[0:512, 0:512\] \(512, 512\): 50.0% of the gt has no image"):
        Dataset("d", _array(np.zeros((64, 64), np.uint8)),
                NumpyArray.from_np_array(np.ones((64, 64), np.uint32), Roi((256, 0), (512, 512)), (8, 8), ["y", "x"]))

def test_twelve_bit_raw_is_refused_without_its_range():
    from dacapo_nb.datasets import Dataset
    raw12 = _array((np.arange(64 * 64) % 4096).astype(np.uint16).reshape(64, 64))
    with pytest.raises(ValueError, match=r"dataset 'd': raw is uint16 but holds only values 0 to 4095 .* pass raw_range=\(0, 4095\)"):
        _check(Dataset("d", raw12, _array(np.ones((64, 64), np.uint32))))
    _check(Dataset("d", raw12, _array(np.ones((64, 64), np.uint32)), raw_range=(0, 4095)))

def test_empty_labels_are_warned_about():
    from dacapo_nb.datasets import Dataset
    with pytest.warns(UserWarning, match="gt is all background"):
        _check(Dataset("d", _array(np.zeros((64, 64), np.uint8)), _array(np.zeros((64, 64), np.uint32))))

def test_wide_integer_raw_is_scaled_by_its_range(small):
    "uint16 raw trains (scaled by 1/65535), where gunpowder's Normalize failed at the first batch."
    from dacapo_nb.datasets import Dataset
    dataset, task, model = small
    raw16 = _array((np.asarray(dataset.raw[dataset.raw.roi]) * 65535).astype(np.uint16))
    trainer = GunpowderTrainer(GunpowderTrainerConfig(batch_size=1, num_data_fetchers=0, seed=0))
    trainer.build_batch_provider([Dataset("u16", raw16, dataset.gt)], model, task)
    with trainer: raw = trainer.next()[0].data
    assert raw.dtype == np.float32 and 0 <= raw.min() and raw.max() <= 1 and raw.max() > 0.5, (raw.min(), raw.max())


# ---- dacapo-nb train: bad arguments, Ctrl-C, kill -9 at random moments ------------------------------------------------

CLI = [str(Path(sys.executable).parent / "dacapo-nb"), "train"]
ARGS = ["--iterations", "14", "--checkpoint-interval", "3", "--snapshot-interval", "4", "--batch-size", "1", "--fetchers", "2", "--device", "cpu"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

def test_bad_arguments_write_nothing(tmp_path):
    for bad, message in ((["--iterations", "-1"], "--iterations must be >= 0"), (["--seed", "-2"], "seed=-2"),
                         (["--learning-rate", "inf"], "learning_rate=inf"), (["--device", "gpu0"], "is not a torch device")):
        result = subprocess.run(CLI + ["--out", str(tmp_path / "run"), *bad], capture_output=True, text=True, env=ENV, timeout=300)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert not (tmp_path / "run").exists(), bad


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []

def _check_run(out, iterations):
    "A finished run: every iteration once in stats, the newest checkpoint at the end, every snapshot complete."
    import zarr
    rows = [json.loads(l)["iteration"] for l in _lines(out / "stats.jsonl")]
    assert rows == list(range(iterations)), rows
    assert sorted(p.name for p in (out / "checkpoints").iterdir())[-1] == f"iteration_{iterations:08d}.pt"
    snaps = sorted(int(k) for k in zarr.open_group(str(out / "snapshots.zarr"), mode="r").group_keys())
    assert snaps == sorted(set(range(0, iterations, 4)) | {iterations - 1}), snaps  # and the last iteration: the final state
    for s in snaps:
        names = sorted(p.name for p in (out / "snapshots.zarr" / str(s) / "volumes").iterdir() if not p.name.startswith("."))
        assert names == ["gradients", "gt", "mask", "prediction", "raw", "target", "weight"], (s, names)
    leftovers = [p.name for p in out.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]
    assert leftovers == [], leftovers

def kill_trials(out, trials, rng, iterations=14, max_delay=10.0):
    "kill -9 `dacapo-nb train` at random moments `trials` times, then finish; [(delay, stats lines, leaked pids, resumed at)]."
    log = []
    for _ in range(trials):
        before = len(_lines(out / "stats.jsonl"))
        proc = subprocess.Popen(CLI + ["--out", str(out), *ARGS[:1], str(iterations), *ARGS[2:]], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=ENV)
        # every other trial during start-up and data generation, the rest at a random moment once training runs
        training = len(log) % 2 == 1
        delay, below, start = rng.uniform(1.0, max_delay) if not training else rng.uniform(0.0, 3.0), [], time.monotonic()
        while training and len(_lines(out / "stats.jsonl")) <= before and proc.poll() is None and time.monotonic() - start < 300:
            below = sorted(set(below) | set(descendants(proc.pid))); time.sleep(0.05)
        start = time.monotonic()
        while time.monotonic() - start < delay and proc.poll() is None:
            below = sorted(set(below) | set(descendants(proc.pid))); time.sleep(0.05)
        proc.kill(); proc.wait(); proc.stderr.close()
        log.append((round(delay, 1), before, len(_lines(out / "stats.jsonl")), wait_gone(below)))
    final = subprocess.run(CLI + ["--out", str(out), *ARGS[:1], str(iterations), *ARGS[2:]], capture_output=True, text=True, env=ENV, timeout=600)
    return log, final

def test_kill_9_at_random_moments_loses_nothing(tmp_path):
    log, final = kill_trials(tmp_path / "run", trials=4, rng=random.Random(14))
    assert final.returncode == 0, final.stderr
    assert [leaked for *_, leaked in log] == [[]] * len(log), log
    _check_run(tmp_path / "run", 14)


def test_ctrl_c_gives_one_line_and_resumes(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(CLI + ["--out", str(out), *ARGS], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True)
    start = time.monotonic()
    while len(_lines(out / "stats.jsonl")) < 2 and time.monotonic() - start < 300: time.sleep(0.1)
    below = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130 and "Traceback" not in err and re.search(r"interrupted at iteration \d+; run again to resume", err), err
    assert wait_gone(below) == [], below
    again = subprocess.run(CLI + ["--out", str(out), *ARGS], capture_output=True, text=True, env=ENV, timeout=600)
    assert again.returncode == 0, again.stderr
    _check_run(out, 14)
