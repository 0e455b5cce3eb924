"""``cinn eval colorize``: likelihood and sample quality on centre crops (EVALUATION.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cinn_cli.batch.photos import center_crop
from cinn_cli.batch.stream import stage_bar
from cinn_cli.files.latents import derive_seed, stack_levels
from cinn_cli.tasks.colorize.color import lab_pair, lab_to_rgb
from cinn_cli.tasks.colorize.colorize import full_size_rgb, load_colorize_model
from cinn_cli.tasks.colorize.metrics import (
    ab_errors,
    best_of_n_rmse,
    best_of_n_rmse_pixel,
    colourfulness,
    sample_variance,
)
from cinn_cli.tasks.colorize.model import ab_bits_per_dim
from cinn_cli.tasks.colorize.sampling import colorize_latent
from cinn_cli.tasks.colorize.train import COLORIZE_EVAL_NOISE as EVAL_NOISE
from cinn_cli.tasks.colorize.train import ab_bits, load_photos

EVAL_SIZE = 64


@torch.no_grad()
def sampled_ab(model, L: Tensor, keys: list[str], n: int, temperature: float, seed: int) -> list[Tensor]:
    """``L (B, 1, S, S)`` -> ``n`` tensors ``ab (B, 2, h, w)`` at the model's colour resolution;
    image ``i``'s sample ``k`` from the seed ``derive_seed(seed, keys[i], k)`` (independent of batching);
    sample 1 is the latent's mode, as in ``cinn colorize``."""
    shapes, temps = model.latent_shapes(*L.shape[-2:]), model.level_temperatures(temperature)
    out = []
    for k in range(1, n + 1):
        per = [colorize_latent(shapes, derive_seed(seed, key, k), temps, k) for key in keys]
        zs = stack_levels(per, L.device)
        out.append(model.inverse(zs, L).clamp(-128.0, 128.0))
    return out


def colourings(model, L: Tensor, keys: list[str], n: int, temperature: float, seed: int) -> Tensor:
    """``L (B, 1, S, S)`` -> RGB ``(B, n, 3, S, S)``: the ``sampled_ab`` colourings at L's size."""
    return torch.stack([ab_to_rgb(L, ab) for ab in sampled_ab(model, L, keys, n, temperature, seed)], dim=1)


def ab_to_rgb(L: Tensor, ab: Tensor) -> Tensor:
    """``L (B, 1, S, S)`` and ``ab`` at the model's colour resolution -> RGB ``(B, 3, S, S)``:
    upsampled as ``cinn colorize`` does when the model works on coarser colour than L."""
    if tuple(ab.shape[-2:]) != tuple(L.shape[-2:]):
        return full_size_rgb(L, ab)
    return lab_to_rgb(torch.cat([L, ab], dim=1))


