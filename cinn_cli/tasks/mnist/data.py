"""Reading the original MNIST files (IDX format, gzip-compressed or raw).

    images, labels = load_mnist(data_dir, "test")   # (10000, 28, 28) uint8, (10000,) int64

A directory holds the four canonical files, each either raw or with ``.gz``:

    train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte

(the dotted variants such as ``train-images.idx3-ubyte`` are accepted too). Every problem with the
files raises :class:`MnistDataError` with a one-sentence message naming the file.

Only numpy, torch and the standard library are used.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch

__all__ = ["MnistDataError", "find_mnist_dir", "has_mnist_files", "load_mnist", "read_idx", "SPLIT_PREFIX"]

#: File-name prefix of each split.
SPLIT_PREFIX = {"train": "train", "test": "t10k"}

# IDX type codes -> numpy big-endian dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class MnistDataError(ValueError):
    """A missing, malformed or inconsistent MNIST file or directory."""


# The largest IDX file read (all of MNIST's train images are 47 MB): a header declaring more, or a
# gzip inflating past its header's size, is refused before it is inflated into memory.
MAX_IDX_BYTES = 1 << 30


def _read_limited(path: Path) -> bytes:
    """The (decompressed, if the name ends in ``.gz``) contents of ``path``, read in bounded steps:
    the IDX header first, then no more than the size it declares plus one byte (to tell a longer
    file), so a gzip bomb costs at most ``MAX_IDX_BYTES``."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            data = f.read(4)
            if len(data) < 4 or data[0] or data[1] or data[2] not in _IDX_DTYPES:
                return data + f.read(64)  # read_idx names what is wrong
            data += f.read(4 * data[3])
            if len(data) < 4 + 4 * data[3]:
                return data
            dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(data[3])]
            size = math.prod(dims) * _IDX_DTYPES[data[2]].itemsize
            if size > MAX_IDX_BYTES:
                raise MnistDataError(
                    f"MNIST file {path} declares {size:,} bytes of data {tuple(dims)}, "
                    f"more than the {MAX_IDX_BYTES:,} read at most."
                )
            return data + f.read(size + 1)
    except FileNotFoundError:
        raise MnistDataError(f"MNIST file {path} does not exist.") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise MnistDataError(f"MNIST file {path} is not a complete gzip file ({e}).") from None
    except OSError as e:
        raise MnistDataError(f"MNIST file {path} could not be read ({e}).") from None


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (raw or ``.gz``) into a numpy array of its stored shape and dtype.

    The header is two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions, then
    one big-endian uint32 per dimension; the data follow, row-major. Raises MnistDataError for a
    bad magic number, a dimension count other than ``expected_ndim``, data declared larger than
    ``MAX_IDX_BYTES``, or data shorter (truncated) or longer (size mismatch) than the header
    promises (longer: by at least one byte; the rest is never read).
    """
    path = Path(path)
    data = _read_limited(path)
    if len(data) < 4:
        raise MnistDataError(f"MNIST file {path} is truncated: {len(data)} bytes, no IDX header.")
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise MnistDataError(f"MNIST file {path} has bad magic number 0x{magic:08x} (not an IDX file).")
    if expected_ndim is not None and ndim != expected_ndim:
        raise MnistDataError(
            f"MNIST file {path} has bad magic number 0x{magic:08x}: "
            f"{ndim} dimensions where {expected_ndim} were expected."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistDataError(f"MNIST file {path} is truncated inside its header ({len(data)} bytes).")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise MnistDataError(
            f"MNIST file {path} is truncated: {len(data)} bytes where its header {dims} needs {expected}."
        )
    if len(data) > expected:
        raise MnistDataError(
            f"MNIST file {path} has a size mismatch: more bytes than its header {dims} needs ({expected})."
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def _find_file(data_dir: Path, stem: str) -> Path:
    """The existing file for ``stem`` (e.g. ``t10k-images-idx3-ubyte``), raw or ``.gz``."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        p = data_dir / name
        if p.is_file():
            return p
    raise MnistDataError(f"MNIST file {stem}[.gz] was not found in {data_dir}.")


def has_mnist_files(data_dir: str | os.PathLike) -> bool:
    """Whether ``data_dir`` holds MNIST's training images (raw or ``.gz``, either spelling)."""
    try:
        _find_file(Path(data_dir), f"{SPLIT_PREFIX['train']}-images-idx3-ubyte")
    except MnistDataError:
        return False
    return True


def load_mnist(data_dir: str | os.PathLike, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Load one MNIST split from ``data_dir``.

    Args:
        data_dir: directory with the IDX files (raw or ``.gz``).
        split: ``"train"`` (60,000 images) or ``"test"`` (the 10,000 ``t10k`` images).

    Returns:
        images: uint8 tensor (N, 28, 28), pixel values 0..255, 0 = background.
        labels: int64 tensor (N,), digits 0..9.
    """
    if split not in SPLIT_PREFIX:
        raise MnistDataError(f"MNIST split must be 'train' or 'test', not {split!r}.")
    d = Path(data_dir)
    if not d.is_dir():
        raise MnistDataError(f"MNIST directory {d} does not exist or is not a directory.")
    prefix = SPLIT_PREFIX[split]
    img_path = _find_file(d, f"{prefix}-images-idx3-ubyte")
    lab_path = _find_file(d, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(img_path, expected_ndim=3)
    labels = read_idx(lab_path, expected_ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise MnistDataError(f"MNIST files in {d} must hold unsigned bytes (IDX type 0x08).")
    if images.shape[1:] != (28, 28):
        raise MnistDataError(f"MNIST file {img_path} holds {images.shape[1:]} images, not 28x28.")
    if images.shape[0] != labels.shape[0]:
        raise MnistDataError(
            f"MNIST size mismatch: {img_path.name} has {images.shape[0]} images "
            f"but {lab_path.name} has {labels.shape[0]} labels."
        )
    if labels.size and labels.max() > 9:
        raise MnistDataError(f"MNIST file {lab_path} holds a label {int(labels.max())} outside 0..9.")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def find_mnist_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """Where the MNIST files are: ``explicit`` (``--data``), else ``$CINN_MNIST``, else None.

    Returned as given (not checked), so a wrong path fails loudly in :func:`load_mnist` rather
    than silently falling back to another folder."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("CINN_MNIST")
    return Path(env) if env else None
