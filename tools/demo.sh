#!/usr/bin/env bash
# The main job: set up (.venv) and train the default 2D U-Net on the built-in synthetic data for a short CPU run.
# Writes runs/demo/: snapshots.zarr, checkpoints/, stats.jsonl, run.json and snapshot.png. Extra arguments go to
# `dacapo-nb train` (see `.venv/bin/dacapo-nb train --help`); running it again resumes.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
.venv/bin/dacapo-nb train --iterations 400 --out runs/demo "$@"
