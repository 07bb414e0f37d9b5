"""Starting from a trained model (issue 31): init from a run, a checkpoint or a BioImage.IO package; what run.json
records; a resume never reads the source again; the command line's --init-from refusals."""
import contextlib, hashlib, io, json, shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dacapo_nb.bioimage import export_bioimageio, import_bioimageio
from dacapo_nb.cli import main
from dacapo_nb.datasets import make_synthetic_data
from dacapo_nb.inference import predict
from dacapo_nb.models import model_for
from dacapo_nb.tasks import affinities_task
from dacapo_nb.trainer import GunpowderTrainerConfig
from dacapo_nb.training import initial_weights, latest_checkpoint, run_training

TASK = affinities_task(2)
LONGER = affinities_task(2, neighborhood=[(1, 0), (0, 1), (3, 0), (0, 3)])   # another task: a 4-channel head
CONFIG = GunpowderTrainerConfig(batch_size=1, num_data_fetchers=0, learning_rate=1e-2, warmup_iterations=2, snapshot_interval=None, seed=0)


def tiny(task=TASK, seed=0):
    torch.manual_seed(seed)
    return model_for(task, 2, input_shape=(52, 52), fmaps=4)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    "A tiny trained run (3 iterations), its data, and a package exported from it."
    where = tmp_path_factory.mktemp("source")
    data = make_synthetic_data(where / "data.zarr", dims=2, shape=(128, 128), seed=0)
    model = tiny()
    list(run_training(where / "run", model, TASK, [data], CONFIG, iterations=3, device="cpu"))
    package = export_bioimageio(model, TASK, data.raw, where / "model.bioimageio.zip")
    return {"where": where, "data": data, "model": model, "run": where / "run", "package": package}


def checkpoint_state(run_dir):
    return torch.load(latest_checkpoint(Path(run_dir) / "checkpoints"), map_location="cpu", weights_only=False)


def test_export_import_round_trip_predicts_the_same(source, tmp_path):
    imported = import_bioimageio(source["package"])
    x = np.load(zipfile_member(source["package"], "test_input.npy"))
    model = source["model"].eval()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
        got = imported.eval()(torch.from_numpy(x)).numpy()
    model.train()
    assert np.abs(got - want).max() <= 1e-5, np.abs(got - want).max()
    raw = source["data"].raw
    a = predict(model, raw, tmp_path / "p.zarr", "original", device="cpu", progress=False)
    b = predict(imported, raw, tmp_path / "p.zarr", "imported", device="cpu", progress=False)
    assert np.abs(a[a.roi] - b[b.roi]).max() <= 1e-5


def zipfile_member(package, name):
    import zipfile
    return io.BytesIO(zipfile.ZipFile(package).read(name))


@pytest.mark.parametrize("kind", ["run", "checkpoint", "package"])
def test_init_loads_every_matching_tensor_and_reports_the_head(source, tmp_path, kind):
    given = {"run": source["run"], "checkpoint": latest_checkpoint(source["run"] / "checkpoints"), "package": source["package"]}[kind]
    want = checkpoint_state(source["run"])["model"]
    model = tiny(LONGER, seed=1)
    fresh_head = model.head.bias.detach().clone()
    assert list(run_training(tmp_path / "tuned", model, LONGER, [source["data"]], CONFIG, iterations=0, device="cpu", init_from=given)) == []
    record = json.loads((tmp_path / "tuned" / "run.json").read_text())["init_from"]
    assert record["reinitialised"] == {"head.weight": [[4, 4, 1, 1], [2, 4, 1, 1]], "head.bias": [[4], [2]]}, record
    assert (record["new"], record["dropped"]) == ([], []), record
    assert sorted(record["loaded"]) == sorted(k for k in want if not k.startswith("head.")), record["loaded"]
    for k in record["loaded"]: assert torch.equal(model.state_dict()[k], want[k]), k
    assert torch.equal(model.head.bias.detach(), fresh_head)          # the head keeps the new model's initialisation
    assert record["source"] == str(given) and record["kind"] == {"run": "run", "checkpoint": "checkpoint", "package": "BioImage.IO package"}[kind]
    weights_file = {"run": latest_checkpoint(source["run"] / "checkpoints"), "checkpoint": given, "package": None}[kind]
    if weights_file is not None:
        assert record["sha256"] == hashlib.sha256(Path(weights_file).read_bytes()).hexdigest()
        assert record["iteration"] == 3
    else:
        assert record["weights_file"] == "weights_state_dict.pt" and record["iteration"] is None
        assert record["sha256"] == hashlib.sha256(zipfile_member(given, "weights_state_dict.pt").read()).hexdigest()


def other_architecture(package, where):
    "A copy of `package` whose weights name an architecture dacapo_nb does not rebuild."
    folder = where / "other"
    shutil.unpack_archive(package, folder, "zip")
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    rdf["weights"]["pytorch_state_dict"]["architecture"] = {"callable": "UNet2d", "import_from": "some_lab.models", "kwargs": {}}
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    return folder


