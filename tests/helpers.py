"""Plain helpers shared by the test modules (fixtures live in conftest.py).

Test modules import from here (``from helpers import ...``), never from each other; tests/test_layout.py
checks that. Every builder is seeded, so a test that calls one twice gets the same bytes.
"""

from __future__ import annotations

import gzip
import io
import signal
import struct
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from torch import Tensor, nn

from cinn_cli.cli.app import main
from cinn_cli.files.model_file import save_model
from cinn_cli.tasks.colorize.model import ColorizeCINN, ColorizeConfig
from cinn_cli.tasks.mnist.model import MnistCINN, MnistConfig

ROOT = Path(__file__).resolve().parents[1]  # the repository (its weights/, man/; ../shared beside it)


# --------------------------------------------------------------------------- float64 model checks

# float64 tolerances of the block and model checks: inverse(forward(x)) against x, and the log-det
# against slogdet of the brute-force Jacobian.
ROUND_TRIP_TOL = 1e-10
LOGDET_TOL = 1e-8


def randomise_(module: nn.Module, seed: int = 0, scale: float = 0.1) -> nn.Module:
    """Set every parameter to ``scale * randn`` from a seeded generator (in place); returns it."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return module


def flat(zs: Tensor | list[Tensor]) -> Tensor:
    """``(B, D)``: a tensor, or a list of latent levels, flattened and concatenated per sample."""
    if isinstance(zs, Tensor):
        zs = [zs]
    return torch.cat([z.reshape(z.shape[0], -1) for z in zs], dim=1)


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)}"
    return (a - b).abs().max().item()


# --------------------------------------------------------------------------- tiny model files

# The tiny MNIST multiscale model (1 block per level, 4/4/8 hidden channels).
TINY_MNIST = MnistConfig(blocks=(1, 1, 1), hidden=(4, 4, 8), cond_channels=(2, 2, 3))

# The tiny colorization model (2 levels, 16-pixel crops) as ColorizeConfig fields: a dict, so tests can vary one.
TINY_COLORIZE = dict(
    blocks=(1, 1), hidden=(4, 4), cond_channels=(2, 3), cond_widths=(4, 4, 4), global_dim=4, crop_size=16, work_size=16
)


def tiny_mnist_file(path, seed: int, cond_std: float = 1.0):
    """A tiny MNIST model with random parameters, saved at ``path``; returns ``path``.

    The condition network's parameters get ``N(0, cond_std)`` (1.0 by default, so the labels
    matter), all the others ``N(0, 0.05)``, after ``torch.manual_seed(seed)``.
    """
    torch.manual_seed(seed)
    model = MnistCINN(TINY_MNIST)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, cond_std if name.startswith("cond_net") else 0.05)
    save_model(model, path)
    return path


def tiny_colorize_file(path):
    """A tiny colorization model with random (not zero-initialised) couplings, saved at ``path``."""
    torch.manual_seed(0)
    model = ColorizeCINN(ColorizeConfig(**TINY_COLORIZE))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    save_model(model, path)
    return path


# --------------------------------------------------------------------------- input files


def photo(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth colourful (H, W, 3) uint8 image with an edge."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + c + seed) * 0.5 + 0.5 for c in range(3)], -1)
    base[:, w // 2 :] = 1 - base[:, w // 2 :]
    return ((base * 0.8 + 0.2 * rng.random((h, w, 3))) * 255).astype(np.uint8)


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """IDX encoding of a uint8 array (magic 0x0000080N for N dimensions unless given)."""
    if magic is None:
        magic = 0x0800 | arr.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_idx(path: Path, data: bytes, gz: bool) -> None:
    """Write IDX ``data`` at ``path``, or gzipped at ``path`` + ".gz"."""
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_split(d: Path, prefix: str, n: int, gz: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fake MNIST ``<prefix>-images/labels`` IDX files of ``n`` random images in ``d``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    write_idx(d / f"{prefix}-images-idx3-ubyte", idx_bytes(images), gz)
    write_idx(d / f"{prefix}-labels-idx1-ubyte", idx_bytes(labels), gz)
    return images, labels


# --------------------------------------------------------------------------- running the CLI


def invoke(*args, **kw):
    """Run ``cinn ARGS`` in-process (each arg through ``str``); ``kw`` go to ``CliRunner.invoke``."""
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def cli(*args) -> list[str]:
    """The argv of ``cinn ARGS`` as a separate process."""
    return [sys.executable, "-m", "cinn_cli", *map(str, args)]


class Terminal(io.StringIO):
    """A text stream that says it is a terminal (progress bars are drawn only on one)."""

    def isatty(self) -> bool:
        return True


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child ``cinn``: one torch thread, and Python's fault handler on, so
    that ``watchdog`` can make a hung child print the stack of each of its threads."""
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1", **extra}


@contextmanager
def watchdog(proc: subprocess.Popen, seconds: float):
    """Around reads of ``proc``'s pipes, which wait for it to exit: if it still runs after ``seconds``
    it gets SIGABRT (under ``child_env`` it then prints every thread's stack to its stderr), then
    SIGKILL, so a hung child fails the test with its stacks instead of hanging the suite."""

    def expire() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGABRT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) by relative path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- tiny training runs

# the --config overrides of the tiny multi-scale MNIST model the training tests run
TINY_TRAINING = {"blocks": (1, 1, 1), "hidden": (4, 4, 8), "cond_channels": (2, 2, 3)}


def run_tiny(mnist_dir, out, steps=6, resume=False, precision="fp32", compile_mode="off", **options):
    """A seeded tiny MNIST training run of ``steps`` steps (batch 16): ``(model, TrainResult)``;
    ``options``: more of ``train_mnist``'s (e.g. ``log_jsonl``)."""
    from cinn_cli.tasks.mnist.train import train_mnist

    return train_mnist(
        data_dir=mnist_dir,
        out=out,
        preset="default",
        device=torch.device("cpu"),
        epochs=None,
        steps=steps,
        batch_size=16,
        lr=1e-3,
        seed=0,
        resume=resume,
        checkpoint_minutes=60,
        eval_every=4,
        config_overrides=TINY_TRAINING,
        progress=False,
        precision=precision,
        compile_mode=compile_mode,
        **options,
    )
