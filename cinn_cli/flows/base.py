"""What every conditional flow model shares: the model contract, the Gaussian density, bits/dim,
the config JSON round trip and the subnet initialisation.

    zs, logdet = model(x, c)      # x (B, ...) in data units; logdet (B,) includes the preprocessing
    x = model.inverse(zs, c)
    model.log_prob(x, c)          # (B,) natural-log density of x in data units
    model.latent_shapes(h, w)     # the latent levels' shapes (without batch), in exit order
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor, nn

from cinn_cli.flows.blocks import Flow, sum_except_batch, widen

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(zs: list[Tensor]) -> Tensor:
    """``(B,)`` log-density of latent levels ``zs`` (each ``(B, ...)``) under N(0, I), summed in
    float64 for float32 inputs (``widen``)."""
    sq = sum(sum_except_batch(widen(z).pow(2)) for z in zs)
    dims = sum(z[0].numel() for z in zs)
    return -0.5 * sq - 0.5 * dims * _LOG_2PI


class ConditionalFlow(nn.Module):
    """A conditional invertible network with a fixed preprocessing of its data.

    Subclasses build ``self.flow`` (a ``Flow``) and ``self.cond_net`` and define
    ``cond_feats(c, dtype)`` (the condition's features, one tensor per ``cond_index``),
    ``preprocess(x) -> (v, logdet (B,))``, its inverse ``postprocess(v)`` and ``latent_shapes``.
    """

    flow: Flow

    def cond_feats(self, c, dtype: torch.dtype) -> list[Tensor]:
        raise NotImplementedError

    def preprocess(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def postprocess(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def latent_shapes(self, height: int | None = None, width: int | None = None) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def forward(self, x: Tensor, c) -> tuple[list[Tensor], Tensor]:
        return self.forward_features(x, self.cond_feats(c, x.dtype))

    def forward_features(self, x: Tensor, feats: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        """``forward`` given the condition's features (a training loss that uses them too)."""
        v, logdet_pre = self.preprocess(x)
        zs, logdet = self.flow(v, feats)
        return zs, logdet + logdet_pre

    def inverse(self, zs: list[Tensor], c) -> Tensor:
        v, _ = self.flow.inverse(zs, self.cond_feats(c, zs[0].dtype))
        return self.postprocess(v)

    def log_prob(self, x: Tensor, c) -> Tensor:
        """``(B,)`` log-density of ``x`` (natural log, data units) given ``c``."""
        return self.encode(x, c)[1]

    def encode(self, x: Tensor, c) -> tuple[list[Tensor], Tensor]:
        """``(zs, log_prob (B,))`` in one pass: the latent and the density of ``x`` given ``c``."""
        zs, logdet = self(x, c)
        return zs, gaussian_log_density(zs) + logdet

    def log_prob_features(self, x: Tensor, feats: list[Tensor]) -> Tensor:
        """``log_prob`` given the condition's features (a training loss that uses them too)."""
        zs, logdet = self.forward_features(x, feats)
        return gaussian_log_density(zs) + logdet


class ConfigDict:
    """JSON round trip shared by the frozen config dataclasses (lists come back as tuples)."""

    def to_dict(self) -> dict[str, Any]:
        """Every field, except those marked ``metadata={"omit_default": True}`` while they hold
        their default: a field added later then leaves the files of older models' kind unchanged."""
        d = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.metadata.get("omit_default") and getattr(self, f.name) == f.default:
                del d[f.name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config field(s) {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _init_subnets(flow: nn.Module, std: float) -> None:
    """Gaussian init of every subnet weight except the (zeroed) last layers."""
    if std <= 0:
        return
    for name, p in flow.named_parameters():
        if ".last." not in name:
            nn.init.normal_(p, 0.0, std)


def bits_per_dim(log_prob_y: Tensor, dims: int, levels: int = 256) -> Tensor:
    """RealNVP/Glow bits/dim for 8-bit data seen as ``y = (k + u) / levels``.

    ``-log p(y) / (D ln 2) + log2(levels)``: the density of ``k + u`` in [0, 256)^D, in bits.
    """
    return -log_prob_y / (dims * math.log(2)) + math.log2(levels)
