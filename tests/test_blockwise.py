"""Blockwise runs in daisy worker processes: kill -9 of a worker and of the whole run, then resume; errors and
dying workers; refusal of a changed layout. Tiny volumes and model, 2 workers."""
import os, signal, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from funlib.geometry import Roi
from waiting import wait_until

from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray
from dacapo_nb.blockwise import BlockwiseError, state_dir
from dacapo_nb.blockwise_predict import predict_blockwise
from dacapo_nb.inference import predict
from dacapo_nb.models import Model, UNet

HERE = Path(__file__).parent
BLOCK = (44, 48)  # input block; the output blocks are 28 x 32 voxels: 4 x 4 blocks over 96 x 100


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bw")
    torch.manual_seed(0)
    model = Model(UNet((44, 44), fmaps=2, downsample_factors=((2, 2),), eval_shape_increase=(0, 0)), 2, eval_activation=torch.sigmoid)
    torch.save(model, tmp / "model.pt")
    raw = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(tmp / "raw.zarr", "raw"), ["y", "x"], Roi((0, 0), (96, 100)),
                                                 None, (1, 1), np.float32)
    raw[raw.roi] = np.random.default_rng(0).random((96, 100), np.float32)
    whole = predict(model, raw, tmp / "single.zarr", block_shape=BLOCK, progress=False)
    return tmp, model, raw, whole[whole.roi]


def _blocks_done(state: Path, task: str = "predict") -> list[int]:
    log = state / f"{task}.log"
    return [int(line.split()[0]) for line in log.read_text().splitlines()] if log.exists() else []


