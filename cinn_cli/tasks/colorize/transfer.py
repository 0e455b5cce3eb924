"""Colorization latents: ``cinn encode --model colorize`` and ``cinn colorize --from-latent``.

Encoding a colour photo gives the one latent that reproduces its colours under its own lightness:
the condition is computed exactly as ``cinn colorize`` computes it (the photo's gray as PIL's
``convert('L')``, its Lab lightness, resized to the model's working size), and the encoded ab is
the photo's own, resized to the model's colour grid. Decoding that latent under the same photo
gives the encoded ab back (to float rounding); under another photo's lightness it carries the
colours over (colour transfer), with ``levels`` choosing, per latent level, how much comes from
the file and how much is drawn anew (the reference code's ``color_transfer``).
"""

from __future__ import annotations

import math
from functools import partial
from operator import itemgetter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cinn_cli.batch.images import discover, provenance_text
from cinn_cli.batch.photos import PhotoError, encode_image, read_gray, read_rgb
from cinn_cli.batch.report import RunReport
from cinn_cli.batch.run import BatchRun
from cinn_cli.batch.stream import (
    OutputError,
    Pool,
    TempSweeper,
    WriteError,
    default_workers,
    existing_output,
    latent_targets,
    progress_bar,
    readable,
    select,
    shared_cores,
    write_or_raise,
)
from cinn_cli.errors import OptionError
from cinn_cli.files.atomic import atomic_write_bytes
from cinn_cli.files.latents import (
    Latent,
    LatentFileError,
    derive_seed,
    draw_latent,
    load_latent,
    save_latent,
    text_name,
)
from cinn_cli.tasks.colorize.color import LabColourer, gray_to_lightness, lab_to_rgb, resize, rgb_to_lab
from cinn_cli.tasks.colorize.colorize import (
    colour_in_workers,
    gray_sha256,
    level_temperatures_text,
    load_colorize_model,
    photo_latent,
    report_write,
    to_pixels,
    working_ab,
)
from cinn_cli.tasks.colorize.model import ab_bits_per_dim

# Latents decoded per model call in colour transfer (one photo's lightness under many latents).
TRANSFER_BATCH = 8
# Round trip limit in 8-bit RGB units at the model's colour resolution (issue: within 1/255).
VERIFY_LIMIT_RGB = 1.0


def working_lightness(model, gray: np.ndarray, device: torch.device) -> tuple[Tensor, Tensor]:
    """``gray (H, W)`` in [0, 1] -> ``(L (1, 1, H, W), L_work (1, 1, h, w))`` in Lab units, ``L_work``
    at the model's working size: the condition ``cinn colorize`` uses for this photo."""
    L = gray_to_lightness(torch.from_numpy(gray).to(device))[None, None]
    return L, resize(L, model.working_size(*gray.shape))


def photo_ab(model, rgb: np.ndarray, L_work: Tensor) -> Tensor:
    """``rgb (H, W, 3)`` uint8 -> its ab ``(1, 2, h', w')`` (Lab units) on the model's colour grid for
    ``L_work``: converted at full resolution, then resized (antialiased) like the lightness."""
    x = torch.tensor(rgb, device=L_work.device).permute(2, 0, 1)[None].float() / 255.0
    ab = rgb_to_lab(x)[:, 1:]
    return resize(ab, model.ab_size(*L_work.shape[-2:]))


def rgb_at_colour_grid(L_work: Tensor, ab: Tensor) -> Tensor:
    """RGB ``(B, 3, h', w')`` of ``ab`` with the lightness area-averaged to ab's grid."""
    L = F.adaptive_avg_pool2d(L_work, ab.shape[-2:]).expand(len(ab), -1, -1, -1)
    return lab_to_rgb(torch.cat([L, ab], dim=1))


