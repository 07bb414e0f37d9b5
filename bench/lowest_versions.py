"""The lowest versions settings.ini declares, installed together into a fresh venv, run the smoke job.

Every requirement with a lower bound (`name>=X`) is pinned to X, or to the lowest release >= X that the package index
has (`pip index versions`); torch stays the CPU build on disk (torch==2.13.0, installed first, as tools/setup.sh does).
Then the wheel goes in with those pins as constraints and tests/test_install.py's smoke job runs from a temporary
folder: import every module, `dacapo-nb train --iterations 2`, `dacapo-nb predict` on the result.

Run by hand, not in CI (a few minutes: it downloads old releases): `.venv/bin/python bench/lowest_versions.py [--keep]`
Prints one JSON line (date, machine, versions, pass/fail) and appends it to bench/results/lowest_versions.jsonl.
"""
import argparse, json, os, platform, re, subprocess, sys, tempfile, time, traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import test_install as ti  # noqa: E402  (the wheel, venv and smoke helpers)

from packaging.version import Version  # noqa: E402


def lower_bounds() -> dict[str, str]:
    "name -> the version of its `>=` bound, for every requirement but torch."
    bounds = {}
    for r in ti.requirements():
        m = re.search(r">=\s*([0-9][^,;\s]*)", r)
        name = ti.requirement_name(r)
        if m and ti.normalize(name) != "torch": bounds[name] = m.group(1)
    return bounds


def lowest_available(name: str, bound: str) -> str | None:
    "The lowest release of `name` >= `bound` that the index has for this Python (None when it cannot say)."
    out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name], capture_output=True, text=True,
                         env=ti.clean_env(), timeout=120).stdout
    m = re.search(r"Available versions: (.*)", out)
    if not m: return None
    versions = [Version(v.strip()) for v in m.group(1).split(",")]
    ok = sorted(v for v in versions if v >= Version(bound) and not v.is_prerelease)
    return str(ok[0]) if ok else None


def machine() -> str:
    cpu = ""
    try: cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration): pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args()
    bounds = lower_bounds()
    pins = {}
    with ThreadPoolExecutor(4) as pool:  # one index query each, a few seconds apiece
        found_all = dict(zip(bounds, pool.map(lowest_available, bounds, bounds.values())))
    for name, bound in bounds.items():
        found = found_all[name]
        pins[name] = found or bound
        print(f"{name}: declared >={bound}, pinned {pins[name]}" + ("" if found else " (index gave no list)"), file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="dacapo_nb_lowest_"))
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(), "pinned": pins}
    start = time.perf_counter()
    try:
        wheel = ti.build_wheel(tmp)
        python = ti.make_venv(tmp / "venv", wheel, [f"{n}=={v}" for n, v in pins.items()])
        result["installed"] = ti.installed_versions(python, ["torch", *pins])
        result["smoke"] = ti.smoke(python, tmp / "work")
        result["result"] = "pass"
    except Exception as e:  # an AssertionError from the helpers carries the values that failed
        traceback.print_exc()
        result["result"] = f"fail: {type(e).__name__}: {str(e)[:3000]}"
    result["seconds"] = round(time.perf_counter() - start)
    if args.keep: print(f"kept {tmp}", file=sys.stderr)
    else: ti.discard(tmp)  # in the background: the venv's 35,000 files can take a minute to delete
    line = json.dumps(result)
    print(line)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    with open(ROOT / "bench" / "results" / "lowest_versions.jsonl", "a") as f: f.write(line + "\n")
    sys.exit(0 if result["result"] == "pass" else 1)


if __name__ == "__main__":
    main()
