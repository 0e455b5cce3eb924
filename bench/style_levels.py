"""Which part of an MNIST latent carries the handwriting, and what scaling it costs.

Encodes the first 1,000 test images under their own digit (as ``cinn encode``), changes the
latent in one of several ways, decodes it under every digit and scores the decodes as
``cinn eval mnist`` scores its style transfer (``score_style_transfer``: legibility by the
shipped classifier, and slant / ink correlation with the source over the decodes under another
digit):

- ``as stored``: the latent as encoded (transfer temperature 1);
- ``exits resampled``: the two multi-scale exits (14x14 and 7x7 levels) replaced by fresh noise
  at the sampling temperature 0.65, the final level kept;
- ``scaled by T``: the whole latent times T (``--transfer-temperature T``);
- ``fresh noise``: no latent at all, new samples at 0.65 (the floor of "style kept").

    python bench/style_levels.py [--data ../shared/data/mnist] [--weights FILE]   # about 1 min
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cinn_cli.tasks import load_model, resolve_weights
from cinn_cli.tasks.mnist.data import find_mnist_dir, load_mnist
from cinn_cli.tasks.mnist.evaluate import decode_every_digit, encode_digits, score_style_transfer
from cinn_cli.tasks.mnist.metrics import load_classifier

SAMPLE_T = 0.65


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="MNIST folder (default: $CINN_MNIST or ../shared/data/mnist)")
    parser.add_argument("--weights", default=None, help="MNIST model file (default: the shipped one)")
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    data = find_mnist_dir(args.data) or Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if data is None:
        parser.error("no MNIST folder: pass --data DIR")
    model = load_model(resolve_weights(args.weights, "mnist"), task="mnist")[0]
    x, y = (t[: args.images] for t in load_mnist(data, "test"))
    clf = load_classifier()
    cpu = torch.device("cpu")
    zs = encode_digits(model, x, y, cpu)
    g = torch.Generator().manual_seed(0)

    def noise(z: torch.Tensor) -> torch.Tensor:
        return torch.randn(z.shape, generator=g) * SAMPLE_T

    variants = {
        "as stored": lambda: zs,
        "exits resampled (T 0.65)": lambda: [noise(z) for z in zs[:-1]] + zs[-1:],
        "scaled by 0.8": lambda: [0.8 * z for z in zs],
        "fresh noise (T 0.65)": lambda: [noise(z) for z in zs],
    }
    print(f"{'latent':26s} {'recognised':>10s} {'worst':>10s} {'slant kept':>10s} {'ink kept':>10s}")
    for name, make in variants.items():
        decodes = torch.cat(decode_every_digit(model, make(), cpu))
        r = score_style_transfer(clf, x, y, decodes, torch.arange(10).repeat_interleave(len(x)))
        worst = f"{r['worst_digit']}: {r['worst_digit_accuracy']:.3f}"
        print(
            f"{name:26s} {r['accuracy']:10.4f} {worst:>10s} {r['slant_correlation']:10.3f} {r['ink_correlation']:10.3f}"
        )


if __name__ == "__main__":
    main()
