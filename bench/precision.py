"""float32 against bfloat16 mixed precision on the CPU: the 2D tutorial's training, side by side.

The 2D tutorial's data (synthetic 512^2 train, 256^2 test), task (2D affinities), model (`model_for(task, 2)`),
augments and trainer settings (batch 2, learning rate 3e-3, warm-up 20, seed 0, no data fetchers, so that the two
runs see the same samples), trained 400 iterations once with `mixed_precision=False` and once with `True`; then the
test volume is predicted (in the run's precision), segmented (seed threshold 0.9, min size 20) and scored.
Prints iterations/s, loss curves (mean over each 50 iterations) and the final scores of both; writes a figure of the
two loss curves when --figure is given. Always exits 0.

    python bench/precision.py [--iterations 400] [--figure bench/results/precision.png]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def run(precision: str, args, tmp: Path) -> dict:
    import numpy as np
    import torch
    import dacapo_nb as dn
    train = dn.make_synthetic_data(tmp / "train.zarr", dims=2, shape=(512, 512), seed=0)
    test = dn.make_synthetic_data(tmp / "test.zarr", dims=2, shape=(256, 256), seed=1)
    task = dn.affinities_task(2)
    torch.manual_seed(0)
    model = dn.model_for(task, 2)
    augments = [dn.SimpleAugmentConfig(),
                dn.ElasticAugmentConfig(control_point_spacing=(80, 80), control_point_displacement_sigma=(8.0, 8.0), rotate=True),
                dn.IntensityAugmentConfig(scale=(0.8, 1.2), shift=(-0.1, 0.1))]
    bf16 = precision == "bf16"
    config = dn.GunpowderTrainerConfig(batch_size=2, learning_rate=3e-3, warmup_iterations=20, augments=augments,
                                       num_data_fetchers=0, seed=0, mixed_precision=bf16)
    start = time.perf_counter()
    losses = [s.loss for s in dn.run_training(tmp / f"run_{precision}", model, task, [train], config,
                                              iterations=args.iterations, device="cpu", checkpoint_interval=None)]
    seconds = time.perf_counter() - start
    affs = dn.predict(model, test.raw, tmp / f"run_{precision}" / "predictions.zarr", device="cpu", progress=False,
                      mixed_precision=bf16)
    seg = dn.affinities_to_segmentation(affs[affs.roi], seed_threshold=0.9, min_size=20)
    scores = dn.evaluate(seg, test.gt[affs.roi])
    return {"losses": np.array(losses), "iterations_per_s": len(losses) / seconds, "scores": scores,
            "affs": affs[affs.roi]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=400)
    p.add_argument("--figure", default=None, help="write the two loss curves to this PNG")
    args = p.parse_args()
    import numpy as np
    import torch
    from dacapo_nb.models import cpu_has_bf16
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU bfloat16 units: {cpu_has_bf16()}", flush=True)
    if not cpu_has_bf16():
        print("this CPU has no bfloat16 units: nothing to compare (mixed precision stays off)")
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_precision_") as tmp:
        for precision in ("fp32", "bf16"):
            results[precision] = run(precision, args, Path(tmp))
            r = results[precision]
            print(f"{precision}: {r['iterations_per_s']:.2f} iterations/s", flush=True)
    fp32, bf16 = results["fp32"], results["bf16"]
    print(f"\nbf16/fp32 iterations/s: {bf16['iterations_per_s'] / fp32['iterations_per_s']:.2f}")
    print("loss, mean of each 50 iterations:")
    print("  iterations  " + "  ".join(f"{i:>5d}" for i in range(0, args.iterations, 50)))
    for name, r in results.items():
        means = [r["losses"][i:i + 50].mean() for i in range(0, args.iterations, 50)]
        print(f"  {name:10s}  " + "  ".join(f"{m:.3f}" for m in means))
    print("scores on the test volume:")
    keys = ["voi", "voi_split", "voi_merge", "adapted_rand_error", "num_segments", "num_gt_objects"]
    print("  " + " ".join(f"{k:>18s}" for k in ["precision"] + keys))
    for name, r in results.items():
        print("  " + " ".join([f"{name:>18s}"] + [f"{r['scores'][k]:>18.3f}" if isinstance(r['scores'][k], float)
                                                  else f"{r['scores'][k]:>18d}" for k in keys]))
    gap = np.abs(fp32["affs"] - bf16["affs"])
    print(f"affinities of the two models: mean |difference| {gap.mean():.4f}, largest {gap.max():.3f} "
          f"(two trainings, not one model in two precisions)")
    if args.figure:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
        for name, r in results.items():
            smooth = np.convolve(r["losses"], np.ones(20) / 20, mode="valid")
            ax.plot(np.arange(len(smooth)) + 19, smooth, label=f"{name} (VOI {r['scores']['voi']:.2f})")
        ax.set_xlabel("iteration"); ax.set_ylabel("loss (20-iteration mean)"); ax.legend(); fig.tight_layout()
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    from _main import run_main
    run_main(main)
