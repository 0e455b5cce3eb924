"""Fréchet distance, diversity and classifier accuracy, and the shipped evaluation classifier."""

from __future__ import annotations

import importlib.resources
import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from cinn_cli.tasks.mnist.classifier import MnistClassifier
from cinn_cli.tasks.mnist.data import find_mnist_dir, load_mnist
from cinn_cli.tasks.mnist.metrics import (
    classifier_accuracy,
    classifier_features,
    diversity_ratio,
    frechet_distance,
    load_classifier,
)


def gaussian_with_exact_moments(n: int, mu: torch.Tensor, sigma: torch.Tensor, seed: int) -> torch.Tensor:
    """(n, D) float64 samples whose empirical mean is ``mu`` and unbiased covariance diag(sigma²), exactly."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, mu.numel(), generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    cov = z.T @ z / (n - 1)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(cov)).T  # now cov(z) = I exactly (to round-off)
    return mu + z * sigma


# ---- Fréchet distance -----------------------------------------------------------------------


def test_frechet_identical_sets_is_zero():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(x, x[torch.randperm(500)]) == pytest.approx(0.0, abs=1e-8)


def test_frechet_1d_closed_form():
    a = gaussian_with_exact_moments(400, torch.tensor([1.5]), torch.tensor([2.0]), seed=1)
    b = gaussian_with_exact_moments(300, torch.tensor([-0.5]), torch.tensor([0.5]), seed=2)
    # d² = (μa − μb)² + (σa − σb)² = 4 + 2.25
    assert frechet_distance(a, b) == pytest.approx(6.25, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(6.25, rel=1e-9)


def test_frechet_diagonal_closed_form_and_rotation_invariance():
    g = torch.Generator().manual_seed(3)
    d = 8
    f64 = torch.float64
    mu_a, mu_b = torch.randn(d, generator=g, dtype=f64), torch.randn(d, generator=g, dtype=f64)
    s_a = torch.rand(d, generator=g, dtype=torch.float64) + 0.2
    s_b = torch.rand(d, generator=g, dtype=torch.float64) + 0.2
    a = gaussian_with_exact_moments(1000, mu_a, s_a, seed=4)
    b = gaussian_with_exact_moments(800, mu_b, s_b, seed=5)
    expected = float((mu_a - mu_b).square().sum() + (s_a - s_b).square().sum())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    assert frechet_distance(a @ q, b @ q) == pytest.approx(expected, rel=1e-8)
    # float32 inputs give the same value (computation is float64 inside).
    assert frechet_distance(a.float(), b.float()) == pytest.approx(expected, rel=1e-4)


def test_frechet_general_covariances_match_direct_eigenvalues():
    g = torch.Generator().manual_seed(6)
    f64 = torch.float64
    a = torch.randn(600, 5, generator=g, dtype=f64) @ torch.randn(5, 5, generator=g, dtype=f64)
    b = torch.randn(700, 5, generator=g, dtype=f64) @ torch.randn(5, 5, generator=g, dtype=f64)
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    # tr sqrt(Σa Σb) from the (real, non-negative) eigenvalues of the non-symmetric product.
    tr_sqrt = torch.linalg.eigvals(ca @ cb).real.clamp_min(0).sqrt().sum()
    expected = float((a.mean(0) - b.mean(0)).square().sum() + ca.trace() + cb.trace() - 2 * tr_sqrt)
    assert expected > 0.1
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_frechet_rejects_mismatched_features():
    with pytest.raises(ValueError):
        frechet_distance(torch.randn(10, 3), torch.randn(10, 4))


# ---- diversity ------------------------------------------------------------------------------


def synthetic_digits(per_digit: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat_interleave(per_digit)
    images = torch.rand(len(labels), 28, 28, generator=g) * (labels.view(-1, 1, 1) + 1) / 10
    return images, labels


def test_diversity_ratio_identity_scaling_and_collapse():
    x, y = synthetic_digits()
    assert diversity_ratio(x, y, x, y) == pytest.approx(1.0, rel=1e-9)
    # Halving every image halves every pairwise distance.
    assert diversity_ratio(0.5 * x, y, x, y) == pytest.approx(0.5, rel=1e-9)
    collapsed = x[y.argsort(stable=True)][::20].repeat_interleave(20, dim=0)  # one image per digit
    assert diversity_ratio(collapsed, y, x, y) == pytest.approx(0.0, abs=1e-6)


def test_diversity_ratio_uint8_and_per_digit():
    x, y = synthetic_digits()
    x8 = (x * 255).round().to(torch.uint8)
    ratio, per = diversity_ratio(x8, y, x8.float() / 255, y, return_per_digit=True)
    assert ratio == pytest.approx(1.0, rel=1e-9)
    assert per.shape == (10,)
    # Digit 3 missing from the samples: skipped (NaN), the rest still averaged.
    keep = y != 3
    ratio, per = diversity_ratio(x[keep], y[keep], x, y, return_per_digit=True)
    assert math.isnan(per[3]) and ratio == pytest.approx(1.0, rel=1e-9)


def test_diversity_ratio_subsamples():
    x, y = synthetic_digits(per_digit=60)
    ratio = diversity_ratio(x, y, x, y, max_per_digit=40)
    assert 0.9 < ratio < 1.1


# ---- classifier_accuracy with a stub classifier -----------------------------------------------


class MeanBrightnessClassifier(nn.Module):
    """Predicts digit floor(10 * mean pixel), to test the bookkeeping."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        d = (x.mean(dim=(1, 2, 3)) * 10).floor().clamp(0, 9).long()
        return nn.functional.one_hot(d, 10).float() + self.dummy


