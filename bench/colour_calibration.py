"""Are the colorization model's random draws wrong, or only uncertain? Whole val photos, `-n` draws.

    python bench/colour_calibration.py                      # shipped model, val, -n 8, seed 0
    python bench/colour_calibration.py --weights FILE --data DIR -n 8 --seed 0 --threads 1

The draws are samples 2..n of ``cinn colorize`` (sample 1, the latent's mode, is left out), made
exactly as ``cinn eval colorize`` makes them (``evaluate.whole_photo_samples``). Per photo, ab in
CIE Lab at a 256-pixel short side (``metrics.reduced_ab``, as the typical ab error), per-pixel
Euclidean distances averaged over pixels:

- ``draw-truth``: mean over draws of |draw - truth|; its mean over photos divided by gray's
  (the truth's mean |ab|) is the random draws' typical ab error ratio of ``cinn eval colorize``.
- ``draw-draw``: mean over pairs of draws of |draw_i - draw_j|. If the truth were one more draw
  from the model's distribution (a calibrated model), ``draw-truth`` would equal it on average.
- ``draw mean-truth``: |mean of the draws - truth|, the model's average colouring.
- ``|draw|``: mean |ab| of the draws.
- ``draw-own``: mean over draws of |draw - own|, where ``own`` is the photo's own colour brought
  down to the model's colour resolution and back up by the same guided filter (the ``ceiling``
  of ``cinn eval colorize``): the part of a draw's error the model could remove at all, without
  the fine colour detail no draw at this resolution can have (``own-truth``, also printed).

Printed as ratios of means over photos:

- ``calibration = draw-truth / draw-draw``: 1 calibrated; above 1, the draws miss the truth by more
  than they differ from one another (confidently wrong colours); below 1, they spread wider than
  their error. ``calibration_own = draw-own / draw-draw``: the same against the colour the model
  could reach at its resolution.
- ``self_typical = draw-draw / |draw|``: the typical-error ratio the model expects of itself if its
  distribution were the truth's. A typical ratio well under 1 needs this well under 1: draws
  that agree on each region's colour. A sampler with the right spread but no knowledge of which
  hue a region has scores about 4/pi = 1.27 here (two random hues on a ring of the same radius).

Last line:

    colour_calibration photos=<N> draws_typical=<draw-truth / gray> pairwise=<draw-draw / gray>
        calibration=<draw-truth / draw-draw> calibration_own=<draw-own / draw-draw> own=<own-truth / gray>
        self_typical=<draw-draw / |draw|> mean_draw=<draw mean-truth / gray>
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from cinn_cli.tasks.colorize.colorize import full_size_rgb, load_colorize_model
from cinn_cli.tasks.colorize.evaluate import whole_photo_samples
from cinn_cli.tasks.colorize.metrics import reduced_ab
from cinn_cli.tasks.colorize.transfer import photo_ab


def photo_distances(samples: torch.Tensor, target: torch.Tensor, own: torch.Tensor) -> dict[str, float]:
    """``samples (n, 3, H, W)`` draws (n >= 2), ``target (3, H, W)`` and ``own (3, H, W)`` (the
    photo's colour through the model's resolution), RGB in [0, 1] -> the mean per-pixel ab
    distances of the module docstring."""
    draws = reduced_ab(samples)  # (n, 2, h, w)
    truth = reduced_ab(target.unsqueeze(0))[0]
    own_ab = reduced_ab(own.unsqueeze(0))[0]
    pairs = itertools.combinations(range(draws.shape[0]), 2)
    return {
        "truth": float(truth.norm(dim=0).mean()),
        "draw_truth": float((draws - truth).norm(dim=1).mean()),
        "draw_own": float((draws - own_ab).norm(dim=1).mean()),
        "own_truth": float((own_ab - truth).norm(dim=0).mean()),
        "draw_draw": float(torch.stack([(draws[i] - draws[j]).norm(dim=0).mean() for i, j in pairs]).mean()),
        "mean_truth": float((draws.mean(0) - truth).norm(dim=0).mean()),
        "draw": float(draws.norm(dim=1).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None, help="Model file (default: the shipped colorization model).")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/photos/val"))
    ap.add_argument("-n", type=int, default=8, help="samples per photo, as cinn eval colorize -n (sample 1 left out)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.n < 3:
        ap.error("-n must be at least 3 (two draws besides the mode)")
    torch.set_num_threads(args.threads)

    model, _ = load_colorize_model(args.weights, torch.device("cpu"))
    rows = []
    print(f"{'photo':40s} {'gray':>6s} {'draw-truth':>10s} {'draw-draw':>9s} {'mean-truth':>10s} {'|draw|':>6s}")
    for rel, rgb, L, L_work, samples in whole_photo_samples(model, args.data, args.n, 1.0, args.seed):
        target = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255.0)
        with torch.no_grad():
            own = full_size_rgb(L, photo_ab(model, rgb, L_work))[0]
        d = photo_distances(samples[0, 1:], target, own)
        rows.append(d)
        print(
            f"{rel.as_posix()[:40]:40s} {d['truth']:6.2f} {d['draw_truth']:10.2f} {d['draw_draw']:9.2f} "
            f"{d['mean_truth']:10.2f} {d['draw']:6.2f}"
        )
    if not rows:
        raise SystemExit(f"no readable photos in {args.data}")
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    print(
        f"colour_calibration photos={len(rows)} draws_typical={mean['draw_truth'] / mean['truth']:.3f} "
        f"pairwise={mean['draw_draw'] / mean['truth']:.3f} calibration={mean['draw_truth'] / mean['draw_draw']:.3f} "
        f"calibration_own={mean['draw_own'] / mean['draw_draw']:.3f} own={mean['own_truth'] / mean['truth']:.3f} "
        f"self_typical={mean['draw_draw'] / mean['draw']:.3f} mean_draw={mean['mean_truth'] / mean['truth']:.3f}"
    )


if __name__ == "__main__":
    main()
