"""Latent files (``.safetensors``) and per-image seeds.

A latent file holds one tensor per latent level (``z0``, ``z1``, ... without the batch
dimension) and metadata (strings):

    format          "cinn-latent"
    format_version  "1"
    task            "mnist"
    condition       JSON: {"digit": 7}
    image_size      "28x28"
    seed            the per-image seed that drew the noise ("" for an encoded image)
    temperature     the sampling temperature ("" for an encoded image)
    model_sha256    SHA-256 of the model file that made it
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cinn_cli.files.atomic import atomic_write_bytes
from cinn_cli.files.model_file import ModelFileError, canonical_safetensors, read_header, read_tensors

LATENT_FORMAT = "cinn-latent"
LATENT_FORMAT_VERSION = "1"


class LatentFileError(ModelFileError):
    """A latent file that cannot be used; the message is one sentence."""


def derive_seed(seed: int, key: str, index: int) -> int:
    """The seed of one output, from the run's ``--seed``, the output's key (a relative path or
    a name like ``7-0001``) and the sample index: independent of batch size, order and device."""
    # surrogateescape: a file name that is not UTF-8 (bytes from an old Latin-1 disk) is still a key
    digest = hashlib.sha256(f"{seed}\0{key}\0{index}".encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # fits an int64


def text_name(name: str) -> str:
    """A file name as UTF-8 text for metadata (PNG text, latent files): bytes of a name that is
    not UTF-8 (an old Latin-1 disk) become ``\\xNN`` escapes instead of failing the write."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def draw_latent(shapes: list[tuple[int, ...]], seed: int, temperature: float | Sequence[float]) -> list[Tensor]:
    """One sample's latent levels ``z ~ N(0, T^2 I)`` from its own CPU generator (so the same
    seed gives the same numbers on every device); ``temperature``: one T, or one per level."""
    g = torch.Generator().manual_seed(seed)
    temps = [temperature] * len(shapes) if isinstance(temperature, (int, float)) else temperature
    return [torch.randn(shape, generator=g) * t for shape, t in zip(shapes, temps, strict=True)]


def stack_levels(latents: list[list[Tensor]], device) -> list[Tensor]:
    """Single samples' latent levels -> one batch per level: ``(B, ...)`` tensors on ``device``."""
    return [torch.stack([z[i] for z in latents]).to(device) for i in range(len(latents[0]))]


@dataclass
class Latent:
    zs: list[Tensor]  # per level, no batch dimension
    task: str
    condition: dict[str, Any]
    image_size: str
    model_sha256: str
    seed: int | None = None
    temperature: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


def save_latent(path: str | os.PathLike, latent: Latent) -> None:
    from safetensors.torch import save

    # float64 latents (cinn encode) stay float64: exactness needs it for rare inputs; others float32.
    tensors = {
        f"z{i}": z.detach().cpu().to(torch.float64 if z.dtype == torch.float64 else torch.float32).contiguous()
        for i, z in enumerate(latent.zs)
    }
    metadata = {
        "format": LATENT_FORMAT,
        "format_version": LATENT_FORMAT_VERSION,
        "task": latent.task,
        "condition": json.dumps(latent.condition),
        "image_size": latent.image_size,
        "seed": "" if latent.seed is None else str(latent.seed),
        "temperature": "" if latent.temperature is None else repr(latent.temperature),
        "model_sha256": latent.model_sha256,
        **latent.extra,
    }
    atomic_write_bytes(path, canonical_safetensors(save(tensors, metadata=metadata)))


