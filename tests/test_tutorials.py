"""Every tutorial and exercise solution runs top to bottom in a Jupyter kernel on a CPU (Run All, `jupyter nbconvert
--execute`), with no flags.

nbdev_test already runs every cell of these notebooks except those with a test flag (`#| gpu`, `#| slow`,
`#| notest`), so CI does not train twice: here nbclient runs, in a real kernel and with no flags, the notebook's first
code cell (its imports) and exactly the cells nbdev_test skips. Each must end cleanly on a CPU with a one-line note
and no traceback. Together the two runs cover every cell."""
import configparser, re
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "nbs" / "tutorials").glob("*.ipynb")) + sorted((ROOT / "nbs" / "exercises").glob("*_solution.ipynb"))
_cfg = configparser.ConfigParser(delimiters=["="]); _cfg.read(ROOT / "settings.ini")
FLAGS = _cfg["DEFAULT"]["tst_flags"].split()

def flagged(cell) -> list[str]:
    "The nbdev_test flags (`#| gpu`, ...) a code cell carries."
    return [f for f in re.findall(r"^#\|\s*(\w+)\s*$", cell.source, flags=re.M) if f in FLAGS]

WITH_FLAGS = [p for p in NOTEBOOKS if any(flagged(c) for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code")]


def test_the_notebooks_are_found():
    names = [p.name for p in NOTEBOOKS]
    assert "01_affinities_2d.ipynb" in names and "ex01_targets_solution.ipynb" in names, names
    assert "01_affinities_2d.ipynb" in [p.name for p in WITH_FLAGS], WITH_FLAGS

def test_gpu_cells_are_marked():
    "A cell that asks for CUDA carries `#| gpu`, so that nbdev_test on a CPU leaves it to the test below."
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and '"cuda"' in cell.source:
                assert "gpu" in flagged(cell), (path.name, cell.source[:200])

@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the gpu cells train for real: `nbdev_test --flags gpu` runs them")
@pytest.mark.parametrize("path", WITH_FLAGS, ids=lambda p: p.name)
def test_cells_nbdev_test_skips_run_cleanly_on_a_cpu(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and "nbdev_export()" not in c.source]
    skipped = [c for c in code if flagged(c)]
    nb.cells = [code[0]] + skipped
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in skipped:
        outputs = cell.get("outputs", [])
        errors = [o for o in outputs if o.output_type == "error"]
        assert not errors, (path.name, errors)
        text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        assert len(text.strip().splitlines()) == 1 and "CUDA" in text, (path.name, text)
