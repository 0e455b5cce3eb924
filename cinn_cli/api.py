"""The Python API: the shipped models (or your own model files) as objects.

    from PIL import Image
    from cinn_cli import load

    colorizer = load("colorize")                       # or load("my-model.safetensors")
    images = colorizer.colorize(Image.open("old.jpg"), n=5, seed=1)    # PIL images, full size
    images[0].save("best-guess.png")                   # the first one is the best guess (z = 0)

    digits = load("mnist").sample(digit=7, n=64, seed=0)               # 28x28 PIL images
    latent = load("mnist").encode(digits[0], digit=7)  # a Latent (its levels, its condition)
    three = load("mnist").decode(latent, digit=3)      # the same handwriting as a 3
    boots = load("fashion").sample(digit="Ankle boot", n=8)            # a class by its name

The same seed gives the same pixels as the command line: ``colorize(image, seed=s, key="x.png")``
is what ``cinn colorize x.png OUT --seed s`` writes (the key is the input's relative path, from
which each output's seed is derived).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cinn_cli.batch.photos import _check_size, gray_of
from cinn_cli.clikit.runs import resolve_device
from cinn_cli.files.latents import Latent, derive_seed, stack_levels
from cinn_cli.files.model_file import ModelInfo, read_model_info
from cinn_cli.tasks import get, load_model, resolve_weights


def load(model: str | os.PathLike = "colorize", device: str = "auto") -> Colorizer | DigitModel:
    """A model by shipped name (``"colorize"``, ``"mnist"``, ``"fashion"``) or model-file path, on ``device``
    (``"auto"``: CUDA, else MPS, else CPU). Raises ``ValueError`` (``ModelFileError``) naming the
    file when it cannot be used."""
    path = resolve_weights(model, str(model))
    task = get(read_model_info(path).task).name
    net, info = load_model(path, device=str(resolve_device(device)), task=task)
    return {"colorize": Colorizer, "mnist": DigitModel}[task](net, info)


class Colorizer:
    """A colorization model: ``colorize`` grayscale photos, ``encode`` colour photos into latents
    and ``decode`` latents under a photo's lightness (colour transfer)."""

    def __init__(self, model, info: ModelInfo):
        self.model, self.info = model, info
        self.device = next(model.parameters()).device

    def colorize(
        self, image: Image.Image, n: int = 5, seed: int = 0, temperature: float = 1.0, key: str = "image"
    ) -> list[Image.Image]:
        """``n`` colourings of ``image`` (any mode; colour is reduced to gray first), each at the
        image's size with its own lightness; alpha is kept. The first is the best guess (z = 0),
        the others random draws whose seeds derive from ``(seed, key, k)``."""
        from cinn_cli.tasks.colorize.color import LabColourer
        from cinn_cli.tasks.colorize.colorize import lightness_of, to_pixels, working_ab
        from cinn_cli.tasks.colorize.sampling import colorize_latent

        _check_size(*image.size)
        gray, alpha = gray_of(image)
        L = lightness_of(gray).to(self.device)
        size = self.model.working_size(*gray.shape)
        shapes, temps = self.model.latent_shapes(*size), self.model.level_temperatures(temperature)
        colour = LabColourer(L, self.model.ab_size(*size))
        out = []
        for start in range(1, n + 1, 8):  # 8 at a time bounds the memory; outputs do not depend on it
            ks = range(start, min(n, start + 7) + 1)
            zs_each = [colorize_latent(shapes, derive_seed(seed, key, k), temps, k) for k in ks]
            ab = working_ab(self.model, L, stack_levels(zs_each, self.device))
            out += [Image.fromarray(to_pixels(colour(ab[i : i + 1])[0], alpha)) for i in range(len(ks))]
        return out

    def encode(self, photo: Image.Image) -> Latent:
        """A colour photo -> its latent: the photo's ab under its own lightness, at the model's
        working resolution (``decode(latent, photo)`` gives its colours back)."""
        from cinn_cli.tasks.colorize.colorize import gray_sha256, photo_latent
        from cinn_cli.tasks.colorize.transfer import photo_ab, working_lightness

        _check_size(*photo.size)
        gray, _ = gray_of(photo)
        with torch.no_grad():
            _, L_work = working_lightness(self.model, gray, self.device)
            zs, _ = self.model.encode(photo_ab(self.model, np.asarray(photo.convert("RGB")), L_work), L_work)
        size = tuple(L_work.shape[-2:])
        return photo_latent([z[0].cpu() for z in zs], Path("image"), gray, gray_sha256(gray), self.info.sha256, size)

    def decode(self, latent: Latent, image: Image.Image) -> Image.Image:
        """The colours of ``latent`` under the lightness of ``image`` (its own photo: its colours
        back; another: colour transfer, the latent resized when the working sizes differ)."""
        from cinn_cli.tasks.colorize.color import LabColourer
        from cinn_cli.tasks.colorize.colorize import lightness_of, to_pixels, working_ab
        from cinn_cli.tasks.colorize.transfer import fit_latent

        gray, alpha = gray_of(image)
        L = lightness_of(gray).to(self.device)
        size = self.model.working_size(*gray.shape)
        zs = fit_latent(latent, Path("latent"), self.model.latent_shapes(*size), self.info.sha256)
        ab = working_ab(self.model, L, [z[None].to(self.device) for z in zs])
        return Image.fromarray(to_pixels(LabColourer(L, self.model.ab_size(*size))(ab)[0], alpha))


