"""``cinn encode`` (MNIST): digit images -> latent files, with an optional round-trip check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.model import bits_per_dim
from ..images import discover
from ..latents import Latent, save_latent
from ..report import RunReport
from .sample import load_mnist_model

VERIFY_LIMIT = 0.5  # 8-bit units: a larger round-trip error could change a pixel after rounding


class InputError(ValueError):
    """An input that cannot be encoded; the message is the reason."""


def read_digit_image(path: Path) -> np.ndarray:
    """A 28x28 grayscale digit (white on black, as MNIST) -> uint8 ``(28, 28)``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.size != (28, 28):
                raise InputError(f"is {im.size[0]}x{im.size[1]}, the MNIST model encodes 28x28 images only")
            return np.asarray(im.convert("L"))
    except UnidentifiedImageError:
        raise InputError("is not an image this tool can read") from None
    except OSError as e:
        raise InputError(f"cannot be read ({e.strerror or e})") from None


def label_for(path: Path, digit: int | None) -> int:
    """``--digit``, else the name of the folder holding the image (``3/x.png`` is a 3)."""
    if digit is not None:
        return digit
    parent = path.absolute().parent.name
    if len(parent) == 1 and parent.isdigit():
        return int(parent)
    raise InputError("has no label: give --digit D or put it in a folder named after its digit (3/x.png)")


def encode_digits(
    *,
    weights: Path,
    source: str,
    out: Path,
    digit: int | None,
    verify: bool,
    overwrite: bool,
    device: torch.device,
    batch_size: int,
    report: RunReport,
) -> None:
    model, info = load_mnist_model(weights, device, exact=True)
    items = discover(source)
    pending: list[tuple[Path, Path, np.ndarray, int]] = []

    def flush() -> None:
        if pending:
            _encode_batch(model, info.sha256, pending, verify, device, report)
            pending.clear()

    for path, rel in items:
        target = out / rel.with_suffix(".safetensors")
        if target.exists() and not overwrite:
            report.skip(str(target))
            continue
        try:
            pending.append((path, target, read_digit_image(path), label_for(path, digit)))
        except InputError as e:
            report.fail(str(path), str(e))
        if len(pending) >= batch_size:
            flush()
    flush()


@torch.no_grad()
def _encode_batch(model, model_sha256: str, batch, verify: bool, device: torch.device, report: RunReport) -> None:
    dtype = next(model.parameters()).dtype
    pixels = torch.from_numpy(np.stack([b[2] for b in batch])).to(dtype)
    # Bin centres: the deterministic dequantization, so floor(256 y) gives the pixels back.
    y = ((pixels + 0.5) / 256.0).unsqueeze(1).to(device)
    labels = torch.tensor([b[3] for b in batch], device=device)
    zs, logdet = model(y, labels)
    sq = sum(z.pow(2).flatten(1).sum(1) for z in zs)
    bpd = bits_per_dim(-0.5 * sq - 0.5 * 784 * np.log(2 * np.pi) + logdet, 784).cpu()
    errors = None
    if verify:
        back = model.inverse(zs, labels)
        errors = ((back - y).abs().flatten(1).amax(1) * 255.0).cpu()
    for i, (path, target, _, label) in enumerate(batch):
        err = None if errors is None else float(errors[i])
        if err is not None and not err <= VERIFY_LIMIT:
            report.fail(str(path), f"round trip error {err:.3g}/255 exceeds {VERIFY_LIMIT}/255")
            continue
        latent = Latent(
            zs=[z[i] for z in zs],
            task="mnist",
            condition={"digit": label},
            image_size="28x28",
            model_sha256=model_sha256,
            extra={"source": str(path.name), "bits_per_dim": f"{float(bpd[i]):.4f}"},
        )
        try:
            save_latent(target, latent)
        except OSError as e:
            report.fail(str(path), f"cannot write {target} ({e.strerror})")
            continue
        fields = {"source": str(path), "digit": label, "bits_per_dim": round(float(bpd[i]), 4)}
        if err is not None:
            fields["roundtrip_error_8bit"] = round(err, 6)
        report.wrote(str(target), **fields)
