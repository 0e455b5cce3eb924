"""Sample-quality metrics, as defined in EVALUATION.md (MNIST; colorization at the end).

    clf = load_classifier()                                       # shipped weights, eval mode
    overall, per_digit = classifier_accuracy(clf, samples, labels)
    fd = frechet_distance(classifier_features(clf, samples), classifier_features(clf, test_images))
    div = diversity_ratio(samples, labels, test_images, test_labels)
    kept = style_kept(sources, transfers)  # slant and ink correlations, style transfer

Images may be given as uint8 (N, 28, 28) / (N, 1, 28, 28) with values 0..255, or as float
tensors of the same shapes with values in [0, 1] (float samples are clamped to [0, 1]).
Torch only (no scipy).
"""

from __future__ import annotations

import importlib.resources
import json
import os

import torch
from torch import Tensor

from cinn_cli.tasks.mnist.classifier import MnistClassifier

#: File name of the shipped classifier in the ``cinn_cli.weights`` package (top-level ``weights/``).
CLASSIFIER_FILE = "mnist-classifier.safetensors"
_FORMAT = "cinn-classifier"


def as_classifier_input(images: Tensor) -> Tensor:
    """uint8 0..255 or float [0, 1] images, (N, 28, 28) or (N, 1, 28, 28) -> float32 (N, 1, 28, 28)."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected images of shape (N, 28, 28) or (N, 1, 28, 28), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    return images.float().clamp(0.0, 1.0)


def load_classifier(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> MnistClassifier:
    """Load the evaluation classifier in eval mode (float32).

    ``path=None`` loads the shipped ``mnist-classifier.safetensors`` from the ``cinn_cli.weights``
    package. The file's metadata must say ``format='cinn-classifier'``; its ``config`` rebuilds the
    architecture. The metadata is kept on the returned module as ``.metadata``.
    """
    if path is None:
        resource = importlib.resources.files("cinn_cli.weights") / CLASSIFIER_FILE
        with importlib.resources.as_file(resource) as p:
            if not p.is_file():
                raise FileNotFoundError(
                    f"the shipped classifier {CLASSIFIER_FILE} is missing from cinn_cli.weights; "
                    "train it with bench/train_classifier.py"
                )
            return load_classifier(p, device)
    from cinn_cli.files.model_file import ModelFileError, read_header, read_tensors

    metadata, _ = read_header(path)  # the strict reader: a hostile --classifier fails in one sentence
    if metadata.get("format") != _FORMAT:
        raise ModelFileError(
            f"{path}: not a cinn classifier file (format {metadata.get('format')!r}, expected {_FORMAT!r})"
        )
    try:
        model = MnistClassifier(**json.loads(metadata.get("config", "{}")))
        state = read_tensors(path)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (TypeError, RuntimeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: the classifier's config does not fit its tensors ({e})") from None
    model.metadata = metadata
    return model.to(device).eval()


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def _batched(classifier: MnistClassifier, images: Tensor, fn, batch_size: int) -> Tensor:
    was_training = classifier.training
    classifier.eval()
    dev = _device_of(classifier)
    try:
        out = [
            fn(as_classifier_input(images[i : i + batch_size]).to(dev)).cpu() for i in range(0, len(images), batch_size)
        ]
    finally:
        classifier.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def classifier_features(classifier: MnistClassifier, images: Tensor, batch_size: int = 128) -> Tensor:
    """Penultimate-layer features of ``images`` -> float32 (N, feature_dim), on the CPU."""
    return _batched(classifier, images, classifier.features, batch_size)


def classifier_accuracy(
    classifier: MnistClassifier, images: Tensor, labels: Tensor, batch_size: int = 128
) -> tuple[float, Tensor]:
    """Fraction of ``images`` that ``classifier`` labels as ``labels`` (the requested digits).

    Returns:
        overall: float, accuracy over all N images.
        per_digit: float64 tensor (10,), accuracy among images of each requested digit (NaN for a
            digit with no images). The worst digit is ``per_digit.nan_to_num(2).min()``.
    """
    labels = torch.as_tensor(labels).long().cpu()
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("classifier_accuracy needs at least one image")
    pred = _batched(classifier, images, lambda x: classifier(x).argmax(1), batch_size)
    correct = (pred == labels).double()
    per_digit = torch.full((10,), float("nan"), dtype=torch.float64)
    for d in range(10):
        m = labels == d
        if m.any():
            per_digit[d] = correct[m].mean()
    return float(correct.mean()), per_digit


def _sqrtm_psd(a: Tensor) -> Tensor:
    """Symmetric PSD square root via eigendecomposition (negative round-off eigenvalues -> 0)."""
    w, v = torch.linalg.eigh(a)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def _mean_cov(feats: Tensor) -> tuple[Tensor, Tensor]:
    x = feats.detach().to("cpu", torch.float64)
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"expected features of shape (N >= 2, D), got {tuple(x.shape)}")
    mu = x.mean(0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def frechet_distance(feats_a: Tensor, feats_b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to (N_a, D) and (N_b, D) feature sets.

    d² = |μ_a − μ_b|² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2}) (unbiased covariances, float64). The trace
    of (Σ_a Σ_b)^{1/2} is the sum of the square roots of the eigenvalues of the symmetric PSD matrix
    Σ_a^{1/2} Σ_b Σ_a^{1/2}, which has the same eigenvalues as Σ_a Σ_b. Returns d² (the FID
    convention), clamped at 0.
    """
    mu_a, cov_a = _mean_cov(feats_a)
    mu_b, cov_b = _mean_cov(feats_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"feature sizes differ: {mu_a.numel()} and {mu_b.numel()}")
    s = _sqrtm_psd(cov_a)
    m = s @ cov_b @ s
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    d2 = (mu_a - mu_b).square().sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * tr_sqrt
    return max(float(d2), 0.0)


