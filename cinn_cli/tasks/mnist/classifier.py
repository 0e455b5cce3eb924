"""A small CNN MNIST classifier for evaluating generated digits (sample accuracy, Fréchet distance).

    clf = MnistClassifier()
    logits = clf(x)          # x: (B, 1, 28, 28) float in [0, 1] -> (B, 10)
    feats = clf.features(x)  # (B, feature_dim) penultimate-layer features (after ReLU)

Three conv stages (3x3 conv, BatchNorm, ReLU, 2x2 max-pool: 28 -> 14 -> 7 -> 3), then a fully
connected layer to ``feature_dim`` features and a linear head. With the default widths it has
about 0.24 M parameters. It is not part of the generative model; see ``cinn_cli.metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["MnistClassifier"]


class MnistClassifier(nn.Module):
    """CNN on (B, 1, 28, 28) images in [0, 1]; ``forward`` gives (B, 10) logits.

    Args:
        widths: channels of the three conv stages.
        feature_dim: size of the penultimate layer returned by :meth:`features`.
        dropout: dropout before the head (training only).
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128), feature_dim: int = 128, dropout: float = 0.3):
        super().__init__()
        self.config = {"widths": list(widths), "feature_dim": int(feature_dim), "dropout": float(dropout)}
        layers: list[nn.Module] = []
        c_in = 1
        for c in widths:
            layers += [
                nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = c
        self.conv = nn.Sequential(*layers)
        side = 28
        for _ in widths:
            side //= 2
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, feature_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, 10)

    def features(self, x: Tensor) -> Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, feature_dim) penultimate features (non-negative)."""
        # Centre the input (MNIST pixel mean ~0.13, std ~0.31) so the first conv sees unit scale.
        return self.fc(self.conv((x - 0.1307) / 0.3081))

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, 10) logits."""
        return self.head(self.dropout(self.features(x)))