def encode_photos(
    run: BatchRun,
    *,
    weights: Path,
    verify: bool,
    work_size: int | None = None,
) -> None:
    """Every colour photo under ``source`` -> ``OUT/<rel dir>/<stem>.safetensors`` (photos decoded
    ahead by ``workers`` threads; ``shard`` as in ``colorize_photos``)."""
    source, out, overwrite, device = run.source, run.out, run.overwrite, run.device
    report, workers, shard = run.report, run.workers, run.shard
    model, info = load_colorize_model(str(weights), device, work_size)

    def read(item) -> tuple[np.ndarray, np.ndarray]:
        return read_gray(item[0])[0], read_rgb(item[0])

    items = latent_targets(source, out, shard, overwrite, report)
    with Pool(workers or default_workers(), report.checkpoint) as pool, progress_bar(source, out, shard, report) as bar:
        for (path, rel, target), decoded in readable(pool, items, read, report, PhotoError, itemgetter(0), bar):
            _encode_one(model, info, path, rel, target, *decoded, verify, device, report)


def _encode_one(model, info, path: Path, rel: Path, target: Path, gray, rgb, verify: bool, device, report) -> None:
    """Encode one decoded photo and write its latent (or report why not)."""
    with torch.no_grad():
        _, L_work = working_lightness(model, gray, device)
        ab = photo_ab(model, rgb, L_work)
        zs, log_prob = model.encode(ab, L_work)
        bpd = float(ab_bits_per_dim(log_prob, ab[0].numel()))
        err = None
        if verify:
            back = model.inverse(zs, L_work)
            diff = rgb_at_colour_grid(L_work, back) - rgb_at_colour_grid(L_work, ab)
            err = float(diff.abs().max()) * 255.0
    if err is not None and not err <= VERIFY_LIMIT_RGB:
        report.fail(str(path), f"round trip error {err:.3g}/255 in RGB exceeds {VERIFY_LIMIT_RGB:g}/255")
        return
    extra = {"source": text_name(path.name), "bits_per_dim": f"{bpd:.4f}"}
    latent = photo_latent([z[0] for z in zs], rel, gray, gray_sha256(gray), info.sha256, L_work.shape[-2:], extra=extra)
    try:
        write_or_raise(target, save_latent, latent)
    except WriteError as e:
        report.fail(str(path), str(e))
        return
    fields = {"source": str(path), "bits_per_dim": round(bpd, 4)}
    if err is not None:
        fields["roundtrip_error_8bit"] = round(err, 6)
    report.wrote(str(target), **fields)


# --------------------------------------------------------------------------- decode / transfer


class TransferLevelsError(OptionError):
    """A ``--transfer-levels`` value this model cannot use."""

    option = "--transfer-levels"


def parse_levels(spec: str, n_levels: int) -> list[float]:
    """``--transfer-levels``: ``all`` (every level from the file: the exact decode) or one weight
    in [0, 1] per latent level, finest first, e.g. ``0,0.3,1`` -> ``[0.0, 0.3, 1.0]``."""
    if spec.strip().lower() == "all":
        return [1.0] * n_levels
    try:
        weights = [float(part) for part in spec.split(",")]
    except ValueError:
        raise TransferLevelsError(f"{spec!r}: give 'all' or {n_levels} numbers in [0, 1]") from None
    if len(weights) != n_levels or not all(0.0 <= w <= 1.0 for w in weights):
        raise TransferLevelsError(
            f"{spec!r}: this model has {n_levels} latent levels (finest first); "
            f"give 'all' or {n_levels} comma-separated weights in [0, 1]"
        )
    return weights


