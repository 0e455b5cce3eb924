"""A direct colour signal for the condition network during training (``--colour-loss``).

The likelihood alone teaches the L-network what things are only through the density of their
colours. Zhang et al. 2016 ("Colorful Image Colorization") classify each pixel's ab into bins of
a grid with spacing 10 and reweight the cross-entropy by the rarity of the true bin, so that the
dull, common colours (grays, browns) do not drown out the rest. Here a 1x1 convolution on the
condition network's finest features predicts those bins; its loss is added to the flow's
negative log-likelihood with a weight. The head exists only in training (it is not in the model
file); what the model keeps is a condition network whose features name colours.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

GRID = 10.0  # Lab units per bin side (Zhang et al. 2016)
AB_LIMIT = 110.0  # ab in [-110, 110) covers the sRGB gamut
SIDE = int(2 * AB_LIMIT / GRID)  # 22 bins per axis
N_BINS = SIDE * SIDE


def ab_bins(ab: Tensor) -> Tensor:
    """``ab (B, 2, h, w)`` in Lab units -> ``(B, h, w)`` bin indices in ``[0, N_BINS)``."""
    cell = ((ab + AB_LIMIT) / GRID).floor().clamp(0, SIDE - 1).long()
    return cell[:, 0] * SIDE + cell[:, 1]


def rebalancing_weights(counts: Tensor, mix: float = 0.5, sigma: float = 5.0) -> Tensor:
    """``(N_BINS,)`` class weights from bin ``counts (N_BINS,)`` (Zhang et al. eq. 3-4).

    The empirical distribution is smoothed by a Gaussian of ``sigma`` Lab units over the ab
    plane, mixed with a uniform one over the bins the data uses (weight ``mix``), inverted and
    scaled so that the expected weight under the smoothed distribution is 1.
    """
    p = (counts / counts.sum()).reshape(1, 1, SIDE, SIDE).double()
    radius = max(1, math.ceil(3 * sigma / GRID))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64) * GRID
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    p = F.conv2d(F.pad(p, (radius,) * 4), (g[:, None] * g[None, :])[None, None])
    p = (p / p.sum()).reshape(-1)
    used = int((counts > 0).sum())
    w = 1.0 / ((1 - mix) * p + mix / used)
    w = w / (p * w).sum()
    return w.float()


def count_bins(ab_maps: list[Tensor]) -> Tensor:
    """``(N_BINS,)`` pixel counts of the bins over ``ab (1, 2, h, w)`` maps."""
    counts = torch.zeros(N_BINS, dtype=torch.float64)
    for ab in ab_maps:
        counts += torch.bincount(ab_bins(ab).reshape(-1), minlength=N_BINS).double()
    return counts


class ColourHead(nn.Module):
    """Bin logits from the condition network's finest features: ``(B, C, h, w) -> (B, N_BINS, h, w)``."""

    def __init__(self, channels: int, weights: Tensor):
        super().__init__()
        self.classify = nn.Conv2d(channels, N_BINS, 1)
        self.register_buffer("weights", weights.clone())

    def loss(self, feats: Tensor, ab: Tensor) -> Tensor:
        """``(B,)`` rebalanced cross-entropy per pixel, mean over the pixels; ``ab (B, 2, H, W)``
        in Lab units is area-averaged to the features' resolution first."""
        target = ab_bins(F.adaptive_avg_pool2d(ab, feats.shape[-2:]))
        ce = F.cross_entropy(self.classify(feats), target, weight=self.weights, reduction="none")
        return ce.flatten(1).mean(1)