def _run_script(tmp: Path, out: str, setup: str = "slow_predict_setup") -> subprocess.Popen:
    "A parent process running a slow blockwise predict with 2 workers, in its own process group."
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(HERE)!r})
        from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray
        from dacapo_nb.blockwise_predict import predict_blockwise
        raw = ZarrArray.open_from_array_identifier(LocalArrayIdentifier({str(tmp / 'raw.zarr')!r}, "raw"))
        predict_blockwise({str(tmp / 'model.pt')!r}, raw, {str(tmp / out)!r}, block_shape={BLOCK}, num_workers=2,
                          progress=False, worker_setup="blockwise_faults:{setup}")
    """)
    return subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_kill_worker_then_whole_run_then_resume(setup):
    tmp, model, raw, expected = setup
    state = state_dir(tmp / "killed.zarr", "prediction")
    n_blocks = 4 * 4
    parent = _run_script(tmp, "killed.zarr")
    wait_until(lambda: len(_blocks_done(state)) >= 3, 120, "3 blocks done")
    worker = int((state / "predict.log").read_text().split()[1])       # kill -9 one worker: daisy starts another
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: len(_blocks_done(state)) >= n_blocks // 2, 120, "half the blocks done")
    os.killpg(parent.pid, signal.SIGKILL)                                # then the whole run, workers and all
    parent.wait()
    first = _blocks_done(state)
    assert 0 < len(set(first)) < n_blocks, (len(first), n_blocks)
    out = predict_blockwise(tmp / "model.pt", raw, tmp / "killed.zarr", block_shape=BLOCK, num_workers=2, progress=False)
    np.testing.assert_array_equal(out[out.roi], expected)
    done = _blocks_done(state)
    assert sorted(set(done)) == sorted(set(done[len(first):]) | set(first)), done
    assert len(set(done)) == n_blocks, (len(set(done)), n_blocks)
    redone = len(done) - len(first) - (n_blocks - len(set(first)))      # blocks of the first run done again
    assert redone <= 2, (redone, first, done[len(first):])               # at most the blocks in flight at the kill


def test_error_in_a_block_names_its_roi(setup):
    tmp, model, raw, _ = setup
    with pytest.raises(BlockwiseError) as e:
        predict_blockwise(model, raw, tmp / "failing.zarr", block_shape=BLOCK, num_workers=2, progress=False,
                          worker_setup="blockwise_faults:failing_predict_setup")
    message = str(e.value)
    assert "write ROI [0:28, 0:32]" in message and "ValueError: injected failure" in message, message
    assert "blockwise_faults.py" in message, message                     # the original traceback


def test_dying_workers_are_restarted_a_bounded_number_of_times(setup):
    tmp, model, raw, _ = setup
    with pytest.raises(BlockwiseError) as e:
        predict_blockwise(model, raw, tmp / "dying.zarr", block_shape=BLOCK, num_workers=2, progress=False,
                          worker_setup="blockwise_faults:dying_setup", max_restarts=2)
    assert "2 restarts" in str(e.value), str(e.value)


def test_changed_layout_is_refused_before_any_worker(setup):
    tmp, model, raw, expected = setup
    out = predict_blockwise(model, raw, tmp / "layout.zarr", block_shape=BLOCK, num_workers=2, progress=False)
    np.testing.assert_array_equal(out[out.roi], expected)
    with pytest.raises(ValueError, match="other block_shape, output_block"):
        predict_blockwise(model, raw, tmp / "layout.zarr", block_shape=(52, 52), progress=False)
    torch.manual_seed(1)
    other = Model(UNet((44, 44), fmaps=2, downsample_factors=((2, 2),), eval_shape_increase=(0, 0)), 2, eval_activation=torch.sigmoid)
    with pytest.raises(ValueError, match="other model"):
        predict_blockwise(other, raw, tmp / "layout.zarr", block_shape=BLOCK, progress=False)
    with pytest.raises(ValueError, match="must be a positive multiple of the voxel size"):
        from dacapo_nb.blockwise_segmentation import segment_blockwise
        segment_blockwise(out, tmp / "layout.zarr", block_size=(0, 20), progress=False)
    fresh = predict_blockwise(other, raw, tmp / "layout.zarr", block_shape=(52, 52), progress=False, overwrite=True)
    assert fresh.roi == out.roi


def _cells(shape, n, seed=0):
    "Voronoi cells of `n` random points, 0 on a one-voxel membrane between them."
    from scipy.spatial import cKDTree
    rng = np.random.default_rng(seed)
    labels = cKDTree(rng.random((n, len(shape))) * shape).query(np.indices(shape).reshape(len(shape), -1).T)[1].reshape(shape) + 1
    membrane = np.zeros(shape, bool)
    for k in range(len(shape)):
        lo, hi = [slice(None)] * len(shape), [slice(None)] * len(shape)
        lo[k], hi[k] = slice(0, -1), slice(1, None)
        membrane[tuple(lo)] |= labels[tuple(lo)] != labels[tuple(hi)]
    return np.where(membrane, 0, labels).astype(np.uint64)


def _seeded_predictions(labels, seed=0):
    "Affinities stronger deeper inside, with noise and leaky links through membranes; signed distances through holes."
    from scipy import ndimage
    from dacapo_nb.tasks import compute_affinities, default_neighborhood
    rng = np.random.default_rng(seed)
    affs, _ = compute_affinities(labels, default_neighborhood(labels.ndim))
    affs = affs * (0.55 + 0.45 * np.tanh(ndimage.distance_transform_edt(labels > 0) / 2.5)) + rng.normal(0, 0.03, affs.shape)
    leak = (affs < 0.5) & (rng.random(affs.shape) < 0.002)
    affs[leak] = rng.uniform(0.55, 0.85, leak.sum())                     # merges the unseeded components
    inside = (labels > 0) | (rng.random(labels.shape) < 0.02)             # holes in the membranes: bridges
    d = ndimage.distance_transform_edt(inside) - ndimage.distance_transform_edt(~inside)
    dist = np.tanh(d[None] / 3) + rng.normal(0, 0.02, (1, *labels.shape))
    return np.clip(affs, 0, 1).astype(np.float32), dist.astype(np.float32)


# VOI between blockwise and in-memory seeded segmentations on this test volume (36^3, 40 cells, blocks of 16^3 that
# cut most cells), default context (half a block, 8 voxels): affinities 0.0, distances 0.0. With 4 voxels of context:
# 0.00026 and 0.0; with 2: affinities 0.019; with none (seeds grown inside each block only, then joined): 0.2 and 0.045
# on 40^3. The bound is the tolerance; nbs/11_blockwise_segmentation.ipynb's leaky 2D example reaches 0.0145 with 4 voxels.
SEEDED_VOI_BOUND = 0.01


@pytest.mark.parametrize("kind", ["affinities", "distances"])
def test_seeded_blockwise_agrees_with_in_memory(tmp_path, kind):
    from dacapo_nb.blockwise_segmentation import segment_blockwise
    from dacapo_nb.evaluation import evaluate
    from dacapo_nb.segmentation import affinities_to_segmentation, distances_to_segmentation
    shape = (36, 36, 36)
    affs, dist = _seeded_predictions(_cells(shape, 40))
    x, in_memory, threshold, seed_threshold = ((affs, affinities_to_segmentation, 0.5, 0.9) if kind == "affinities" else
                                               (dist, distances_to_segmentation, 0.0, 0.5))
    pred = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(tmp_path / "p.zarr", kind), ["c", "z", "y", "x"],
                                                  Roi((0, 0, 0), shape), len(x), (1, 1, 1), np.float32)
    pred[pred.roi] = x
    run = lambda name, **kw: segment_blockwise(pred, tmp_path / "s.zarr", name, kind=kind, threshold=threshold, block_size=(16, 16, 16),
                                               num_workers=2, progress=False, **kw)
    expected = in_memory(x, threshold=threshold, seed_threshold=seed_threshold)
    merged = in_memory(x, threshold=threshold).max()
    assert expected.max() > merged, (expected.max(), merged)                # the seeds split cells the leaks merged
    seeded = run("seeded", seed_threshold=seed_threshold)
    seeds = ZarrArray.open_from_array_identifier(LocalArrayIdentifier(tmp_path / "s.zarr", "seeded_seeds"))
    np.testing.assert_array_equal(seeds[seeds.roi], in_memory(x, threshold=seed_threshold))  # the unseeded path: exactly equal
    voi = evaluate(seeded[seeded.roi], expected, ignore_label=None)["voi"]
    assert voi <= SEEDED_VOI_BOUND, (kind, voi)
    print(f"{kind}: VOI blockwise/in-memory {voi:.5f}, {int(expected.max())} segments")
    below = threshold - 0.25   # inside the affinities' [0, 1] (outside it is refused as such), below the threshold
    with pytest.raises(ValueError, match=f"seed_threshold {below} must be >= threshold {threshold}"):
        run("bad", seed_threshold=below)


# ---- nothing lost: the user's own datasets, one run per output, bad arguments ----------------------------------------

CLI = str(Path(sys.executable).parent / "dacapo-nb")


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def _files(folder: Path) -> dict:
    "Every file under `folder` with its size and modification time: what a refused call must leave as it was."
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def _own_array(container: Path, dataset: str, shape, dtype, voxel_size=(1, 1)) -> ZarrArray:
    "The user's own dataset, with values no run writes."
    arr = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(container, dataset), ["y", "x"],
                                                 Roi((0, 0), tuple(s * v for s, v in zip(shape, voxel_size))), None, voxel_size, dtype)
    arr[arr.roi] = np.full(shape, 7, dtype)
    return arr


def test_the_users_own_dataset_survives_predict_and_segment(setup):
    "Without overwrite, no blockwise call (Python or CLI) replaces a dataset it did not write, whatever its geometry."
    from dacapo_nb.blockwise_segmentation import segment_blockwise
    tmp, model, raw, expected = setup
    own = tmp / "own.zarr"
    same = _own_array(own, "same", (96, 100), np.float32)                      # the geometry predict would write, but not its run's
    other = _own_array(own, "other", (10, 20), np.uint8, voxel_size=(2, 2))   # another shape, dtype and voxel size
    pred = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(own, "pred"), ["c", "y", "x"], Roi((0, 0), (96, 100)), 2,
                                                  (1, 1), np.float32)
    pred[pred.roi] = expected
    _own_array(own, "seg_fragments", (96, 100), np.uint64)                    # where a segmentation "seg" puts its fragments
    before = _files(own)
    for name in ("same", "other"):
        with pytest.raises(FileExistsError) as e:
            predict_blockwise(model, raw, own, name, block_shape=BLOCK, progress=False)
        assert f"{own / name} exists already and no blockwise run" in str(e.value) and "overwrite=True" in str(e.value), str(e.value)
        with pytest.raises(FileExistsError, match=f"{own / name} exists already"):
            segment_blockwise(pred, own, name, block_size=(32, 32), progress=False)
    with pytest.raises(FileExistsError, match=f"{own / 'seg_fragments'} exists already"):
        segment_blockwise(pred, own, "seg", block_size=(32, 32), progress=False)
    for command, name in ((["predict", tmp / "model.pt", tmp / "raw.zarr/raw", own / "same"], "same"),
                          (["segment", own / "pred", own / "other", "--method", "components"], "other"),
                          (["segment", own / "pred", own / "seg", "--method", "components"], "seg_fragments")):
        result = _cli(*command)
        assert result.returncode == 2 and f"{own / name} exists already and no blockwise run" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _files(own) == before, set(_files(own).items()) ^ set(before.items())  # nothing written, nothing removed
    np.testing.assert_array_equal(same[same.roi], np.full((96, 100), 7, np.float32))
    np.testing.assert_array_equal(other[other.roi], np.full((10, 20), 7, np.uint8))
    out = predict_blockwise(model, raw, own, "same", block_shape=BLOCK, num_workers=2, progress=False, overwrite=True)
    np.testing.assert_array_equal(out[out.roi], expected)                      # overwrite=True replaces it


def test_a_second_run_into_one_output_is_refused_and_a_killed_runs_lock_taken_over(setup):
    tmp, model, raw, expected = setup
    state = state_dir(tmp / "busy.zarr", "prediction")
    parent = _run_script(tmp, "busy.zarr", "held_predict_setup")   # 16 blocks of 2 s on 2 workers: holds the lock ~16 s
    try:
        wait_until(lambda: len(_blocks_done(state)) >= 1, 120, "a block done")
        with pytest.raises(RuntimeError) as e:
            predict_blockwise(model, raw, tmp / "busy.zarr", block_shape=BLOCK, progress=False)
        assert f"busy.zarr/prediction is in use: process {parent.pid} writes it; stop it first" in str(e.value), str(e.value)
        result = _cli("predict", tmp / "model.pt", tmp / "raw.zarr/raw", tmp / "busy.zarr/prediction", "--block-shape", *BLOCK)
        assert result.returncode == 2 and f"is in use: process {parent.pid} writes it" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    finally:
        os.killpg(parent.pid, signal.SIGKILL); parent.wait()                # kill -9: the lock file stays, its lock dies
    assert (tmp / "busy.zarr" / ".blockwise" / ".locks" / "prediction.lock").read_text() == f"process {parent.pid}"
    out = predict_blockwise(model, raw, tmp / "busy.zarr", block_shape=BLOCK, num_workers=2, progress=False)
    np.testing.assert_array_equal(out[out.roi], expected)                   # taken over and resumed
    assert (tmp / "busy.zarr" / ".blockwise" / ".locks" / "prediction.lock").read_text() == f"process {os.getpid()}"


def test_bad_arguments_are_refused_before_anything_is_written(setup, tmp_path):
    "Python and CLI, predict, segment and evaluate: each bad value named, the output folder unchanged."
    from dacapo_nb.blockwise_evaluation import evaluate_blockwise
    from dacapo_nb.blockwise_segmentation import segment_blockwise
    tmp, model, raw, expected = setup
    out = tmp_path / "o.zarr"
    pred = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(out, "pred"), ["c", "y", "x"], raw.roi, 2, (1, 1), np.float32)
    pred[pred.roi] = expected
    seg = _own_array(out, "seg", (96, 100), np.uint64)
    before = _files(tmp_path)
    predict = lambda **kw: predict_blockwise(model, raw, out, **{"dataset": "p", "block_shape": BLOCK, "progress": False, **kw})
    segment = lambda **kw: segment_blockwise(pred, out, **{"dataset": "s", "block_size": (32, 32), "progress": False, **kw})
    for call, bad, message in (
            (predict, dict(num_workers=0), "num_workers must be an integer >= 1, got 0"),
            (predict, dict(num_workers=-1), "num_workers must be an integer >= 1, got -1"),
            (predict, dict(num_workers=1.5), "got 1.5"),
            (predict, dict(max_restarts=-1), "max_restarts must be an integer >= 0, got -1"),
            (predict, dict(block_shape=(0, 48)), "block_shape (0, 48) must be at least one voxel"),
            (predict, dict(output_roi=Roi((0, 0), (96, 128))), "output_roi [0:96, 0:128] (96, 128) reaches beyond raw's ROI [0:96, 0:100] (96, 100)"),
            (predict, dict(output_roi=Roi((5000, 5000), (28, 32))), "output_roi [5000:5028, 5000:5032] (28, 32) reaches beyond raw's ROI"),
            (predict, dict(dataset="/"), "dataset must name a dataset inside the container"),
            (segment, dict(num_workers=0), "num_workers must be an integer >= 1, got 0"),
            (segment, dict(min_size=-3), "min_size must be an integer >= 0, got -3"),
            (segment, dict(block_size=(0, 32)), "block_size (0, 32) must be a positive multiple"),
            (segment, dict(block_size=(32, 32, 32)), "block_size (32, 32, 32) must be a positive multiple"),
            (lambda **kw: evaluate_blockwise(seg, seg, progress=False, **kw), dict(num_workers=0), "num_workers must be an integer >= 1, got 0"),
            (lambda **kw: evaluate_blockwise(seg, seg, progress=False, **kw), dict(block_size=(-32, 32)), "block_size (-32, 32) must be a positive multiple")):
        with pytest.raises(ValueError) as e: call(**bad)
        assert message in str(e.value), (bad, str(e.value))
    assert _files(tmp_path) == before
    for command, message in ((["predict", tmp / "model.pt", tmp / "raw.zarr/raw", out / "p", "--workers", "0"], "num_workers must be an integer >= 1, got 0"),
                             (["predict", tmp / "model.pt", tmp / "raw.zarr/raw", out / "p", "--block-shape", "0", "48"], "block_shape (0, 48)"),
                             (["predict", tmp / "model.pt", tmp / "raw.zarr/raw", out], "expected an output as container.zarr/dataset"),
                             (["segment", out / "pred", out / "s", "--workers", "-1"], "got -1"),
                             (["segment", out / "pred", out / "s", "--min-size", "-1"], "min_size must be an integer >= 0, got -1"),
                             (["evaluate", out / "seg", out / "seg", "--block-size", "0", "32"], "block_size (0, 32)")):
        result = _cli(*command)
        assert result.returncode == 2 and message in result.stderr, (command, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _files(tmp_path) == before


def test_twelve_bit_raw_needs_its_range_and_workers_use_it(setup, tmp_path):
    "uint16 raw holding 12 bits: refused without raw_range (nothing written); with it, the workers scale as predict does."
    tmp, model, raw, expected = setup
    u12 = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(tmp_path / "raw.zarr", "u12"), ["y", "x"], raw.roi, None,
                                                 (1, 1), np.uint16)
    u12[u12.roi] = (raw[raw.roi] * 4095).round().astype(np.uint16)
    before = _files(tmp_path)
    with pytest.raises(ValueError) as e:
        predict_blockwise(model, u12, tmp_path / "o.zarr", block_shape=BLOCK, progress=False)
    assert "raw is uint16 but holds only values 0 to 409" in str(e.value) and "pass raw_range=(0, 409" in str(e.value), str(e.value)
    result = _cli("predict", tmp / "model.pt", tmp_path / "raw.zarr/u12", tmp_path / "o.zarr/p", "--block-shape", *BLOCK)
    assert result.returncode == 2 and "raw is uint16 but holds only values" in result.stderr, result.stderr
    assert _files(tmp_path) == before
    out = predict_blockwise(model, u12, tmp_path / "o.zarr", block_shape=BLOCK, num_workers=2, progress=False, raw_range=(0, 4095))
    single = predict(model, u12, tmp_path / "single.zarr", block_shape=BLOCK, progress=False, raw_range=(0, 4095))
    np.testing.assert_array_equal(out[out.roi], single[single.roi])
    assert np.abs(out[out.roi] - expected).max() < 0.01, np.abs(out[out.roi] - expected).max()  # ~ the float raw's prediction


def test_a_2d_model_over_a_stack_blockwise_equals_each_section_alone(setup):
    "Serial sections: a 2D model over a 3D stack, in workers, gives each section what `predict` gives it on its own."
    from dacapo_nb.arrays import SectionArray
    tmp, model, raw, _ = setup
    stack = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(tmp / "stack.zarr", "raw"), ["z", "y", "x"],
                                                   Roi((0, 0, 0), (150, 96, 100)), None, (50, 1, 1), np.float32)
    stack[stack.roi] = np.random.default_rng(1).random((3, 96, 100), np.float32)
    out = predict_blockwise(tmp / "model.pt", stack, tmp / "stack_out.zarr", "prediction", block_shape=(1, *BLOCK),
                            num_workers=2, progress=False)
    assert (out.axes, tuple(out.voxel_size), out.roi) == (["c", "z", "y", "x"], (50, 1, 1), stack.roi), (out.axes, out.voxel_size, out.roi)
    for k in range(3):
        alone = predict(model, SectionArray(stack, k), tmp / "stack_out.zarr", f"alone_{k}", block_shape=BLOCK, progress=False)
        np.testing.assert_allclose(out[out.roi][:, k], alone[alone.roi], atol=1e-5)
