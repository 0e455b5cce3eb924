"""Make the README's MNIST pictures from the real commands' outputs.

    python docs/figures.py [--data DIR] [--weights FILE]

1. ``docs/mnist-samples.png``: ``cinn sample -d 0-9 -n 10 --seed 1`` (one row per digit, T = 0.8).
2. ``docs/mnist-style-transfer.png``: the first 8 MNIST test images (left column) encoded with
   ``cinn encode IN Z --verify`` (labels from folder names), then decoded under every digit with
   ``cinn sample --from-latent Z -d 0-9``: each row keeps one writer's style.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from cinn_cli.images import grid, write_png
from cinn_cli.mnist_data import find_mnist_dir, load_mnist

DOCS = Path(__file__).resolve().parent


def cinn(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cinn_cli", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"cinn {' '.join(args)} failed:\n{done.stderr}")


def upscale(a: np.ndarray, k: int = 3) -> np.ndarray:
    return np.kron(a, np.ones((k, k), np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="MNIST folder (default: $CINN_MNIST or ../shared/data/mnist)")
    parser.add_argument("--weights", default=None, help="model file (default: the shipped one)")
    args = parser.parse_args()
    weights = ["--weights", args.weights] if args.weights else []
    data = find_mnist_dir(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = str(tmp / "s")
        cinn("sample", "-d", "0-9", "-n", "10", "--seed", "1", "--no-grid", "--no-latents", "-o", out, *weights)
        tiles = [np.asarray(Image.open(tmp / "s" / f"{d}-{k:04d}.png")) for d in range(10) for k in range(1, 11)]
        write_png(DOCS / "mnist-samples.png", upscale(grid(tiles, columns=10)))

        images, labels = load_mnist(data, "test")
        for i in range(8):  # labels come from the folder names: in/<digit>/test<i>.png
            src = tmp / "in" / str(int(labels[i])) / f"test{i}.png"
            src.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i].numpy()).save(src)
        cinn("encode", str(tmp / "in"), str(tmp / "z"), "--verify", *weights)
        cinn("sample", "--from-latent", str(tmp / "z"), "-d", "0-9", "-o", str(tmp / "st"), *weights)
        rows = []
        for i in range(8):
            folder = tmp / "st" / str(int(labels[i]))
            rows.append(images[i].numpy())
            rows += [np.asarray(Image.open(folder / f"test{i}-{t}.png")) for t in range(10)]
        write_png(DOCS / "mnist-style-transfer.png", upscale(grid(rows, columns=11)))
    print(f"wrote {DOCS / 'mnist-samples.png'} and {DOCS / 'mnist-style-transfer.png'}")


if __name__ == "__main__":
    main()
