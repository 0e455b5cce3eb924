"""Shared fixtures for the test suite (plain helpers are in helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import make_split, tiny_colorize_file, tiny_mnist_file

# The real MNIST files, when this checkout sits beside the project's shared data (the package
# itself looks only at --data and $CINN_MNIST); the tests that need them skip without them.
_SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
if not os.environ.get("CINN_MNIST") and _SHARED_MNIST.is_dir():
    os.environ["CINN_MNIST"] = str(_SHARED_MNIST)


@pytest.fixture(scope="module")
def single_thread():
    """Run torch on one CPU thread for the tests that use this, then restore the setting.

    The tests use tiny tensors, where extra threads only add overhead; on a small, busy machine
    (2 cores shared with a training run) two torch threads made the Jacobian checks 5-10x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """Tiny fake MNIST IDX files (96 train images gzip, 20 test images raw)."""
    d = tmp_path_factory.mktemp("mnist")
    make_split(d, "train", 96, gz=True, seed=1)
    make_split(d, "t10k", 20, gz=False, seed=2)
    return d


@pytest.fixture(scope="module")
def mnist_weights(tmp_path_factory):
    """A tiny MNIST model file (``tiny_mnist_file``, seed 0), one per test module."""
    return tiny_mnist_file(tmp_path_factory.mktemp("w") / "tiny.safetensors", 0)


@pytest.fixture(scope="module")
def colorize_weights(tmp_path_factory):
    """A tiny colorization model file (``tiny_colorize_file``), one per test module."""
    return tiny_colorize_file(tmp_path_factory.mktemp("w") / "tiny.safetensors")
