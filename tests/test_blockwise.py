"""Blockwise runs in daisy worker processes: kill -9 of a worker and of the whole run, then resume; errors and
dying workers; refusal of a changed layout. Tiny volumes and model, 2 workers."""
import os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import numpy as np
import pytest
import torch
from funlib.geometry import Roi

from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray
from dacapo_nb.blockwise import BlockwiseError, predict_blockwise, state_dir
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


def _run_script(tmp: Path, out: str) -> subprocess.Popen:
    "A parent process running a slow blockwise predict with 2 workers, in its own process group."
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(HERE)!r})
        from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray
        from dacapo_nb.blockwise import predict_blockwise
        raw = ZarrArray.open_from_array_identifier(LocalArrayIdentifier({str(tmp / 'raw.zarr')!r}, "raw"))
        predict_blockwise({str(tmp / 'model.pt')!r}, raw, {str(tmp / out)!r}, block_shape={BLOCK}, num_workers=2,
                          progress=False, worker_setup="blockwise_faults:slow_predict_setup")
    """)
    return subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(cond, timeout=120):
    t = time.time()
    while not cond():
        assert time.time() - t < timeout, "timed out"
        time.sleep(0.05)


def test_kill_worker_then_whole_run_then_resume(setup):
    tmp, model, raw, expected = setup
    state = state_dir(tmp / "killed.zarr", "prediction")
    n_blocks = 4 * 4
    parent = _run_script(tmp, "killed.zarr")
    _wait_for(lambda: len(_blocks_done(state)) >= 3)
    worker = int((state / "predict.log").read_text().split()[1])       # kill -9 one worker: daisy starts another
    os.kill(worker, signal.SIGKILL)
    _wait_for(lambda: len(_blocks_done(state)) >= n_blocks // 2)
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
        from dacapo_nb.blockwise import segment_blockwise
        segment_blockwise(out, tmp / "layout.zarr", block_size=(0, 20), progress=False)
    fresh = predict_blockwise(other, raw, tmp / "layout.zarr", block_shape=(52, 52), progress=False, overwrite=True)
    assert fresh.roi == out.roi
