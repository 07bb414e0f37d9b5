"""torch.compile on `predict`: does it pay on a volume of the 2D tutorial's size, after its compile time?

The 2D tutorial's test volume (synthetic 256^2) and model (`model_for(affinities_task(2), 2)`, untrained: the time
does not depend on the weights), predicted on the CPU in float32 and in bf16 (where the CPU has bfloat16 units):
eager twice (the second is timed), then through `CompiledModel` (its first call compiles; the second is timed too).
Prints the seconds of each and the volumes it takes to pay. Always exits 0.

    python bench/compile_predict.py [--shape 256 256]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", type=int, nargs="+", default=[256, 256], help="the test volume's shape (2D)")
    args = p.parse_args()
    import numpy as np
    import torch
    import dacapo_nb as dn
    from dacapo_nb.models import CompiledModel, cpu_has_bf16
    tmp = Path(tempfile.mkdtemp(prefix="bench_compile_predict_"))
    test = dn.make_synthetic_data(tmp / "test.zarr", dims=2, shape=tuple(args.shape), seed=1)
    task = dn.affinities_task(2)
    torch.manual_seed(0)
    model = dn.model_for(task, 2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, volume {tuple(args.shape)}, "
          f"blocks {tuple(model.eval_input_shape if hasattr(model, 'eval_input_shape') else model.input_shape)}", flush=True)
    for bf16 in ([False, True] if cpu_has_bf16() else [False]):
        name = "bf16" if bf16 else "fp32"
        def timed(m, run):
            start = time.perf_counter()
            out = dn.predict(m, test.raw, tmp / f"{name}_{run}.zarr", device="cpu", progress=False, mixed_precision=bf16)
            return time.perf_counter() - start, out[out.roi]
        timed(model, "warm")
        eager_s, eager = timed(model, "eager")
        compiled = CompiledModel(model)
        first_s, _ = timed(compiled, "compile")
        compiled_s, result = timed(compiled, "compiled")
        gain = eager_s - compiled_s
        pays = f"pays after {(first_s - compiled_s) / gain:.0f} volumes" if gain > 0 else "never pays (not faster)"
        print(f"{name}: eager {eager_s:.2f} s; compiled: first {first_s:.1f} s (compiling), then {compiled_s:.2f} s "
              f"({eager_s / compiled_s:.2f}x); {pays}; largest difference {float(np.abs(result - eager).max()):.1e}", flush=True)


if __name__ == "__main__":
    from _main import run_main
    run_main(main)
