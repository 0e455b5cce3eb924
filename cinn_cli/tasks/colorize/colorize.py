"""``cinn colorize``: n colourings of every photo, at the photo's own size and lightness.

The model runs at its working resolution (short side ``work_size``, the aspect ratio kept; the
paper model: 64x64); its ab is upsampled with a guided filter steered by the full-resolution
lightness, so colour edges follow the photo's edges; the output's L is the input's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cinn_cli.batch.images import discover, grid, provenance_text
from cinn_cli.batch.photos import PhotoError, encode_image, read_gray
from cinn_cli.batch.report import RunReport, display_name
from cinn_cli.batch.run import BatchRun
from cinn_cli.batch.stream import (
    NameTooLong,
    OutputError,
    Pool,
    TempSweeper,
    WriteError,
    default_workers,
    existing_output,
    progress_bar,
    readable,
    select,
    shared_cores,
    write_or_raise,
)
from cinn_cli.errors import OptionError
from cinn_cli.files.atomic import atomic_write_bytes
from cinn_cli.files.latents import Latent, derive_seed, save_latent, stack_levels, text_name
from cinn_cli.files.model_file import ModelFileError
from cinn_cli.tasks import load_model, resolve_weights
from cinn_cli.tasks.colorize.color import LabColourer, gray_to_lightness, resize
from cinn_cli.tasks.colorize.sampling import BEST_GUESS_INDEX, colorize_latent


class LevelTemperaturesError(OptionError):
    """``--level-temperatures`` that do not fit the model."""

    option = "--level-temperatures"


NO_SHIPPED_MODEL = (
    "no shipped colorization model yet; train one with cinn train colorize --data DIR --out FILE or pass --weights FILE"
)
GRID_TILE = 256  # long side of each tile in a contact sheet


def load_colorize_model(
    weights: str | None,
    device: torch.device,
    work_size: int | None = None,
    level_temperatures: tuple[float, ...] | None = None,
):
    """``(model, info)`` for ``--weights`` (a path or the shipped name ``colorize``); ``work_size``
    (``--work-size``) and ``level_temperatures`` (``--level-temperatures``) replace the file's
    for this run."""
    path = resolve_weights(weights, "colorize")
    if weights in (None, "colorize") and not path.exists():
        raise ModelFileError(NO_SHIPPED_MODEL)
    model, info = load_model(path, device=str(device), task="colorize")
    if work_size is not None:
        if model.config.arch == "paper":
            raise ValueError("--work-size does not apply to a paper-architecture model (it runs at 64x64 only)")
        if work_size < model.size_multiple:
            raise ValueError(f"--work-size must be at least {model.size_multiple} for this model, got {work_size}")
        model.config = replace(model.config, work_size=work_size)
    if level_temperatures is not None:
        try:
            model.check_level_temperatures(level_temperatures)
        except ValueError as e:
            raise LevelTemperaturesError(str(e)) from None
        model.config = replace(model.config, level_temperatures=level_temperatures)
    return model, info


def level_temperatures_text(model) -> str:
    """The per-level factors sampling multiplies ``-t`` by, finest level first: ``"0.5,0.5,1.2"``."""
    return ",".join(f"{t:g}" for t in model.level_temperatures(1.0))


@torch.no_grad()
def working_ab(model, L: Tensor, zs: list[Tensor]) -> Tensor:
    """``L (1, 1, H, W)`` full-resolution lightness and a batch of ``n`` latents -> ab
    ``(n, 2, h, w)`` at the model's colour resolution (the model runs at its working size).

    The condition stays at batch 1: the condition network and every coupling's condition term run
    once per photo, not once per sample (``Flow`` broadcasts a condition of batch 1)."""
    L_work = resize(L, model.working_size(*L.shape[-2:]))
    return model.inverse(zs, L_work).clamp(-128.0, 128.0)  # the reference's clamp before lab2rgb


def colorize_lightness(model, L: Tensor, zs: list[Tensor]) -> Tensor:
    """``L (1, 1, H, W)`` full-resolution lightness and a batch of ``n`` latents -> RGB
    ``(n, 3, H, W)`` in [0, 1] (computed one sample at a time at full resolution, to bound memory)."""
    ab = working_ab(model, L, zs)
    colour = LabColourer(L, tuple(ab.shape[-2:]))
    return torch.cat([colour(ab[i : i + 1]) for i in range(len(ab))])


@torch.no_grad()
def full_size_rgb(L: Tensor, ab: Tensor) -> Tensor:
    """``L (B, 1, H, W)`` and ``ab (B, 2, h, w)`` at the working resolution -> RGB ``(B, 3, H, W)``:
    ab brought to full size by the guided filter steered by ``L`` (``LabColourer``)."""
    return LabColourer(L, tuple(ab.shape[-2:]))(ab)


def to_pixels(rgb: Tensor, alpha: np.ndarray | None) -> np.ndarray:
    """``(3, H, W)`` in [0, 1] -> ``(H, W, 3|4)`` uint8 (rounded; alpha appended when given).

    Non-finite values raise ``ValueError`` (that input fails) rather than become black pixels."""
    if not bool(torch.isfinite(rgb).all()):
        raise ValueError("the model gave NaN or infinite values (no image written)")
    px = (rgb.permute(1, 2, 0).float().cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    return px if alpha is None else np.concatenate([px, alpha[..., None]], axis=2)


@dataclass
class _Plan:
    """One input photo and the outputs it still needs (decided before it is decoded)."""

    path: Path
    rel: Path
    targets: dict[int, tuple[Path, Path | None]]  # k -> (image, latent or None)
    todo: list[int]
    grid_path: Path | None  # the contact sheet to write, if any
    latent_only: frozenset[int] = frozenset()  # outputs whose image is there: only the latent is due


def colorize_photos(
    run: BatchRun,
    *,
    weights: str | None,
    n: int,
    temperature: float,
    seed: int,
    fmt: str,
    make_grid: bool,
    latents: bool,
    batch_size: int,
    work_size: int | None = None,
    level_temperatures: tuple[float, ...] | None = None,
) -> None:
    """Colorize every input of ``source`` (see ``discover``) into ``out``.

    Photos are decoded ``workers`` threads ahead and outputs encoded and written by the same
    threads behind, while the model runs here; ``shard`` ``(i, N)`` keeps the inputs whose
    relative path hashes to ``i`` (see ``in_shard``). One bad input never stops the run.
    """
    source, out, overwrite, device = run.source, run.out, run.overwrite, run.device
    report, workers, shard = run.report, run.workers, run.shard
    plans = _plans(source, out, n, fmt, make_grid, latents, overwrite, shard, report, seed, temperature)
    workers = workers or default_workers()
    with (
        shared_cores(device, workers),
        Pool(workers, report.checkpoint) as pool,
        progress_bar(source, out, shard, report) as bar,
    ):
        # The model loads in a worker while the first photos decode (each takes ~0.15 s here).
        loading = pool.submit(load_colorize_model, weights, device, work_size, level_temperatures)
        for plan, decoded in readable(pool, plans, _decode, report, PhotoError, lambda plan: plan.path, bar):
            model, info = pool.result(loading)  # raises the model file's error, if any
            try:
                job = _Job(model, info, plan, *decoded, seed, temperature, fmt)
                job.run(batch_size, pool, report)
            except torch.OutOfMemoryError:
                report.fail(str(plan.path), f"out of memory even one sample at a time on {device}")
            except ValueError as e:  # a size the model refuses (check_size): this input fails, the run goes on
                report.fail(str(plan.path), str(e))
        pool.result(loading)  # a bad model file fails the run even when there was nothing to do


def _plans(
    source, out: Path, n, fmt, make_grid, latents, overwrite, shard, report: RunReport, seed: int, temperature: float
) -> Iterator[_Plan]:
    """The inputs of this shard that need work, lazily.

    Without ``--overwrite`` no existing file is ever replaced: an output whose image *or* latent
    is already there is skipped whole ("skipped (already there)"), even when the other one is
    missing (a rerun without ``--no-latents`` keeps a picked favourite; a user's own file at an
    output path stays). With it both are replaced, and ``--no-latents`` removes the old latent
    (see ``_Job._write``). A folder at an output path, or an output name too long for the file
    system, fails that input with the reason.

    One exception completes a killed run: an image this very command made (its PNG text holds
    the same seed and temperature) whose latent is missing gets only its latent written.
    """
    sweep = TempSweeper()
    for path, rel in select(discover(source, skip=out, report=report), shard, report):
        base = out / rel.parent
        sweep(base)
        targets = {
            k: (base / f"{rel.stem}-{k}.{fmt}", base / f"{rel.stem}-{k}.safetensors" if latents else None)
            for k in range(1, n + 1)
        }
        grid_path = base / f"{rel.stem}-grid.{fmt}" if make_grid else None
        try:
            todo, latent_only = [], set()
            for k, (img, lat) in targets.items():
                try:
                    there = existing_output([img, lat or img.with_suffix(".safetensors")], check_names=2 if lat else 1)
                except NameTooLong:
                    raise
                except OutputError as e:  # this output fails, the input's others go on
                    report.fail(str(path), str(e))
                    continue
                if (
                    there == img
                    and lat
                    and not lat.exists()
                    and _made_by(img, derive_seed(seed, rel.as_posix(), k), temperature)
                ):
                    latent_only.add(k)
                    todo.append(k)
                elif there and not overwrite:
                    report.skip(str(there))
                else:
                    todo.append(k)
            grid_due = grid_path is not None and (existing_output([grid_path]) is None or overwrite)
        except OutputError as e:
            report.fail(str(path), str(e))
            continue
        if todo or grid_due:
            yield _Plan(path, rel, targets, todo, grid_path, frozenset(latent_only))


def _made_by(image: Path, seed: int, temperature: float) -> bool:
    """Whether ``image`` is a PNG cinn wrote with this output's ``seed`` and ``temperature``
    (its text chunks say so): writing its latent then completes it and replaces nothing."""
    from PIL import Image

    if not image.is_file() or image.suffix != ".png":  # never open a FIFO; only PNG carries text
        return False
    try:
        with Image.open(image) as im:
            text = getattr(im, "text", {})
    except Exception:  # not ours, or damaged: it is simply skipped
        return False
    return text.get("cinn:seed") == str(seed) and text.get("cinn:temperature") == repr(temperature)


def _decode(plan: _Plan) -> tuple[np.ndarray, np.ndarray | None, Tensor, str]:
    """In a worker thread: ``(gray, alpha, L (1, 1, H, W) on the CPU, SHA-256 of the 8-bit gray)``."""
    gray, alpha = read_gray(plan.path)  # refuses extreme aspect ratios (photos.MAX_ASPECT)
    return gray, alpha, lightness_of(gray), gray_sha256(gray)


def lightness_of(gray: np.ndarray) -> Tensor:
    """``gray (H, W)`` in [0, 1] -> ``L (1, 1, H, W)`` in Lab units, computed on the CPU (the same
    numbers on every machine, whatever device the model then runs on)."""
    return gray_to_lightness(torch.from_numpy(gray))[None, None]


def gray_sha256(gray: np.ndarray) -> str:
    """SHA-256 of a photo's 8-bit gray: uint8, not float L, so the same photo hashes the same on
    every machine. Latent files record it as their condition."""
    return hashlib.sha256(np.round(gray * 255).astype(np.uint8).tobytes()).hexdigest()


def photo_latent(
    zs: list[Tensor],
    rel: Path,
    gray: np.ndarray,
    gray_hash: str,
    model_sha256: str,
    working_size: tuple[int, int],
    extra: dict[str, str] | None = None,
    **fields,
) -> Latent:
    """The latent file of photo ``rel`` (levels without the batch dimension): its condition is
    the photo's relative path and ``gray_sha256``, its size the photo's, and it records the
    working size ``(h, w)`` at which the model ran."""
    h, w = gray.shape
    return Latent(
        zs=zs,
        task="colorize",
        condition={"source": text_name(rel.as_posix()), "gray_sha256": gray_hash},
        image_size=f"{w}x{h}",
        model_sha256=model_sha256,
        extra={"working_size": f"{working_size[1]}x{working_size[0]}", **(extra or {})},
        **fields,
    )


def colour_in_workers(device: torch.device) -> bool:
    """Where each output's full-size colouring runs: on a CPU in the write-behind workers, beside
    the previous output's encoding (on 2 cores together most of a photo's time); on a GPU on the
    main thread, the device's own, leaving the workers only the encoding."""
    return device.type == "cpu"


