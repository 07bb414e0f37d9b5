"""The house rules that the code must keep: the architecture page's module table is true, imports point one way,
methods carry their class's names, and the command line never loads the notebook widgets."""
import ast, inspect, re, subprocess, sys, traceback
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dacapo_nb"


def table_modules() -> list[str]:
    "The modules of the architecture page's table, top (ground floor) to bottom."
    nb = nbformat.read(ROOT / "nbs" / "architecture.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return re.findall(r"^\|[^|]+\| `\d\d_\w+` \| `dacapo_nb\.(\w+)` \|", text, flags=re.M)


def package_imports(path: Path) -> list[tuple[int, str]]:
    "(line, imported dacapo_nb module or '' for the package root) of every import in `path`, at any depth."
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1: found.append((node.lineno, node.module or ""))
            elif node.module and node.module.split(".")[0] == "dacapo_nb":
                found.append((node.lineno, node.module.partition(".")[2]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.partition(".")[2]) for a in node.names if a.name.split(".")[0] == "dacapo_nb"]
    return found


def test_the_table_lists_every_module_once():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_"))
    listed = table_modules()
    assert sorted(listed) == modules, (listed, modules)


def test_imports_point_down_the_table():
    order = {m: i for i, m in enumerate(table_modules())}
    wrong = []
    for name, rank in order.items():
        for line, target in package_imports(PACKAGE / f"{name}.py"):
            target = target.split(".")[0]
            if target == "": wrong.append(f"{name}.py:{line} imports the package root")
            elif order.get(target, -1) >= rank: wrong.append(f"{name}.py:{line} imports {target}, which is not above it")
    assert wrong == [], wrong


def test_the_import_check_finds_an_upward_import(tmp_path):
    "The check above can fail: an upward, a root and a nested import are all seen."
    bad = tmp_path / "bad.py"
    bad.write_text("from .trainer import GunpowderTrainer\nimport dacapo_nb\ndef f():\n    from dacapo_nb.widgets import SnapshotViewer\n")
    assert package_imports(bad) == [(1, "trainer"), (2, ""), (4, "widgets")]


def package_classes():
    import dacapo_nb as dn
    import dacapo_nb.widgets  # loaded lazily by the package
    for name in table_modules():
        module = sys.modules[f"dacapo_nb.{name}"] if f"dacapo_nb.{name}" in sys.modules else __import__(f"dacapo_nb.{name}", fromlist=["x"])
        for cls in vars(module).values():
            if inspect.isclass(cls) and cls.__module__ == module.__name__: yield cls


def test_methods_carry_their_class_name():
    "No method is a module function assigned to a class: each one's name and qualified name are its class's."
    wrong = []
    for cls in package_classes():
        for name, f in vars(cls).items():
            f = f.fget if isinstance(f, property) else getattr(f, "__func__", f)
            if inspect.isfunction(f) and (f.__name__, f.__qualname__) != (name, f"{cls.__qualname__}.{name}"):
                wrong.append((cls.__name__, name, f.__name__, f.__qualname__))
    assert wrong == [], wrong


def test_help_and_tracebacks_name_the_method():
    import pydoc
    import dacapo_nb as dn
    assert dn.GunpowderTrainer.iterate.__qualname__ == "GunpowderTrainer.iterate"
    text = pydoc.render_doc(dn.GunpowderTrainer.iterate, renderer=pydoc.plaintext)
    assert "function iterate in module dacapo_nb.trainer" in text and "_iterate" not in text, text
    trainer = dn.GunpowderTrainer(dn.GunpowderTrainerConfig())
    with pytest.raises(RuntimeError, match="enter the trainer") as caught:
        next(trainer.iterate(1, None, None, "cpu"))
    frames = [frame.f_code.co_qualname for frame, _ in traceback.walk_tb(caught.value.__traceback__)]
    assert "GunpowderTrainer.iterate" in frames, frames


def test_cli_help_loads_no_notebook_machinery():
    code = ("import sys\nfrom dacapo_nb.cli import main\ntry: main(['train', '--help'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'ipykernel', 'matplotlib_inline')"
            " or m.startswith(('matplotlib.backends.backend_nbagg', 'matplotlib.backends.backend_ipympl'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


RUN_DIR_NAMES = ("run.json", "stats.jsonl", "validation.jsonl", "best.json", "checkpoints", "snapshots.zarr",
                 "validation.zarr", "snapshot.png", ".lock")  # and checkpoints' iteration_NNNNNNNN.pt


def _docstrings(tree) -> set:
    "The docstring nodes of `tree`: prose, not paths."
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant): found.add(id(first.value))
    return found


def run_dir_names(path: Path) -> list[tuple[int, str]]:
    "(line, string) of each string in `path` that spells a run-directory file as a path (messages and docstrings aside)."
    tree = ast.parse(path.read_text())
    skip, found = _docstrings(tree), []
    for node in ast.walk(tree):  # an f-string as one string, a {} for each value; its pieces are not strings of their own
        if isinstance(node, ast.JoinedStr): skip |= {id(v) for v in node.values}
    for node in ast.walk(tree):
        if id(node) in skip: continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str): text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        else: continue
        if re.search(r"\s", text): continue  # a sentence naming a file to a person, not a path
        if any(part in RUN_DIR_NAMES or part.startswith("iteration_") for part in text.split("/")):
            found.append((node.lineno, text))
    return sorted(found)


def test_only_rundir_spells_the_run_directory():
    "One module knows the run directory's layout: no other spells one of its file names as a path."
    found = [f"{p.name}:{line}: {text!r}" for p in sorted(PACKAGE.glob("*.py")) if p.name != "rundir.py"
             for line, text in run_dir_names(p)]
    assert found == [], "\n".join(found)


def test_the_layout_check_finds_a_spelled_name(tmp_path):
    "The check above can fail: names as paths, in f-strings and globs are seen; sentences and docstrings are not."
    bad = tmp_path / "bad.py"
    bad.write_text('"""Writes run.json."""\ndef f(run_dir, i):\n    "Reads stats.jsonl."\n    a = run_dir / "run.json"\n'
                   '    b = run_dir / f"checkpoints/iteration_{i:08d}.pt"\n    c = run_dir.glob("iteration_*.pt")\n'
                   '    raise ValueError(f"{run_dir} has no run.json")\n    return f"{run_dir}.lock"\n')
    assert run_dir_names(bad) == [(4, "run.json"), (5, "checkpoints/iteration_{}.pt"), (6, "iteration_*.pt")]
