"""dacapo_nb installs like a library: its wheel, with the runtime requirements of settings.ini alone, imports and runs.

Two checks. `test_imports_are_declared` reads every import in dacapo_nb/*.py (`ast`) and fails on a third-party module
that `requirements` does not cover. `test_wheel_in_a_fresh_venv` builds the wheel, installs it without the dev extra
into a new venv (torch first, the CPU build from disk) and runs the command line from outside the source tree.
bench/lowest_versions.py reuses the helpers below with the lowest declared versions pinned.
"""
import ast, configparser, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TORCH = "torch==2.13.0"  # installed first, as tools/setup.sh does: the CPU build on this machine's disk

# Import name -> distribution name, where they differ (or where a namespace package holds several distributions).
DISTRIBUTION = {"skimage": "scikit-image", "lsd": "lsds", "IPython": "ipython", "yaml": "pyyaml",
                "funlib.geometry": "funlib.geometry", "funlib.persistence": "funlib.persistence"}
NAMESPACES = {"funlib"}  # the distribution is named by the first two parts of the import
# Imports allowed without a requirement: each is guarded by `try: ... except ImportError` and raises a message
# that says what to install.
OPTIONAL = {"bioimageio": "BioImage.IO export (dacapo_nb.bioimage.export_bioimageio) is an extra: its error names "
                          "bioimageio.core and the pydantic pin, which would constrain every user"}


def requirements() -> list[str]:
    "settings.ini's `requirements`, as setup.py reads them."
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini")
    import shlex
    return shlex.split(cfg["DEFAULT"]["requirements"])


def normalize(name: str) -> str:
    "A distribution name in PEP 503 form (funlib.geometry and funlib-geometry are the same distribution)."
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0)


def imported_modules(path: Path) -> dict[str, list[int]]:
    "Every absolute import in `path` (module level and inside functions): module name -> line numbers."
    found = {}
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import): names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0: names = [node.module]
        else: continue
        for name in names: found.setdefault(name, []).append(node.lineno)
    return found


def distribution_of(module: str) -> str | None:
    "The distribution that provides `module`, or None for the standard library and dacapo_nb itself."
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == "dacapo_nb": return None
    key = ".".join(module.split(".")[:2]) if top in NAMESPACES else top
    return DISTRIBUTION.get(key, key)


def undeclared_imports(package: Path, declared: set[str]) -> list[str]:
    "'module (file:lines)' for each third-party import of `package` that neither `declared` nor OPTIONAL covers."
    missing = []
    for path in sorted(package.glob("*.py")):
        for module, lines in sorted(imported_modules(path).items()):
            dist = distribution_of(module)
            if dist is None or module.split(".")[0] in OPTIONAL: continue
            if normalize(dist) not in declared: missing.append(f"{module} -> {dist} ({path.name}:{','.join(map(str, lines))})")
    return missing


def test_imports_are_declared():
    declared = {normalize(requirement_name(r)) for r in requirements()}
    missing = undeclared_imports(ROOT / "dacapo_nb", declared)
    assert not missing, ("imported at run time but not in settings.ini requirements", missing)


def test_undeclared_import_is_named(tmp_path):
    "The check above really fails: a module that imports something undeclared is named with its file and line."
    (tmp_path / "mod.py").write_text("import os\nimport numpy as np\n\ndef f():\n    from fastcore.basics import patch\n"
                                     "    import skimage.metrics\n    from . import sibling\n")
    found = undeclared_imports(tmp_path, {"numpy"})
    assert found == ["fastcore.basics -> fastcore (mod.py:5)", "skimage.metrics -> scikit-image (mod.py:6)"], found


def test_optional_imports_are_guarded():
    "An import allowed without a requirement must sit in a `try` that catches ImportError."
    unguarded = []
    for path in sorted((ROOT / "dacapo_nb").glob("*.py")):
        tree = ast.parse(path.read_text())
        guarded = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                                                 for h in node.handlers):
                guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            if any(n.split(".")[0] in OPTIONAL for n in names) and id(node) not in guarded:
                unguarded.append(f"{path.name}:{node.lineno}")
    assert not unguarded, unguarded


def test_requirements_state_ranges():
    "A library states ranges: every requirement has a lower bound and none pins one exact version."
    reqs = requirements()
    assert not [r for r in reqs if "==" in r], reqs
    assert not [r for r in reqs if ">=" not in r], reqs


# --- the wheel in a fresh venv -------------------------------------------------------------------------------------

