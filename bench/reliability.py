"""The reliability study of issue 14: bad inputs (how many get a clear early error) and kill -9 of `dacapo-nb train` at
random moments (resume, stats, snapshots, leftover processes). Run: PYTHONPATH=$PWD python bench/reliability.py [trials]"""
import random, sys, tempfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_reliability as t

trials = int(sys.argv[1]) if len(sys.argv) > 1 else 12
clear = 0
from dacapo_nb.datasets import Dataset
for name, (make, message) in t.BAD.items():
    try: make(Dataset, t._array(np.zeros((64, 64), np.uint8))); print(f"not refused: {name}")
    except ValueError as e: clear += message in str(e); print(f"{name}: {e}")
print(f"bad inputs: {clear} of {len(t.BAD)} refused early with the value named")
out = Path(tempfile.mkdtemp()) / "run"
log, final = t.kill_trials(out, trials, random.Random(2026), iterations=300, max_delay=10.0)
for delay, before, after, leaked in log: print(f"kill after {delay:5.1f} s: stats {before} -> {after} lines, leaked {leaked}")
ok = final.returncode == 0
try: t._check_run(out, 300); intact = True
except AssertionError as e: intact = False; print("run damaged:", e)
print(f"kill -9 trials: {trials}; leaked processes: {sum(len(l) for *_, l in log)}; "
      f"killed while training: {sum(1 for _, b, a, _ in log if a > b)}; final run ok: {ok}; "
      f"stats, checkpoints and snapshots intact: {intact}")
