#!/usr/bin/env bash
# Set up (.venv) and run every test: the unit tests inside the notebooks (nbdev_test), then tests/ (pytest).
set -euo pipefail
source "$(dirname "$0")/setup.sh"
export MPLBACKEND=Agg
echo "== nbdev_test: the tests inside the notebooks"
.venv/bin/nbdev_test --n_workers 2 --timing
echo "== pytest: kernel-backed, browser and end-to-end tests"
.venv/bin/python -m pytest tests/ -q -p no:cacheprovider
