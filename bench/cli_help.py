"""How long `dacapo-nb --help` takes before its first line, against importing the training stack (torch, gunpowder).

Each command runs `--repeats` times in a fresh process; the median wall time is printed, and the ratio to the
baseline (`python -c "import dacapo_nb.training"`, what `--help` cost when the package root imported every module).
Always exits 0: a benchmark reports.

    python bench/cli_help.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def median_seconds(command: list, repeats: int) -> float:
    "The median wall time of `command` over `repeats` fresh processes."
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    script = Path(sys.executable).parent / "dacapo-nb"
    commands = {"dacapo-nb --help": [str(script), "--help"],
                "dacapo-nb train --help": [str(script), "train", "--help"],
                "python -c 'import dacapo_nb'": [sys.executable, "-c", "import dacapo_nb"],
                "baseline: python -c 'import dacapo_nb.training'": [sys.executable, "-c", "import dacapo_nb.training"]}
    seconds = {name: median_seconds(command, args.repeats) for name, command in commands.items()}
    baseline = seconds[next(n for n in seconds if n.startswith("baseline"))]
    for name, s in seconds.items():
        print(f"{name:50s} {s:6.3f} s  ({s / baseline:.3f} of the baseline)")


if __name__ == "__main__":
    from _main import run_main
    run_main(main)