def test_classifier_accuracy_bookkeeping():
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 5])
    predicted = torch.tensor([0, 1, 1, 1, 0, 2, 2, 2, 2, 4])
    images = ((predicted.float() + 0.5) / 10).view(-1, 1, 1).expand(-1, 28, 28)
    overall, per = classifier_accuracy(MeanBrightnessClassifier(), images, labels, batch_size=3)
    assert overall == pytest.approx(7 / 10)
    assert per[0] == pytest.approx(0.5) and per[1] == pytest.approx(2 / 3)
    assert per[2] == 1.0 and per[5] == 0.0
    assert all(math.isnan(per[d]) for d in (3, 4, 6, 7, 8, 9))
    # uint8 input gives the same answer.
    overall8, _ = classifier_accuracy(MeanBrightnessClassifier(), (images * 255).round().byte(), labels)
    assert overall8 == overall


def test_load_classifier_rejects_other_files(tmp_path):
    p = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(p), metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="not a cinn classifier"):
        load_classifier(p)


# ---- the shipped classifier -----------------------------------------------------------------

SHIPPED = importlib.resources.files("cinn_cli.weights") / "mnist-classifier.safetensors"
REAL = find_mnist_dir()


def test_shipped_classifier_loads():
    assert SHIPPED.is_file(), "weights/mnist-classifier.safetensors is missing (bench/train_classifier.py)"
    clf = load_classifier()
    assert isinstance(clf, MnistClassifier) and not clf.training
    assert clf.metadata["format"] == "cinn-classifier"
    assert float(clf.metadata["test_accuracy"]) >= 0.99
    assert sum(p.numel() for p in clf.parameters()) < 1_000_000
    x = torch.rand(4, 1, 28, 28)
    assert clf(x).shape == (4, 10)
    assert classifier_features(clf, x).shape == (4, clf.config["feature_dim"])


@pytest.mark.skipif(REAL is None or not REAL.is_dir(), reason="MNIST data directory not found (set $CINN_MNIST)")
def test_shipped_classifier_accuracy_on_test_images():
    images, labels = load_mnist(REAL, "test")
    images, labels = images[:2000], labels[:2000]
    clf = load_classifier()
    overall, per = classifier_accuracy(clf, images, labels)
    assert overall >= 0.99
    assert per.min() >= 0.97
    # Features of a set against itself: distance 0; two halves of the test images are much closer
    # than all digits against the ones alone.
    f, y = classifier_features(clf, images[:1000]), labels[:1000]
    assert f.shape == (1000, 128)
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)
    assert 0 < 10 * frechet_distance(f[:500], f[500:]) < frechet_distance(f, f[y == 1])


def test_digit_style_slant_sign_ink_and_blank():
    """A bar leaning right (top to the right) has slant < 0, its mirror > 0, an upright one 0;
    ink is the summed intensity in [0, 1] units."""
    from cinn_cli.tasks.mnist.metrics import digit_style

    img = torch.zeros(4, 28, 28, dtype=torch.uint8)
    for r in range(4, 24):
        img[0, r, 20 - r // 2] = 255  # top right, bottom left: leans right
        img[1, r, 7 + r // 2] = 255  # the mirror image: leans left
        img[2, r, 14] = 255  # upright
    style = digit_style(img)
    assert style[0, 0] < -0.4 and torch.isclose(style[1, 0], -style[0, 0]) and style[2, 0] == 0
    assert torch.allclose(style[:3, 1], torch.full((3,), 20.0, dtype=torch.float64))
    assert style[3].tolist() == [0.0, 0.0]


def test_style_kept_is_one_for_the_same_style_and_about_zero_for_unrelated():
    from cinn_cli.tasks.mnist.metrics import style_kept

    g = torch.Generator().manual_seed(0)
    a = (torch.rand(200, 28, 28, generator=g) ** 3 * 255).to(torch.uint8)
    b = (torch.rand(200, 28, 28, generator=g) ** 3 * 255).to(torch.uint8)
    same = style_kept(a, a)
    assert same["slant_correlation"] == pytest.approx(1.0) and same["ink_correlation"] == pytest.approx(1.0)
    other = style_kept(a, b)
    assert abs(other["slant_correlation"]) < 0.3 and abs(other["ink_correlation"]) < 0.3
    with pytest.raises(ValueError, match="two or more pairs"):
        style_kept(a[:1], a[:1])
