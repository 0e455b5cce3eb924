"""``cinn eval mnist``: test bits/dim, sample accuracy, Fréchet distance, diversity (EVALUATION.md)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from cinn_cli.batch.stream import stage_bar
from cinn_cli.flows.base import bits_per_dim
from cinn_cli.tasks import load_model
from cinn_cli.tasks.mnist.data import load_mnist
from cinn_cli.tasks.mnist.metrics import (
    classifier_accuracy,
    classifier_features,
    diversity_ratio,
    frechet_distance,
    load_classifier,
    style_kept,
)
from cinn_cli.tasks.mnist.sample import load_mnist_model


def as_nchw(images: Tensor) -> Tensor:
    """``(N, H, W)`` gray images (MNIST's IDX layout) as ``(N, 1, H, W)``; ``(N, C, H, W)`` as they are."""
    return images.unsqueeze(1) if images.dim() == 3 else images


@torch.no_grad()
def per_image_bits_per_dim(
    model: nn.Module, images: Tensor, labels: Tensor, device: torch.device, batch_size: int = 500, seed: int = 0
) -> Tensor:
    """``(N,)`` bits/dim of uint8 ``images (N, H, W)`` or ``(N, C, H, W)`` under their ``labels``,
    with one uniform dequantization draw per image from a fixed seed (EVALUATION.md)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(images), batch_size):
        k = as_nchw(images[i : i + batch_size]).float()
        y = (k + torch.rand(k.shape, generator=g)) / 256.0
        lp = model.log_prob(y.to(device), labels[i : i + batch_size].to(device))
        out.append(bits_per_dim(lp, y[0].numel()).double().cpu())
    return torch.cat(out)


def test_bits_per_dim(model: nn.Module, images: Tensor, labels: Tensor, device: torch.device) -> float:
    """The reported number: the mean of ``per_image_bits_per_dim``."""
    return per_image_bits_per_dim(model, images, labels, device).mean().item()


@torch.no_grad()
def draw_samples(
    model: nn.Module,
    per_digit: int,
    temperature: float,
    device: torch.device,
    seed: int = 0,
    batch_size: int = 500,
) -> tuple[Tensor, Tensor]:
    """``per_digit`` samples of every class -> (uint8 images, labels): ``(K * per_digit, H, W)``
    for gray models (MNIST's layout), ``(K * per_digit, C, H, W)`` for colour ones; K classes."""
    g = torch.Generator().manual_seed(seed)
    shapes = model.latent_shapes()
    labels = torch.arange(model.config.n_classes).repeat_interleave(per_digit)
    out = []
    for i in range(0, len(labels), batch_size):
        lab = labels[i : i + batch_size]
        zs = [(torch.randn((len(lab), *s), generator=g) * temperature).to(device) for s in shapes]
        x = model.inverse(zs, lab.to(device))
        x = x[:, 0] if x.shape[1] == 1 else x
        out.append(torch.floor(x.float().cpu() * 256).clamp(0, 255).to(torch.uint8))
    return torch.cat(out), labels


def _dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


@torch.no_grad()
def encode_digits(model: nn.Module, images: Tensor, labels: Tensor, device: torch.device) -> list[Tensor]:
    """Latent levels of uint8 ``images (N, H, W)`` or ``(N, C, H, W)`` under their own ``labels``,
    encoded at their bin-centre pixels ``(k + 0.5) / 256`` as ``cinn encode`` does."""
    k = as_nchw(images).float()
    return model(((k + 0.5) / 256.0).to(device, _dtype(model)), labels.to(device))[0]


@torch.no_grad()
def decode_every_digit(model: nn.Module, zs: list[Tensor], device: torch.device) -> list[Tensor]:
    """The N latents ``zs`` decoded under each digit 0-9 -> ten uint8 ``(N, 28, 28)`` tensors."""
    out = []
    for d in range(10):
        x = model.inverse(zs, torch.full((len(zs[0]),), d, dtype=torch.long, device=device))
        out.append(torch.floor(x[:, 0].float().cpu() * 256).clamp(0, 255).to(torch.uint8))
    return out


def style_transfer(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    device: torch.device,
    temperature: float = 1.0,
    batch_size: int = 500,
) -> tuple[Tensor, Tensor]:
    """Encode uint8 ``images (N, 28, 28)`` under their own ``labels`` (``encode_digits``), scale
    each latent by ``temperature`` (as ``cinn sample --from-latent -d`` does with
    ``--transfer-temperature``) and decode it under each digit 0-9 -> (uint8 images
    (10 N, 28, 28), requested digits (10 N,)), ordered digit-major."""
    out: list[list[Tensor]] = [[] for _ in range(10)]
    for i in range(0, len(images), batch_size):
        zs = encode_digits(model, images[i : i + batch_size], labels[i : i + batch_size], device)
        for per, decoded in zip(out, decode_every_digit(model, [z * temperature for z in zs], device), strict=True):
            per.append(decoded)
    wanted = torch.arange(10).repeat_interleave(len(images))
    return torch.cat([torch.cat(per) for per in out]), wanted


def score_style_transfer(clf, images: Tensor, labels: Tensor, transfers: Tensor, wanted: Tensor) -> dict:
    """Legibility and kept handwriting of ``style_transfer``'s output for the N source ``images``:
    accuracy over all 10 N decodes (the own digit included, as defined), style correlations over
    the 9 N decodes under another digit (``style_kept``)."""
    overall, per = classifier_accuracy(clf, transfers, wanted)
    source_index = torch.arange(len(transfers)) % len(images)
    other = wanted != labels[source_index]
    return {
        "images": len(images),
        "accuracy": overall,
        "worst_digit": int(per.argmin()),
        "worst_digit_accuracy": float(per.min()),
        "per_digit_accuracy": [round(float(a), 4) for a in per],
        **style_kept(images[source_index[other]], transfers[other]),
    }


@torch.no_grad()
def round_trip_errors(
    model: nn.Module, images: Tensor, labels: Tensor, device: torch.device, batch_size: int = 500
) -> Tensor:
    """``(N,)`` max abs error, in 8-bit units, of encode -> decode of bin-centre pixels of uint8
    ``images (N, H, W)`` or ``(N, C, H, W)`` under the own label (as ``cinn encode --verify``);
    <= 0.5 means identical after 8-bit rounding."""
    errors = []
    for i in range(0, len(images), batch_size):
        y = ((as_nchw(images[i : i + batch_size]).float() + 0.5) / 256.0).to(device, _dtype(model))
        lab = labels[i : i + batch_size].to(device)
        back = model.inverse(model(y, lab)[0], lab)
        errors.append(((back - y).abs().flatten(1).amax(1) * 255.0).cpu())
    return torch.cat(errors)


def round_trip_numbers(weights: Path, model: nn.Module, images: Tensor, labels: Tensor, device: torch.device) -> dict:
    """How many ``images`` encode and decode back exactly, as ``cinn encode`` does it: in float32
    first (float64 convolutions are ~10x slower on the CPU), then the images float32 loses again
    in float64, the precision cinn encode uses (``load_mnist_model``)."""
    errors = round_trip_errors(model, images, labels, device)
    lost = torch.nonzero(errors > 0.5).flatten()
    if len(lost):
        exact = load_mnist_model(weights, device, exact=True)[0]
        errors[lost] = round_trip_errors(exact, images[lost], labels[lost], device).to(errors.dtype)
    return {
        "round_trip_images": len(errors),
        "round_trip_exact": int((errors <= 0.5).sum()),
        "round_trip_failed_indices": torch.nonzero(errors > 0.5).flatten().tolist()[:20],
    }


def evaluate_mnist(
    *,
    weights: Path,
    data_dir: Path,
    temperatures: list[float],
    per_digit: int,
    device: torch.device,
    seed: int = 0,
    transfer_images: int = 1000,
    transfer_temperatures: tuple[float, ...] = (1.0,),
    classifier: Path | None = None,
) -> dict:
    """All MNIST numbers for one model file; see EVALUATION.md for the definitions. ``classifier``
    judges the samples (default: the shipped MNIST classifier; another for models of other data)."""
    model, info = load_model(weights, device=str(device), task="mnist")
    test_x, test_y = load_mnist(data_dir, "test")
    train_x, _ = load_mnist(data_dir, "train")
    result: dict = {"weights": str(weights), "model_sha256": info.sha256}
    bar = stage_bar(3 + (1 if transfer_images else 0) + len(temperatures), "test bits/dim", "stage")
    bpd = per_image_bits_per_dim(model, test_x, test_y, device)
    result["test_bits_per_dim"] = bpd.mean().item()
    # The mean is the defined number; these show whether a few images dominate it.
    result["test_bits_per_dim_median"] = bpd.median().item()
    result["test_images_above_8_bits_per_dim"] = int((bpd > 8).sum())
    next_stage(bar, "round trips")
    result.update(round_trip_numbers(weights, model, test_x, test_y, device))
    next_stage(bar, "classifier features")
    clf = load_classifier(classifier, device=device)
    if classifier is not None:
        result["classifier"] = str(classifier)
    test_feats = classifier_features(clf, test_x)
    floor_feats = classifier_features(clf, train_x[:10000])
    result["frechet_floor_train_vs_test"] = frechet_distance(floor_feats, test_feats)
    result["classifier_test_accuracy"] = classifier_accuracy(clf, test_x, test_y)[0]
    if transfer_images:
        next_stage(bar, "style transfer")
        # float32 (the images that need float64 for their own round trip are rare: see above)
        x, y = test_x[:transfer_images], test_y[:transfer_images]
        result["style_transfer"] = [
            {"temperature": t, **score_style_transfer(clf, x, y, *style_transfer(model, x, y, device, t))}
            for t in transfer_temperatures
        ]
    result["samples"] = []
    for t in temperatures:
        next_stage(bar, f"samples at T {t:g}")
        samples, labels = draw_samples(model, per_digit, t, device, seed=seed)
        overall, per = classifier_accuracy(clf, samples, labels)
        per = per.nan_to_num(2.0)  # a digit without samples (none here) is never the worst
        result["samples"].append(
            {
                "temperature": t,
                "per_digit": per_digit,
                "sample_accuracy": overall,
                "worst_digit": int(per.argmin()),
                "worst_digit_accuracy": float(per.min()),
                "per_digit_accuracy": [round(float(a), 4) for a in per],
                "frechet_distance": frechet_distance(classifier_features(clf, samples), test_feats),
                "diversity": diversity_ratio(samples, labels, test_x, test_y),
            }
        )
    next_stage(bar, "done")
    bar.close()
    return result


def next_stage(bar, desc: str) -> None:
    """Count the stage that ended and name the one that starts."""
    bar.update()
    bar.set_description(desc)
