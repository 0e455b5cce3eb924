"""Training the colorization model on a folder of colour photos: crops, noise, the training task."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from cinn_cli.tasks import initial_model
from cinn_cli.training.loop import Recipe, train
from cinn_cli.training.setup import run_info, with_overrides

# --------------------------------------------------------------------------- colorization

COLORIZE_RECIPES: dict[str, Recipe] = {
    # colorization_minimal_example: Adam 1e-3, batch 128, 3 epochs, LR x0.1 per epoch, no weight
    # decay. (Ours: gradients clipped at 10 as every preset here; an "epoch" is crops_per_photo
    # random crops of every photo, since the data is a folder of photos, not 3M LSUN images.)
    "paper": Recipe(epochs=3, batch_size=128, lr=1e-3, weight_decay=0.0, schedule="multistep", milestones=(1, 2)),
    "default": Recipe(epochs=10, batch_size=16, lr=1e-3, weight_decay=1e-5, schedule="cosine", warmup_steps=200),
}
# Dequantization noise on ab in Lab units, U[low, high) per channel: the reference's one-sided
# U[0, 0.005) in normalised units (x the a, b scales 11.2, 16.8); ours a centred unit-wide bin.
COLORIZE_NOISE = {"paper": ((0.0, 0.0), (0.056, 0.084)), "default": ((-0.5, -0.5), (0.5, 0.5))}
# Evaluation uses one convention for every model (so val bits/dim compare across presets).
COLORIZE_EVAL_NOISE = (torch.tensor([-0.5, -0.5]).reshape(1, 2, 1, 1), torch.tensor([0.5, 0.5]).reshape(1, 2, 1, 1))
TRAIN_PARTS = ("all", "condition", "flow")  # what a run trains: see ColorizeTask
PHOTO_MAX_SHORT = 256  # photos are decoded once into memory at this short side at most


def load_photos(folder: Path, max_short: int = PHOTO_MAX_SHORT, log=None) -> list:
    """Every readable image under ``folder`` as ``(H, W, 3)`` uint8 (unreadable ones are named and
    skipped); raises ``FileNotFoundError`` when none is left."""
    from cinn_cli.batch.images import discover
    from cinn_cli.batch.photos import PhotoError, read_rgb

    photos = []
    for path, _ in discover(str(folder)):
        try:
            photos.append(read_rgb(path, max_short))
        except PhotoError as e:
            (log or (lambda m: print(m, file=sys.stderr)))(f"skipped {path}: {e}")
    if not photos:
        raise FileNotFoundError(f"{folder}: no readable photos (png, jpg, webp, ...) found")
    return photos


def as_folders(data_dir: Path | list[Path] | tuple[Path, ...]) -> list[Path]:
    """``--data``: one folder, or several (``--data train --data extra``), their photos in that order."""
    return [data_dir] if isinstance(data_dir, (str, Path)) else list(data_dir)


def crop_pyramid(rgb, crop: int) -> list[Tensor]:
    """``(3, h, w)`` uint8 tensors of the photo at 1, 1/2 and 1/4 of its size, keeping only the
    scales whose short side is at least ``crop`` (a smaller photo is enlarged to ``crop``)."""
    from PIL import Image

    im = Image.fromarray(rgb)
    w, h = im.size
    sizes = [(round(w * s), round(h * s)) for s in (1.0, 0.5, 0.25) if min(w, h) * s >= crop]
    if not sizes:
        sizes = [(max(crop, round(w * crop / min(w, h))), max(crop, round(h * crop / min(w, h))))]
    levels = [im if size == im.size else im.resize(size, Image.Resampling.LANCZOS) for size in sizes]
    return [torch.from_numpy(np.asarray(level).copy()).permute(2, 0, 1) for level in levels]


class ColorizeTask:
    """Photos for the training loop: random multi-scale crops with flips -> ``(ab, L)`` batches.

    Training examples are ``crops_per_photo`` random crops of each photo per epoch (index ``i``
    crops photo ``i % n_photos`` at a random scale, position and flip). With several
    ``crop_sizes`` each batch is cropped at one of them, drawn at random (one tensor per batch);
    default: the config's ``crop_size``. Evaluation: bits per ab dimension (Lab units,
    fixed-seed dequantization) on the ``crop_size`` centre crops of the val photos.

    ``colour_loss > 0`` adds that times the rebalanced ab-bin cross-entropy of a training-only
    head on the condition network's finest features (``colour_hint``), with the bins' rarity
    counted over the training photos; the loss the loop reports is then the sum.

    ``train_part`` (one of ``TRAIN_PARTS``) chooses what the run trains, so that the condition
    network can be pre-trained as a colour predictor and the flow then trained on its features:
    ``"all"`` every weight on the loss above; ``"condition"`` the condition network (and the head)
    on ``colour_loss`` times the cross-entropy alone, the flow untouched; ``"flow"`` the flow on
    the likelihood, the condition network fixed (no gradient computed through it).
    """

    # --compile auto compiles this step only for long runs: `python bench/compile_speed.py` measured
    # the default preset's step 1.00x (1 thread) to 1.08x (2 threads) as fast compiled, convolutions
    # dominating, for a compile of 3-4 minutes: break-even 15,600 steps at best, twice the default run.
    compile_min_steps = 50_000

    def __init__(
        self,
        model,
        train_dir: Path | list[Path],
        val_dir: Path | None,
        noise,
        crops_per_photo: int = 64,
        crop_sizes: tuple[int, ...] | None = None,
        colour_loss: float = 0.0,
        train_part: str = "all",
    ):
        from cinn_cli.batch.photos import center_crop

        check_train_part(train_part, colour_loss)

        cfg = model.config
        self.crop, self.ab_downscale = cfg.crop_size, cfg.ab_downscale
        self.crop_sizes = tuple(crop_sizes or (self.crop,))
        for size in self.crop_sizes:
            model.check_size(size, size)  # raises ValueError naming the sizes the model takes
        photos = [p for folder in as_folders(train_dir) for p in load_photos(folder)]
        # per crop size, each photo at the scales whose short side is at least that size
        self.pyramids_by_size = {size: [crop_pyramid(p, size) for p in photos] for size in self.crop_sizes}
        self.pyramids = self.pyramids_by_size[self.crop_sizes[0]]
        self.n_train = len(self.pyramids) * crops_per_photo
        if val_dir is not None:
            val_photos = load_photos(val_dir)
        else:  # no held-out photos: report the centre crops of the training photos, named as such
            val_photos = [p[0].permute(1, 2, 0).numpy() for p in self.pyramids]
        self.metric = "val_bits_per_dim" if val_dir is not None else "train_center_bits_per_dim"
        crops = np.stack([center_crop(p, self.crop) for p in val_photos])
        self.val_rgb = torch.from_numpy(crops).permute(0, 3, 1, 2)  # (N, 3, crop, crop) uint8
        self.noise_low, self.noise_high = (torch.tensor(v).reshape(1, 2, 1, 1) for v in noise)
        self.colour_loss, self.train_part = colour_loss, train_part
        self.trainable = self._colour_head(model, photos) if colour_loss > 0 else None
        # Frozen weights get no gradient, so the optimiser never moves them (nor decays them).
        frozen = {"all": None, "condition": model.flow, "flow": model.cond_net}[train_part]
        for p in frozen.parameters() if frozen is not None else ():
            p.requires_grad_(False)

    def _colour_head(self, model, photos: list) -> nn.Module:
        from cinn_cli.tasks.colorize.color import lab_pair
        from cinn_cli.tasks.colorize.colour_hint import ColourHead, count_bins, rebalancing_weights

        maps = [lab_pair(torch.from_numpy(p.copy()).permute(2, 0, 1)[None], self.ab_downscale)[0] for p in photos]
        with torch.no_grad():
            channels = model.cond_feats(torch.zeros(1, 1, self.crop, self.crop))[0].shape[1]
        return ColourHead(channels, rebalancing_weights(count_bins(maps)))

    def _noise(self, shape, generator: torch.Generator) -> Tensor:
        return self.noise_low + (self.noise_high - self.noise_low) * torch.rand(shape, generator=generator)

    def batch(
        self, indices: Tensor, generator: torch.Generator, device: torch.device, part: slice = slice(None)
    ) -> tuple[Tensor, Tensor]:
        """Rows ``part`` of the batch of ``indices (B,)``: ``ab (b, 2, h, w)``, ``L (b, 1, H, W)``.
        Crop positions, flips and noise are drawn for all B rows (the same stream in every
        process); only the rows of ``part`` are cropped and converted."""
        from cinn_cli.tasks.colorize.color import lab_pair

        c, crops = self.crop_sizes[0], []
        if len(self.crop_sizes) > 1:  # (one size: no draw, so such runs keep their random stream)
            c = self.crop_sizes[int(torch.randint(len(self.crop_sizes), (1,), generator=generator))]
        pyramids = self.pyramids_by_size[c]
        rows = range(len(indices))[part]
        for row, i in enumerate(indices.tolist()):
            levels = pyramids[i % len(pyramids)]
            img = levels[int(torch.randint(len(levels), (1,), generator=generator))]
            y = int(torch.randint(img.shape[1] - c + 1, (1,), generator=generator))
            x = int(torch.randint(img.shape[2] - c + 1, (1,), generator=generator))
            flip = torch.rand(1, generator=generator).item() < 0.5
            if row in rows:
                crop = img[:, y : y + c, x : x + c]
                crops.append(crop.flip(-1) if flip else crop)
        ab, L = lab_pair(torch.stack(crops), self.ab_downscale)
        noise = self._noise((len(indices), *ab.shape[1:]), generator)[part]
        return (ab + noise).to(device), L.to(device)

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        ab, L = batch
        if self.train_part == "condition":
            return self.colour_loss * self.trainable.loss(model.cond_feats(L, ab.dtype)[0], ab)
        if self.train_part == "flow":
            with torch.no_grad():
                feats = model.cond_feats(L, ab.dtype)
            return -model.log_prob_features(ab, feats) / ab[0].numel()
        if self.trainable is None:
            return -model.log_prob(ab, L) / ab[0].numel()
        feats = model.cond_feats(L, ab.dtype)  # once, for the flow and the colour head
        nll = -model.log_prob_features(ab, feats) / ab[0].numel()
        return nll + self.colour_loss * self.trainable.loss(feats[0], ab)

    def to_bits(self, nats_per_dim: float) -> float:
        return nats_per_dim / math.log(2)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return {self.metric: ab_bits(model, self.val_rgb, COLORIZE_EVAL_NOISE, device)}


def check_train_part(train_part: str, colour_loss: float) -> None:
    """Raise ``ValueError`` for a ``--train-part`` that the ``--colour-loss`` weight contradicts."""
    if train_part not in TRAIN_PARTS:
        raise ValueError(f"train part must be one of {', '.join(TRAIN_PARTS)}, got {train_part!r}")
    if train_part == "condition" and colour_loss <= 0:
        raise ValueError(
            "--train-part condition trains the condition network on the colour loss alone: give --colour-loss > 0"
        )
    if train_part == "flow" and colour_loss > 0:
        raise ValueError("--train-part flow keeps the condition network fixed, so --colour-loss would train nothing")


@torch.no_grad()
def ab_bits(model: nn.Module, rgb: Tensor, noise, device: torch.device, batch_size: int = 64, seed: int = 0) -> float:
    """Mean bits per ab dimension (Lab units) of uint8 crops ``(N, 3, H, W)`` at the model's
    working resolution, with one fixed-seed dequantization draw U[low, high) per value."""
    from cinn_cli.tasks.colorize.color import lab_pair
    from cinn_cli.tasks.colorize.model import ab_bits_per_dim

    g = torch.Generator().manual_seed(seed)
    low, high = noise
    total = 0.0
    for i in range(0, len(rgb), batch_size):
        ab, L = lab_pair(rgb[i : i + batch_size], model.config.ab_downscale)
        ab = ab + low + (high - low) * torch.rand(ab.shape, generator=g)
        lp = model.log_prob(ab.to(device), L.to(device))
        total += ab_bits_per_dim(lp, ab[0].numel()).sum().item()
    return total / len(rgb)


def train_colorize(
    *,
    data_dir: Path | list[Path],
    val_dir: Path | None,
    preset: str,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    seed: int,
    steps: int | None = None,
    crops_per_photo: int = 64,
    crop_sizes: tuple[int, ...] | None = None,
    config_overrides: dict | None = None,
    init: str | None = None,
    colour_loss: float = 0.0,
    train_part: str = "all",
    **loop,
):
    """Train a colorization model on the photos of one folder or several (``val_dir``: held-out photos).

    ``loop``: the training loop's own options, passed on to ``cinn_cli.training.loop.train``
    (``out``, ``device``, ``resume``, ``checkpoint_minutes``, ``eval_every``, ``log_jsonl``,
    ``progress``, ``precision``, ``compile_mode``)."""
    from cinn_cli.tasks.colorize.model import COLORIZE_PRESETS, ColorizeCINN

    recipe = with_overrides(COLORIZE_RECIPES[preset], epochs=epochs, batch_size=batch_size, lr=lr)
    torch.manual_seed(seed)
    model, init_info = initial_model("colorize", ColorizeCINN, COLORIZE_PRESETS[preset], config_overrides, init)
    task = ColorizeTask(
        model,
        data_dir,
        val_dir,
        COLORIZE_NOISE[preset],
        crops_per_photo=crops_per_photo,
        crop_sizes=crop_sizes,
        colour_loss=colour_loss,
        train_part=train_part,
    )
    info = run_info(
        preset,
        recipe,
        seed,
        loop["device"],
        data=f"{', '.join(map(str, as_folders(data_dir)))} ({len(task.pyramids)} photos, "
        f"{crops_per_photo} crops each per epoch)",
        crop_sizes=list(task.crop_sizes),
        val=str(val_dir) if val_dir is not None else "",
        dequantization="ab + U[{}, {}) Lab units".format(*COLORIZE_NOISE[preset]),
        **({"colour_loss": colour_loss} if colour_loss > 0 else {}),
        **({"train_part": train_part} if train_part != "all" else {}),
        **init_info,
    )
    # Channels-last weights make a CPU training step 1.04-1.07x faster (bench/train_layout.py);
    # the model goes back to the default layout before it is returned, in which colour transfer
    # writes the same bytes however its latents are batched (with channels-last it does not).
    model.to(memory_format=torch.channels_last)
    try:
        result = train(model, task, recipe, seed=seed, max_steps=steps, training_info=info, **loop)
    finally:
        model.to(memory_format=torch.contiguous_format)
    for p in model.parameters():  # the part --train-part froze is the caller's to train again
        p.requires_grad_(True)
    return model, result
