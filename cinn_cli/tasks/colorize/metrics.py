"""Colour metrics (EVALUATION.md): best-of-n RMSE, sample variance, colourfulness, typical ab error."""

from __future__ import annotations

import torch
from torch import Tensor

# ---- colorization (EVALUATION.md, Colorization) ----------------------------------------------
# ``samples``: (N, n, 3, H, W) RGB in [0, 1], n colourings of each of N images; ``target``:
# (N, 3, H, W) the ground truth. Each function returns one value per image, (N,) float64, so
# batches can be concatenated before averaging over images.


def best_of_n_rmse(samples: Tensor, target: Tensor) -> Tensor:
    """Per image, the smallest RMSE (over pixels and channels) among its n samples."""
    mse = (samples.double() - target.double().unsqueeze(1)).square().flatten(2).mean(2)  # (N, n)
    return mse.amin(1).sqrt()


def best_of_n_rmse_pixel(samples: Tensor, target: Tensor) -> Tensor:
    """The original paper's variant: per pixel and channel the smallest squared error among the
    n samples, then the square root of the image mean."""
    sq = (samples.double() - target.double().unsqueeze(1)).square().amin(1)  # (N, 3, H, W)
    return sq.flatten(1).mean(1).sqrt()


def sample_variance(samples: Tensor) -> Tensor:
    """Per pixel and channel, the variance across the n samples (population, as NumPy's
    ``var``); mean over pixels and channels."""
    return samples.double().var(dim=1, unbiased=False).flatten(1).mean(1)


def colourfulness(rgb: Tensor) -> Tensor:
    """Hasler and Süsstrunk (2003) colourfulness M of ``(..., 3, H, W)`` RGB in [0, 1] -> ``(...)``:
    ``sqrt(std_rg² + std_yb²) + 0.3 sqrt(mean_rg² + mean_yb²)``, rg = R - G, yb = (R + G)/2 - B."""
    r, g, b = rgb.double().unbind(-3)
    rg, yb = (r - g).flatten(-2), ((r + g) / 2 - b).flatten(-2)
    std = (rg.var(-1, unbiased=False) + yb.var(-1, unbiased=False)).sqrt()
    return std + 0.3 * (rg.mean(-1).square() + yb.mean(-1).square()).sqrt()


AB_ERROR_SHORT_SIDE = 256  # EVALUATION.md: ab errors are measured at a 256-pixel short side


def reduced_ab(rgb: Tensor, short_side: int = AB_ERROR_SHORT_SIDE) -> Tensor:
    """``rgb (B, 3, H, W)`` in [0, 1] -> its CIE Lab ab ``(B, 2, h, w)`` (float64,
    ``skimage.color.rgb2lab`` as ``color.rgb_to_lab``) after reducing it (area average, in RGB, like
    a resized photo) to ``short_side`` pixels on its short side (never enlarged)."""
    from cinn_cli.tasks.colorize.color import rgb_to_lab

    H, W = rgb.shape[-2:]
    scale = min(1.0, short_side / min(H, W))
    size = (max(1, round(H * scale)), max(1, round(W * scale)))
    rgb = rgb.double()
    if size != (H, W):
        rgb = torch.nn.functional.interpolate(rgb, size=size, mode="area")
    return rgb_to_lab(rgb.clamp(0.0, 1.0))[:, 1:]


def ab_errors(samples: Tensor, target: Tensor, short_side: int = AB_ERROR_SHORT_SIDE) -> tuple[Tensor, Tensor]:
    """Per-pixel Euclidean ab distance at ``short_side`` (``reduced_ab``): ``samples (N, n, 3, H, W)``,
    ``target (N, 3, H, W)`` -> ``(N, n)`` mean distance per sample and ``(N,)`` the gray baseline's
    (ab = 0), i.e. the original's mean ab magnitude. Typical / best-of-n ab error are the mean / min
    over n of the first."""
    N, n = samples.shape[:2]
    truth = reduced_ab(target, short_side)  # (N, 2, h, w)
    gray = truth.norm(dim=1).flatten(1).mean(1)
    per = reduced_ab(samples.flatten(0, 1), short_side).unflatten(0, (N, n)) - truth.unsqueeze(1)
    return per.norm(dim=2).flatten(2).mean(2), gray
