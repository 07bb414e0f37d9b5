"""The main job end to end: the `dacapo-nb` console script in a subprocess, as a user runs it."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

BIN = Path(sys.executable).parent

def run(*args, cwd):
    return subprocess.run([str(BIN / "dacapo-nb"), *args], cwd=cwd, capture_output=True, text=True, timeout=600)

def test_help_lists_the_options(tmp_path):
    result = run("train", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for option in ["--iterations", "--device", "--out", "--task", "--dims", "--raw", "--gt", "--mask"]:
        assert option in result.stdout
    assert "examples:\n  dacapo-nb train" in result.stdout, result.stdout
    assert "default: None" not in result.stdout, result.stdout

def test_train_writes_a_run_and_resumes(tmp_path):
    out = tmp_path / "run"
    first = run("train", "--iterations", "6", "--out", str(out), "--snapshot-interval", "5",
                "--checkpoint-interval", "4", "--fetchers", "1", "--device", "cpu", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "6/6" in first.stderr and "loss=" in first.stderr and "it/s" in first.stderr, first.stderr
    steps = [l.split(" (")[0].split(",")[0] for l in first.stderr.splitlines()[:3]]  # said before the first iteration
    assert steps == [f"dacapo-nb: making the built-in synthetic 2D data in {out / 'data.zarr'}", "dacapo-nb: 2D affinities on data",
                     "dacapo-nb: starting the data pipeline"], first.stderr
    assert (out / "snapshot.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["iteration_00000004.pt", "iteration_00000006.pt"]
    assert sorted(k for k in zarr.open_group(str(out / "snapshots.zarr"), mode="r").group_keys()) == ["0", "5"]
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["trainer"]["batch_size"] == 2 and run_json["iterations"] == 6

    again = run("train", "--iterations", "8", "--out", str(out), "--fetchers", "0", "--device", "cpu", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    iterations = [json.loads(line)["iteration"] for line in (out / "stats.jsonl").read_text().splitlines()]
    assert iterations == list(range(8))  # resumed at 6, not from 0

    fewer = run("train", "--iterations", "3", "--out", str(out), "--device", "cpu", cwd=tmp_path)
    assert fewer.returncode == 0, fewer.stderr
    assert f"dacapo-nb: {out} has trained 8 iterations already (asked for 3): nothing to do" in fewer.stderr, fewer.stderr

    other = run("train", "--iterations", "9", "--out", str(out), "--task", "distances", "--device", "cpu", cwd=tmp_path)
    assert other.returncode == 2
    errors = [l for l in other.stderr.splitlines() if "error" in l.lower()]
    assert len(errors) == 1 and "Traceback" not in other.stderr, other.stderr
    assert errors[0].startswith(f"dacapo-nb: error: {out} was trained with another task or model ("), errors
    assert "task.predictor.type: 'AffinitiesPredictor' -> 'DistancePredictor'" in errors[0], errors

@pytest.mark.skipif(torch.cuda.is_available(), reason="there is CUDA here")
def test_missing_device_is_one_line(tmp_path):
    result = run("train", "--out", str(tmp_path / "run"), "--device", "cuda", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1] == (f"dacapo-nb: error: --device cuda: this torch is built without CUDA "
                                              f"(torch {torch.__version__}); use --device cpu"), result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything is written

def test_ctrl_c_stops_with_a_line_and_a_checkpoint(tmp_path):
    "Ctrl-C reaches the whole process group (the trainer and its data worker): one line, no traceback, resumable."
    out = tmp_path / "run"
    proc = subprocess.Popen([str(BIN / "dacapo-nb"), "train", "--iterations", "5000", "--out", str(out), "--fetchers", "1",
                             "--device", "cpu"], cwd=tmp_path, stderr=subprocess.PIPE, text=True, start_new_session=True)
    stats, waited = out / "stats.jsonl", 0.0
    while (not stats.exists() or len(stats.read_text().splitlines()) < 3) and waited < 300 and proc.poll() is None:
        time.sleep(0.2); waited += 0.2
    os.killpg(proc.pid, signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    checkpoint = sorted((out / "checkpoints").glob("iteration_*.pt"))[-1]
    n = int(checkpoint.stem.split("_")[-1])
    assert stderr.splitlines()[-1] == f"dacapo-nb: interrupted at iteration {n}; run again to resume", stderr
    assert n >= 3, n

def test_train_on_your_own_zarr_data(tmp_path):
    "--raw/--gt/--mask open the user's zarr datasets with the geometry in their attributes; 3D is read from the data."
    root = zarr.open_group(str(tmp_path / "mine.zarr"), mode="w")
    rng = np.random.default_rng(0)
    gt = np.repeat(np.repeat(rng.integers(1, 9, (6, 6)), 16, 0), 16, 1).astype(np.uint32)   # 96 x 96 blocks of labels
    raw = ((gt % 3) * 80 + rng.integers(0, 40, gt.shape)).astype(np.uint8)
    root.array("raw", np.pad(raw, 30), chunks=(64, 64)).attrs.update(voxel_size=[4, 4], offset=[0, 0], axes=["y", "x"])
    root.array("labels", gt, chunks=(64, 64)).attrs.update(voxel_size=[4, 4], offset=[120, 120], axes=["y", "x"])
    root.array("labels_mask", np.ones_like(gt, np.uint8), chunks=(64, 64)).attrs.update(voxel_size=[4, 4], offset=[120, 120], axes=["y", "x"])
    out = tmp_path / "run"
    result = run("train", "--iterations", "2", "--out", str(out), "--raw", "mine.zarr/raw", "--gt", "mine.zarr/labels",
                 "--mask", "mine.zarr/labels_mask", "--snapshot-interval", "1", "--fetchers", "0", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dacapo-nb: 2D affinities on raw," in result.stderr, result.stderr
    run_json = json.loads((out / "run.json").read_text())
    assert "mine.zarr" in run_json["datasets"][0]["raw"] and not (out / "data.zarr").exists(), run_json["datasets"]
    assert (out / "snapshot.png").is_file()

    missing = run("train", "--out", str(out), "--raw", "mine.zarr/raw", "--gt", "mine.zarr/nothing", cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr
    assert missing.stderr.splitlines()[-1].startswith("dacapo-nb: error: "), missing.stderr

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

def _write(root, name, gt, rng):
    "Write `name` (raw, padded by 30 voxels) and `name`_labels (gt) into the zarr group `root`, at 4 nm."
    raw = ((gt.astype(np.int64) % 3) * 80 + rng.integers(0, 40, gt.shape)).astype(np.uint8)
    root.array(name, np.pad(raw, 30), chunks=(64, 64)).attrs.update(voxel_size=[4, 4], offset=[0, 0], axes=["y", "x"])
    root.array(f"{name}_labels", gt, chunks=(64, 64)).attrs.update(voxel_size=[4, 4], offset=[120, 120], axes=["y", "x"])

def test_validation_on_your_own_data(tmp_path):
    "With --raw, --validation-interval validates on --val-raw/--val-gt, never on the synthetic cells; without them it is refused."
    root, rng = zarr.open_group(str(tmp_path / "mine.zarr"), mode="w"), np.random.default_rng(0)
    for name in ("raw", "val_raw"):
        _write(root, name, np.repeat(np.repeat(rng.integers(1, 9, (6, 6)), 16, 0), 16, 1).astype(np.uint32), rng)
    out, mine = tmp_path / "run", ["--raw", "mine.zarr/raw", "--gt", "mine.zarr/raw_labels"]
    refused = run("train", "--out", str(out), *mine, "--validation-interval", "2", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.splitlines() == ["dacapo-nb: error: --validation-interval 2 with --raw mine.zarr/raw needs validation data of "
                                           "yours: pass --val-raw CONTAINER/DATASET --val-gt CONTAINER/DATASET (the built-in synthetic "
                                           "validation data goes only with the built-in training data)"], refused.stderr
    assert not out.exists()

    result = run("train", "--iterations", "2", "--out", str(out), *mine, "--validation-interval", "2", "--val-raw", "mine.zarr/val_raw",
                 "--val-gt", "mine.zarr/val_raw_labels", "--fetchers", "0", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dacapo-nb: validating every 2 iterations on your mine.zarr/val_raw with labels mine.zarr/val_raw_labels" in result.stderr, result.stderr
    rows = [json.loads(line) for line in (out / "validation.jsonl").read_text().splitlines()]
    assert rows and {(r["iteration"], r["dataset"]) for r in rows} == {(2, "val_raw")}, rows
    recorded = json.loads((out / "run.json").read_text())["validation"]["datasets"]
    assert [d["name"] for d in recorded] == ["val_raw"] and "mine.zarr" in recorded[0]["raw"] and "val_raw_labels" in recorded[0]["gt"], recorded
    assert not (out / "val_data.zarr").exists()

def test_a_boundary_map_as_gt_is_warned_about_in_one_line(tmp_path):
    "A 0/255 membrane map given as --gt trains on 'one huge object': the CLI says so in one line, with the values it found."
    boundary = np.zeros((96, 96), np.uint8); boundary[::16] = boundary[:, ::16] = 255
    _write(zarr.open_group(str(tmp_path / "mine.zarr"), mode="w"), "raw", boundary, np.random.default_rng(0))
    result = run("train", "--iterations", "0", "--out", str(tmp_path / "run"), "--raw", "mine.zarr/raw", "--gt", "mine.zarr/raw_labels",
                 "--fetchers", "0", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warned = [l for l in result.stderr.splitlines() if "warn" in l.lower()]
    assert len(warned) == 1 and warned[0].startswith("dacapo-nb: warning: dataset 'raw': gt looks like a boundary or foreground map, "
                                                     "not instance labels: 2 distinct values, 0 (87.9%), 255 (12.1%)"), result.stderr
    assert "labels_from_boundaries(gt) gives the connected components of the inside" in warned[0] and "--gt-boundaries" in warned[0], warned

def zarr_values(path):
    "The values of a zarr dataset given as container.zarr/dataset."
    container, _, dataset = str(path).partition(".zarr/")
    return zarr.open_array(f"{container}.zarr/{dataset}", mode="r")[:]

def test_train_then_predict_segment_evaluate_from_the_run(tmp_path):
    "A user's whole job on the command line: train, then predict with the run's own model, segment, evaluate."
    out, raw, gt = tmp_path / "run", "run/val_data.zarr/raw", "run/val_data.zarr/gt"
    trained = run("train", "--iterations", "4", "--out", str(out), "--fetchers", "0", "--device", "cpu",
                  "--validation-interval", "2", "--snapshot-interval", "100", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    best = json.loads((out / "best.json").read_text())
    assert "model_kwargs" in json.loads((out / "run.json").read_text())

    predicted = run("predict", "--run", "run", raw, "pred.zarr/affs", "--device", "cpu", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert f"predicted with run/{best['checkpoint']}: the best validated (voi {best['score']:.4g})" in predicted.stderr, predicted.stderr
    affs = zarr_values(tmp_path / "pred.zarr/affs")
    assert affs.shape == (2, 192, 192) and 0 <= affs.min() and affs.max() <= 1, (affs.shape, affs.min(), affs.max())

    segmented = run("segment", "pred.zarr/affs", "seg.zarr/seg", "--run", "run", cwd=tmp_path)
    assert segmented.returncode == 0, segmented.stderr
    assert f"segmented with {best['parameters']}: validated in run" in segmented.stderr, segmented.stderr
    seg = zarr_values(tmp_path / "seg.zarr/seg")
    assert seg.shape == (192, 192) and seg.dtype == np.uint64, (seg.shape, seg.dtype)

    evaluated = run("evaluate", "seg.zarr/seg", gt, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    assert abs(scores["voi"] - best["score"]) < 1e-6, (scores["voi"], best)   # the best checkpoint and parameters: validation's score again

    # the pickled model of before, with the best weights, predicts the same; another checkpoint (--iteration) does not
    from dacapo_nb.runs import load_run
    torch.save(load_run(out, best["iteration"]).model, tmp_path / "model.pt")
    pickled = run("predict", "model.pt", raw, "pred.zarr/pickled", "--device", "cpu", cwd=tmp_path)
    assert pickled.returncode == 0, pickled.stderr
    np.testing.assert_allclose(zarr_values(tmp_path / "pred.zarr/pickled"), affs, atol=1e-6)
    other = 2 if best["iteration"] == 4 else 4
    again = run("predict", "--run", "run", "--iteration", str(other), raw, "pred.zarr/other", "--device", "cpu", cwd=tmp_path)
    assert again.returncode == 0 and f"iteration {other}, as asked" in again.stderr, again.stderr
    assert not np.array_equal(zarr_values(tmp_path / "pred.zarr/other"), affs)   # other weights: another prediction

def test_each_wrong_model_gets_one_line(tmp_path, capsys):
    "Whatever wrong thing is given as the model or the run: exit status 2 and one line that says what it is, no traceback."
    from dacapo_nb.cli import main
    out = tmp_path / "run"
    assert main(["train", "--iterations", "2", "--out", str(out), "--fetchers", "0", "--device", "cpu", "--snapshot-interval", "100"]) == 0
    checkpoint = out / "checkpoints" / "iteration_00000002.pt"
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "empty").mkdir()
    bare = tmp_path / "bare"; bare.mkdir(); (bare / "run.json").write_text((out / "run.json").read_text())   # no checkpoints
    old = tmp_path / "old"; old.mkdir(); (old / "checkpoints").mkdir()
    (old / "checkpoints" / checkpoint.name).write_bytes(checkpoint.read_bytes())
    recorded = json.loads((out / "run.json").read_text()); del recorded["model_kwargs"]
    (old / "run.json").write_text(json.dumps(recorded))                                            # written before model_kwargs
    raw, pred = str(out / "data.zarr" / "raw"), str(tmp_path / "pred.zarr" / "affs")
    from dacapo_nb.models import model_for
    from dacapo_nb.tasks import affinities_task
    torch.save(model_for(affinities_task(2), 2, fmaps=2), tmp_path / "other.pt")                  # another architecture
    cases = [
        ([str(checkpoint), raw, pred], f"model {checkpoint} is a training checkpoint (iteration 2), not a model: "
                                       f"give its run directory, --run {out} --iteration 2"),
        ([str(out), raw, pred], f"model {out} is a run directory: give it as --run {out}"),
        ([str(tmp_path / "empty"), raw, pred], f"model {tmp_path / 'empty'} is a folder, expected a model file saved with "
                                               "torch.save(model, path) (or a run directory as --run)"),
        ([str(tmp_path / "notes.txt"), raw, pred], f"model {tmp_path / 'notes.txt'} is not a torch file (UnpicklingError), "
                                                   "expected a model saved with torch.save(model, path)"),
        ([str(tmp_path / "missing.pt"), raw, pred], f"model {tmp_path / 'missing.pt'} does not exist"),
        ([raw, pred], "predict needs a model: give --run RUN_DIR (a run directory of dacapo-nb train) or a model file before RAW"),
        (["--run", str(bare), raw, pred], f"{bare} has no checkpoint (checkpoints/iteration_*.pt): train it first"),
        (["--run", str(out), "--iteration", "7", raw, pred], f"{out} has no checkpoint of iteration 7; it has iterations [2]"),
        (["--run", str(tmp_path / "empty"), raw, pred], f"{tmp_path / 'empty'} is not a run directory: it has no run.json"),
        (["--run", str(old), raw, pred], f"{old / 'run.json'} does not record model_kwargs (it was written by dacapo_nb"),
        ([str(tmp_path / "other.pt"), "--run", str(out), raw, pred],
         f"{checkpoint} does not load into the Model (RuntimeError: Error(s) in loading state_dict for Model:"),
    ]
    capsys.readouterr()
    for argv, message in cases:
        code = main(["predict", *argv, "--device", "cpu"])
        err = capsys.readouterr().err
        lines = [l for l in err.splitlines() if l.strip()]
        assert (code, len(lines)) == (2, 1), (argv, code, err)
        assert lines[0].startswith(f"dacapo-nb: error: {message}"), (argv, lines[0], message)
    assert not (tmp_path / "pred.zarr").exists()   # refused before anything is written


def test_serial_sections_with_a_boundary_map_from_train_to_scores(tmp_path):
    "A stack of 3 serial sections (50 x 4 x 4 nm) labelled as a 0/255 membrane map: a 2D model on the sections, then predict, segment and evaluate per section."
    from dacapo_nb.datasets import labels_from_boundaries
    membranes = np.full((3, 160, 160), 255, np.uint8)
    membranes[:, ::16] = 0; membranes[:, :, ::16] = 0; membranes[1, :, 8::32] = 0      # the middle section's cells split
    raw = np.where(membranes == 0, 40, 180).astype(np.uint8) + np.random.default_rng(0).integers(0, 30, membranes.shape).astype(np.uint8)
    root = zarr.open_group(str(tmp_path / "stack.zarr"), mode="w")
    for name, data in (("raw", raw), ("membranes", membranes), ("labels", labels_from_boundaries(membranes, per_section=True))):
        root.array(name, data, chunks=(1, 80, 80)).attrs.update(voxel_size=[50, 4, 4], offset=[0, 0, 0], axes=["z", "y", "x"])
    trained = run("train", "--iterations", "2", "--out", "run", "--raw", "stack.zarr/raw", "--gt", "stack.zarr/membranes",
                  "--gt-boundaries", "--fetchers", "0", "--device", "cpu", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    said = [l for l in trained.stderr.splitlines() if l.startswith("dacapo-nb:")]
    assert "dacapo-nb: --raw stack.zarr/raw: voxel size (50, 4, 4), ROI [0:150, 0:640, 0:640] (150, 640, 640)" in said, said
    assert "dacapo-nb: --gt-boundaries: 350 objects, the connected components of the inside per section" in said, said
    assert ("dacapo-nb: training a 2D model on the stack's 3 sections: they are 12.5 times thicker than the pixels are wide "
            "(--dims 3 for a 3D model)") in said, said
    assert not [l for l in said if "warning" in l], said                    # converted: no 'boundary map' warning
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (recorded["trains_on"], recorded["model_kwargs"]["unet"]["input_shape"]) == ("sections", [132, 132]), recorded["model_kwargs"]

    predicted = run("predict", "--run", "run", "stack.zarr/raw", "pred.zarr/affs", "--device", "cpu", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert zarr_values(tmp_path / "pred.zarr/affs").shape == (2, 3, 160, 160)
    segmented = run("segment", "pred.zarr/affs", "seg.zarr/seg", cwd=tmp_path)
    assert segmented.returncode == 0 and "section by section" in segmented.stderr, segmented.stderr
    seg = zarr_values(tmp_path / "seg.zarr/seg")
    assert seg.shape == (3, 160, 160), seg.shape
    ids = [set(np.unique(s[s > 0]).tolist()) for s in seg]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]), "an id in two sections"
    evaluated = run("evaluate", "seg.zarr/seg", "stack.zarr/labels", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert {"voi", "adapted_rand_error"} <= set(json.loads(evaluated.stdout)), evaluated.stdout


def test_a_tiff_stack_trains_converts_and_predicts(tmp_path):
    "The ISBI-shaped path on the command line: TIFF stacks of raw and a 0/255 membrane map, then convert and predict."
    import tifffile
    membranes = np.full((4, 160, 160), 255, np.uint8); membranes[:, ::16] = 0; membranes[:, :, ::16] = 0
    raw = np.where(membranes == 0, 40, 180).astype(np.uint8)
    tifffile.imwrite(tmp_path / "raw.tif", raw); tifffile.imwrite(tmp_path / "membranes.tif", membranes)
    trained = run("train", "--iterations", "2", "--out", "run", "--raw", "raw.tif", "--gt", "membranes.tif", "--gt-boundaries",
                  "--voxel-size", "50", "4", "4", "--fetchers", "0", "--device", "cpu", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "dacapo-nb: --raw raw.tif: voxel size (50, 4, 4), ROI [0:200, 0:640, 0:640] (200, 640, 640)" in trained.stderr, trained.stderr
    assert "training a 2D model on the stack's 4 sections" in trained.stderr, trained.stderr
    refused = run("predict", "--run", "run", "raw.tif", "pred.zarr/affs", cwd=tmp_path)
    assert refused.returncode == 2 and "dacapo-nb convert raw.tif data.zarr/raw" in refused.stderr, refused.stderr
    converted = run("convert", "raw.tif", "data.zarr/raw", "--voxel-size", "50", "4", "4", cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    assert zarr_values(tmp_path / "data.zarr/raw").tolist() == raw.tolist()
    predicted = run("predict", "--run", "run", "data.zarr/raw", "pred.zarr/affs", "--device", "cpu", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert zarr_values(tmp_path / "pred.zarr/affs").shape == (2, 4, 160, 160)


def test_twelve_bit_raw_trains_with_raw_range_and_predict_uses_the_runs(tmp_path):
    "uint16 raw that holds 12 bits: refused without --raw-range (naming it), trained with it, recorded, and reused by predict --run."
    cells = np.repeat(np.repeat(np.random.default_rng(0).integers(1, 9, (6, 6)), 16, 0), 16, 1).astype(np.uint32)
    raw = ((cells % 3) * 1200 + 200).astype(np.uint16)                       # 200..2600 of 0..65535
    root = zarr.open_group(str(tmp_path / "mine.zarr"), mode="w")
    for name, data in (("raw", raw), ("labels", cells)):
        root.array(name, data, chunks=(48, 48)).attrs.update(voxel_size=[4, 4], offset=[0, 0], axes=["y", "x"])
    mine = ["--raw", "mine.zarr/raw", "--gt", "mine.zarr/labels", "--fetchers", "0", "--device", "cpu", "--iterations", "1"]
    refused = run("train", "--out", "run", *mine, cwd=tmp_path)
    assert refused.returncode == 2 and "pass --raw-range 200 2600" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert not (tmp_path / "run").exists()   # refused before the run folder is made
    trained = run("train", "--out", "run", *mine, "--raw-range", "0", "4095", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["datasets"][0]["raw_range"] == [0.0, 4095.0]
    predicted = run("predict", "--run", "run", "mine.zarr/raw", "pred.zarr/affs", "--device", "cpu", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr   # without the run's range predict would refuse this raw


def test_train_on_an_hdf5_file(tmp_path):
    "HDF5 as CREMI and gunpowder write it (resolution and offset attributes in nm): a few iterations from the command line."
    import h5py
    cells = np.repeat(np.repeat(np.random.default_rng(0).integers(1, 9, (6, 6)), 16, 0), 16, 1).astype(np.uint64)
    with h5py.File(tmp_path / "sample.h5", "w") as f:
        for name, data in (("volumes/raw", ((cells % 3) * 80 + 40).astype(np.uint8)), ("volumes/labels/neuron_ids", cells)):
            f.create_dataset(name, data=data).attrs.update(resolution=[4, 4], offset=[0, 0])
    trained = run("train", "--iterations", "2", "--out", "run", "--raw", "sample.h5/volumes/raw", "--gt", "sample.h5/volumes/labels/neuron_ids",
                  "--fetchers", "1", "--device", "cpu", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "dacapo-nb: --raw sample.h5/volumes/raw: voxel size (4, 4), ROI [0:384, 0:384] (384, 384)" in trained.stderr, trained.stderr
    assert (tmp_path / "run" / "checkpoints" / "iteration_00000002.pt").exists()