def _mean_pairwise_l2(x: Tensor) -> float:
    """Mean L2 distance over all unordered pairs of rows of (n, D), n >= 2."""
    d = torch.cdist(x, x)
    n = x.shape[0]
    return float(d.sum() / (n * (n - 1)))


def diversity_ratio(
    samples: Tensor,
    sample_labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    max_per_digit: int = 500,
    seed: int = 0,
    return_per_digit: bool = False,
) -> float | tuple[float, Tensor]:
    """``class_diversity`` of MNIST-shaped digits, ``(N, 28, 28)`` or ``(N, 1, 28, 28)``, over the
    ten digits; with ``return_per_digit`` also the float64 (10,) ratios (NaN where skipped)."""
    ratio, per_digit = class_diversity(
        as_classifier_input(torch.as_tensor(samples).cpu()),
        sample_labels,
        as_classifier_input(torch.as_tensor(test_images).cpu()),
        test_labels,
        n_classes=10,
        max_per_class=max_per_digit,
        seed=seed,
    )
    return (ratio, per_digit) if return_per_digit else ratio


def class_diversity(
    samples: Tensor,
    sample_labels: Tensor,
    images: Tensor,
    labels: Tensor,
    n_classes: int,
    max_per_class: int = 500,
    seed: int = 0,
) -> tuple[float, Tensor]:
    """Mean pairwise L2 distance between samples of a class over the same for real images of it
    (EVALUATION.md's diversity), for images of any shape ``(N, ...)``.

    Pixels are in [0, 1] (uint8 inputs are divided by 255). Each class uses at most
    ``max_per_class`` images of either set (a seeded random subset); classes with fewer than two
    samples or two real images, or whose real images are all alike, are skipped. Returns the mean
    of the per-class ratios (1.0 = as varied as the real images, 0 = collapse) and the float64
    ``(n_classes,)`` ratios (NaN where skipped)."""
    gen = torch.Generator().manual_seed(seed)
    sample_labels = torch.as_tensor(sample_labels).long().cpu()
    labels = torch.as_tensor(labels).long().cpu()

    def pick(x: Tensor, y: Tensor, c: int) -> Tensor | None:
        idx = (y == c).nonzero().squeeze(1)
        if len(idx) < 2:
            return None
        if len(idx) > max_per_class:
            idx = idx[torch.randperm(len(idx), generator=gen)[:max_per_class]]
        x = x[idx].cpu()
        return (x.double() / 255.0 if x.dtype == torch.uint8 else x.double().clamp(0.0, 1.0)).flatten(1)

    per_class = torch.full((n_classes,), float("nan"), dtype=torch.float64)
    for c in range(n_classes):
        s, t = pick(samples, sample_labels, c), pick(images, labels, c)
        if s is None or t is None:
            continue
        spread = _mean_pairwise_l2(t)
        if spread > 0:  # real images all alike leave the ratio undefined
            per_class[c] = _mean_pairwise_l2(s) / spread
    valid = ~per_class.isnan()
    if not valid.any():
        raise ValueError("diversity needs at least two samples and two real images of some class")
    return float(per_class[valid].mean()), per_class


def digit_style(images: Tensor) -> Tensor:
    """Two handwriting measures of ``(N, 28, 28)`` digits (uint8, or floats in [0, 1]) -> (N, 2)
    float64: **slant**, the ink's horizontal shift per row downwards (its second moments
    ``cov(x, y) / var(y)``: > 0 leans left, < 0 leans right, 0 upright), and **ink**, the
    summed intensity (stroke weight times stroke length). An all-black image gets (0, 0)."""
    p = as_classifier_input(images.cpu()).reshape(len(images), 28, 28).double()
    mass = p.sum((1, 2))
    safe = mass.clamp_min(1e-12)
    ys, xs = torch.meshgrid(torch.arange(28.0, dtype=p.dtype), torch.arange(28.0, dtype=p.dtype), indexing="ij")
    cy = (p * ys).sum((1, 2)) / safe
    cx = (p * xs).sum((1, 2)) / safe
    dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
    var_y = (p * dy * dy).sum((1, 2)) / safe
    cov_xy = (p * dx * dy).sum((1, 2)) / safe
    slant = torch.where(var_y > 0, cov_xy / var_y.clamp_min(1e-12), torch.zeros_like(var_y))
    return torch.stack([slant, mass], 1)


def style_kept(sources: Tensor, outputs: Tensor) -> dict[str, float]:
    """How much of each source digit's handwriting ``outputs`` keep: Pearson correlations over
    the N pairs of ``digit_style`` slant and ink (1: fully kept; about 0 for unrelated digits).
    ``sources`` and ``outputs``: ``(N, 28, 28)``, pair i = source i and what was made from it."""
    if len(sources) != len(outputs) or len(sources) < 2:
        raise ValueError(f"style_kept needs two or more pairs, got {len(sources)} sources and {len(outputs)} outputs")
    a, b = digit_style(sources), digit_style(outputs)
    a, b = a - a.mean(0), b - b.mean(0)
    r = ((a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0)).clamp_min(1e-12)).clamp(-1.0, 1.0)  # round-off
    return {"slant_correlation": float(r[0]), "ink_correlation": float(r[1])}
