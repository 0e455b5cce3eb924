"""The colorization cINN: ab colour channels given the lightness L (CIE Lab units).

    zs, logdet = model(ab, L)      # ab (B, 2, h, w), L (B, 1, H, W) with H = ab_downscale * h
    ab = model.inverse(zs, L)
    model.log_prob(ab, L)          # (B,) natural-log density of ab in Lab units

``logdet`` includes the fixed normalisation of ab, so densities (and bits/dim) are in Lab units
whatever the normalisation. The condition network on L is trained jointly with the flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from cinn_cli.flows.base import ConditionalFlow, ConfigDict, _init_subnets
from cinn_cli.flows.blocks import (
    AffineCoupling,
    ConvSubnet,
    ExitSplit,
    FCSubnet,
    FixedOrthogonal,
    FixedPermutation,
    Flatten,
    Flow,
    HaarDownsample,
)
from cinn_cli.tasks.colorize.condnet import LightnessNet, PaperLightnessNet


@dataclass(frozen=True)
class ColorizeConfig(ConfigDict):
    """Colorization cINN.

    ``arch="paper"``: the reference ``colorization_minimal_example`` at 64x64 (14 GLOW couplings,
    random channel permutations, Haar with rebalance 0.5, a flattened fully connected last level,
    the reference CondNet; 11,010,760 parameters). Fixed size: 64x64 only. The fields below
    ``arch`` up to ``global_dim`` are not used by it.

    ``arch="multiscale"`` (ours, fully convolutional): ab at ``1 / ab_downscale`` of L's
    resolution. Per level ``i``: Haar downsampling (x4 channels), ``blocks[i]`` conv couplings of
    width ``hidden[i]`` each followed by a fixed orthogonal 1x1 mixing, then half the channels exit
    (not after the last level). The condition network (``LightnessNet`` with ``cond_widths``)
    gives ``cond_channels[i]`` channels at each level's resolution plus a pooled global vector.
    H and W must be multiples of ``ab_downscale * 2**len(blocks)``.
    """

    arch: str = "multiscale"
    blocks: tuple[int, ...] = (4, 4, 4)
    hidden: tuple[int, ...] = (48, 64, 96)
    cond_channels: tuple[int, ...] = (32, 48, 64)
    cond_widths: tuple[int, ...] = (32, 64, 96, 128)
    global_dim: int = 128
    subnet_depth: int = 3
    clamp: float = 1.5
    init_std: float = 0.0  # >0: N(0, init_std) for the subnets' inner weights; 0: PyTorch default
    ab_downscale: int = 2
    crop_size: int = 64  # evaluation crops, and training crops unless --crop-sizes says otherwise
    # Short side of L that `cinn colorize` runs the model at. Training crops are windows into
    # photos (short side <= 256) at 1, 1/2 and 1/4 of their size: with 64-pixel crops, scenes
    # 64-256 pixels high, 64 the rarest edge. At 128 whole photos came out with local colour; at
    # 64, pale and often one tint (README, Colorization). The shipped model was fine-tuned on
    # 128-pixel crops too, so at 128 it runs on inputs the size of some it was trained on.
    work_size: int = 128
    # Sampling: latent level l (exit order, finest first) is drawn at T x level_temperatures[l]
    # (empty: 1 for every level). The coarsest level carries each region's colour, the finer ones
    # its texture; at 1 everywhere the shipped model's 64x64 colourings are paler than the photos
    # (colourfulness 0.75); raising the coarse level and calming the fine ones gives 0.81 at about
    # the same best-of-8 (0.737 x gray against 0.734; README, Colorization: temperature per latent level).
    level_temperatures: tuple[float, ...] = ()
    lab_offset: tuple[float, ...] = (47.5, 2.4, 7.4)  # the reference code's L, a, b normalisation
    lab_scale: tuple[float, ...] = (25.6, 11.2, 16.8)
    mixing_seed: int = 0

    task = "colorize"


COLORIZE_PRESETS: dict[str, ColorizeConfig] = {
    # colorization_minimal_example: 9,555,080 (INN) + 1,455,680 (CondNet) parameters; the
    # reference inits all INN weights N(0, 0.02); we do that but zero the last subnet layers.
    "paper": ColorizeConfig(arch="paper", ab_downscale=1, clamp=1.0, init_std=0.02, work_size=64),
    "default": ColorizeConfig(),
}


def _build_paper(cfg: ColorizeConfig) -> tuple[Flow, nn.Module]:
    """The reference INN: 2x64x64 -> exits 6x32x32, 4x16x16 and a 1024-vector."""
    seeds = iter(range(cfg.mixing_seed, cfg.mixing_seed + 100))
    conv = partial(ConvSubnet, depth=2)
    steps: list[nn.Module] = [
        AffineCoupling(2, partial(conv, c_cond=64, hidden=32), clamp=1.0, cond_index=0) for _ in range(2)
    ]
    for level, (hidden, clamp, exit_n) in enumerate(((64, 1.0, 6), (128, 0.6, 4)), start=1):
        steps.append(HaarDownsample(rebalance=0.5))
        for k in range(4):  # 1x1 and 3x3 kernels alternate
            sub = partial(conv, c_cond=128, hidden=hidden, kernel=1 if k % 2 == 0 else 3)
            steps += [AffineCoupling(8, sub, clamp=clamp, cond_index=level), FixedPermutation(8, next(seeds))]
        steps.append(ExitSplit(exit_n))
    steps.append(Flatten((4, 16, 16)))
    for _ in range(4):
        sub = partial(FCSubnet, d_cond=512, hidden=512)
        steps += [AffineCoupling(1024, sub, clamp=0.6, cond_index=3), FixedPermutation(1024, next(seeds))]
    return Flow(steps), PaperLightnessNet()


def _build_multiscale(cfg: ColorizeConfig) -> tuple[Flow, nn.Module]:
    n = len(cfg.blocks)
    if not (len(cfg.hidden) == len(cfg.cond_channels) == n):
        raise ValueError("blocks, hidden and cond_channels need one entry per level")
    extra = int(math.log2(cfg.ab_downscale))
    if 2**extra != cfg.ab_downscale or len(cfg.cond_widths) != n + extra:
        raise ValueError("ab_downscale must be a power of 2 and cond_widths needs log2(ab_downscale) + levels entries")
    seeds = iter(range(cfg.mixing_seed, cfg.mixing_seed + 10_000))
    steps: list[nn.Module] = []
    channels = 2
    for level in range(n):
        steps.append(HaarDownsample())
        channels *= 4
        sub = partial(ConvSubnet, c_cond=cfg.cond_channels[level], hidden=cfg.hidden[level], depth=cfg.subnet_depth)
        for _ in range(cfg.blocks[level]):
            steps.append(AffineCoupling(channels, sub, clamp=cfg.clamp, cond_index=level))
            steps.append(FixedOrthogonal(channels, seed=next(seeds)))
        if level < n - 1:
            steps.append(ExitSplit(channels // 2))
            channels -= channels // 2
    return Flow(steps), LightnessNet(cfg.cond_widths, cfg.cond_channels, cfg.global_dim)


class ColorizeCINN(ConditionalFlow):
    """ab given L, both in Lab units. See the module docstring for the call pattern."""

    def __init__(self, config: ColorizeConfig):
        super().__init__()
        self.config = config
        build = {"paper": _build_paper, "multiscale": _build_multiscale}.get(config.arch)
        if build is None:
            raise ValueError(f"unknown colorization architecture {config.arch!r} (expected 'paper' or 'multiscale')")
        self.flow, self.cond_net = build(config)
        _init_subnets(self.flow, config.init_std)
        self.check_level_temperatures(config.level_temperatures)

    # ---- sizes

    @property
    def size_multiple(self) -> int:
        """L's height and width must be multiples of this (the paper model: exactly 64)."""
        cfg = self.config
        return 64 if cfg.arch == "paper" else cfg.ab_downscale * 2 ** len(cfg.blocks)

    def check_size(self, height: int, width: int) -> None:
        m = self.size_multiple
        if self.config.arch == "paper" and (height, width) != (64, 64):
            raise ValueError(f"the paper colorization model takes 64x64 L only, got {height}x{width}")
        if height % m or width % m or height < m or width < m:
            raise ValueError(f"L must be a positive multiple of {m} pixels on each side, got {height}x{width}")

    def ab_size(self, height: int, width: int) -> tuple[int, int]:
        """ab's ``(h, w)`` for L of ``(height, width)``."""
        return height // self.config.ab_downscale, width // self.config.ab_downscale

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """L's size for a photo of ``(height, width)``: short side ``work_size``, the long side
        keeping the aspect ratio, both rounded to ``size_multiple`` (the paper model: 64x64)."""
        if self.config.arch == "paper":
            return 64, 64
        m, short = self.size_multiple, self.config.work_size
        scale = short / min(height, width)
        return tuple(max(m, round(side * scale / m) * m) for side in (height, width))

    @property
    def n_latent_levels(self) -> int:
        """The number of latent levels (the same for every photo size): one per exit, plus the rest."""
        return 1 + sum(isinstance(step, ExitSplit) for step in self.flow.steps)

    def check_level_temperatures(self, temps: tuple[float, ...]) -> None:
        """Raise ``ValueError`` unless ``temps`` is empty or one non-negative factor per latent level."""
        if temps and (len(temps) != self.n_latent_levels or min(temps) < 0):
            raise ValueError(
                f"level temperatures must be {self.n_latent_levels} non-negative numbers (one per latent level, "
                f"finest first), got {','.join(f'{t:g}' for t in temps)}"
            )

    def level_temperatures(self, temperature: float) -> list[float]:
        """The standard deviation of each latent level's draw at sampling temperature ``temperature``."""
        profile = self.config.level_temperatures or (1.0,) * self.n_latent_levels
        return [temperature * t for t in profile]

    def latent_shapes(self, height: int, width: int) -> list[tuple[int, ...]]:
        """Latent level shapes (without batch), in exit order, for L of ``(height, width)``."""
        self.check_size(height, width)
        return self.flow.latent_shapes((2, *self.ab_size(height, width)))

    # ---- fixed normalisation

    def cond_feats(self, L: Tensor, dtype: torch.dtype | None = None) -> list[Tensor]:
        """The features of lightness ``L (B, 1, H, W)`` (Lab units; computed in L's dtype)."""
        self.check_size(*L.shape[-2:])
        return self.cond_net((L - self.config.lab_offset[0]) / self.config.lab_scale[0])

    def _ab_affine(self, ref: Tensor) -> tuple[Tensor, Tensor]:
        off = torch.tensor(self.config.lab_offset[1:], dtype=ref.dtype, device=ref.device)
        scale = torch.tensor(self.config.lab_scale[1:], dtype=ref.dtype, device=ref.device)
        return off[:, None, None], scale[:, None, None]

    def preprocess(self, ab: Tensor) -> tuple[Tensor, Tensor]:
        """ab in Lab units -> the flow's input, with its ``(B,)`` log-det (``-h w sum log scale``)."""
        off, scale = self._ab_affine(ab)
        pixels = ab.shape[-2] * ab.shape[-1]
        logdet = -pixels * sum(math.log(s) for s in self.config.lab_scale[1:])
        return (ab - off) / scale, ab.new_full((ab.shape[0],), logdet)

    def postprocess(self, v: Tensor) -> Tensor:
        off, scale = self._ab_affine(v)
        return v * scale + off

    # ---- the map

    def _check_pair(self, ab_hw: tuple[int, int], L: Tensor) -> None:
        if tuple(ab_hw) != self.ab_size(*L.shape[-2:]):
            raise ValueError(f"ab of {ab_hw[0]}x{ab_hw[1]} does not fit L of {L.shape[-2]}x{L.shape[-1]}")

    def forward(self, ab: Tensor, L: Tensor) -> tuple[list[Tensor], Tensor]:
        self._check_pair(tuple(ab.shape[-2:]), L)
        return super().forward(ab, L)

    def inverse(self, zs: list[Tensor], L: Tensor) -> Tensor:
        ab = super().inverse(zs, L)
        self._check_pair(tuple(ab.shape[-2:]), L)
        return ab


def ab_bits_per_dim(log_prob: Tensor, dims: int) -> Tensor:
    """``-log p(ab) / (D ln 2)``: bits per ab dimension, density in Lab units (no offset: ab is
    continuous, not 8-bit data; see EVALUATION.md)."""
    return -log_prob / (dims * math.log(2))
