"""IDX parsing on small synthetic files, and the real MNIST files when they are present."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import idx_bytes, make_split, write_idx

from cinn_cli.tasks.mnist.data import MnistDataError, find_mnist_dir, load_mnist, read_idx


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("split,prefix", [("train", "train"), ("test", "t10k")])
def test_roundtrip(tmp_path, gz, split, prefix):
    images, labels = make_split(tmp_path, prefix, 7, gz)
    x, y = load_mnist(tmp_path, split)
    assert x.dtype == torch.uint8 and x.shape == (7, 28, 28)
    assert y.dtype == torch.int64 and y.shape == (7,)
    assert np.array_equal(x.numpy(), images)
    assert np.array_equal(y.numpy(), labels.astype(np.int64))


def test_mixed_raw_and_gzip(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([1, 2, 3], dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(images), gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(labels), gz=False)
    x, y = load_mnist(tmp_path, "test")
    assert np.array_equal(x.numpy(), images) and y.tolist() == [1, 2, 3]


def test_missing_directory(tmp_path):
    with pytest.raises(MnistDataError, match="does not exist"):
        load_mnist(tmp_path / "nope", "train")


def test_missing_file(tmp_path):
    make_split(tmp_path, "train", 3, gz=True)
    with pytest.raises(MnistDataError, match="t10k-images-idx3-ubyte.*not found"):
        load_mnist(tmp_path, "test")


def test_bad_split(tmp_path):
    with pytest.raises(MnistDataError, match="split"):
        load_mnist(tmp_path, "val")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_bad_magic(tmp_path, gz):
    make_split(tmp_path, "train", 3, gz)
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", idx_bytes(images, magic=0x12340803), gz)
    with pytest.raises(MnistDataError, match="bad magic number 0x12340803"):
        load_mnist(tmp_path, "train")


def test_wrong_dimension_count(tmp_path):
    make_split(tmp_path, "train", 3, gz=False)
    # A labels file (1 dimension) where the images file (3 dimensions) belongs.
    write_idx(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros(3, np.uint8)), gz=False)
    with pytest.raises(MnistDataError, match="1 dimensions where 3 were expected"):
        load_mnist(tmp_path, "train")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_truncated_data(tmp_path, gz):
    images, _ = make_split(tmp_path, "train", 4, gz)
    write_idx(tmp_path / "train-images-idx3-ubyte", idx_bytes(images)[:-100], gz)
    with pytest.raises(MnistDataError, match="truncated"):
        load_mnist(tmp_path, "train")


def test_truncated_header(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(struct.pack(">I", 0x0803) + struct.pack(">I", 5))
    with pytest.raises(MnistDataError, match="truncated inside its header"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    make_split(tmp_path, "t10k", 20, gz=True)
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(MnistDataError, match="not a complete gzip file"):
        load_mnist(tmp_path, "test")


def test_trailing_bytes_are_a_size_mismatch(tmp_path):
    _, labels = make_split(tmp_path, "train", 4, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", idx_bytes(labels) + b"\x00\x01", gz=False)
    with pytest.raises(MnistDataError, match="size mismatch"):
        load_mnist(tmp_path, "train")


def test_image_label_count_mismatch(tmp_path):
    make_split(tmp_path, "train", 4, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(5, np.uint8)), gz=False)
    with pytest.raises(MnistDataError, match="4 images but .* 5 labels"):
        load_mnist(tmp_path, "train")


def test_errors_are_value_errors():
    assert issubclass(MnistDataError, ValueError)


def test_find_mnist_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv("CINN_MNIST", str(tmp_path / "env"))
    assert find_mnist_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert find_mnist_dir() == tmp_path / "env"


# ---- the real files -------------------------------------------------------------------------

REAL = find_mnist_dir()
needs_real = pytest.mark.skipif(
    REAL is None or not Path(REAL).is_dir(),
    reason="MNIST data directory not found (set $CINN_MNIST or place it at ../shared/data/mnist)",
)


@needs_real
def test_real_mnist():
    x, y = load_mnist(REAL, "train")
    assert x.shape == (60000, 28, 28) and y.shape == (60000,)
    assert int(y[0]) == 5
    assert abs(x.double().mean().item() - 33.318) < 0.001
    assert torch.bincount(y, minlength=10).min() > 5000
    xt, yt = load_mnist(REAL, "test")
    assert xt.shape == (10000, 28, 28) and yt.shape == (10000,)
    assert int(yt[0]) == 7