def evaluate_colorize(
    *,
    weights: str | None,
    data_dir: Path,
    n: int,
    temperature: float,
    device: torch.device,
    seed: int = 0,
    batch_size: int = 32,
    whole: bool = True,
    work_size: int | None = None,
    level_temperatures: tuple[float, ...] | None = None,
) -> dict:
    """Every colorization number for one model on the photos under ``data_dir`` (``work_size``:
    the whole photos' working short side, default the file's; the crops are always 64x64)."""
    model, info = load_colorize_model(weights, device, work_size, level_temperatures)
    crops = torch.stack(
        [torch.from_numpy(center_crop(p, EVAL_SIZE)).permute(2, 0, 1) for p in load_photos(data_dir)]
    )  # (N, 3, 64, 64) uint8
    result: dict = {"weights": str(info.path), "model_sha256": info.sha256, "images": len(crops)}
    result["val_bits_per_dim"] = ab_bits(model, crops, EVAL_NOISE, device)
    keys = ("b8", "b8p", "b1", "var", "m", "m_gt", "g8", "g8p", "m_g", "o", "m_o")
    per: dict[str, list[Tensor]] = {k: [] for k in keys}
    bar = stage_bar(len(crops), "64x64 crops", "photo")
    for i in range(0, len(crops), batch_size):
        target = crops[i : i + batch_size].float().div(255.0)
        _, L = lab_pair(target)
        own_ab, _ = lab_pair(target, model.config.ab_downscale)
        ceiling = ab_to_rgb(L, own_ab).unsqueeze(1)  # the photo's own colour at the model's resolution
        samples = colourings(model, L.to(device), [str(j) for j in range(i, i + len(target))], n, temperature, seed)
        samples = samples.cpu()
        gray = lab_to_rgb(torch.cat([L, torch.zeros_like(L).expand(-1, 2, -1, -1)], dim=1)).unsqueeze(1)
        per["b8"].append(best_of_n_rmse(samples, target))
        per["b8p"].append(best_of_n_rmse_pixel(samples, target))
        per["b1"].append(best_of_n_rmse(samples[:, :1], target))
        per["var"].append(sample_variance(samples))
        per["m"].append(colourfulness(samples).flatten())
        per["m_gt"].append(colourfulness(target))
        per["g8"].append(best_of_n_rmse(gray, target))
        per["g8p"].append(best_of_n_rmse_pixel(gray, target))
        per["m_g"].append(colourfulness(gray).flatten())
        per["o"].append(best_of_n_rmse(ceiling, target))
        per["m_o"].append(colourfulness(ceiling).flatten())
        bar.update(len(target))
    bar.close()
    mean = {k: float(torch.cat(v).mean()) for k, v in per.items()}
    result.update(
        {
            "n": n,
            "temperature": temperature,
            "level_temperatures": model.level_temperatures(1.0),
            "best_of_n_rmse": mean["b8"],
            "best_of_n_rmse_pixel": mean["b8p"],
            "best_of_1_rmse": mean["b1"],
            "variance": mean["var"],
            "colourfulness_ratio": mean["m"] / mean["m_gt"],
            "gray_best_of_n_rmse": mean["g8"],
            "gray_best_of_n_rmse_pixel": mean["g8p"],
            "gray_colourfulness_ratio": mean["m_g"] / mean["m_gt"],
            "ceiling_rmse": mean["o"],
            "ceiling_colourfulness_ratio": mean["m_o"] / mean["m_gt"],
        }
    )
    if n == 8:  # the names EVALUATION.md uses for the standard n
        result.update(best_of_8_rmse=mean["b8"], best_of_8_rmse_pixel=mean["b8p"], gray_best_of_8_rmse=mean["g8"])
    if whole:
        whole_numbers = evaluate_whole(model, data_dir, n, temperature, seed, photos=len(crops))
        result.update({f"whole_{k}": v for k, v in whole_numbers.items()})
        result["whole_work_size"] = model.working_size(EVAL_SIZE, EVAL_SIZE)[0]  # the short side it ran at
    return result


@torch.no_grad()
def whole_photo_samples(model, data_dir: Path, n: int, temperature: float, seed: int):
    """Each readable photo of ``data_dir`` (sorted, as ``cinn colorize`` lists a folder) colourised
    as ``cinn colorize`` does it: the photo's gray (PIL ``convert('L')``) is the input, colour is
    predicted at the working size and brought to full size by the guided filter; sample 1 is the
    latent's mode. Yields ``(rel, rgb, L, L_work, samples)``: the path relative to ``data_dir``,
    the photo ``(H, W, 3)`` uint8, its lightness ``(1, 1, H, W)`` and working-size lightness, and
    the colourings ``(1, n, 3, H, W)`` RGB in [0, 1] on the CPU."""
    from PIL import Image

    from cinn_cli.batch.images import discover
    from cinn_cli.batch.photos import PhotoError, read_rgb
    from cinn_cli.tasks.colorize.colorize import colorize_lightness
    from cinn_cli.tasks.colorize.transfer import working_lightness

    device = next(model.parameters()).device
    for path, rel in discover(str(data_dir)):
        try:
            rgb = read_rgb(path)
        except PhotoError:
            continue  # load_photos (evaluate_colorize) already named it
        gray = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255.0
        L, L_work = working_lightness(model, gray, device)
        shapes = model.latent_shapes(*L_work.shape[-2:])
        temps = model.level_temperatures(temperature)
        zs_each = [colorize_latent(shapes, derive_seed(seed, rel.as_posix(), k), temps, k) for k in range(1, n + 1)]
        zs = stack_levels(zs_each, device)
        yield rel, rgb, L, L_work, colorize_lightness(model, L, zs).cpu().unsqueeze(0)


