#!/usr/bin/env bash
# The main job: set up (.venv) and train the default 2D U-Net on the built-in synthetic data for a short CPU run.
# Writes runs/demo/: snapshots.zarr, checkpoints/, stats.jsonl, run.json and snapshot.png. Extra arguments go to
# `dacapo-nb train` (see `.venv/bin/dacapo-nb train --help`); running it again resumes.
# Every step prints a line before it starts: setup, loading the package, the data, the pipeline, then a progress bar.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
echo "demo: training into runs/demo (loading torch and gunpowder first: a few seconds)" >&2
.venv/bin/dacapo-nb train --iterations 400 --out runs/demo "$@"
