"""What every conditional flow model shares: config JSON round trip, subnet init, the Gaussian density and bits/dim."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from torch import Tensor, nn

_LOG_2PI = math.log(2 * math.pi)


class ConfigDict:
    """JSON round trip shared by the frozen config dataclasses (lists come back as tuples)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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