def sh(*cmd, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    "Run `cmd`; its output without pip's notes about this machine's local index folders (one per package looked up)."
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    quiet = lambda text: "".join(l for l in text.splitlines(keepends=True) if "is ignored: it is neither a file" not in l)
    result.stdout, result.stderr = quiet(result.stdout), quiet(result.stderr)
    return result


def clean_env(**extra) -> dict:
    "The environment without anything that points Python at the source tree or at another venv."
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", MPLBACKEND="Agg", **extra)
    return env


def build_wheel(dest: Path) -> Path:
    "Build the wheel from a copy of what the sdist holds (so the build writes nothing into the source tree)."
    src = dest / "src"
    shutil.copytree(ROOT / "dacapo_nb", src / "dacapo_nb", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ["setup.py", "settings.ini", "pyproject.toml", "README.md", "MANIFEST.in", "LICENSE"]:
        if (ROOT / name).exists(): shutil.copy(ROOT / name, src / name)
    try: import setuptools, wheel  # noqa: F401  (present: build here, offline; absent: pip fetches them)
    except ImportError: isolation = []
    else: isolation = ["--no-build-isolation"]
    result = sh(sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", dest, src, env=clean_env())
    wheels = list(dest.glob("dacapo_nb-*.whl"))
    assert result.returncode == 0 and len(wheels) == 1, (result.returncode, wheels, result.stdout[-2000:], result.stderr[-4000:])
    return wheels[0]


def discard(path: Path) -> None:
    "Delete `path` in the background: a venv is 35,000 files, which a busy disk took over a minute to delete."
    if not path.exists(): return
    trash = path.with_name(path.name + ".deleting")
    path.rename(trash)
    subprocess.Popen(["rm", "-rf", str(trash)], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_venv(path: Path, wheel: Path, constraints: list[str] = ()) -> Path:
    "A fresh venv with torch (CPU, from disk) installed first, then `wheel` and its runtime requirements; its python."
    result = sh(sys.executable, "-m", "venv", path)
    assert result.returncode == 0, result.stderr
    python = path / "bin" / "python"
    result = sh(python, "-m", "pip", "install", "-q", "--no-compile", TORCH, env=clean_env())
    assert result.returncode == 0, ("torch", result.stdout[-2000:], result.stderr[-3000:])
    pins = []
    if constraints:
        (path / "constraints.txt").write_text("\n".join(constraints) + "\n")
        pins = ["-c", path / "constraints.txt"]
    result = sh(python, "-m", "pip", "install", "-q", "--no-compile", wheel, *pins, env=clean_env())
    assert result.returncode == 0, ("the wheel's requirements", constraints, result.stdout[-3000:], result.stderr[-3000:])
    return python


SAVE_MODEL = """
import json, sys, torch
from dacapo_nb.models import model_for
from dacapo_nb.tasks import affinities_task
run = json.load(open(sys.argv[1]))
dims = run["task"]["predictor"]["dims"]
torch.save(model_for(affinities_task(dims), dims), sys.argv[2])
"""

CHECK_PREDICTION = """
import json, sys, numpy as np, zarr
raw, pred = zarr.open_array(sys.argv[1], mode="r"), zarr.open_array(sys.argv[2], mode="r")
p = pred[:]
print(json.dumps({"raw": list(raw.shape), "pred": list(p.shape), "dtype": str(p.dtype), "finite": bool(np.isfinite(p).all()),
                  "min": float(p.min()), "max": float(p.max())}))
"""

IMPORT_ALL = """
import importlib, json, pkgutil, sys, dacapo_nb
names = sorted(m.name for m in pkgutil.iter_modules(dacapo_nb.__path__, "dacapo_nb."))
for name in names: importlib.import_module(name)
print(json.dumps({"file": dacapo_nb.__file__, "version": dacapo_nb.__version__, "modules": names}))
"""


def smoke(python: Path, work: Path) -> dict:
    "The smoke job in the venv of `python`, from `work` (outside the source tree): import, train 2 iterations, predict."
    env, bin_ = clean_env(), python.parent
    work.mkdir(parents=True, exist_ok=True)
    timings, t = {}, time.perf_counter()
    imported = sh(python, "-c", "import dacapo_nb", cwd=work, env=env)
    assert imported.returncode == 0, imported.stderr[-4000:]
    everything = sh(python, "-c", IMPORT_ALL, cwd=work, env=env)
    assert everything.returncode == 0, everything.stderr[-4000:]
    info = json.loads(everything.stdout.splitlines()[-1])
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", env=env).stdout.strip())
    assert Path(info["file"]).is_relative_to(site), (info["file"], site)  # the installed copy, not the source tree
    assert "dacapo_nb.widgets" in info["modules"] and "dacapo_nb.cli" in info["modules"], info
    timings["import"] = time.perf_counter() - t

    t = time.perf_counter()
    train = sh(bin_ / "dacapo-nb", "train", "--iterations", "2", "--out", "RUN", cwd=work, env=env)
    assert train.returncode == 0, (train.returncode, train.stderr[-4000:])
    run = work / "RUN"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iteration_00000002.pt"], list(run.rglob("*.pt"))
    assert (run / "snapshot.png").read_bytes()[:4] == b"\x89PNG", sorted(p.name for p in run.iterdir())
    stats = [json.loads(line)["iteration"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats == [0, 1], stats
    timings["train"] = time.perf_counter() - t

    # `dacapo-nb predict` takes a whole model saved with torch.save and the run's newest checkpoint for its weights;
    # the command line writes no such model, so it is built here as `dacapo-nb train` builds it (model_for).
    t = time.perf_counter()
    saved = sh(python, "-c", SAVE_MODEL, run / "run.json", work / "model.pt", cwd=work, env=env)
    assert saved.returncode == 0, saved.stderr[-4000:]
    predict = sh(bin_ / "dacapo-nb", "predict", "model.pt", "RUN/data.zarr/raw", "pred.zarr/affs", "--run", "RUN",
                 cwd=work, env=env)
    assert predict.returncode == 0, (predict.returncode, predict.stderr[-4000:])
    checked = sh(python, "-c", CHECK_PREDICTION, run / "data.zarr" / "raw", work / "pred.zarr" / "affs", cwd=work, env=env)
    assert checked.returncode == 0, checked.stderr[-4000:]
    pred = json.loads(checked.stdout.splitlines()[-1])
    # two affinity channels over the whole raw, sigmoid outputs in [0, 1]
    assert pred["pred"] == [2, *pred["raw"]] and pred["finite"] and 0 <= pred["min"] <= pred["max"] <= 1, pred
    timings["predict"] = time.perf_counter() - t
    return {"version": info["version"], "prediction": pred, "seconds": {k: round(v, 1) for k, v in timings.items()}}


def installed_versions(python: Path, names) -> dict:
    out = sh(python, "-c", "import json, sys, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))",
             *names, env=clean_env())
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def check_metadata(wheel: Path) -> dict:
    "The wheel's METADATA: what a package index shows. Its requirements are settings.ini's, the rest is complete."
    import zipfile
    from email.parser import Parser
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = Parser().parsestr(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    runtime = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    from packaging.requirements import Requirement
    assert sorted(map(str, map(Requirement, runtime))) == sorted(map(str, map(Requirement, requirements()))), (runtime, requirements())
    assert meta["Summary"] and meta["Requires-Python"] == ">=3.11" and meta["License"] == "Apache-2.0", dict(meta)
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) == {"Documentation", "Source", "Issues"} and all(u.startswith("https://") for u in urls.values()), urls
    classifiers = meta.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers and any(c.startswith("Development Status") for c in classifiers), classifiers
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert meta["Description-Content-Type"] == "text/markdown", meta["Description-Content-Type"]
    body = meta.get_payload()
    assert body.startswith("<!-- Generated from nbs/index.ipynb") and "# dacapo_nb" in body, body[:300]
    relative = re.findall(r"\]\((?!https?:|#)[^)]*\)", body)
    assert not relative, relative  # links into the repository resolve on the index too
    assert not [n for n in names if n.startswith(("tests/", "nbs/", "bench/"))], names
    return dict(meta)


def test_wheel_in_a_fresh_venv(tmp_path):
    "The wheel with its runtime requirements only (no dev extra: no nbdev, no pytest) imports, trains and predicts."
    start = time.perf_counter()
    wheel = build_wheel(tmp_path)
    check_metadata(wheel)
    built = time.perf_counter()
    try:
        python = make_venv(tmp_path / "venv", wheel)
        installed = time.perf_counter()
        frozen = sh(python, "-m", "pip", "freeze", env=clean_env()).stdout
        dev_only = [n for n in ["nbdev", "pytest", "execnb", "nbclient"] if re.search(rf"(?im)^{n}==", frozen)]
        assert not dev_only, (dev_only, frozen)  # a missing runtime requirement cannot hide behind a dev tool
        versions = installed_versions(python, ["torch", "dacapo_nb"])
        assert versions["torch"].startswith("2.13.0"), versions  # the CPU build, installed first, satisfied `torch>=`
        result = smoke(python, tmp_path / "work")
    finally:
        discard(tmp_path / "venv")  # 1.3 GB; pytest keeps its last three tmp folders
    print(f"wheel test: {time.perf_counter() - start:.0f} s in all (build {built - start:.0f} s, venv and install "
          f"{installed - built:.0f} s); {result}")
