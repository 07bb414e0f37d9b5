"""Validation during training, end to end on tiny runs: the rows of validation.jsonl and their values, the best
checkpoint kept through pruning, resume keeping the rows consistent (stop, torn line, damaged checkpoint, a
validation cut short), and compare_runs / load_best on two real runs."""
import json, warnings

import pytest
import torch

import dacapo_nb.training as training
from dacapo_nb.datasets import make_synthetic_data
from dacapo_nb.models import model_for
from dacapo_nb.runs import compare_runs, iterations_per_second, load_best, read_run
from dacapo_nb.tasks import affinities_task
from dacapo_nb.trainer import GunpowderTrainerConfig
from dacapo_nb.training import load_checkpoint, run_training
from dacapo_nb.validation import best_validation, parameter_sweep, post_process, validate

TASK = affinities_task(2)
CONFIG = GunpowderTrainerConfig(batch_size=1, num_data_fetchers=0, learning_rate=5e-3, warmup_iterations=2, seed=0)


def fresh_model():
    torch.manual_seed(0)
    return model_for(TASK, 2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    work = tmp_path_factory.mktemp("data")
    return (make_synthetic_data(work / "train.zarr", dims=2, shape=(192, 192), seed=0),
            make_synthetic_data(work / "val_a.zarr", dims=2, shape=(96, 96), seed=3),
            make_synthetic_data(work / "val_b.zarr", dims=2, shape=(96, 96), seed=4))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, data):
    "Two real runs in sibling directories: two learning rates, validated every 2 iterations on two volumes."
    work = tmp_path_factory.mktemp("runs")
    train, val_a, val_b = data
    for name, lr in (("lr_small", 1e-4), ("lr_large", 5e-3)):
        config = GunpowderTrainerConfig(**{**vars(CONFIG), "learning_rate": lr})
        list(run_training(work / name, fresh_model(), TASK, [train], config, iterations=4, device="cpu",
                          checkpoint_interval=1, validation_datasets=[val_a, val_b], validation_interval=2))
    return work / "lr_small", work / "lr_large"


def rows_of(run_dir):
    return [json.loads(l) for l in (run_dir / "validation.jsonl").read_text().splitlines()]


def test_rows_and_their_values(two_runs, data, tmp_path):
    run = two_runs[1]
    rows = rows_of(run)
    assert [(r["iteration"], r["dataset"], r["parameters"]) for r in rows] == \
        [(i, d, p) for i in (2, 4) for d in ("val_a", "val_b") for p in parameter_sweep(TASK)]
    assert all(r["seconds"] > 0 and r["predict_seconds"] > 0 for r in rows), rows
    # the scores of iteration 2 are those of the iteration-2 checkpoint validated by hand
    model = fresh_model()
    assert load_checkpoint(run / "checkpoints" / "iteration_00000002.pt", model) == 2
    again = validate(model, TASK, data[1], tmp_path / "again.zarr", device="cpu")
    assert [r["scores"] for r in again] == [r["scores"] for r in rows if r["iteration"] == 2 and r["dataset"] == "val_a"]
    best = json.loads((run / "best.json").read_text())
    assert {k: best[k] for k in ("iteration", "parameters", "score", "datasets")} == \
        {k: v for k, v in best_validation(rows, "voi").items() if k != "criterion"}


def fake_validate(voi_by_iteration, calls, fail_at=None):
    "A stand-in for `validate` (no prediction): VOI by the iteration the model holds (read from `calls`)."
    def fake(model, task, dataset, output_container, sweep=None, device=None, min_size=0):
        iteration = calls[-1]
        if fail_at == (iteration, dataset.name): raise RuntimeError(f"validation failed at {iteration}")
        return [{"dataset": dataset.name, "parameters": p, "scores": {"voi": voi_by_iteration[iteration] + j},
                 "seconds": 0.01, "predict_seconds": 0.1} for j, p in enumerate(sweep)]
    return fake


