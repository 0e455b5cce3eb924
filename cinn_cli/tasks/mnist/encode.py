"""``cinn encode`` (MNIST-task models): digit or class images -> latent files, with an optional
round-trip check."""

from __future__ import annotations

from functools import partial
from operator import itemgetter
from pathlib import Path

import numpy as np
import torch

from cinn_cli.batch.photos import PhotoError, open_image
from cinn_cli.batch.report import RunReport, display_name
from cinn_cli.batch.run import BatchRun
from cinn_cli.batch.stream import Pool, default_workers, latent_targets, progress_bar, readable
from cinn_cli.files.latents import Latent, save_latent, text_name
from cinn_cli.flows.base import bits_per_dim
from cinn_cli.tasks.mnist.sample import image_size, load_mnist_model

VERIFY_LIMIT = 0.5  # 8-bit units: a larger round-trip error could change a pixel after rounding
BATCH_SIZE = 256  # images per model call (the result does not depend on it)


class InputError(ValueError):
    """An input that cannot be encoded; the message is the reason."""


def read_digit_image(path: Path, shape: tuple[int, int, int] = (1, 28, 28)) -> np.ndarray:
    """An image of the model's ``shape (C, H, W)`` -> uint8 ``(H, W)`` gray (C = 1: a 28x28 digit,
    white on black, as MNIST) or ``(H, W, 3)`` RGB."""
    try:
        im = open_image(path)  # the photo checks: empty, unreadable, corrupt, decompression bomb
    except PhotoError as e:
        raise InputError(str(e)) from None
    c, h, w = shape
    if im.size != (w, h):
        what = "the MNIST model encodes 28x28 images only" if shape == (1, 28, 28) else f"this model takes {w}x{h}"
        raise InputError(f"is {im.size[0]}x{im.size[1]}, {what} (for colour photos use --model colorize)")
    return np.asarray(im.convert("L" if c == 1 else "RGB"))


def label_for(path: Path, digit: int | None, class_names: tuple[str, ...] = ()) -> int:
    """``--digit``, else the name of the folder holding the image: a digit (``3/x.png`` is a 3),
    or one of the model's ``class_names`` (``Sandal/x.png``)."""
    if digit is not None:
        return digit
    parent = path.absolute().parent.name
    if parent in class_names:
        return class_names.index(parent)
    if not class_names and len(parent) == 1 and parent.isdigit():
        return int(parent)
    raise InputError("has no label: give --digit D or put it in a folder named after its class (3/x.png)")


def encode_images(
    run: BatchRun,
    *,
    weights: Path,
    digit: int | None,
    verify: bool,
    batch_size: int | None,
) -> None:
    """Encode every input of ``source`` into ``out``, ``batch_size`` images at a time (``None``:
    ``BATCH_SIZE``): images decoded and latents written by
    ``workers`` threads while the model runs here; ``shard`` as in ``colorize_photos``."""
    source, out, overwrite, device = run.source, run.out, run.overwrite, run.device
    report, workers, shard = run.report, run.workers, run.shard
    model, info = load_mnist_model(weights, device, exact=True)
    batch_size = batch_size or BATCH_SIZE
    pending: list[tuple[Path, Path, np.ndarray, int]] = []

    if digit is not None and digit >= model.config.n_classes:
        raise ValueError(f"--digit {digit}: this model has {model.config.n_classes} classes")
    shape, names = model.config.image_shape, model.config.class_names

    def read(item: tuple[Path, Path, Path]) -> tuple[np.ndarray, int]:
        return read_digit_image(item[0], shape), label_for(item[0], digit, names)

    items = latent_targets(source, out, shard, overwrite, report)
    with Pool(workers or default_workers(), report.checkpoint) as pool, progress_bar(source, out, shard, report) as bar:
        for (path, _, target), decoded in readable(pool, items, read, report, InputError, itemgetter(0), bar):
            pending.append((path, target, *decoded))
            if len(pending) >= batch_size:
                _encode_batch(model, info.sha256, pending, verify, device, report, pool)
                pending.clear()
        if pending:
            _encode_batch(model, info.sha256, pending, verify, device, report, pool)


@torch.no_grad()
def _encode_batch(
    model, model_sha256: str, batch, verify: bool, device: torch.device, report: RunReport, pool: Pool
) -> None:
    dtype = next(model.parameters()).dtype
    pixels = torch.from_numpy(np.stack([b[2] for b in batch])).to(dtype)
    pixels = pixels.unsqueeze(1) if pixels.dim() == 3 else pixels.permute(0, 3, 1, 2)  # (B, C, H, W)
    # Bin centres: the deterministic dequantization, so floor(256 y) gives the pixels back.
    y = ((pixels + 0.5) / 256.0).to(device)
    labels = torch.tensor([b[3] for b in batch], device=device)
    zs, log_prob = model.encode(y, labels)
    bpd = bits_per_dim(log_prob, y[0].numel()).cpu()
    errors = None
    if verify:
        back = model.inverse(zs, labels)
        errors = ((back - y).abs().flatten(1).amax(1) * 255.0).cpu()
    zs = [z.cpu() for z in zs]  # written by worker threads, which should not touch the device
    for i, (path, target, _, label) in enumerate(batch):
        err = None if errors is None else float(errors[i])
        if err is not None and not err <= VERIFY_LIMIT:
            report.fail(str(path), f"round trip error {err:.3g}/255 exceeds {VERIFY_LIMIT}/255")
            continue
        latent = Latent(
            zs=[z[i] for z in zs],
            task="mnist",
            condition={"digit": label},
            image_size=image_size(model),
            model_sha256=model_sha256,
            extra={"source": text_name(path.name), "bits_per_dim": f"{float(bpd[i]):.4f}"},
        )
        fields = {"source": str(path), "digit": label, "bits_per_dim": round(float(bpd[i]), 4)}
        if err is not None:
            fields["roundtrip_error_8bit"] = round(err, 6)
        pool.write(partial(save_latent, target, latent), partial(_done, report, path, target, fields))


def _done(report: RunReport, path: Path, target: Path, fields: dict, error: BaseException | None) -> None:
    """Back on the main thread: report one latent file as written or failed."""
    if error is None:
        report.wrote(str(target), **fields)
    elif isinstance(error, OSError):
        report.fail(str(path), f"cannot write {display_name(target)} ({error.strerror or error})")
    elif isinstance(error, ValueError):  # metadata safetensors refuses: this input fails, the run goes on
        report.fail(str(path), f"cannot write {display_name(target)} ({error})")
    else:
        raise error