class _Job:
    """One decoded photo: its lightness, working size, latent shapes and provenance."""

    def __init__(self, model, info, plan: _Plan, gray, alpha, L: Tensor, gray_sha256: str, seed, temperature, fmt):
        self.model, self.info, self.plan = model, info, plan
        self.gray, self.alpha, self.seed, self.temperature, self.fmt = gray, alpha, seed, temperature, fmt
        self.L = L.to(next(model.parameters()).device)
        self.size = model.working_size(*gray.shape)
        self.shapes = model.latent_shapes(*self.size)
        self.level_temps = model.level_temperatures(temperature)  # each latent level's T
        self.key = plan.rel.as_posix()
        self.gray_sha256 = gray_sha256
        # what every output's full-size colouring shares (none when only a contact sheet is due)
        self.colour = LabColourer(self.L, model.ab_size(*self.size)) if plan.todo else None
        self.provenance = {
            **provenance_text(info.sha256),
            "cinn:temperature": repr(temperature),
            "cinn:level_temperatures": level_temperatures_text(model),
            "cinn:source": text_name(self.key),
        }

    def run(self, batch_size: int, pool: Pool, report: RunReport) -> None:
        """Run the model for samples ``plan.todo`` here, in batches; hand each sample's full-size
        colouring, encoding and writing to ``pool``, so they overlap the next model batch and
        each other (see ``colour_in_workers``)."""
        device, todo = self.L.device, self.plan.todo
        abs_: dict[int, Tensor] = {}  # kept for the contact sheet only
        start = 0
        while start < len(todo):
            report.checkpoint()  # a stop requested while the photo was prepared: before the model runs
            chunk = todo[start : start + batch_size]
            seeds = [derive_seed(self.seed, self.key, k) for k in chunk]
            zs_each = [colorize_latent(self.shapes, s, self.level_temps, k) for s, k in zip(seeds, chunk, strict=True)]
            zs = stack_levels(zs_each, device)
            try:
                ab = working_ab(self.model, self.L, zs)
            except torch.OutOfMemoryError:  # halve the batch and go on (outputs do not depend on it)
                if batch_size == 1:
                    raise
                batch_size //= 2
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            start += len(chunk)
            for k, s, z, ab_k in zip(chunk, seeds, zs_each, ab.split(1), strict=True):
                if self.plan.grid_path is not None:
                    abs_[k] = ab_k.cpu()
                rgb = None if colour_in_workers(device) else self.colour(ab_k).cpu()
                report.checkpoint()  # ... or while it ran: before its outputs are handed to the writers
                pool.write(partial(self._write, k, s, z, ab_k, rgb), partial(self._done, report, k, s))
        if self.plan.grid_path is not None:
            w, h = grid_tile_size(*self.gray.shape)
            L_tile = resize(self.L, (h, w)).cpu()
            grid_job = partial(_write_grid, self.plan.grid_path, self.gray, L_tile, self.plan.targets, abs_, self.fmt)
            pool.write(partial(grid_job, self.provenance), partial(self._done, report, None, None))

    def _write(self, k: int, seed: int, z: list[Tensor], ab: Tensor, rgb: Tensor | None) -> None:
        """In a worker thread: colour output ``k`` at full size from its ``ab (1, 2, h, w)``
        (unless ``rgb (1, 3, H, W)`` was made on the GPU), encode it and write it and its
        latent, each atomically."""
        image_path, latent_path = self.plan.targets[k]
        draw = "mode" if k == BEST_GUESS_INDEX else "random"  # sample 1 is z = 0, the seed is unused
        text = {**self.provenance, "cinn:index": str(k), "cinn:seed": str(seed), "cinn:draw": draw}
        if k not in self.plan.latent_only:
            rgb = (self.colour(ab) if rgb is None else rgb)[0]
            atomic_write_bytes(image_path, encode_image(to_pixels(rgb, self.alpha), self.fmt, text))
        if latent_path is None:
            # --overwrite --no-latents: an old latent beside the new image would describe another
            # colouring (its seed, its z); without --overwrite the output was skipped if it existed
            image_path.with_suffix(".safetensors").unlink(missing_ok=True)
        else:
            latent = photo_latent(
                z,
                self.plan.rel,
                self.gray,
                self.gray_sha256,
                self.info.sha256,
                self.size,
                extra={"level_temperatures": self.provenance["cinn:level_temperatures"], "draw": draw},
                seed=seed,
                temperature=self.temperature,
            )
            write_or_raise(latent_path, save_latent, latent)

    def _done(self, report: RunReport, k: int | None, seed: int | None, error: BaseException | None) -> None:
        """Back on the main thread: report output ``k`` (``None``: the contact sheet) as written or failed."""
        if k is None and error is None:
            return  # the contact sheet is not counted as an output
        target = self.plan.targets[k][0] if k is not None else self.plan.grid_path
        report_write(report, self.plan.path, target, error, index=k, seed=seed)