def test_a_package_of_another_architecture_is_refused(source, tmp_path):
    folder = other_architecture(source["package"], tmp_path)
    said = "its pytorch_state_dict architecture is some_lab.models.UNet2d; dacapo_nb rebuilds only dacapo_nb.bioimage.model_from_kwargs"
    for call in (lambda: import_bioimageio(folder), lambda: initial_weights(folder),
                 lambda: next(run_training(tmp_path / "never", tiny(), TASK, [source["data"]], CONFIG, 2, init_from=folder))):
        with pytest.raises(ValueError, match="some_lab.models.UNet2d") as caught: call()
        assert said in str(caught.value), caught.value
    assert not (tmp_path / "never").exists()


def test_a_resume_does_not_read_the_source_again(source, tmp_path):
    copy = Path(shutil.copytree(source["run"], tmp_path / "copy"))
    tuned = tmp_path / "tuned"
    first = list(run_training(tuned, tiny(LONGER, 1), LONGER, [source["data"]], CONFIG, iterations=2, device="cpu", init_from=copy))
    assert [s.iteration for s in first] == [0, 1]
    recorded = json.loads((tuned / "run.json").read_text())["init_from"]
    assert recorded["source"] == str(copy) and recorded["iteration"] == 3
    saved = checkpoint_state(tuned)
    assert saved["iteration"] == 2 and saved["optimizer"]["state"][0]["step"].item() == 2   # a fresh optimizer: this run's steps
    changed = latest_checkpoint(copy / "checkpoints")
    changed.write_bytes(b"not a checkpoint any more")          # the source changes...
    resumed = tiny(LONGER, 2)
    assert list(run_training(tuned, resumed, LONGER, [source["data"]], CONFIG, iterations=2, device="cpu", init_from=copy)) == []
    for k, v in saved["model"].items(): assert torch.equal(resumed.state_dict()[k], v), k   # the checkpoint's weights, not the source's
    shutil.rmtree(copy)                                        # ...and goes: the resume trains on all the same
    more = list(run_training(tuned, tiny(LONGER, 2), LONGER, [source["data"]], CONFIG, iterations=3, device="cpu", init_from=copy))
    assert [s.iteration for s in more] == [2]
    assert json.loads((tuned / "run.json").read_text())["init_from"] == recorded


def cli(*argv):
    "Run `dacapo-nb` in this process; (exit status, its `dacapo-nb:` lines)."
    with contextlib.redirect_stderr(io.StringIO()) as err:
        status = main(list(argv))
    return status, [l for l in err.getvalue().splitlines() if l.startswith("dacapo-nb:")]


def test_cli_init_from_bad_values_get_one_line_and_exit_2(source, tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("not weights")
    cases = {tmp_path / "missing": "does not exist: give a run directory, a checkpoint file or a BioImage.IO package",
             tmp_path / "folder": "is a folder but no run directory (it has no run.json) and no BioImage.IO package (no rdf.yaml)",
             tmp_path / "notes.txt": "is not a checkpoint: torch cannot read it",
             other_architecture(source["package"], tmp_path): "its pytorch_state_dict architecture is some_lab.models.UNet2d"}
    for given, said in cases.items():
        status, lines = cli("train", "--iterations", "1", "--out", str(tmp_path / "out"), "--fetchers", "0", "--device", "cpu",
                            "--init-from", str(given))
        assert status == 2 and len(lines) == 1, (given, lines)
        assert lines[0].startswith(f"dacapo-nb: error: --init-from {given}") and said in lines[0], lines
    assert not (tmp_path / "out").exists()
    status, lines = cli("train", "--out", str(tmp_path / "out"), "--freeze", "encoder", "--freeze-iterations", "5")
    assert (status, lines) == (2, ["dacapo-nb: error: --freeze holds trained weights still: give --init-from SOURCE"])
    status, lines = cli("train", "--out", str(tmp_path / "out"), "--init-from", str(source["run"]), "--freeze", "encoder")
    assert (status, lines) == (2, ["dacapo-nb: error: --freeze encoder needs --freeze-iterations N: how long to hold it"])


def test_cli_init_from_says_what_it_loads(tmp_path):
    status, lines = cli("train", "--iterations", "2", "--out", str(tmp_path / "first"), "--fetchers", "0", "--device", "cpu",
                        "--snapshot-interval", "100")
    assert status == 0, lines
    argv = ("train", "--iterations", "2", "--out", str(tmp_path / "tuned"), "--fetchers", "0", "--device", "cpu", "--task", "distances",
            "--init-from", str(tmp_path / "first"), "--freeze", "encoder", "--freeze-iterations", "1")
    status, lines = cli(*argv)
    assert status == 0, lines
    started = [l for l in lines if "started from the run" in l]
    assert len(started) == 1 and "re-initialised (another shape): head.weight (1, 12, 1, 1), the source's (2, 12, 1, 1)" in started[0], lines
    assert "dacapo-nb: --freeze encoder: held still for the first 1 iterations" in lines, lines
    run_json = json.loads((tmp_path / "tuned" / "run.json").read_text())
    assert run_json["init_from"]["source"] == str(tmp_path / "first") and run_json["freeze"]["freeze"] == "encoder"
    shutil.rmtree(tmp_path / "first")                           # a resume never reads it again
    status, lines = cli(*[a if a != "2" else "3" for a in argv])
    assert status == 0, lines
    assert any("is not read again" in l for l in lines), lines
