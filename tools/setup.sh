# Sourced by tools/test.sh and the other tools: create .venv (Python 3.11) and install dacapo_nb with its dev tools.
# torch is installed first, pinned to the CPU build, so that no resolver ever pulls a CUDA build.
# Each step says what it does before it starts (the first install downloads for a few minutes; later ones take seconds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
step() { echo "setup: $*" >&2; }
if [ ! -x .venv/bin/python ]; then
  PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
  "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"dacapo_nb needs Python 3.11, found {sys.version.split()[0]} at {sys.executable}: set PYTHON=/path/to/python3.11"'
  step "creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
  FIRST=" (the first time this downloads several hundred MB: a few minutes)"
else
  FIRST=""
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
step "installing torch 2.13.0, the CPU build, into .venv${FIRST}"
.venv/bin/python -m pip install -q torch==2.13.0 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
step "installing dacapo_nb (editable) with gunpowder, zarr and its dev tools"
.venv/bin/python -m pip install -q -e ".[dev]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
step "done: .venv is ready"
