"""The condition networks on the lightness L: the reference CondNet and ours (multi-scale features
plus a pooled global vector)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn import functional as F

# --------------------------------------------------------------------------- colorization


class PaperLightnessNet(nn.Module):
    """The reference colorization CondNet (``colorization_minimal_example/model.py``) for 64x64 L.

    ``L (B, 1, 64, 64)`` normalised -> ``[(B, 64, 64, 64), (B, 128, 32, 32), (B, 128, 16, 16),
    (B, 512)]``; 1,455,680 parameters. The last level pools 16x16 -> 4x4 and flattens, so this
    network (like the reference) only takes 64x64 inputs.
    """

    def __init__(self):
        super().__init__()
        act = nn.LeakyReLU  # slope 0.01, PyTorch's default, as the reference
        self.stages = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(1, 64, 3, padding=1), act(), nn.Conv2d(64, 64, 3, padding=1)),
                nn.Sequential(act(), nn.Conv2d(64, 128, 3, padding=1), act(), nn.Conv2d(128, 128, 3, 2, 1)),
                nn.Sequential(act(), nn.Conv2d(128, 128, 3, 2, 1)),
                nn.Sequential(act(), nn.AvgPool2d(4), nn.Flatten(), nn.Linear(2048, 512)),
            ]
        )

    def forward(self, L: Tensor) -> list[Tensor]:
        feats, h = [], L
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats


class LightnessNet(nn.Module):
    """Our fully convolutional condition network on L, with global context.

    A stack of stages, each a stride-2 3x3 convolution and a residual 3x3 convolution, halves the
    resolution ``len(widths)`` times. The last ``len(out_channels)`` stages are tapped (1x1
    projections to ``out_channels[i]``). A global vector -- the mean over all positions of the
    deepest stage, through a small MLP -- is added to every tap, broadcast over positions: the
    whole photo's context (sky? indoors?) reaches every level without resizing the photo to a
    fixed size, so any aspect ratio works and nothing is squashed.

    ``L (B, 1, H, W)`` normalised, ``H`` and ``W`` divisible by ``2**len(widths)`` ->
    ``[(B, out_channels[i], H / 2**(n - k + i), ...)]`` with ``n = len(widths)``,
    ``k = len(out_channels)``.
    """

    def __init__(self, widths: Sequence[int], out_channels: Sequence[int], global_dim: int):
        super().__init__()
        self.down = nn.ModuleList()
        self.mix = nn.ModuleList()
        c = 1
        for w in widths:
            self.down.append(nn.Conv2d(c, w, 3, stride=2, padding=1))
            self.mix.append(nn.Conv2d(w, w, 3, padding=1))
            c = w
        self.n_taps = len(out_channels)
        tapped = widths[-self.n_taps :]
        self.taps = nn.ModuleList(nn.Conv2d(w, oc, 1) for w, oc in zip(tapped, out_channels, strict=True))
        self.global_mlp = nn.Sequential(nn.Linear(widths[-1], global_dim), nn.LeakyReLU(0.1))
        self.global_out = nn.ModuleList(nn.Linear(global_dim, oc) for oc in out_channels)

    def forward(self, L: Tensor) -> list[Tensor]:
        h, stages = L, []
        for down, mix in zip(self.down, self.mix, strict=True):
            h = F.leaky_relu(down(h), 0.1)
            h = h + F.leaky_relu(mix(h), 0.1)
            stages.append(h)
        g = self.global_mlp(h.mean(dim=(2, 3)))  # (B, global_dim)
        tapped = stages[-self.n_taps :]
        pairs = zip(tapped, self.taps, self.global_out, strict=True)
        return [tap(s) + out(g)[:, :, None, None] for s, tap, out in pairs]
