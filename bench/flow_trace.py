"""Follow MNIST test images through an MNIST model's flow, coupling by coupling.

    python bench/flow_trace.py [--weights FILE] [--data DIR] [--images 5627,0,1,2]

For every affine coupling it prints, per image, the largest |activation| entering the coupling,
the largest |shift| and the largest clamped log-scale it applies (the clamp bounds the log-scale
at ``clamp``: a coupling can multiply by at most e^clamp). Then each image's bits/dim (as
``cinn eval mnist`` computes it, one dequantization draw) and latent norm. Float64 throughout.

It was written for test image 5627, whose bits/dim under the clamp-1.5 model shipped before
(``git show 9bd6861:weights/mnist.safetensors``) was many orders of magnitude above the others'
(README, MNIST): compare its column with the ordinary images'.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cinn_cli.files.model_file import shipped_weights
from cinn_cli.flows.blocks import AffineCoupling, ExitSplit
from cinn_cli.tasks.mnist.data import find_mnist_dir, load_mnist
from cinn_cli.tasks.mnist.evaluate import per_image_bits_per_dim
from cinn_cli.tasks.mnist.sample import load_mnist_model


def fmt(values: torch.Tensor, spec: str) -> str:
    return " ".join(format(v, spec) for v in values.tolist())


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=None, help="MNIST model file (default: the shipped one)")
    parser.add_argument("--data", type=Path, default=None, help="MNIST folder (default: $CINN_MNIST or ../shared)")
    parser.add_argument("--images", default="5627,0,1,2", help="test image indices, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = find_mnist_dir(args.data) or Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if data is None:
        raise SystemExit("MNIST data not found: pass --data DIR or set $CINN_MNIST")
    images, labels = load_mnist(data, "test")
    idx = torch.tensor([int(i) for i in args.images.split(",")])
    model, _ = load_mnist_model(args.weights or shipped_weights("mnist"), torch.device("cpu"), exact=True)

    x = (images[idx].double().unsqueeze(1) + 0.5) / 256.0  # bin centres, as cinn encode
    y = labels[idx]
    print(f"test images {idx.tolist()} (digits {y.tolist()}); per coupling: max |input|, max |shift|, max log-scale")
    h, _ = model.preprocess(x)
    feats = model.cond_feats(y, h.dtype)
    for i, step in enumerate(model.flow.steps):
        if isinstance(step, ExitSplit):
            h = h[:, step.n :]
            continue
        cond = model.flow._cond(step, feats)
        if isinstance(step, AffineCoupling):
            x1, x2 = h.split([step.n1, step.n2], dim=1)
            s2, t2 = step._scale_shift(step.sub2, x2, cond)
            s1, t1 = step._scale_shift(step.sub1, x1 * torch.exp(s2) + t2, cond)
            shift = torch.cat([t1.flatten(1), t2.flatten(1)], 1).abs().amax(1)
            scale = torch.cat([s1.flatten(1), s2.flatten(1)], 1).amax(1)
            size = "x".join(map(str, h.shape[1:]))
            print(
                f"step {i:2d} {size:>9}  in {fmt(h.abs().flatten(1).amax(1), '9.1f')}"
                f"  shift {fmt(shift, '8.1f')}  log-scale {fmt(scale, '5.2f')}"
            )
        h, _ = step(h, cond)
    zs, _ = model(x, y)
    norm = torch.cat([z.flatten(1) for z in zs], 1).norm(dim=1)
    bpd = per_image_bits_per_dim(model.float(), images[idx], y, torch.device("cpu"))
    print(f"latent norm   {fmt(norm, '.3g')}")
    print(f"bits/dim      {fmt(bpd, '.4g')}")


if __name__ == "__main__":
    main()
