"""How the colour upsampler moves the colorization numbers: the shipped guided filter against
alternatives, on the same samples in the same run.

``cinn colorize`` predicts ab at the model's working resolution (half of L's for 64x64 crops) and
brings it to full size with ``color.guided_upsample`` steered by the full-resolution lightness.
This script draws the 8 samples of every validation crop once (as ``cinn eval colorize``: seed 0,
T = 1) and scores them under each upsampler, with the photo's own colour at the working
resolution (the ``ceiling`` rows of ``cinn eval colorize``) scored alike:

    python bench/upsample.py --data ../shared/data/photos/val     # about 1 min on 1 core

Columns: ceiling RMSE and colourfulness (how faithfully the upsampler restores the true colour),
then the samples' best-of-8 RMSE (and its ratio to the grayscale baseline) and colourfulness
ratio; the last column is each upsampler's best-of-8 relative to the shipped one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from cinn_cli.batch.photos import center_crop
from cinn_cli.tasks.colorize.color import guided_upsample, lab_pair, lab_to_rgb, resize
from cinn_cli.tasks.colorize.colorize import load_colorize_model
from cinn_cli.tasks.colorize.evaluate import sampled_ab
from cinn_cli.tasks.colorize.metrics import best_of_n_rmse, colourfulness
from cinn_cli.tasks.colorize.train import load_photos


def back_projected(ab: torch.Tensor, L: torch.Tensor, rounds: int) -> torch.Tensor:
    """The guided filter's output corrected ``rounds`` times so that its area average at the
    working resolution comes back to ``ab`` (iterative back-projection, bilinear residual)."""
    up = guided_upsample(ab, L / 100.0)
    for _ in range(rounds):
        up = up + resize(ab - F.adaptive_avg_pool2d(up, tuple(ab.shape[-2:])), tuple(L.shape[-2:]))
    return up


UPSAMPLERS = {
    "guided filter (shipped)": lambda ab, L: guided_upsample(ab, L / 100.0),
    "bilinear": lambda ab, L: resize(ab, tuple(L.shape[-2:])),
    "guided + 1 back-projection": lambda ab, L: back_projected(ab, L, 1),
    "guided + 3 back-projections": lambda ab, L: back_projected(ab, L, 3),
}


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/photos/val"))
    ap.add_argument("--weights", default=None, help="Model file (default: the shipped colorization model).")
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, _ = load_colorize_model(args.weights, torch.device("cpu"))
    crops = torch.stack([torch.from_numpy(center_crop(p, 64)).permute(2, 0, 1) for p in load_photos(args.data)])
    target = crops.float() / 255.0  # (N, 3, 64, 64)
    _, L = lab_pair(target)
    own_ab, _ = lab_pair(target, model.config.ab_downscale)
    keys = [str(j) for j in range(len(L))]  # the keys and seed of ``cinn eval colorize``: the same draws
    samples_ab = sampled_ab(model, L, keys, args.n, args.temperature, seed=0)  # n x (N, 2, h, w)

    def rgb(ab: torch.Tensor, up) -> torch.Tensor:
        return lab_to_rgb(torch.cat([L, up(ab, L)], dim=1))

    m_gt = colourfulness(target).mean().item()
    gray = lab_to_rgb(torch.cat([L, torch.zeros_like(L).expand(-1, 2, -1, -1)], dim=1))
    gray_b8 = best_of_n_rmse(gray.unsqueeze(1), target).mean().item()
    print(f"{len(L)} crops of {args.data}, n={args.n}, T={args.temperature}; gray baseline best-of-n {gray_b8:.4f}")
    columns = ("ceil RMSE", "ceil col", "best-of-n", "x gray", "col", "vs shipped")
    print(f"{'upsampler':30s} " + " ".join(f"{c:>{w}s}" for c, w in zip(columns, (9, 8, 9, 6, 6, 10), strict=True)))
    reference = None
    for name, up in UPSAMPLERS.items():
        ceiling = rgb(own_ab, up)
        samples = torch.stack([rgb(ab, up) for ab in samples_ab], dim=1)
        b8 = best_of_n_rmse(samples, target).mean().item()
        reference = reference or b8
        print(
            f"{name:30s} {best_of_n_rmse(ceiling.unsqueeze(1), target).mean().item():9.4f} "
            f"{colourfulness(ceiling).mean().item() / m_gt:8.3f} {b8:9.4f} {b8 / gray_b8:6.3f} "
            f"{colourfulness(samples).mean().item() / m_gt:6.3f} {b8 / reference:10.3f}"
        )


if __name__ == "__main__":
    main()