def load_latent(
    path: str | os.PathLike,
    dtypes: tuple[str, ...] = ("F32", "F64"),
    check_condition: Callable[[dict, str, str], None] | None = None,
) -> Latent:
    """Read and check a latent file; raises ``LatentFileError`` with a one-sentence reason.

    The reading task says what its latents may hold: ``dtypes``, the safetensors dtypes of the
    levels, and ``check_condition(condition, task, path)``, which raises ``LatentFileError`` for a
    condition a latent of that ``task`` cannot have."""
    try:
        metadata, names = read_header(path)
    except ModelFileError as e:
        raise LatentFileError(str(e)) from None
    if metadata.get("format") != LATENT_FORMAT:
        raise LatentFileError(f"{path}: not a cinn latent file")
    if metadata.get("format_version") != LATENT_FORMAT_VERSION:
        raise LatentFileError(f"{path}: latent format version {metadata.get('format_version')!r} is not supported")
    levels = sorted(names, key=lambda k: int(k[1:]) if k[1:].isdigit() else -1)
    if not levels or any(k != f"z{i}" for i, k in enumerate(levels)):
        raise LatentFileError(f"{path}: the latent levels are not named z0, z1, ...")
    for k in levels:
        if names[k]["dtype"] not in dtypes:
            raise LatentFileError(f"{path}: latent level {k} is {names[k]['dtype']}, not {' or '.join(dtypes)}")
    try:
        tensors = read_tensors(path)
    except ModelFileError as e:
        raise LatentFileError(str(e)) from None
    try:
        condition = json.loads(metadata.get("condition", "{}"))
    except (json.JSONDecodeError, RecursionError):
        raise LatentFileError(f"{path}: the condition in the metadata is not JSON") from None
    if not isinstance(condition, dict):
        raise LatentFileError(f"{path}: the condition in the metadata is not a JSON object")
    if check_condition is not None:
        check_condition(condition, metadata.get("task", ""), str(path))
    try:
        seed = int(metadata["seed"]) if metadata.get("seed") else None
        temperature = float(metadata["temperature"]) if metadata.get("temperature") else None
    except ValueError:
        raise LatentFileError(f"{path}: the seed or temperature in the metadata is not a number") from None
    if temperature is not None and not math.isfinite(temperature):
        raise LatentFileError(f"{path}: the temperature in the metadata is not finite")
    known = {
        "format",
        "format_version",
        "task",
        "condition",
        "image_size",
        "seed",
        "temperature",
        "model_sha256",
    }
    return Latent(
        zs=[tensors[k] for k in levels],
        task=metadata.get("task", ""),
        condition=condition,
        image_size=metadata.get("image_size", ""),
        model_sha256=metadata.get("model_sha256", ""),
        seed=seed,
        temperature=temperature,
        extra={k: v for k, v in metadata.items() if k not in known},
    )


def check_latent_fits(latent: Latent, path: Path, task: str, shapes: list[tuple[int, ...]], model_sha256: str) -> None:
    """Refuse a latent made for another task, shape or model, in one sentence."""
    if latent.task != task:
        raise LatentFileError(f"{path}: a latent of a {latent.task!r} model, not {task!r}")
    got = [tuple(z.shape) for z in latent.zs]
    if got != [tuple(s) for s in shapes]:
        raise LatentFileError(f"{path}: latent shapes {got} do not fit this model ({shapes})")
    if latent.model_sha256 and model_sha256 and latent.model_sha256 != model_sha256:
        raise LatentFileError(
            f"{path}: made by another model (sha256 {latent.model_sha256[:12]}…, this one is {model_sha256[:12]}…)"
        )


def slerp(a: list[Tensor], b: list[Tensor], t: float) -> list[Tensor]:
    """Spherical interpolation between two latents (lists of levels), treated as one vector.

    The direction moves along the great circle and the norm linearly: in high dimensions a
    Gaussian's mass sits near the sphere of radius sqrt(D), so the straight line between two
    samples passes through atypical low-norm latents (faded, blurry images); this path does not.
    """
    if t in (0.0, 1.0):  # the endpoints themselves, bit for bit
        return [z.clone() for z in (a if t == 0.0 else b)]
    fa = torch.cat([z.flatten() for z in a]).double()
    fb = torch.cat([z.flatten() for z in b]).double()
    na, nb = fa.norm(), fb.norm()
    ua, ub = fa / na, fb / nb
    omega = torch.arccos(torch.clamp(ua @ ub, -1.0, 1.0))
    if omega < 1e-6:
        u = ua
    else:
        u = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)
    flat = (u * ((1 - t) * na + t * nb)).float()
    out, i = [], 0
    for z in a:
        out.append(flat[i : i + z.numel()].reshape(z.shape))
        i += z.numel()
    return out


def new_seed() -> int:
    return secrets.randbits(31)
