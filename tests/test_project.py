"""Project-level checks: the README, the package namespace and the notebooks run in a real Jupyter kernel."""
import configparser, subprocess, sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent

def test_readme_is_generated_from_index():
    "README.md must be what tools/readme.py makes of nbs/index.ipynb (there is no Quarto here to do it)."
    result = subprocess.run([sys.executable, "tools/readme.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

def test_readme_carries_the_commands():
    text = (ROOT / "README.md").read_text()
    first_screen = "\n".join(text.splitlines()[:40])
    assert "bash tools/test.sh" in first_screen
    assert "bash tools/demo.sh" in first_screen

def test_readme_check_fails_when_stale(tmp_path):
    "The staleness check really compares: a changed notebook gives another README."
    sys.path.insert(0, str(ROOT / "tools"))
    import readme
    nb = nbformat.read(ROOT / "nbs" / "index.ipynb", as_version=4)
    nb.cells[0].source += "\n\nA new sentence."
    changed = tmp_path / "index.ipynb"
    nbformat.write(nb, changed)
    assert readme.render(changed) != (ROOT / "README.md").read_text()
    assert "A new sentence." in readme.render(changed)

def test_pins():
    "nbdev commands crash without these pins (see shared/REFERENCE.md, section 6)."
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini")
    dev = cfg["DEFAULT"]["dev_requirements"].split()
    assert {"nbdev==2.4.14", "fastcore<2", "execnb<0.2"} <= set(dev)
    # torch: the set-up installs the CPU build 2.13.0 first; the library's range must accept it (tests/test_install.py
    # checks that every requirement is a range)
    assert "pip install -q torch==2.13.0" in (ROOT / "tools" / "setup.sh").read_text()
    from packaging.requirements import Requirement
    torch = [Requirement(r) for r in cfg["DEFAULT"]["requirements"].split() if r.startswith("torch")]
    assert len(torch) == 1 and torch[0].specifier.contains("2.13.0"), torch

def test_public_names():
    import dacapo_nb as dn
    seed = ["TrainingIterationStats", "Trainer", "DaCapoArraySource", "GraphSource", "DaCapoTargetFilter", "CopyMask",
            "Product", "NumpyArray", "ZarrArray", "OnesArray", "GunpowderTrainer"]
    used_in_readme = ["make_synthetic_data", "affinities_task", "Model", "unet_for", "GunpowderTrainerConfig", "run_training"]
    for name in seed + used_in_readme + ["LocalArrayIdentifier", "LocalContainerIdentifier"]:
        assert hasattr(dn, name), name

@pytest.mark.parametrize("notebook", ["00_arrays.ipynb", "01_sources.ipynb", "02_pipeline.ipynb", "03_filters.ipynb", "04_augments.ipynb"])
def test_notebook_runs_in_a_kernel(notebook, tmp_path):
    "nbdev_test runs notebooks in-process; users run them in a Jupyter kernel, where worker processes fork from it."
    nb = nbformat.read(ROOT / "nbs" / notebook, as_version=4)
    nb.cells = [c for c in nb.cells if "nbdev_export()" not in c.source]  # exporting is the developer's step, not the user's
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors

@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "bench").glob("*.py")))
def test_benchmark_scripts_compile(script):
    "Benchmarks run by hand, not in CI: at least they must still parse (an import rewrite once broke one)."
    import py_compile
    py_compile.compile(str(ROOT / "bench" / script), doraise=True)

def test_exercises_are_copied_once_without_solutions(tmp_path):
    "tools/exercises.sh copies the exercises (no solutions) into a folder of the student's, and never over their answers."
    dest = tmp_path / "mine"
    run = lambda: subprocess.run(["bash", "tools/exercises.sh", str(dest)], cwd=ROOT, capture_output=True, text=True, check=True)
    run()
    expected = sorted(p.name for p in (ROOT / "nbs" / "exercises").glob("ex*.ipynb") if not p.name.endswith("_solution.ipynb"))
    assert sorted(p.name for p in dest.iterdir()) == expected and expected, (sorted(dest.iterdir()), expected)
    (dest / expected[0]).write_text("my answers")
    second = run()
    assert (dest / expected[0]).read_text() == "my answers", "an answer was overwritten"
    assert f"kept your {dest}/{expected[0]}" in second.stderr, second.stderr
