"""The main job end to end: the `dacapo-nb` console script in a subprocess, as a user runs it."""
import json, subprocess, sys
from pathlib import Path

import zarr

BIN = Path(sys.executable).parent

def run(*args, cwd):
    return subprocess.run([str(BIN / "dacapo-nb"), *args], cwd=cwd, capture_output=True, text=True, timeout=600)

def test_help_lists_the_options(tmp_path):
    result = run("train", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for option in ["--iterations", "--device", "--out", "--task", "--dims"]:
        assert option in result.stdout

def test_train_writes_a_run_and_resumes(tmp_path):
    out = tmp_path / "run"
    first = run("train", "--iterations", "6", "--out", str(out), "--snapshot-interval", "5",
                "--checkpoint-interval", "4", "--fetchers", "1", "--device", "cpu", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "6/6" in first.stderr and "loss=" in first.stderr and "it/s" in first.stderr, first.stderr
    assert (out / "snapshot.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["iteration_00000004.pt", "iteration_00000006.pt"]
    assert sorted(k for k in zarr.open_group(str(out / "snapshots.zarr"), mode="r").group_keys()) == ["0", "5"]
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["trainer"]["batch_size"] == 2 and run_json["iterations"] == 6

    again = run("train", "--iterations", "8", "--out", str(out), "--fetchers", "0", "--device", "cpu", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    iterations = [json.loads(line)["iteration"] for line in (out / "stats.jsonl").read_text().splitlines()]
    assert iterations == list(range(8))  # resumed at 6, not from 0

def test_distances_in_3d(tmp_path):
    out = tmp_path / "run3d"
    result = run("train", "--iterations", "2", "--dims", "3", "--task", "distances", "--out", str(out),
                 "--snapshot-interval", "1", "--fetchers", "0", "--batch-size", "1", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pred = zarr.open_array(str(out / "snapshots.zarr" / "1" / "volumes" / "prediction"), mode="r")
    assert pred.ndim == 4 and pred.shape[0] == 1  # one distance channel, 3D
    assert pred.attrs["axes"] == ["c", "z", "y", "x"]

def test_bad_config_is_refused_with_a_message(tmp_path):
    result = run("train", "--iterations", "2", "--out", str(tmp_path / "bad"), "--batch-size", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "batch_size=0, expected an integer >= 1" in result.stderr
