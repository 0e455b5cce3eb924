"""``cinn eval colorize``: likelihood and sample quality on centre crops (EVALUATION.md)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..color import guided_upsample, lab_pair, lab_to_rgb
from ..latents import derive_seed, draw_latent
from ..metrics import best_of_n_rmse, best_of_n_rmse_pixel, colourfulness, sample_variance
from ..photos import center_crop
from .colorize import load_colorize_model
from .train import COLORIZE_EVAL_NOISE as EVAL_NOISE
from .train import ab_bits, load_photos

EVAL_SIZE = 64


@torch.no_grad()
def colourings(model, L: Tensor, keys: list[str], n: int, temperature: float, seed: int) -> Tensor:
    """``L (B, 1, S, S)`` -> RGB ``(B, n, 3, S, S)``; image ``i``'s sample ``k`` from the seed
    ``derive_seed(seed, keys[i], k)`` (independent of batching)."""
    S = L.shape[-2:]
    shapes = model.latent_shapes(*S)
    out = []
    for k in range(1, n + 1):
        per = [draw_latent(shapes, derive_seed(seed, key, k), temperature) for key in keys]
        zs = [torch.stack([z[i] for z in per]).to(L.device) for i in range(len(shapes))]
        ab = model.inverse(zs, L).clamp(-128.0, 128.0)
        if tuple(ab.shape[-2:]) != tuple(S):
            ab = guided_upsample(ab, L / 100.0)
        out.append(lab_to_rgb(torch.cat([L, ab], dim=1)))
    return torch.stack(out, dim=1)


def evaluate_colorize(
    *,
    weights: str | None,
    data_dir: Path,
    n: int,
    temperature: float,
    device: torch.device,
    seed: int = 0,
    batch_size: int = 32,
) -> dict:
    """Every colorization number for one model on the photos under ``data_dir``."""
    model, info = load_colorize_model(weights, device)
    crops = torch.stack(
        [torch.from_numpy(center_crop(p, EVAL_SIZE)).permute(2, 0, 1) for p in load_photos(data_dir)]
    )  # (N, 3, 64, 64) uint8
    result: dict = {"weights": str(info.path), "model_sha256": info.sha256, "images": len(crops)}
    result["val_bits_per_dim"] = ab_bits(model, crops, EVAL_NOISE, device)
    per: dict[str, list[Tensor]] = {k: [] for k in ("b8", "b8p", "b1", "var", "m", "m_gt", "g8", "g8p", "m_g")}
    for i in range(0, len(crops), batch_size):
        target = crops[i : i + batch_size].float().div(255.0)
        _, L = lab_pair(target)
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
    mean = {k: float(torch.cat(v).mean()) for k, v in per.items()}
    result.update(
        {
            "n": n,
            "temperature": temperature,
            "best_of_n_rmse": mean["b8"],
            "best_of_n_rmse_pixel": mean["b8p"],
            "best_of_1_rmse": mean["b1"],
            "variance": mean["var"],
            "colourfulness_ratio": mean["m"] / mean["m_gt"],
            "gray_best_of_n_rmse": mean["g8"],
            "gray_best_of_n_rmse_pixel": mean["g8p"],
            "gray_colourfulness_ratio": mean["m_g"] / mean["m_gt"],
        }
    )
    if n == 8:  # the names EVALUATION.md uses for the standard n
        result.update(best_of_8_rmse=mean["b8"], best_of_8_rmse_pixel=mean["b8p"], gray_best_of_8_rmse=mean["g8"])
    return result
