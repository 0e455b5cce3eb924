"""Condition networks: turn a condition (a digit label, a photo's lightness) into one feature tensor
per flow level."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class OneHot(nn.Module):
    """The reference MNIST model's "condition network": the one-hot label itself.

    ``labels (B,) int64 -> [ (B, n_classes) ]``.
    """

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes

    def forward(self, labels: Tensor, dtype: torch.dtype = torch.float32) -> list[Tensor]:
        return [F.one_hot(labels, self.n_classes).to(dtype)]


class LabelFeatures(nn.Module):
    """A learned feature tensor per class and per flow level.

    Any network applied to a one-hot label is a lookup table over the classes, so this module
    *is* that table (the most expressive form, and the cheapest): for level ``i`` a parameter of
    shape ``(n_classes, *shapes[i])``. Images get spatial maps (a learned class template at the
    level's resolution), vectors get embeddings. Trained jointly with the flow.

    ``labels (B,) int64 -> [ (B, *shapes[0]), (B, *shapes[1]), ... ]``.
    """

    def __init__(self, n_classes: int, shapes: Sequence[Sequence[int]]):
        super().__init__()
        self.tables = nn.ParameterList(
            nn.Parameter(torch.randn(n_classes, *shape) / max(1, len(shape))) for shape in shapes
        )

    def forward(self, labels: Tensor, dtype: torch.dtype = torch.float32) -> list[Tensor]:
        return [table.to(dtype).index_select(0, labels) for table in self.tables]
