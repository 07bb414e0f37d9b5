#!/usr/bin/env bash
# Open the tutorials and exercises in JupyterLab, from the project's .venv: set it up, install JupyterLab into it
# (once), copy the exercises into my_exercises/ (tools/exercises.sh: your answers stay out of git's way), then start
# JupyterLab at the project's root. Extra arguments go to `jupyter lab` (e.g. --no-browser --port 8888).
set -euo pipefail
source "$(dirname "$0")/setup.sh"
if ! .venv/bin/python -c "import jupyterlab" 2>/dev/null; then
  echo "lab: installing JupyterLab into .venv (once)" >&2
  .venv/bin/python -m pip install -q "jupyterlab>=4"
fi
bash tools/exercises.sh my_exercises
echo "lab: starting JupyterLab: tutorials in nbs/tutorials/, your exercises in my_exercises/" >&2
exec .venv/bin/jupyter lab "$@"
