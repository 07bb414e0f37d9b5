#!/usr/bin/env bash
# Set up (.venv) and run every test: the unit tests inside the notebooks (nbdev_test), then tests/ (pytest).
set -euo pipefail
source "$(dirname "$0")/setup.sh"
export MPLBACKEND=Agg
echo "== nbdev_test: the tests inside the notebooks"
# Exercise notebooks (nbs/exercises/exNN_*.ipynb) fail their checks by design and are skipped (tests/test_exercises.py
# runs them); their _solution twins run. '^[_.]' keeps nbdev's default skip of hidden and private files.
.venv/bin/nbdev_test --n_workers 2 --timing --skip_file_re '^[_.]|^ex\d+_(?!.*_solution\.ipynb$)'
echo "== pytest: kernel-backed, browser and end-to-end tests"
.venv/bin/python -m pytest tests/ -q -p no:cacheprovider
