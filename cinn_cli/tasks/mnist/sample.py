"""``cinn sample``: class-conditional images (MNIST digits, or a ``cinn train classes`` model's) from a
model file, with their latents beside them."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from cinn_cli.batch.images import provenance_text, quantize, sheet, write_png
from cinn_cli.batch.report import RunReport
from cinn_cli.files.latents import Latent, derive_seed, draw_latent, save_latent, stack_levels, text_name
from cinn_cli.tasks import load_model


@dataclass(frozen=True)
class SampleJob:
    digit: int
    index: int  # 1-based
    seed: int  # per-image seed
    name: str  # the class in file names (file_names)

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.index:04d}"


def file_names(model) -> list[str]:
    """Each label's name in output file names: the digit for MNIST (and any model whose file names
    no classes), else the class name with every character other than letters, digits, ``-``,
    ``_`` and ``.`` made ``_`` ("Ankle boot" -> ``Ankle_boot``); the labels when two names would
    give one file name."""
    if not model.config.class_names:
        return [str(i) for i in range(model.config.n_classes)]
    safe = [re.sub(r"[^A-Za-z0-9._-]", "_", n).lstrip(".") or "_" for n in model.class_names]
    return safe if len(set(safe)) == len(safe) else [str(i) for i in range(len(safe))]


def load_mnist_model(weights: Path, device: torch.device, exact: bool = False):
    """``(model, info)``; ``exact=True`` gives it in float64, as ``cinn encode`` uses it.

    Why float64 for encoding: a model can map a rare input to a huge latent (the clamp-1.5 MNIST
    model shipped before sent test image 5627 to norm ~3e4), where float32 decoding cancels
    catastrophically (error 259/255) while float64 gives the image back exactly. Encoded latents
    are stored in float64 and decoded in float64; sampled latents are float32 and decoded in
    float32 (fast, and the same bytes as the sample). MPS has no float64 and stays in float32.
    """
    model, info = load_model(weights, device=str(device), task="mnist")
    return (model.double() if exact and device.type != "mps" else model), info


def image_pixels(x: Tensor):
    """Model output ``x (B, C, H, W)`` in [0, 1] -> uint8 ``(B, H, W)`` gray or ``(B, H, W, 3)`` RGB
    pixels, ``floor(256 x)`` (``quantize``; raises on non-finite values)."""
    return quantize(x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1))


def image_size(model) -> str:
    """A latent file's ``image_size``: ``"WxH"`` of the model's images."""
    _, h, w = model.config.image_shape
    return f"{w}x{h}"


def class_text(model, label: int) -> dict[str, str]:
    """PNG text naming the class, for models whose file names their classes (MNIST's does not)."""
    return {"cinn:class": model.class_names[label]} if model.config.class_names else {}


def pil_mode(model) -> str:
    return "L" if model.config.image_shape[0] == 1 else "RGB"


def sample_seed(seed: int, digit: int, k: int) -> int:
    """The seed of sample ``k`` (1-based) of ``digit`` in a run with ``seed``."""
    return derive_seed(seed, f"{digit}-{k:04d}", 0)


@torch.no_grad()
def draw_digits(model, digit: int, seeds: list[int], temperature: float) -> tuple[list[list[Tensor]], Tensor]:
    """One latent per seed (``draw_latent``) decoded under ``digit`` -> ``(latents, x (B, C, H, W))``,
    ``x`` in [0, 1] on the model's device (not checked for finiteness)."""
    device = next(model.parameters()).device
    zs_each = [draw_latent(model.latent_shapes(), s, temperature) for s in seeds]
    labels = torch.full((len(seeds),), digit, dtype=torch.long, device=device)
    return zs_each, model.inverse(stack_levels(zs_each, device), labels)


def sample_digits(
    *,
    weights: Path,
    digits: list[int],
    n: int,
    temperature: float,
    seed: int,
    out: Path,
    make_grid: bool,
    latents: bool,
    overwrite: bool,
    device: torch.device,
    batch_size: int,
    report: RunReport,
) -> None:
    model, info = load_mnist_model(weights, device)
    out.mkdir(parents=True, exist_ok=True)
    provenance = {**provenance_text(info.sha256), "cinn:temperature": repr(temperature)}
    report.unit, report.total = "samples", len(digits) * n
    names = file_names(model)
    for digit in digits:
        jobs = [SampleJob(digit, k, sample_seed(seed, digit, k), names[digit]) for k in range(1, n + 1)]
        todo = [j for j in jobs if overwrite or not _outputs_exist(out, j, latents)]
        for j in jobs:
            if j not in todo:
                report.skip(str(out / f"{j.stem}.png"))
        report.started += len(jobs) - len(todo)
        tiles = {}
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            report.started += len(chunk)
            zs_each, x = draw_digits(model, digit, [j.seed for j in chunk], temperature)
            finite = torch.isfinite(x.flatten(1)).all(1).tolist()
            pixels = image_pixels(torch.nan_to_num(x))  # the non-finite ones are not written
            for j, px, z, ok in zip(chunk, pixels, zs_each, finite, strict=True):
                png = out / f"{j.stem}.png"
                if not ok:
                    report.fail(str(png), NON_FINITE)
                    continue
                text = {
                    **provenance,
                    "cinn:digit": str(digit),
                    **class_text(model, digit),
                    "cinn:index": str(j.index),
                    "cinn:seed": str(j.seed),
                }
                write_png(png, px, text)
                tiles[j.index] = px
                if latents:
                    latent = Latent(
                        zs=z,
                        task="mnist",
                        condition={"digit": digit},
                        image_size=image_size(model),
                        model_sha256=info.sha256,
                        seed=j.seed,
                        temperature=temperature,
                    )
                    save_latent(out / f"{j.stem}.safetensors", latent)
                report.wrote(str(png), digit=digit, index=j.index, seed=j.seed)
        complete = all(j.index in tiles or (out / f"{j.stem}.png").exists() for j in jobs)  # none failed
        if make_grid and complete and (tiles or overwrite or not (out / f"{names[digit]}-grid.png").exists()):
            _write_grid(out, digit, jobs, tiles, {**provenance, **class_text(model, digit)}, seed, pil_mode(model))


def _outputs_exist(out: Path, job: SampleJob, latents: bool) -> bool:
    """Whether sample ``job`` is skipped: its image *or* its latent is there (without
    ``--overwrite`` no existing file is replaced, even when the other one is missing)."""
    return (out / f"{job.stem}.png").exists() or (out / f"{job.stem}.safetensors").exists()


def _write_grid(
    out: Path, digit: int, jobs: list[SampleJob], tiles: dict, provenance: dict, seed: int, mode: str
) -> None:
    """Contact sheet of all ``n`` samples of one digit (reading back the ones skipped this run)."""
    import numpy as np
    from PIL import Image

    images = []
    for j in jobs:
        if j.index in tiles:
            images.append(tiles[j.index])
        else:
            with Image.open(out / f"{j.stem}.png") as im:
                images.append(np.asarray(im.convert(mode)))
    write_png(
        out / f"{jobs[0].name}-grid.png",
        sheet(images),
        {**provenance, "cinn:digit": str(digit), "cinn:run_seed": str(seed)},
    )


NON_FINITE = "the model gave NaN or infinite values (no image written)"


def decode_latents(
    *,
    weights: Path,
    sources: list[str],
    digits: list[int] | None,
    out: Path,
    overwrite: bool,
    device: torch.device,
    report: RunReport,
    transfer_temperature: float = 1.0,
) -> None:
    """Decode stored latents: under their own digit (``DIR/<stem>.png``, the exact round trip) or
    under each of ``digits`` (``DIR/<stem>-<D>.png``: same style, another digit), the latent then
    scaled by ``transfer_temperature`` (1: as stored)."""
    from cinn_cli.batch.images import discover
    from cinn_cli.files.latents import LatentFileError, check_latent_fits, load_latent

    model, info = load_mnist_model(weights, device)
    exact = None  # the float64 copy, made when the first float64 (encoded) latent comes
    shapes = model.latent_shapes()
    names = file_names(model)
    provenance = provenance_text(info.sha256)
    scale = 1.0 if digits is None else transfer_temperature
    fields = {} if digits is None else {"transfer_temperature": scale}  # recorded for style transfer only
    if digits is not None:
        provenance["cinn:transfer_temperature"] = repr(scale)
    for source in sources:
        for path, rel in discover(source, suffixes=(".safetensors",)):
            try:
                latent = load_latent(path, check_condition=digit_condition)
                check_latent_fits(latent, path, "mnist", shapes, info.sha256)
            except LatentFileError as e:
                report.fail(str(path), str(e).removeprefix(f"{path}: "))
                continue
            own = latent.condition.get("digit")
            if own >= model.config.n_classes:
                report.fail(str(path), f"its class {own} is not one of this model's {model.config.n_classes}")
                continue
            wanted = [(own, out / rel.with_suffix(".png"))] if digits is None else []
            wanted += [(d, out / rel.parent / f"{rel.stem}-{names[d]}.png") for d in digits or []]
            todo = []
            for d, target in wanted:
                if target.exists() and not overwrite:
                    report.skip(str(target))
                else:
                    todo.append((d, target))
            if not todo:
                continue
            labels = torch.tensor([d for d, _ in todo], device=device)
            decoder = model
            if latent.zs[0].dtype == torch.float64 and device.type != "mps":  # decode in the file's precision
                exact = exact or copy.deepcopy(model).double()
                decoder = exact
            dtype = next(decoder.parameters()).dtype
            zs = [scale * z.unsqueeze(0).expand(len(todo), *z.shape).to(device, dtype) for z in latent.zs]
            with torch.no_grad():
                x = decoder.inverse(zs, labels)
            if not bool(torch.isfinite(x).all()):
                report.fail(str(path), NON_FINITE)
                continue
            pixels = image_pixels(x)
            text = {**provenance, "cinn:latent": text_name(path.name)}
            for (d, target), px in zip(todo, pixels, strict=True):
                target.parent.mkdir(parents=True, exist_ok=True)
                write_png(target, px, {**text, "cinn:digit": str(d), **class_text(model, d)})
                report.wrote(str(target), latent=str(path), digit=d, **fields)
            if digits is not None and len(digits) > 1:  # style transfer: one row, the digits in order
                _write_transfer_sheet(out / rel.parent / f"{rel.stem}-grid.png", wanted, text, pil_mode(model))


def _write_transfer_sheet(path: Path, wanted: list, text: dict, mode: str) -> None:
    """The sheet of one latent decoded under every ``--digit`` (read back from the PNGs, so the
    ones skipped this run appear too); not counted as an output, like ``--grid``'s."""
    import numpy as np
    from PIL import Image

    tiles = []
    for _, target in wanted:
        with Image.open(target) as im:
            tiles.append(np.asarray(im.convert(mode)))
    write_png(path, sheet(tiles, columns=len(tiles)), text)


def interpolate_latents(
    *,
    weights: Path,
    start: Path,
    end: Path,
    steps: int,
    digits: list[int] | None,
    out: Path,
    overwrite: bool,
    device: torch.device,
    report: RunReport,
) -> None:
    """Decode the spherical path between two latents: ``DIR/<A>-<B>-<D>-<i>.png`` for i = 00..steps-1
    (endpoints included) under each digit D (default: A's digit), plus a strip ``DIR/<A>-<B>-<D>.png``;
    each of the ``steps + 1`` files is reported (and listed with ``--json``) as written or skipped."""
    from cinn_cli.files.latents import check_latent_fits, load_latent, slerp

    model, info = load_mnist_model(weights, device)
    shapes = model.latent_shapes()
    a, b = (load_latent(p, check_condition=digit_condition) for p in (start, end))
    check_latent_fits(a, start, "mnist", shapes, info.sha256)
    check_latent_fits(b, end, "mnist", shapes, info.sha256)
    path = [slerp(a.zs, b.zs, i / (steps - 1)) for i in range(steps)]
    # encoded latents are float64 (slerp's endpoints keep the file's dtype): decode in the model's
    dtype = next(model.parameters()).dtype
    zs = [torch.stack([p[level].to(dtype) for p in path]).to(device) for level in range(len(shapes))]
    out.mkdir(parents=True, exist_ok=True)
    for d in digits if digits is not None else [a.condition.get("digit", 0)]:
        name = f"{start.stem}-{end.stem}-{file_names(model)[d]}"
        with torch.no_grad():
            pixels = image_pixels(model.inverse(zs, torch.full((steps,), d, device=device)))
        text = {
            **provenance_text(info.sha256),
            "cinn:digit": str(d),
            **class_text(model, d),
            "cinn:path": f"slerp {start.name} {end.name}",
        }
        # every file is an output: each frame, then the strip (scaled up as the contact sheets)
        files = [(out / f"{name}-{i:02d}.png", px, {"step": i}) for i, px in enumerate(pixels)]
        files.append((out / f"{name}.png", sheet(list(pixels), columns=steps), {"steps": steps, "strip": True}))
        for target, px, fields in files:
            if target.exists() and not overwrite:
                report.skip(str(target))
                continue
            write_png(target, px, text)
            report.wrote(str(target), digit=d, **fields)


def digit_condition(condition: dict, task: str, path: str) -> None:
    """An MNIST-task latent's condition is ``{"digit": d}``, d its class's label (an integer 0-999;
    the model decoding it checks it has that class)."""
    if task != "mnist":
        return  # another task's latent: refused by check_latent_fits, with its task named
    digit = condition.get("digit")
    if type(digit) is not int or not 0 <= digit <= 999:  # type(): True is an int to isinstance
        from cinn_cli.files.latents import LatentFileError

        raise LatentFileError(f"{path}: an 'mnist' latent whose condition's digit {digit!r} is not an integer 0-999")
