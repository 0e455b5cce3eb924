"""Sampling temperature per latent level: how it moves colourfulness and best-of-8 on the crops.

A colorize model's latent has one level per exit (the shipped model: 4x16x16, 8x8x8 and
32x4x4 for a 64x64 crop, finest first). ``cinn eval colorize --level-temperatures`` scores one
setting; this script scores several on the 64x64 validation crops only (no whole photos), each
at several seeds, so a setting is chosen on seeds other than the one the README reports:

    python bench/level_temperatures.py --data ../shared/data/photos/val --seeds 1,2,3 \\
        1,1,1 1.05,1.05,1.05 0.5,0.5,1.2     # about 10 s per setting and seed on 2 cores

Per setting: colourfulness ratio (samples / photos; target 0.8-1.2) and best-of-8 RMSE as a
multiple of the grayscale baseline's (target <= 0.75), per seed and their mean, and the mean
best-of-1 RMSE. Each number is what ``cinn eval colorize --level-temperatures SETTING --seed S``
prints for the crops.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cinn_cli.tasks.colorize.evaluate import evaluate_colorize


def parse_setting(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("settings", nargs="+", type=parse_setting, help="Factors per level, finest first, e.g. 0.5,0.5,1.2")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/photos/val"))
    ap.add_argument("--weights", default=None, help="Model file (default: the shipped colorization model).")
    ap.add_argument("--seeds", default="1,2,3", help="Comma-separated eval seeds (the README reports seed 0).")
    ap.add_argument("-t", "--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]

    print(f"{args.weights or 'shipped model'}, crops of {args.data}, n=8, T={args.temperature}, seeds {seeds}")
    head = f"{'levels':>16s}  {'colourfulness ratio per seed':>30s} {'mean':>6s}"
    print(f"{head}  {'best-of-8 x gray':>30s} {'mean':>6s}  b1")
    for setting in args.settings:
        runs = [
            evaluate_colorize(
                weights=args.weights,
                data_dir=args.data,
                n=8,
                temperature=args.temperature,
                device=torch.device("cpu"),
                seed=seed,
                whole=False,
                level_temperatures=setting,
            )
            for seed in seeds
        ]
        col = [r["colourfulness_ratio"] for r in runs]
        b8 = [r["best_of_8_rmse"] / r["gray_best_of_8_rmse"] for r in runs]
        b1 = sum(r["best_of_1_rmse"] for r in runs) / len(runs)
        name = ",".join(f"{t:g}" for t in setting)
        print(
            f"{name:>16s}  {' '.join(f'{c:.3f}' for c in col):>30s} {sum(col) / len(col):6.3f}  "
            f"{' '.join(f'{b:.3f}' for b in b8):>30s} {sum(b8) / len(b8):6.3f}  {b1:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