def report_write(report: RunReport, source: Path, target: Path, error: BaseException | None, **fields) -> None:
    """Report ``target``, written for input ``source`` by a worker, as written (with ``fields``) or,
    for a write error (OSError, or a ValueError such as a name that cannot go into PNG text), as
    failed; any other error is a bug and is raised."""
    if error is None:
        report.wrote(str(target), source=str(source), **fields)
    elif isinstance(error, WriteError):  # the latent beside the image, say
        report.fail(str(source), f"cannot write {display_name(error.target)} ({error.reason})")
    elif isinstance(error, (OSError, ValueError)):
        report.fail(str(source), f"cannot write {display_name(target)} ({getattr(error, 'strerror', None) or error})")
    else:
        raise error


def grid_tile_size(h: int, w: int) -> tuple[int, int]:
    """``(width, height)`` of a contact-sheet tile for an ``h`` x ``w`` photo: long side at most ``GRID_TILE``."""
    scale = min(1.0, GRID_TILE / max(h, w))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _write_grid(
    path: Path, gray: np.ndarray, L_tile: Tensor, targets, abs_: dict[int, Tensor], fmt: str, provenance: dict
) -> None:
    """Contact sheet: the gray input, then every colouring, each rendered at tile size from its
    working-resolution ``ab`` (CPU) and ``L_tile (1, 1, h, w)``, the lightness at tile size;
    outputs skipped this run are read back and shrunk."""
    from PIL import Image

    size = grid_tile_size(*gray.shape)

    def tile(px: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(px[..., :3]).resize(size, Image.Resampling.LANCZOS))

    g8 = (gray * 255).round().astype(np.uint8)
    tiles = [tile(np.stack([g8] * 3, axis=-1))]
    for k in sorted(targets):
        if k in abs_:
            tiles.append(to_pixels(full_size_rgb(L_tile, abs_[k])[0], None))
        else:
            with Image.open(targets[k][0]) as im:
                tiles.append(tile(np.asarray(im.convert("RGB"))))
    atomic_write_bytes(path, encode_image(grid(tiles, columns=len(tiles)), fmt, provenance))
