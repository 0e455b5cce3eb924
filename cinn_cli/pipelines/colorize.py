"""``cinn colorize``: n colourings of every photo, at the photo's own size and lightness.

The model runs at its working resolution (short side ``work_size``, the aspect ratio kept; the
paper model: 64x64); its ab is upsampled with a guided filter steered by the full-resolution
lightness, so colour edges follow the photo's edges; the output's L is the input's own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..color import gray_to_lightness, guided_upsample, lab_to_rgb, resize
from ..images import discover, grid
from ..latents import Latent, derive_seed, draw_latent, save_latent
from ..photos import PhotoError, encode_image, read_gray
from ..report import RunReport
from ..storage import ModelFileError, atomic_write_bytes, load_model, resolve_weights
from .sample import provenance_text

NO_SHIPPED_MODEL = (
    "no shipped colorization model yet; train one with cinn train colorize --data DIR --out FILE or pass --weights FILE"
)
GRID_TILE = 256  # long side of each tile in a contact sheet


def load_colorize_model(weights: str | None, device: torch.device):
    """``(model, info)`` for ``--weights`` (a path or the shipped name ``colorize``)."""
    path = resolve_weights(weights, "colorize")
    if weights in (None, "colorize") and not path.exists():
        raise ModelFileError(NO_SHIPPED_MODEL)
    model, info = load_model(path, device=str(device), task="colorize")
    return model, info


@torch.no_grad()
def colorize_lightness(model, L: Tensor, zs: list[Tensor]) -> Tensor:
    """``L (1, 1, H, W)`` full-resolution lightness and a batch of ``n`` latents -> RGB
    ``(n, 3, H, W)`` in [0, 1] (computed one sample at a time at full resolution, to bound memory)."""
    size = model.working_size(*L.shape[-2:])
    L_work = resize(L, size).expand(len(zs[0]), 1, *size)
    ab = model.inverse(zs, L_work).clamp(-128.0, 128.0)  # the reference's clamp before lab2rgb
    out = []
    for i in range(len(ab)):
        ab_full = guided_upsample(ab[i : i + 1], L / 100.0)
        out.append(lab_to_rgb(torch.cat([L, ab_full], dim=1)))
    return torch.cat(out)


def to_pixels(rgb: Tensor, alpha: np.ndarray | None) -> np.ndarray:
    """``(3, H, W)`` in [0, 1] -> ``(H, W, 3|4)`` uint8 (rounded; alpha appended when given)."""
    px = (rgb.permute(1, 2, 0).float().cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    return px if alpha is None else np.concatenate([px, alpha[..., None]], axis=2)


def colorize_photos(
    *,
    weights: str | None,
    source: str,
    out: Path,
    n: int,
    temperature: float,
    seed: int,
    fmt: str,
    make_grid: bool,
    latents: bool,
    overwrite: bool,
    device: torch.device,
    batch_size: int,
    report: RunReport,
) -> None:
    model, info = load_colorize_model(weights, device)
    for path, rel in discover(source):
        base = out / rel.parent
        targets = {
            k: (base / f"{rel.stem}-{k}.{fmt}", base / f"{rel.stem}-{k}.safetensors" if latents else None)
            for k in range(1, n + 1)
        }
        todo = [k for k, (img, lat) in targets.items() if overwrite or not img.exists() or (lat and not lat.exists())]
        for k in sorted(set(targets) - set(todo)):
            report.skip(str(targets[k][0]))
        grid_path = base / f"{rel.stem}-grid.{fmt}"
        if not todo and (not make_grid or grid_path.exists()):
            continue
        try:
            gray, alpha = read_gray(path)
            job = _Job(model, info, rel, gray, alpha, targets, seed, temperature, fmt)
            pixels = job.run(todo, batch_size, report, path)
            if make_grid:
                _write_grid(grid_path, gray, targets, pixels, fmt, job.provenance)
        except (PhotoError, ValueError, OSError) as e:  # one bad input never stops the run
            reason = str(e) if isinstance(e, PhotoError) else f"{type(e).__name__}: {e}"
            report.fail(str(path), reason)


class _Job:
    """One input photo: its lightness, working size, latent shapes and provenance."""

    def __init__(self, model, info, rel: Path, gray: np.ndarray, alpha, targets, seed, temperature, fmt):
        self.model, self.info, self.targets = model, info, targets
        self.gray, self.alpha, self.seed, self.temperature, self.fmt = gray, alpha, seed, temperature, fmt
        device = next(model.parameters()).device
        self.L = gray_to_lightness(torch.from_numpy(gray).to(device))[None, None]  # (1, 1, H, W)
        self.size = model.working_size(*gray.shape)
        self.shapes = model.latent_shapes(*self.size)
        self.key = rel.as_posix()
        # uint8 gray, not float L: the same photo hashes the same on every device
        self.gray_sha256 = hashlib.sha256(np.round(gray * 255).astype(np.uint8).tobytes()).hexdigest()
        self.provenance = {
            **provenance_text(info.sha256),
            "cinn:temperature": repr(temperature),
            "cinn:source": self.key,
        }

    def run(self, todo: list[int], batch_size: int, report: RunReport, path: Path) -> dict[int, np.ndarray]:
        """Write the outputs (and latents) of samples ``todo``; returns their pixels by index."""
        device = self.L.device
        pixels, start = {}, 0
        while start < len(todo):
            chunk = todo[start : start + batch_size]
            seeds = [derive_seed(self.seed, self.key, k) for k in chunk]
            zs_each = [draw_latent(self.shapes, s, self.temperature) for s in seeds]
            zs = [torch.stack([z[i] for z in zs_each]).to(device) for i in range(len(self.shapes))]
            try:
                rgb = colorize_lightness(self.model, self.L, zs)
            except torch.OutOfMemoryError:  # halve the batch and go on (outputs do not depend on it)
                if batch_size == 1:
                    raise
                batch_size //= 2
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            start += len(chunk)
            for k, s, z, img in zip(chunk, seeds, zs_each, rgb, strict=True):
                image_path, latent_path = self.targets[k]
                pixels[k] = to_pixels(img, self.alpha)
                text = {**self.provenance, "cinn:index": str(k), "cinn:seed": str(s)}
                atomic_write_bytes(image_path, encode_image(pixels[k], self.fmt, text))
                if latent_path is not None:
                    save_latent(latent_path, self._latent(z, s))
                report.wrote(str(image_path), source=str(path), index=k, seed=s)
        return pixels

    def _latent(self, zs: list[Tensor], seed: int) -> Latent:
        h, w = self.gray.shape
        return Latent(
            zs=zs,
            task="colorize",
            condition={"source": self.key, "gray_sha256": self.gray_sha256},
            image_size=f"{w}x{h}",
            model_sha256=self.info.sha256,
            seed=seed,
            temperature=self.temperature,
            extra={"working_size": f"{self.size[1]}x{self.size[0]}"},
        )


def _write_grid(path: Path, gray: np.ndarray, targets, pixels: dict, fmt: str, provenance: dict) -> None:
    """Contact sheet: the gray input, then every colouring (outputs skipped this run are read back)."""
    from PIL import Image

    h, w = gray.shape
    scale = min(1.0, GRID_TILE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))

    def tile(px: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(px[..., :3]).resize(size, Image.Resampling.LANCZOS))

    g8 = (gray * 255).round().astype(np.uint8)
    tiles = [tile(np.stack([g8] * 3, axis=-1))]
    for k in sorted(targets):
        if k in pixels:
            tiles.append(tile(pixels[k]))
        else:
            with Image.open(targets[k][0]) as im:
                tiles.append(tile(np.asarray(im.convert("RGB"))))
    atomic_write_bytes(path, encode_image(grid(tiles, columns=len(tiles)), fmt, provenance))