def fit_latent(latent: Latent, path: Path, shapes: list[tuple[int, ...]], model_sha256: str) -> list[Tensor]:
    """The file's levels resized to ``shapes``. Spatial levels of another photo's size are resized
    by nearest neighbour (each value is still one of the file's N(0, 1) values, so the result stays
    a typical latent); anything else that does not fit is refused in one sentence."""
    if latent.task != "colorize":
        raise LatentFileError(f"{path}: a latent of a {latent.task!r} model, not 'colorize'")
    if latent.model_sha256 and latent.model_sha256 != model_sha256:
        raise LatentFileError(
            f"{path}: made by another model (sha256 {latent.model_sha256[:12]}…, this one is {model_sha256[:12]}…)"
        )
    got = [tuple(z.shape) for z in latent.zs]
    fits = len(got) == len(shapes) and all(
        g == s or (len(g) == len(s) == 3 and g[0] == s[0]) for g, s in zip(got, shapes, strict=False)
    )
    if not fits:
        raise LatentFileError(f"{path}: latent shapes {got} do not fit this model ({shapes})")
    return [
        z if tuple(z.shape) == s else F.interpolate(z[None], size=s[1:], mode="nearest")[0]
        for z, s in zip(latent.zs, shapes, strict=True)
    ]


def mix_levels(file_zs: list[Tensor], fresh_zs: list[Tensor], weights: list[float]) -> list[Tensor]:
    """Per level ``sqrt(w) z_file + sqrt(1 - w) z_fresh``: variance-preserving, so the mix of two
    N(0, 1) latents is again N(0, 1) (the reference's colour transfer)."""
    return [
        z if w == 1.0 else math.sqrt(w) * z + math.sqrt(1.0 - w) * r
        for z, r, w in zip(file_zs, fresh_zs, weights, strict=True)
    ]


def colorize_from_latents(
    run: BatchRun,
    *,
    weights: str | None,
    latent_sources: list[str],
    levels: str,
    temperature: float,
    seed: int,
    fmt: str,
    latents: bool,
    work_size: int | None = None,
    level_temperatures: tuple[float, ...] | None = None,
) -> None:
    """Decode every stored latent under every photo's lightness:
    ``OUT/<rel dir>/<stem>-from-<latent stem>.<fmt>``, at the photo's full size."""
    source, out, overwrite, device = run.source, run.out, run.overwrite, run.device
    report, workers, shard = run.report, run.workers, run.shard
    model, info = load_colorize_model(weights, device, work_size, level_temperatures)
    mix = parse_levels(levels, model.n_latent_levels)
    stored = [(p, load_or_fail(p, report)) for src in latent_sources for p, _ in discover(src, (".safetensors",))]
    stored = [(p, lat) for p, lat in stored if lat is not None]
    workers = workers or default_workers()
    with (
        shared_cores(device, workers),
        Pool(workers, report.checkpoint) as pool,
        progress_bar(source, out, shard, report) as bar,
    ):
        inputs = select(discover(source, skip=out, report=report), shard, report)
        decode_under = partial(
            _decode_under,
            model=model,
            info=info,
            stored=stored,
            mix=mix,
            out=out,
            temperature=temperature,
            seed=seed,
            fmt=fmt,
            latents=latents,
            overwrite=overwrite,
            device=device,
            report=report,
            pool=pool,
            sweep=TempSweeper(),
        )
        for (path, rel), decoded in readable(pool, inputs, _read_gray, report, PhotoError, itemgetter(0), bar):
            decode_under(path, rel, *decoded)


def _read_gray(item: tuple[Path, Path]):
    return read_gray(item[0])


