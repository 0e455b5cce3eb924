"""``cinn eval mnist --data FOLDER``: a class-conditional model measured on a folder per class (the
layout ``cinn train classes`` reads), typically images of the user's own data held out of training.

No classifier can judge these samples (the shipped ones know MNIST and Fashion-MNIST only), so the
numbers are the ones that need none (EVALUATION.md): bits/dim of the folder's images, how many
encode and decode back exactly, and the samples' diversity per class against the folder's images.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cinn_cli.batch.stream import stage_bar
from cinn_cli.tasks import load_model
from cinn_cli.tasks.mnist.evaluate import draw_samples, next_stage, per_image_bits_per_dim, round_trip_numbers
from cinn_cli.tasks.mnist.folders import images_for_model
from cinn_cli.tasks.mnist.metrics import class_diversity


def evaluate_class_folders(
    *, weights: Path, data_dir: Path, temperatures: list[float], per_class: int, device: torch.device, seed: int = 0
) -> dict:
    """Every number for one model file on the images of ``data_dir/<class>/`` (``images_for_model``)."""
    model, info = load_model(weights, device=str(device), task="mnist")
    data = images_for_model(data_dir, model.class_names, model.config.image_shape)
    images, names = data.images, model.class_names
    bar = stage_bar(2 + len(temperatures), "bits/dim", "stage")
    bpd = per_image_bits_per_dim(model, images, data.labels, device)
    result: dict = {
        "weights": str(weights),
        "model_sha256": info.sha256,
        "data": str(data_dir),
        "images": len(images),
        "class_names": list(names),
        "bits_per_dim": bpd.mean().item(),
        "bits_per_dim_median": bpd.median().item(),
        "images_above_8_bits_per_dim": int((bpd > 8).sum()),
    }
    next_stage(bar, "round trips")
    result.update(round_trip_numbers(weights, model, images, data.labels, device))
    result["samples"] = []
    for t in temperatures:
        next_stage(bar, f"samples at T {t:g}")
        samples, labels = draw_samples(model, per_class, t, device, seed=seed)
        ratio, per = class_diversity(samples, labels, images, data.labels, len(names))
        per_name = {name: None if math.isnan(v) else round(v, 4) for name, v in zip(names, per.tolist(), strict=True)}
        result["samples"].append(
            {"temperature": t, "per_class": per_class, "diversity": ratio, "per_class_diversity": per_name}
        )
    next_stage(bar, "done")
    bar.close()
    return result