@torch.no_grad()
def evaluate_whole(
    model, data_dir: Path, n: int, temperature: float, seed: int, photos: int | None = None
) -> dict[str, float]:
    """The same numbers on whole photos at full size (``whole_photo_samples``), RMSE against the
    photo itself. Val bits/dim: the photo's ab at the working resolution under its working-size
    lightness. ``photos``: how many there are (the progress bar's total), when known."""
    from cinn_cli.tasks.colorize.transfer import photo_ab

    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    low, high = EVAL_NOISE
    keys = ("bpd", "b8", "b8p", "b1", "var", "m", "m_gt", "g8", "m_g", "o", "m_o")
    keys += ("ab", "ab_best", "ab_1", "ab_rest", "ab_g")  # ab errors: typical, best of n, sample 1, 2..n, gray
    per: dict[str, list[float]] = {k: [] for k in keys}
    bar = stage_bar(photos, "whole photos", "photo")
    for _rel, rgb, L, L_work, samples in whole_photo_samples(model, data_dir, n, temperature, seed):
        ab = photo_ab(model, rgb, L_work)
        ceiling = full_size_rgb(L, ab).cpu().unsqueeze(1)  # the photo's own colour at the working resolution
        ab = ab + (low + (high - low) * torch.rand(ab.shape, generator=g)).to(device)
        per["bpd"].append(float(ab_bits_per_dim(model.log_prob(ab, L_work), ab[0].numel())))
        target = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
        gray_rgb = lab_to_rgb(torch.cat([L.cpu(), torch.zeros_like(L.cpu()).expand(-1, 2, -1, -1)], 1)).unsqueeze(1)
        per["b8"].append(float(best_of_n_rmse(samples, target)))
        per["b8p"].append(float(best_of_n_rmse_pixel(samples, target)))
        per["b1"].append(float(best_of_n_rmse(samples[:, :1], target)))
        per["var"].append(float(sample_variance(samples)))
        per["m"].append(float(colourfulness(samples).mean()))
        per["m_gt"].append(float(colourfulness(target)))
        per["g8"].append(float(best_of_n_rmse(gray_rgb, target)))
        per["m_g"].append(float(colourfulness(gray_rgb).mean()))
        per["o"].append(float(best_of_n_rmse(ceiling, target)))
        per["m_o"].append(float(colourfulness(ceiling).mean()))
        err, gray_err = ab_errors(samples, target)  # (1, n), (1,): Lab ab units at a 256-pixel short side
        per["ab"].append(float(err.mean()))
        per["ab_best"].append(float(err.amin()))
        per["ab_1"].append(float(err[0, 0]))
        per["ab_rest"].append(float(err[0, 1:].mean()) if n > 1 else float("nan"))
        per["ab_g"].append(float(gray_err[0]))
        bar.update()
    bar.close()
    mean = {k: float(np.mean(v)) for k, v in per.items()}
    gray_ab = mean["ab_g"]
    return {
        "images": len(per["bpd"]),
        "val_bits_per_dim": mean["bpd"],
        "best_of_n_rmse": mean["b8"],
        "best_of_n_rmse_pixel": mean["b8p"],
        "best_of_1_rmse": mean["b1"],
        "variance": mean["var"],
        "min_variance": float(np.min(per["var"])),
        "colourfulness_ratio": mean["m"] / mean["m_gt"],
        "gray_best_of_n_rmse": mean["g8"],
        "gray_colourfulness_ratio": mean["m_g"] / mean["m_gt"],
        "ceiling_rmse": mean["o"],
        "ceiling_colourfulness_ratio": mean["m_o"] / mean["m_gt"],
        # plausibility (EVALUATION.md): ab errors, and each relative to gray's (ratio of the means over photos)
        "gray_ab_error": gray_ab,
        "typical_ab_error": mean["ab"],
        "typical_ab_error_ratio": mean["ab"] / gray_ab,
        "better_than_gray_rate": float(np.mean(np.array(per["ab"]) < np.array(per["ab_g"]))),
        "best_of_n_ab_error": mean["ab_best"],
        "best_of_n_ab_error_ratio": mean["ab_best"] / gray_ab,
        "sample_1_ab_error_ratio": mean["ab_1"] / gray_ab,
        "other_samples_ab_error_ratio": mean["ab_rest"] / gray_ab,
    }
