"""Labelled images from a folder per class, for ``cinn train classes`` and ``cinn explore``.

    data = load_class_folders(Path("icons"))   # icons/<class name>/*.png|jpg|jpeg|webp
    data.images (N, C, H, W) uint8, data.labels (N,) int64, data.class_names (sorted folder names)

Every image has the same size (sides of 4-64 pixels). The data are grayscale (C = 1) when every
pixel of every image has R = G = B, else RGB (C = 3); transparency is composited on black.
Every problem raises :class:`ClassDataError` with one sentence naming the file or folder, before
anything is trained or written: a file of another size, an empty class folder, a file that is
not an image, an image in the top folder, fewer than two classes. Hidden files (``.name``) are
ignored. Files are read with their size checked from the header first, so a hostile file costs
at most one small image's decoding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cinn_cli.files.atomic import NotReadable, open_regular

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_SIDE = 64
MAX_IMAGES = 2_000_000  # 64x64 RGB each: at most 24 GiB, refused before the first is decoded
MAX_FILE_BYTES = 16 << 20  # a 64x64 image is never this large; a larger file is not one


class ClassDataError(ValueError):
    """A class-folder dataset that cannot be trained on; the message names the file or folder."""


@dataclass(frozen=True)
class ClassImages:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64, index into class_names
    class_names: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def class_folders(root: Path) -> list[Path]:
    """The class folders of ``root``, sorted by name; refuses loose images and < 2 classes."""
    if not root.is_dir():
        raise ClassDataError(f"{root} is not a folder (expected a folder per class: {root}/<class>/*.png)")
    folders, loose = [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            folders.append(Path(entry.path))
        elif entry.name.lower().endswith(SUFFIXES):
            loose.append(entry.name)
    if loose:
        raise ClassDataError(f"{root / loose[0]} is not in a class folder: put each image in {root}/<class name>/")
    if len(folders) < 2:
        raise ClassDataError(f"{root} has {len(folders)} class folder(s); a class-conditional model needs at least two")
    for folder in folders:
        if len(folder.name) > 100:
            raise ClassDataError(f"class folder {folder} has a name longer than 100 characters")
    return folders


def _files(folder: Path) -> list[Path]:
    files = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if not entry.name.lower().endswith(SUFFIXES):
            raise ClassDataError(
                f"{entry.path} is not an image this command reads ({', '.join(s[1:] for s in SUFFIXES)})"
            )
        files.append(Path(entry.path))
    if not files:
        raise ClassDataError(f"class folder {folder} holds no images")
    return files


def read_small_image(path: Path) -> np.ndarray:
    """One image as uint8 ``(H, W, 3)`` RGB; its size is checked before it is decoded."""
    try:
        f = open_regular(path, "an image")
    except NotReadable as e:
        raise ClassDataError(f"{path} {e}") from None
    try:
        with f:
            if os.fstat(f.fileno()).st_size > MAX_FILE_BYTES:
                raise ClassDataError(f"{path} is larger than {MAX_FILE_BYTES >> 20} MiB, not a small image")
            with Image.open(f) as im:
                w, h = im.size
                if max(w, h) > MAX_SIDE:
                    raise ClassDataError(f"{path} is {w}x{h}; this task takes images of at most {MAX_SIDE}x{MAX_SIDE}")
                im.load()
                im = ImageOps.exif_transpose(im)
                if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                    im = im.convert("RGBA")
                    black = Image.new("RGBA", im.size, (0, 0, 0, 255))
                    im = Image.alpha_composite(black, im)
                return np.asarray(im.convert("RGB"))
    except ClassDataError:
        raise
    except UnidentifiedImageError:
        raise ClassDataError(f"{path} is not an image this tool can read") from None
    except Exception as e:  # truncated or corrupt data: PIL's decoders raise many types
        raise ClassDataError(f"{path} cannot be decoded ({getattr(e, 'strerror', None) or e})") from None


def load_class_folders(root: Path, class_names: tuple[str, ...] | None = None) -> ClassImages:
    """Every image of ``root/<class>/``. With ``class_names`` (a model's, or the training split's),
    the folders must be exactly those classes and the labels follow that order."""
    folders = class_folders(root)
    names = tuple(f.name for f in folders)
    if class_names is not None and set(names) != set(class_names):
        missing = sorted(set(class_names) - set(names))
        extra = sorted(set(names) - set(class_names))
        what = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"not a class of the model: {', '.join(extra)}" if extra else "",
            )
            if part
        )
        raise ClassDataError(f"{root}'s class folders are not the expected classes ({what})")
    order = class_names or names
    per_class = {f.name: _files(f) for f in folders}
    total = sum(len(v) for v in per_class.values())
    if total > MAX_IMAGES:
        raise ClassDataError(f"{root} holds {total:,} images, more than the {MAX_IMAGES:,} read at most")
    pixels, labels, first = [], [], None
    for label, name in enumerate(order):
        for path in per_class[name]:
            image = read_small_image(path)
            if first is None:
                first = (path, image.shape)
            elif image.shape != first[1]:
                h, w = image.shape[:2]
                raise ClassDataError(
                    f"{path} is {w}x{h}, but {first[0]} is {first[1][1]}x{first[1][0]}: every image must have one size"
                )
            pixels.append(image)
            labels.append(label)
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)  # (N, 3, H, W)
    if bool((images[:, :1] == images[:, 1:]).all()):  # gray data: one channel, not three equal ones
        images = images[:, :1]
    return ClassImages(images.contiguous(), torch.tensor(labels, dtype=torch.long), tuple(order))


def images_for_model(root: Path, class_names: tuple[str, ...], image_shape: tuple[int, int, int]) -> ClassImages:
    """Every image of ``root/<class>/`` for a model of ``class_names`` and ``image_shape (C, H, W)``:
    the class folders must be exactly the model's classes and the images its size; gray images
    are given to a colour model as three equal channels (a colour one to a gray model is refused)."""
    data = load_class_folders(root, class_names=class_names)
    c, h, w = image_shape
    if data.image_shape[1:] != (h, w):
        got_h, got_w = data.image_shape[1:]
        raise ClassDataError(f"{root}'s images are {got_w}x{got_h}, but the model's are {w}x{h}")
    if data.image_shape[0] == c:
        return data
    if c == 3:
        return ClassImages(data.images.expand(-1, 3, -1, -1).contiguous(), data.labels, data.class_names)
    raise ClassDataError(f"{root}'s images are in colour, but the model's are grayscale")


def split_held_out(data: ClassImages, fraction: float, seed: int = 0) -> tuple[ClassImages, ClassImages]:
    """``(train, held-out)``: ``fraction`` of each class's images (at least one, and never the
    class's only image) held out, chosen by a fixed permutation so reruns hold out the same ones."""
    g = torch.Generator().manual_seed(seed)
    train_idx, val_idx = [], []
    for label in range(len(data.class_names)):
        idx = torch.nonzero(data.labels == label).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        val_idx.append(idx[:k])
        train_idx.append(idx[k:])
    tr, va = torch.cat(train_idx).sort().values, torch.cat(val_idx).sort().values
    if len(va) == 0:
        raise ClassDataError("every class has one image only: nothing can be held out (give --val DIR)")

    def part(i: torch.Tensor) -> ClassImages:
        return ClassImages(data.images[i], data.labels[i], data.class_names)

    return part(tr), part(va)
