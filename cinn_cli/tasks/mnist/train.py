"""``cinn train mnist`` and ``cinn train classes``: recipes, the labelled-images task adapter, and the
call into the shared loop."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from cinn_cli.tasks import initial_model
from cinn_cli.tasks.mnist.data import load_mnist
from cinn_cli.tasks.mnist.evaluate import test_bits_per_dim
from cinn_cli.tasks.mnist.model import PRESETS, MnistCINN
from cinn_cli.training.loop import Recipe, TrainResult, train
from cinn_cli.training.setup import run_info, with_overrides

# The reference recipe (shared/reference/cinn-original-code.md §2) and ours.
MNIST_RECIPES: dict[str, Recipe] = {
    "paper": Recipe(
        epochs=60,
        batch_size=256,
        lr=5e-4,
        weight_decay=1e-5,
        schedule="multistep",
        milestones=(20, 40),
        clip=10.0,
    ),
    "default": Recipe(
        epochs=10, batch_size=64, lr=1e-3, weight_decay=1e-5, schedule="cosine", warmup_steps=300, clip=10.0
    ),
}
# The reference adds Gaussian noise of std 0.08 in its standardised units (std 0.305) instead of
# dequantizing; our presets dequantize uniformly. Either way the reported number is the
# dequantized test bits/dim.
MNIST_TRAIN_NOISE = {"paper": ("gaussian", 0.08 * 0.305), "default": ("uniform", 1.0 / 256)}


class LabelledImagesTask:
    """Labelled images for the training loop: dequantized pixels in [0, 1], labels as the condition.

    ``images (N, C, H, W)`` and ``test_images`` uint8, ``labels (N,)`` int64."""

    def __init__(self, images: Tensor, labels: Tensor, test_images: Tensor, test_labels: Tensor, noise):
        self.images, self.labels = images, labels
        self.test_images, self.test_labels = test_images, test_labels
        self.n_train = len(self.labels)
        self.dims = math.prod(images.shape[1:])
        self.noise_kind, self.noise_scale = noise

    def batch(
        self, indices: Tensor, generator: torch.Generator, device: torch.device, part: slice = slice(None)
    ) -> tuple[Tensor, Tensor]:
        """Rows ``part`` of the batch of ``indices (B,)``: ``x (b, C, H, W)``, ``labels (b,)``.
        The noise is drawn for all B rows (the same stream in every process), then sliced."""
        shape = (len(indices), *self.images.shape[1:])
        if self.noise_kind == "uniform":
            u = torch.rand(shape, generator=generator)[part]
        else:
            u = torch.randn(shape, generator=generator)[part]
        k = self.images[indices[part]].float()  # (b, C, H, W), 0..255
        x = (k + u) / 256.0 if self.noise_kind == "uniform" else k / 255.0 + self.noise_scale * u
        return x.to(device), self.labels[indices[part]].to(device)

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, labels = batch
        return -model.log_prob(x, labels) / self.dims

    def to_bits(self, nats_per_dim: float) -> float:
        return nats_per_dim / math.log(2) + 8.0

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return {"test_bits_per_dim": test_bits_per_dim(model, self.test_images, self.test_labels, device)}


class MnistTask(LabelledImagesTask):
    """The MNIST IDX files of ``data_dir``: train split to train on, test split (its first
    ``eval_limit`` images) to evaluate."""

    def __init__(self, data_dir: Path, noise: tuple[str, float], eval_limit: int | None = None):
        images, labels = load_mnist(data_dir, "train")
        test_images, test_labels = load_mnist(data_dir, "test")
        if eval_limit is not None:
            test_images, test_labels = test_images[:eval_limit], test_labels[:eval_limit]
        super().__init__(images.unsqueeze(1), labels, test_images.unsqueeze(1), test_labels, noise)


def train_mnist(
    *,
    data_dir: Path,
    preset: str,
    eval_limit: int | None = None,
    config_overrides: dict | None = None,
    init: str | None = None,
    **training,
) -> tuple[MnistCINN, TrainResult]:
    """Train on the MNIST IDX files of ``data_dir`` (``training``: the options of ``_train``)."""
    torch.manual_seed(training.get("seed", 0))
    model, init_info = initial_model("mnist", MnistCINN, PRESETS[preset], config_overrides, init)
    task = MnistTask(data_dir, MNIST_TRAIN_NOISE[preset], eval_limit=eval_limit)
    data = f"{Path(data_dir).name} train (60,000 images)" if task.n_train == 60000 else str(data_dir)
    return _train(model, task, preset, data=data, init_info=init_info, **training)


# The fields of the model config that a folder of classes decides.
DATA_FIELDS = ("image_shape", "n_classes", "class_names")
# Few images make short epochs: a run of the preset's epochs is made at least this many steps.
MIN_DEFAULT_STEPS = 3000


def train_classes(
    *,
    data_dir: Path,
    val_dir: Path | None,
    val_fraction: float,
    preset: str,
    config_overrides: dict | None = None,
    init: str | None = None,
    **training,
) -> tuple[MnistCINN, TrainResult]:
    """Train on ``data_dir/<class>/*.png|jpg|webp``, held out: ``val_dir`` (the same classes), or
    else ``val_fraction`` of each class. The image size, classes and their names come from the
    data and are stored in the model file."""
    from cinn_cli.tasks.mnist.folders import load_class_folders, split_held_out

    overrides = dict(config_overrides or {})
    taken = sorted(set(overrides) & set(DATA_FIELDS))
    if taken:
        raise ValueError(f"--config {', '.join(taken)}: these come from the data folder, not the command line")
    data = load_class_folders(data_dir)
    if val_dir is not None:
        held = load_class_folders(val_dir, class_names=data.class_names)
        if held.image_shape != data.image_shape:
            raise ValueError(
                f"--val images are {_shape_text(held.image_shape)}, the training images {_shape_text(data.image_shape)}"
            )
    else:
        data, held = split_held_out(data, val_fraction)
    torch.manual_seed(training.get("seed", 0))
    fields = {
        "image_shape": list(data.image_shape),
        "n_classes": len(data.class_names),
        "class_names": list(data.class_names),
    }
    model, init_info = initial_model(
        "mnist", MnistCINN, PRESETS[preset], {**overrides, **fields} if init is None else overrides, init
    )
    if init is not None and (model.config.image_shape, model.class_names) != (data.image_shape, data.class_names):
        raise ValueError(
            f"the --init model takes {_shape_text(model.config.image_shape)} of classes "
            f"{', '.join(model.class_names)}; "
            f"the data are {_shape_text(data.image_shape)} of classes {', '.join(data.class_names)}"
        )
    task = LabelledImagesTask(data.images, data.labels, held.images, held.labels, MNIST_TRAIN_NOISE[preset])
    recipe = MNIST_RECIPES[preset]
    if training.get("batch_size") is None and task.n_train < recipe.batch_size:
        training["batch_size"] = task.n_train  # a few images: every step sees them all
    if training.get("epochs") is None and training.get("steps") is None:
        per_epoch = task.n_train // (training.get("batch_size") or recipe.batch_size)
        training["epochs"] = max(recipe.epochs, math.ceil(MIN_DEFAULT_STEPS / per_epoch))
    source = f"{data_dir} ({task.n_train:,} images of {len(data.class_names)} classes; {len(held.labels):,} held out)"
    return _train(model, task, preset, data=source, init_info=init_info, **training)


def _shape_text(shape: tuple[int, ...]) -> str:
    c, h, w = shape
    return f"{w}x{h} {'grayscale' if c == 1 else 'RGB'} images"


def _train(
    model: MnistCINN,
    task: LabelledImagesTask,
    preset: str,
    *,
    data: str,
    init_info: dict,
    out: Path,
    device: torch.device,
    epochs: int | None,
    steps: int | None,
    batch_size: int | None,
    lr: float | None,
    seed: int,
    resume: bool,
    checkpoint_minutes: float,
    eval_every: int | None,
    progress: bool = True,
    log_jsonl: Path | None = None,
    precision: str = "fp32",
    compile_mode: str = "off",
) -> tuple[MnistCINN, TrainResult]:
    recipe = with_overrides(MNIST_RECIPES[preset], epochs=epochs, batch_size=batch_size, lr=lr)
    info = run_info(preset, recipe, seed, device, data=data, **init_info)
    result = train(
        model,
        task,
        recipe,
        out=out,
        device=device,
        seed=seed,
        max_steps=steps,
        resume=resume,
        checkpoint_minutes=checkpoint_minutes,
        eval_every=eval_every,
        training_info=info,
        log_jsonl=log_jsonl,
        progress=progress,
        precision=precision,
        compile_mode=compile_mode,
    )
    return model, result
