"""Print the sizes of the exported cells of the module notebooks (issue 26: one idea per cell; the goal is a median of
12 lines or less and no cell over 60). A report: the exit status is 0 whatever the figures.

Usage: python tools/cell_sizes.py [notebook ...]   (default: every nbs/*.ipynb)"""
import ast, json, statistics, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def exported_cells(nb: Path):
    "(cell index, source lines without the `#| export` line) of every exported code cell of `nb`."
    cells = json.loads(nb.read_text())["cells"]
    for i, c in enumerate(cells):
        if c["cell_type"] != "code": continue
        lines = "".join(c["source"]).splitlines()
        if lines and lines[0].replace(" ", "") == "#|export": yield i, lines[1:]


def first_definition(lines: list[str]) -> str:
    "The name of the first top-level def, class or assignment of a cell's source ('?' when it does not parse)."
    try: tree = ast.parse("\n".join(lines))
    except SyntaxError: return "?"
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): return node.name
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name): return node.targets[0].id
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name): return node.target.id
    return "(imports)" if tree.body else "(empty)"


def main(paths: list[str]) -> int:
    nbs = [Path(p) for p in paths] or sorted((ROOT / "nbs").glob("*.ipynb"))
    sizes = [(nb.name, i, len(lines), first_definition(lines)) for nb in nbs for i, lines in exported_cells(nb)]
    if not sizes:
        print("no exported cells"); return 0
    n = [s[2] for s in sizes]
    print(f"exported cells: {len(n)}")
    print(f"median lines:   {statistics.median(n):g}")
    print(f"max lines:      {max(n)}")
    print(f"over 30 lines:  {sum(x > 30 for x in n)}")
    print(f"over 60 lines:  {sum(x > 60 for x in n)}")
    for name, i, size, first in sorted((s for s in sizes if s[2] > 60), key=lambda s: -s[2]):
        print(f"  {size:4d}  {name} cell {i}: {first}")
    return 0


if __name__ == "__main__": sys.exit(main(sys.argv[1:]))
