"""``cinn explore``: the principal axes of a class's latents, walked and decoded (the paper's
latent-space figure).

Per digit: the test images of that digit are encoded under it (float64, at bin-centre pixels, as
``cinn encode``), their flattened latents ``(N, 784)`` centred on the class mean, and the top
``axes`` principal directions taken (SVD). Row ``i`` of the digit's sheet walks axis ``i`` from
-2 to +2 standard deviations (``steps`` images; the centre column is the class mean) and
decodes each point under the digit. Style axes are the same over every digit's latents, each
centred on its own class mean, so one axis means one thing for all digits (e.g. slant or stroke
width); sheet ``style-<i>`` walks style axis ``i`` for every digit (a row each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cinn_cli.batch.images import provenance_text, sheet, write_png
from cinn_cli.batch.report import RunReport
from cinn_cli.tasks.mnist.evaluate import encode_digits
from cinn_cli.tasks.mnist.sample import file_names

SPAN = 2.0  # standard deviations each side of the mean


def principal_axes(flat: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """``flat (N, D)`` centred latents -> ``(axes (k, D) unit rows, std (k,), share (k,))``, largest
    first; ``share`` is each axis's fraction of the total variance. The sign of each axis is fixed
    (its largest component positive) so sheets are reproducible."""
    _, s, vh = torch.linalg.svd(flat, full_matrices=False)
    axes = vh[:k]
    signs = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    share = s[:k].pow(2) / s.pow(2).sum().clamp_min(torch.finfo(s.dtype).tiny)
    return axes * signs, s[:k] / max(1, len(flat) - 1) ** 0.5, share


def _flatten(zs: list[Tensor]) -> Tensor:
    return torch.cat([z.flatten(1) for z in zs], dim=1)


def _unflatten(flat: Tensor, shapes: list[tuple[int, ...]]) -> list[Tensor]:
    sizes = [int(np.prod(s)) for s in shapes]
    return [part.reshape(len(flat), *s) for part, s in zip(flat.split(sizes, dim=1), shapes, strict=True)]


@torch.no_grad()
def walk(model, mean: Tensor, axes: Tensor, std: Tensor, digit: int, steps: int) -> list[np.ndarray]:
    """Decode ``mean + t * std_i * axis_i`` for each axis and ``steps`` values of t in
    [-SPAN, SPAN] under ``digit`` -> ``len(axes) * steps`` uint8 ``(H, W)`` gray or ``(H, W, 3)`` RGB
    images, axis-major."""
    t = torch.linspace(-SPAN, SPAN, steps, dtype=mean.dtype)
    points = mean + (t[None, :, None] * std[:, None, None] * axes[:, None, :]).reshape(-1, mean.shape[-1])
    device = next(model.parameters()).device
    zs = _unflatten(points.to(device), model.latent_shapes())
    x = model.inverse(zs, torch.full((len(points),), digit, dtype=torch.long, device=device))
    x = x.float().cpu()
    x = x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    return list(torch.floor(x * 256).clamp(0, 255).to(torch.uint8).numpy())


def explore(
    *,
    model,
    model_sha256: str,
    images: Tensor,
    labels: Tensor,
    digits: list[int],
    axes: int,
    steps: int,
    out: Path,
    overwrite: bool,
    report: RunReport,
) -> dict:
    """Write ``out/<digit>-axes.png`` for each of ``digits`` and ``out/style-<i>.png`` for each
    style axis; returns, per digit and for the style axes, each axis's share of the variance."""
    device = next(model.parameters()).device
    text = {**provenance_text(model_sha256), "cinn:steps": str(steps), "cinn:span_std": f"{SPAN:g}"}
    centred, means, result = [], {}, {"digits": {}}
    names = file_names(model)
    for d in range(model.config.n_classes):
        pick = labels == d
        if int(pick.sum()) < 2:  # no spread to find axes in
            if d in digits:
                report.fail(
                    f"class {model.class_names[d]}",
                    f"{int(pick.sum())} images of it in the data; at least 2 are needed",
                )
            continue
        flat = torch.cat(
            [
                _flatten(encode_digits(model, chunk, torch.full((len(chunk),), d), device)).cpu()
                for chunk in images[pick].split(500)
            ]
        )
        means[d] = flat.mean(0)
        centred.append(flat - means[d])
        if d not in digits:
            continue
        direction, std, share = principal_axes(centred[-1], axes)
        result["digits"][model.class_names[d]] = {"images": len(flat), "variance_share": share.tolist()}
        _write(
            out / f"{names[d]}-axes.png",
            walk(model, means[d], direction, std, d, steps),
            steps,
            text,
            overwrite,
            report,
        )
    if not centred:
        raise ValueError("the data holds no images of these classes")
    direction, std, share = principal_axes(torch.cat(centred), axes)
    result["style_variance_share"] = share.tolist()
    for i in range(len(direction)):
        tiles = [
            tile
            for d in digits
            if d in means
            for tile in walk(model, means[d], direction[i : i + 1], std[i : i + 1], d, steps)
        ]
        _write(out / f"style-{i + 1}.png", tiles, steps, text, overwrite, report)
    return result


def _write(path: Path, tiles: list[np.ndarray], steps: int, text: dict, overwrite: bool, report: RunReport) -> None:
    if path.exists() and not overwrite:
        report.skip(str(path))
        return
    write_png(path, sheet(tiles, columns=steps), text)
    report.wrote(str(path))


def first_per_class(labels: Tensor, per_class: int) -> Tensor:
    """The indices of the first ``per_class`` images of each label, in data order."""
    seen: dict[int, int] = {}
    keep = []
    for i, label in enumerate(labels.tolist()):
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    return torch.tensor(keep, dtype=torch.long)
