"""The course exercises in nbs/exercises/: each unmodified exercise fails at its first check, with a message that
tells the student what to do; each solution runs clean in a Jupyter kernel (nbdev_test runs them too)."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

EXERCISES = Path(__file__).resolve().parent.parent / "nbs" / "exercises"

# exercise -> (function called by the first check cell, text its error must carry)
FIRST_FAILURE = {
    "ex01_targets": ("check_affinities", "`affinities` still raises NotImplementedError: replace the `raise NotImplementedError`"),
    "ex02_loss_weights": ("check_balanced_weights", "`balanced_weights` still raises NotImplementedError"),
    "ex03_augmentations": ("check_augments", "your augments list is empty: add a SimpleAugmentConfig, an ElasticAugmentConfig"),
    "ex04_diagnose_snapshot": ("check_diagnosis", "answer is still None: set it to one of the letters ['a', 'b', 'c', 'd']"),
}

def execute(path: Path, cwd: Path) -> nbformat.NotebookNode:
    "Run `path` in a python3 kernel in `cwd`; the executed notebook is on the error's `nb` when a cell fails."
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "nbdev_export()" not in c.source]
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    except CellExecutionError as e:
        e.nb = nb
        raise
    return nb

def test_every_exercise_has_a_solution_and_a_test():
    names = sorted(p.stem for p in EXERCISES.glob("ex*.ipynb"))
    exercises = [n for n in names if not n.endswith("_solution")]
    assert exercises == sorted(FIRST_FAILURE)
    assert [n for n in names if n.endswith("_solution")] == [f"{n}_solution" for n in exercises]

@pytest.mark.parametrize("name", sorted(FIRST_FAILURE))
def test_solution_differs_only_in_the_todo_cells(name):
    ex, sol = (nbformat.read(EXERCISES / f"{name}{s}.ipynb", as_version=4) for s in ("", "_solution"))
    assert [c.cell_type for c in ex.cells] == [c.cell_type for c in sol.cells]
    changed = [e.source for e, s in zip(ex.cells[1:], sol.cells[1:]) if e.source != s.source]
    assert changed and all("TODO" in src for src in changed)

@pytest.mark.parametrize("name", sorted(FIRST_FAILURE))
def test_unmodified_exercise_fails_at_its_first_check(name, tmp_path):
    check, message = FIRST_FAILURE[name]
    with pytest.raises(CellExecutionError) as info:
        execute(EXERCISES / f"{name}.ipynb", tmp_path)
    nb = info.value.nb
    code = [c for c in nb.cells if c.cell_type == "code"]
    failed = [i for i, c in enumerate(code) if any(o.output_type == "error" for o in c.get("outputs", []))]
    first_check = next(i for i, c in enumerate(code) if c.source.startswith("check_"))
    assert failed == [first_check], f"failed in cells {failed}, expected only the first check cell {first_check}"
    assert code[first_check].source.startswith(check)
    error = next(o for o in code[first_check].outputs if o.output_type == "error")
    assert error.ename == "ExerciseError"
    assert message in error.evalue
    # a clean stop: the message alone, no traceback through the check's code, and nothing after the check ran
    assert len(error.traceback) == 1 and message in error.traceback[0] and "File " not in error.traceback[0], error.traceback
    assert all(not c.get("outputs") for c in code[first_check + 1:]), "cells after the failed check ran"

@pytest.mark.parametrize("name", sorted(FIRST_FAILURE))
def test_solution_runs_in_a_kernel(name, tmp_path):
    nb = execute(EXERCISES / f"{name}_solution.ipynb", tmp_path)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    n_checks = sum(c.source.startswith("check_") for c in nb.cells if c.cell_type == "code")
    assert printed.count("✓ check_") == n_checks >= 1
