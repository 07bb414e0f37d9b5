"""Regenerate README.md from nbs/index.ipynb, the way nbdev_readme would without Quarto.

    python tools/readme.py           # write README.md
    python tools/readme.py --check   # exit 1 when README.md is not what index.ipynb gives
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NB, README = ROOT / "nbs" / "index.ipynb", ROOT / "README.md"
HEADER = "<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->\n\n"

def _hidden(source: str) -> bool:
    return any(re.match(r"#\|\s*(hide|export|exporti|default_exp|eval:\s*false)\b", line) for line in source.splitlines())

def _strip_directives(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if not line.startswith("#|")).strip("\n")

def _relink(markdown: str) -> str:
    "Links and images relative to nbs/ become relative to the repository root."
    return re.sub(r"(\]\()(?!https?:|#|/|mailto:)([^)]+\))", r"\1nbs/\2", markdown)

def _outputs(cell) -> list:
    parts = []
    for out in cell.get("outputs", []):
        text = out.get("text") or out.get("data", {}).get("text/markdown") or out.get("data", {}).get("text/plain")
        if text: parts.append("```\n" + "".join(text).rstrip("\n") + "\n```")
    return parts

def render(nb_path: Path = NB) -> str:
    cells = json.loads(nb_path.read_text())["cells"]
    parts = []
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            parts.append(_relink(source.strip("\n")))
        elif cell["cell_type"] == "code" and not _hidden(source):
            code = _strip_directives(source)
            if code: parts.append("```python\n" + code + "\n```")
            parts.extend(_outputs(cell))
    return HEADER + "\n\n".join(parts) + "\n"

if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv[1:]:
        if not README.exists() or README.read_text() != text:
            sys.exit("README.md is stale: run `python tools/readme.py` to regenerate it from nbs/index.ipynb")
        print("README.md is in step with nbs/index.ipynb")
    else:
        README.write_text(text)
        print(f"wrote {README.relative_to(ROOT)}")
