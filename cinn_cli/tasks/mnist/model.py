"""Frozen model configs and the models built from them (MNIST, and colorization below).

A model owns its condition network and its flow, and knows its data's fixed preprocessing:

    zs, logdet = model(x, c)      # x in data units, logdet includes the preprocessing
    x = model.inverse(zs, c)
    model.log_prob(x, c)          # (B,) natural-log density of x in data units

The config is a frozen dataclass stored as JSON beside the weights (see ``storage``), so a
model file alone rebuilds its model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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
from cinn_cli.tasks.mnist import SAMPLE_TEMPERATURE
from cinn_cli.tasks.mnist.condnet import LabelFeatures, OneHot


@dataclass(frozen=True)
class MnistConfig(ConfigDict):
    """Class-conditional cINN on small images of one size (MNIST's 1x28x28 unless ``image_shape``
    says otherwise: 1 or 3 channels, sides of 4 to 64 pixels, multiples of 4 for "multiscale").

    ``arch="fc"`` is the reference minimal model: flatten, then ``blocks[0]`` x [fixed random
    permutation, fully connected affine coupling of width ``hidden[0]``] on the one-hot label.

    ``arch="multiscale"`` is ours: Haar (1x28x28 -> 4x14x14), ``blocks[0]`` conv couplings
    (subnets ``conv3x3 -> conv(mid_kernel) -> conv3x3``),
    half the channels exit; Haar (-> 8x7x7), ``blocks[1]`` conv couplings, half exit; flatten the
    rest (196) and ``blocks[2]`` fully connected couplings. Fixed orthogonal 1x1 mixing after
    every coupling. The label enters through learned per-class features, ``cond_channels[i]``
    channels (or dimensions) at each level.
    """

    arch: str = "multiscale"
    blocks: tuple[int, ...] = (4, 4, 4)
    hidden: tuple[int, ...] = (64, 128, 256)
    cond_channels: tuple[int, ...] = (8, 8, 32)
    mid_kernel: int = 3  # kernel of the conv subnets' middle layer (3: 3x3-3x3-3x3; 1: Glow's 3x3-1x1-3x3)
    # 1.0, not 1.5: with 1.5 a model trained past ~7 epochs sent a few test images (5627) to
    # 10^5 bits/dim, each coupling scaling their ink by up to e^1.5 (README, MNIST).
    clamp: float = 1.0
    init_std: float = 0.0  # >0: N(0, init_std) for the subnets' inner weights; 0: PyTorch default
    data_mean: float = 0.5  # fixed affine preprocessing v = (x - mean) / std, x in [0, 1]
    data_std: float = 0.5
    logit_alpha: float = 0.05  # >0: v = logit(alpha + (1 - 2 alpha) x) instead (RealNVP)
    mixing_seed: int = 0
    n_classes: int = 10
    # The classes' names, label order (empty: the digits "0"-"9"); `cinn sample --class NAME`.
    class_names: tuple[str, ...] = ()
    # `cinn sample`'s and `cinn eval`'s default -t for this model: data other than MNIST may want another.
    sample_temperature: float = SAMPLE_TEMPERATURE
    # (channels, height, width) of the images; left out of the stored config while it is MNIST's,
    # so MNIST model files are byte for byte what they were before other sizes existed.
    image_shape: tuple[int, int, int] = field(default=(1, 28, 28), metadata={"omit_default": True})

    task = "mnist"


PRESETS: dict[str, MnistConfig] = {
    # The reference code's mnist_minimal_example (24.3 M parameters).
    "paper": MnistConfig(
        arch="fc",
        blocks=(20,),
        hidden=(512,),
        cond_channels=(),
        clamp=1.0,
        init_std=0.01,
        data_mean=0.128,
        data_std=0.305,
        logit_alpha=0.0,
    ),
    # Glow's 3x3-1x1-3x3 subnets: twice the 3x3 model's training throughput on the CPU, which
    # won the equal-time race against the paper preset that the 3x3 model lost (README, MNIST).
    "default": MnistConfig(mid_kernel=1),
}


def _build_fc(cfg: MnistConfig) -> tuple[Flow, nn.Module]:
    d = math.prod(cfg.image_shape)
    subnet = partial(FCSubnet, d_cond=cfg.n_classes, hidden=cfg.hidden[0])
    steps: list[nn.Module] = [Flatten(cfg.image_shape)]
    for k in range(cfg.blocks[0]):
        steps.append(FixedPermutation(d, seed=cfg.mixing_seed + k))
        steps.append(AffineCoupling(d, subnet, clamp=cfg.clamp, cond_index=0))
    return Flow(steps), OneHot(cfg.n_classes)


def _build_multiscale(cfg: MnistConfig) -> tuple[Flow, nn.Module]:
    if len(cfg.blocks) != 3 or len(cfg.hidden) != 3 or len(cfg.cond_channels) != 3:
        raise ValueError("the multiscale MNIST model needs 3 entries in blocks, hidden and cond_channels")
    c0, h0, w0 = cfg.image_shape
    seed = iter(range(cfg.mixing_seed, cfg.mixing_seed + 10_000))
    steps: list[nn.Module] = []
    cond_shapes: list[tuple[int, ...]] = []
    channels, h, w = c0, h0, w0
    for level in range(2):
        steps.append(HaarDownsample())
        channels, h, w = channels * 4, h // 2, w // 2
        cc = cfg.cond_channels[level]
        cond_shapes.append((cc, h, w))
        subnet = partial(ConvSubnet, c_cond=cc, hidden=cfg.hidden[level], mid_kernel=cfg.mid_kernel)
        for _ in range(cfg.blocks[level]):
            steps.append(AffineCoupling(channels, subnet, clamp=cfg.clamp, cond_index=level))
            steps.append(FixedOrthogonal(channels, seed=next(seed)))
        steps.append(ExitSplit(channels // 2))
        channels -= channels // 2
    steps.append(Flatten((channels, h, w)))
    d = channels * h * w
    cond_shapes.append((cfg.cond_channels[2],))
    subnet = partial(FCSubnet, d_cond=cfg.cond_channels[2], hidden=cfg.hidden[2])
    for _ in range(cfg.blocks[2]):
        steps.append(AffineCoupling(d, subnet, clamp=cfg.clamp, cond_index=2))
        steps.append(FixedPermutation(d, seed=next(seed)))
    return Flow(steps), LabelFeatures(cfg.n_classes, cond_shapes)


def check_image_shape(shape: tuple[int, ...], arch: str) -> None:
    """Refuse an image shape the architecture cannot take, in one sentence."""
    if len(shape) != 3 or shape[0] not in (1, 3) or not all(4 <= s <= 64 for s in shape[1:]):
        raise ValueError(f"image_shape {tuple(shape)} must be (1 or 3 channels, height, width) with sides 4-64")
    if arch == "multiscale" and (shape[1] % 4 or shape[2] % 4):
        raise ValueError(
            f"the multiscale model halves the image twice: {shape[1]}x{shape[2]} needs sides that are multiples of 4"
        )


class MnistCINN(ConditionalFlow):
    """Class-conditional cINN on small images (MNIST's 28x28 digits, or ``config.image_shape``).

    ``x (B, C, H, W)`` in [0, 1] (dequantized pixels ``(k + u) / 256``), ``labels (B,)`` int64.
    ``forward -> (zs, logdet)`` with ``zs`` a list of ``(B, ...)`` latent levels.
    """

    def __init__(self, config: MnistConfig):
        super().__init__()
        self.config = config
        build = {"fc": _build_fc, "multiscale": _build_multiscale}.get(config.arch)
        if build is None:
            raise ValueError(f"unknown MNIST architecture {config.arch!r} (expected 'fc' or 'multiscale')")
        check_image_shape(config.image_shape, config.arch)
        names = config.class_names
        if names and (
            len(names) != config.n_classes
            or len(set(names)) != len(names)
            or not all(isinstance(n, str) and 0 < len(n) <= 100 for n in names)
        ):
            raise ValueError(f"class_names must be {config.n_classes} different names of 1-100 characters")
        self.flow, self.cond_net = build(config)
        _init_subnets(self.flow, config.init_std)
        self.dims = math.prod(config.image_shape)
        # Convolutions run 1.1-1.35x faster on the CPU with channels-last weights (bench/README.md);
        # load_state_dict copies into these tensors, so loaded models keep the layout.
        self.to(memory_format=torch.channels_last)

    def cond_feats(self, labels: Tensor, dtype: torch.dtype) -> list[Tensor]:
        return self.cond_net(labels, dtype)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Label ``i``'s name, for every label (the digits themselves when the file names none)."""
        return self.config.class_names or tuple(str(i) for i in range(self.config.n_classes))

    def preprocess(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Fixed map from data units to the flow's input, with its ``(B,)`` log-det."""
        cfg = self.config
        a = cfg.logit_alpha
        if a > 0:
            p = a + (1 - 2 * a) * x
            v = torch.log(p) - torch.log1p(-p)
            logdet = math.log(1 - 2 * a) - torch.log(p) - torch.log1p(-p)
            return v, logdet.reshape(x.shape[0], -1).sum(1)
        v = (x - cfg.data_mean) / cfg.data_std
        return v, x.new_full((x.shape[0],), -self.dims * math.log(cfg.data_std))

    def postprocess(self, v: Tensor) -> Tensor:
        """Inverse of ``preprocess``."""
        cfg = self.config
        a = cfg.logit_alpha
        if a > 0:
            return (torch.sigmoid(v) - a) / (1 - 2 * a)
        return v * cfg.data_std + cfg.data_mean

    def latent_shapes(self, height: int | None = None, width: int | None = None) -> list[tuple[int, ...]]:
        """Shapes (without batch) of the latent levels, in exit order (one image size per model)."""
        _, h, w = self.config.image_shape
        if (height, width) not in ((None, None), (h, w)):
            raise ValueError(f"this model takes {w}x{h} images only, got {width}x{height}")
        return self.flow.latent_shapes(self.config.image_shape)