class DigitModel:
    """A class-conditional model of the MNIST task (MNIST, Fashion-MNIST, or ``cinn train classes``):
    ``sample`` a class, ``encode`` an image into its latent and ``decode`` a latent under any class
    (style transfer). Classes are given by label or by name (``class_names``)."""

    def __init__(self, model, info: ModelInfo):
        self.model, self.info = model, info
        self.device = next(model.parameters()).device
        self._exact = None  # a float64 copy for the exact round trip, made when first needed

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes' names, label order (the digits "0"-"9" unless the model file names them)."""
        return self.model.class_names

    def _label(self, digit: int | str) -> int:
        """A label or a class's name -> the label; ``ValueError`` for neither."""
        if isinstance(digit, str):
            if digit not in self.class_names:
                raise ValueError(f"{digit!r} is not a class of this model ({', '.join(self.class_names)})")
            return self.class_names.index(digit)
        if not 0 <= digit < len(self.class_names):
            raise ValueError(f"label {digit} is not one of this model's {len(self.class_names)} classes")
        return digit

    def sample(
        self, digit: int | str, n: int = 16, seed: int = 0, temperature: float | None = None
    ) -> list[Image.Image]:
        """``n`` images of ``digit`` -- a label, or a class's name -- at the model's size (MNIST: 28x28
        grayscale, white on black), the same pixels as ``cinn sample --digit D -n N --seed S -t T``
        (``temperature``: default the model file's ``sample_temperature``, as the command's)."""
        temperature = self.model.config.sample_temperature if temperature is None else temperature
        digit = self._label(digit)
        from cinn_cli.tasks.mnist.sample import draw_digits, image_pixels, sample_seed

        _, x = draw_digits(self.model, digit, [sample_seed(seed, digit, k) for k in range(1, n + 1)], temperature)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("the model gave NaN or infinite values")
        return [Image.fromarray(px) for px in image_pixels(x)]

    def _exact_model(self):
        if self._exact is None:
            import copy

            self._exact = copy.deepcopy(self.model).double() if self.device.type != "mps" else self.model
        return self._exact

    def encode(self, image: Image.Image, digit: int | str) -> Latent:
        """An image of the model's size -> its latent under ``digit`` (a label or a class's name;
        float64: decoding it under the same class gives the pixels back exactly)."""
        from cinn_cli.tasks.mnist.sample import image_size

        channels, h, w = self.model.config.image_shape
        if image.size != (w, h):
            what = "the MNIST model encodes 28x28 images only" if (h, w) == (28, 28) else f"this model takes {w}x{h}"
            raise ValueError(f"{what}, got {image.size[0]}x{image.size[1]}")
        digit = self._label(digit)
        model = self._exact_model()
        k = torch.from_numpy(np.array(image.convert("L" if channels == 1 else "RGB"))).to(self.device, torch.float64)
        k = k[None, None] if channels == 1 else k.permute(2, 0, 1)[None]  # (1, C, H, W)
        y = ((k + 0.5) / 256.0).to(next(model.parameters()).dtype)
        with torch.no_grad():
            zs, _ = model.encode(y, torch.tensor([digit], device=self.device))
        return Latent(
            zs=[z[0].cpu() for z in zs],
            task="mnist",
            condition={"digit": digit},
            image_size=image_size(self.model),
            model_sha256=self.info.sha256,
        )

    def decode(self, latent: Latent, digit: int | str | None = None) -> Image.Image:
        """``latent`` decoded under ``digit`` (a label or a class's name; default: its own; another:
        style transfer)."""
        from cinn_cli.files.latents import check_latent_fits
        from cinn_cli.tasks.mnist.sample import image_pixels

        check_latent_fits(latent, Path("latent"), "mnist", self.model.latent_shapes(), self.info.sha256)
        digit = self._label(latent.condition["digit"] if digit is None else digit)
        model = self._exact_model() if latent.zs[0].dtype == torch.float64 else self.model
        dtype = next(model.parameters()).dtype
        with torch.no_grad():
            x = model.inverse(
                [z[None].to(self.device, dtype) for z in latent.zs], torch.tensor([digit], device=self.device)
            )
        return Image.fromarray(image_pixels(x)[0])