@pytest.fixture
def counted(monkeypatch):
    "Record the iteration of each validation call (RunValidation.__call__), and fake the prediction."
    calls = []
    real_call = training.RunValidation.__call__
    def call(self, model, iteration, device=None):
        calls.append(iteration)
        return real_call(self, model, iteration, device)
    monkeypatch.setattr(training.RunValidation, "__call__", call)
    return calls


def test_the_best_checkpoint_survives_pruning(data, tmp_path, monkeypatch, counted):
    train, val_a, _ = data
    monkeypatch.setattr(training, "validate", fake_validate({2: 5.0, 4: 1.0, 6: 3.0, 8: 4.0, 10: 2.0}, counted))
    run = tmp_path / "run"
    list(run_training(run, fresh_model(), TASK, [train], CONFIG, iterations=10, device="cpu", checkpoint_interval=1,
                      validation_datasets=[val_a], validation_interval=2, validation_sweep=[{"threshold": 0.5}]))
    assert counted == [2, 4, 6, 8, 10]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        ["iteration_00000004.pt", "iteration_00000008.pt", "iteration_00000009.pt", "iteration_00000010.pt"]
    best = json.loads((run / "best.json").read_text())
    assert (best["iteration"], best["score"], best["checkpoint"]) == (4, 1.0, "checkpoints/iteration_00000004.pt")
    best_model = load_best(run, fresh_model())
    assert (best_model.iteration, best_model.parameters) == (4, {"threshold": 0.5})
    # another criterion, whose best iteration's checkpoint was pruned, says so
    rows = rows_of(run)
    for r in rows: r["scores"]["dice"] = 0.9 if r["iteration"] == 2 else 0.1
    (run / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(FileNotFoundError, match="iteration 2 .* is gone"):
        load_best(run, fresh_model(), criterion="dice")


def keys(run_dir):
    return [(r["iteration"], r["dataset"], json.dumps(r["parameters"])) for r in rows_of(run_dir)]


def test_resume_keeps_the_rows_consistent(data, tmp_path, monkeypatch, counted):
    train, val_a, val_b = data
    voi = {i: 10.0 - i / 2 for i in range(2, 20, 2)}
    monkeypatch.setattr(training, "validate", fake_validate(voi, counted))
    sweep = [{"threshold": 0.5}, {"threshold": 0.7}]
    run = tmp_path / "run"
    def train_to(iterations, stop_after=None):
        loop = run_training(run, fresh_model(), TASK, [train], CONFIG, iterations=iterations, device="cpu", checkpoint_interval=4,
                            validation_datasets=[val_a, val_b], validation_interval=2, validation_sweep=sweep)
        for stats in loop:
            if stop_after is not None and stats.iteration + 1 == stop_after: loop.close(); break
    expected = lambda its: [(i, d, json.dumps(p)) for i in its for d in ("val_a", "val_b") for p in sweep]

    train_to(10, stop_after=5)                          # Stop after 5: validated at 2 and 4, checkpoint at 5
    assert keys(run) == expected([2, 4])
    train_to(8)                                         # resumed at 5: validates at 6 and 8, nothing twice
    assert keys(run) == expected([2, 4, 6, 8]) and counted == [2, 4, 6, 8]

    with open(run / "validation.jsonl", "a") as f: f.write('{"iteration": 10, "datas')      # a line torn by a kill
    newest = run / "checkpoints" / "iteration_00000008.pt"
    newest.write_bytes(newest.read_bytes()[:1000])                                           # and a damaged checkpoint
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_to(10)                                    # resumed from 6 (the best then, so saved): 8 done again, once
    assert any("unreadable line(s) of" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert keys(run) == expected([2, 4, 6, 8, 10]) and counted[4:] == [8, 10]
    assert json.loads((run / "best.json").read_text())["iteration"] == 10

    # a validation cut short by an error: the checkpoint of 12 is written, its rows are not; the resume does it first
    monkeypatch.setattr(training, "validate", fake_validate(voi, counted, fail_at=(12, "val_b")))
    with pytest.raises(RuntimeError, match="validation failed at 12"): train_to(14)
    assert (run / "checkpoints" / "iteration_00000012.pt").exists() and keys(run) == expected([2, 4, 6, 8, 10])
    monkeypatch.setattr(training, "validate", fake_validate(voi, counted))
    train_to(14)
    assert keys(run) == expected([2, 4, 6, 8, 10, 12, 14]) and counted[-3:] == [12, 12, 14]
    assert [s["iteration"] for s in read_run(run)["stats"]] == list(range(14))


def test_compare_runs_on_two_real_runs(two_runs):
    small, large = two_runs
    table = compare_runs([small, large])
    assert table.columns == ["run", "trainer.learning_rate", "iterations", "best_iteration", "best_voi",
                             "best_parameters", "iterations_per_second"]
    assert table["run"] == ["lr_small", "lr_large"] and table["trainer.learning_rate"] == [1e-4, 5e-3]
    assert table["iterations"] == [4, 4]
    for run, row in zip((small, large), table.rows):
        best = json.loads((run / "best.json").read_text())
        assert (row["best_iteration"], row["best_voi"], row["best_parameters"]) == (best["iteration"], best["score"], best["parameters"])
        assert row["iterations_per_second"] == round(iterations_per_second(read_run(run)["stats"]), 3)
    assert [l.get_label() for l in table.figure.axes[0].lines] == ["lr_small", "lr_large"]
    assert len(table.figure.axes[1].lines) == 4            # a curve and a star per run
    assert str(table).splitlines()[1].split()[:3] == ["lr_small", "0.0001", "4"]
    best = load_best(large, fresh_model())
    state = torch.load(large / "checkpoints" / f"iteration_{best.iteration:08d}.pt", weights_only=False)["model"]
    assert all(torch.equal(v, state[k]) for k, v in best.model.state_dict().items())


def test_segment_uses_the_runs_validated_post_processing(two_runs, data, tmp_path, capsys):
    "`dacapo-nb segment --run RUN` segments with the parameters validation chose (best.json) and says so."
    from dacapo_nb.cli import main
    from dacapo_nb.inference import predict
    from dacapo_nb.segmentation import affinities_to_segmentation
    import zarr
    run = two_runs[1]
    best = json.loads((run / "best.json").read_text())
    assert set(best["parameters"]) >= {"threshold", "min_size"}, best
    model = fresh_model()
    load_checkpoint(run / best["checkpoint"], model)
    affs = predict(model, data[1].raw, tmp_path / "pred.zarr", "affs", device="cpu", progress=False)
    assert main(["segment", str(tmp_path / "pred.zarr/affs"), str(tmp_path / "seg.zarr/seg"), "--run", str(run)]) == 0
    said = capsys.readouterr().err
    assert f"segmented with {best['parameters']}: validated in {run} (best voi" in said, said
    seg = zarr.open(str(tmp_path / "seg.zarr/seg"), mode="r")[:]
    expected = post_process(affs[affs.roi], TASK, best["parameters"])
    assert (seg > 0).sum() == (expected > 0).sum() and len(set(seg.ravel())) == len(set(expected.ravel())), \
        ((seg > 0).sum(), (expected > 0).sum(), len(set(seg.ravel())), len(set(expected.ravel())))
    # a value given on the command line wins over the run's
    assert main(["segment", str(tmp_path / "pred.zarr/affs"), str(tmp_path / "seg2.zarr/seg"), "--run", str(run),
                 "--min-size", "5"]) == 0
    said = capsys.readouterr().err
    assert f"segmented with {({**best['parameters'], 'min_size': 5})}" in said and "min_size=5 given" in said, said


def test_segment_with_agglomeration_and_mutex_watershed(two_runs, data, tmp_path, capsys):
    "`dacapo-nb segment --method agglomerate|mutex` segments in memory, equal to the Python functions, and keeps what exists."
    from dacapo_nb.cli import main
    from dacapo_nb.inference import predict
    from dacapo_nb.segmentation import agglomerate, mutex_watershed
    import numpy as np, zarr
    model = fresh_model()
    affs = predict(model, data[1].raw, tmp_path / "pred.zarr", "affs", device="cpu", progress=False)
    for method, function in (("agglomerate", agglomerate), ("mutex", mutex_watershed)):
        out = tmp_path / "seg.zarr" / method
        assert main(["segment", str(tmp_path / "pred.zarr/affs"), str(out), "--method", method, "--threshold", "0.5",
                     "--min-size", "3"]) == 0
        said = capsys.readouterr().err
        assert f"segmented with {({'method': method, 'threshold': 0.5, 'min_size': 3})}: " in said, said
        assert "with method=" + method + ", threshold=0.5, min_size=3 given" in said, said
        assert "runs in memory" in said, said
        np.testing.assert_array_equal(zarr.open(str(out), mode="r")[:], function(affs[affs.roi], threshold=0.5, min_size=3))
        assert main(["segment", str(tmp_path / "pred.zarr/affs"), str(out), "--method", method]) == 2   # exists, no --overwrite
        assert f"{out} exists: pass --overwrite to replace it" in capsys.readouterr().err


def test_segment_defaults_and_seeds(data, tmp_path, capsys):
    "`dacapo-nb segment` without a run: agglomeration at 0.3 (DEFAULT_POST_PROCESSING); --seed-threshold means components."
    from dacapo_nb.cli import main
    from dacapo_nb.inference import predict
    from dacapo_nb.segmentation import affinities_to_segmentation, agglomerate
    from dacapo_nb.validation import DEFAULT_POST_PROCESSING
    import numpy as np, zarr
    affs = predict(fresh_model(), data[1].raw, tmp_path / "pred.zarr", "affs", device="cpu", progress=False)
    assert main(["segment", str(tmp_path / "pred.zarr/affs"), str(tmp_path / "seg.zarr/default")]) == 0
    said = capsys.readouterr().err
    assert DEFAULT_POST_PROCESSING["affinities"] == {"method": "agglomerate", "threshold": 0.3, "min_size": 0}, DEFAULT_POST_PROCESSING
    assert f"segmented with {DEFAULT_POST_PROCESSING['affinities']}: dacapo_nb's defaults" in said, said
    np.testing.assert_array_equal(zarr.open(str(tmp_path / "seg.zarr/default"), mode="r")[:], agglomerate(affs[affs.roi], threshold=0.3))
    assert main(["segment", str(tmp_path / "pred.zarr/affs"), str(tmp_path / "seg.zarr/seeded"), "--threshold", "0.5",
                 "--seed-threshold", "0.9"]) == 0
    said = capsys.readouterr().err
    assert "segmented with {'method': 'components', 'threshold': 0.5, 'seed_threshold': 0.9}" in said, said
    seeded = zarr.open(str(tmp_path / "seg.zarr/seeded"), mode="r")[:]
    expected = affinities_to_segmentation(affs[affs.roi], threshold=0.5, seed_threshold=0.9)
    assert (seeded > 0).sum() == (expected > 0).sum(), ((seeded > 0).sum(), (expected > 0).sum())
    # what agglomeration and the mutex watershed cannot take is refused in one line, before anything is written
    for extra, said_here in ((["--method", "agglomerate", "--seed-threshold", "0.9"], "--seed-threshold seeds the components' watershed"),
                             (["--method", "mutex", "--kind", "distances"], "--method mutex segments affinities, not distances")):
        assert main(["segment", str(tmp_path / "pred.zarr/affs"), str(tmp_path / "seg.zarr/refused"), *extra]) == 2
        err = capsys.readouterr().err
        assert said_here in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "seg.zarr" / "refused").exists()
