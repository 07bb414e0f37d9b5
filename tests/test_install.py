"""dacapo_nb installs like a library: settings.ini's runtime requirements cover what the package imports.

`test_imports_are_declared` reads every import in dacapo_nb/*.py (`ast`) and fails on a third-party module
that `requirements` does not cover.
"""
import ast, configparser, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