def _decode_under(
    path,
    rel,
    gray,
    alpha,
    *,
    model,
    info,
    stored,
    mix,
    out,
    temperature,
    seed,
    fmt,
    latents,
    overwrite,
    device,
    report,
    pool,
    sweep,
) -> None:
    """Every stored latent under one photo's lightness (see ``colorize_from_latents``): the model
    runs here, ``TRANSFER_BATCH`` latents per call; each output's full-size colouring, encoding and
    writing go to ``pool`` (as in ``cinn colorize``, see ``colour_in_workers``)."""
    L, L_work = working_lightness(model, gray, device)
    work_size = tuple(L_work.shape[-2:])
    shapes, temps = model.latent_shapes(*work_size), model.level_temperatures(temperature)
    todo = []  # (latent path, output, latent output or None, seed, latent levels)
    for latent_path, latent in stored:
        target = out / rel.parent / f"{rel.stem}-from-{latent_path.stem}.{fmt}"
        latent_target = target.with_suffix(".safetensors") if latents else None
        sweep(target.parent)  # a killed run's temporary files, as cinn colorize removes them
        try:  # the rules of cinn colorize (see _plans there)
            there = existing_output([target, target.with_suffix(".safetensors")], check_names=2 if latents else 1)
        except OutputError as e:
            report.fail(str(path), str(e))
            continue
        if there and not overwrite:
            report.skip(str(there))
            continue
        try:
            file_zs = fit_latent(latent, latent_path, shapes, info.sha256)
        except LatentFileError as e:
            report.fail(str(latent_path), str(e).removeprefix(f"{latent_path}: "))
            continue
        s = derive_seed(seed, f"{rel.as_posix()}\0{latent_path.name}", 1)
        todo.append((latent_path, target, latent_target, s, mix_levels(file_zs, draw_latent(shapes, s, temps), mix)))
    if not todo:
        return
    gray_hash = gray_sha256(gray)
    mix_text = ",".join(f"{w:g}" for w in mix)
    temps_text = level_temperatures_text(model)
    colour = LabColourer(L, model.ab_size(*work_size))  # shared by this photo's outputs
    for start in range(0, len(todo), TRANSFER_BATCH):
        chunk = todo[start : start + TRANSFER_BATCH]
        ab = working_ab(model, L, [torch.stack([t[4][i] for t in chunk]).to(device) for i in range(len(shapes))])
        for (latent_path, target, latent_target, s, zs), ab_k in zip(chunk, ab.split(1), strict=True):
            rgb = None if colour_in_workers(device) else colour(ab_k).cpu()
            text = {
                **provenance_text(info.sha256),
                "cinn:source": text_name(rel.as_posix()),
                "cinn:latent": text_name(latent_path.name),
                "cinn:transfer_levels": mix_text,
                "cinn:seed": str(s),
                "cinn:temperature": repr(temperature),
                "cinn:level_temperatures": temps_text,
            }
            latent_file = None
            if latent_target is not None:
                extra = {
                    "from_latent": text_name(latent_path.name),
                    "transfer_levels": mix_text,
                    "level_temperatures": temps_text,
                }
                latent_file = photo_latent(
                    zs, rel, gray, gray_hash, info.sha256, work_size, seed=s, temperature=temperature, extra=extra
                )
            write = partial(_write_transfer, target, colour, ab_k, rgb, alpha, fmt, text, latent_target, latent_file)
            pool.write(write, partial(report_write, report, path, target, latent=str(latent_path)))


def _write_transfer(target, colour, ab, rgb, alpha, fmt, text, latent_target, latent_file) -> None:
    """In a worker thread: colour one transfer at full size from its ``ab (1, 2, h, w)`` (unless
    ``rgb`` was made on the GPU), encode it, write it and its latent, each atomically."""
    rgb = (colour(ab) if rgb is None else rgb)[0]
    atomic_write_bytes(target, encode_image(to_pixels(rgb, alpha), fmt, text))
    if latent_file is not None:
        write_or_raise(latent_target, save_latent, latent_file)
    else:  # --overwrite --no-latents: no old latent may describe the new image
        target.with_suffix(".safetensors").unlink(missing_ok=True)


def load_or_fail(path: Path, report: RunReport) -> Latent | None:
    """The latent file, or ``None`` after reporting why it cannot be used."""
    try:
        return load_latent(path, dtypes=("F32",))  # colour latents are always float32
    except LatentFileError as e:
        report.fail(str(path), str(e).removeprefix(f"{path}: "))
        return None
