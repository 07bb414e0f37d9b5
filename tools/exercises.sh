#!/usr/bin/env bash
# Copy the course exercises (not their solutions) into a folder of your own, default my_exercises/ (ignored by git):
# answers written there never conflict with `git pull`, which updates nbs/exercises/. A copy that exists is kept
# (your answers); delete it to get a fresh one. Usage: bash tools/exercises.sh [DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dest=${1:-my_exercises}
mkdir -p "$dest"
for nb in nbs/exercises/ex*.ipynb; do
  case "$nb" in *_solution.ipynb) continue ;; esac
  if [ -e "$dest/$(basename "$nb")" ]; then echo "exercises: kept your $dest/$(basename "$nb")" >&2
  else cp "$nb" "$dest/" && echo "exercises: copied $(basename "$nb") into $dest/" >&2; fi
done
