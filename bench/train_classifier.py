"""Train the evaluation classifier (``cinn_cli.tasks.mnist.classifier.MnistClassifier``) on MNIST.

    python bench/train_classifier.py [--data DIR] [--epochs 4] [--threads 1] [--out weights/...]

Trains on the 60,000 training images (Adam, one-cycle learning rate, random shifts of up to
±2 px), evaluates on the 10,000 test images and writes a safetensors file whose metadata holds
``format='cinn-classifier'``, the version, the architecture, the test accuracy of the stored
weights and the command. Weights are stored in float16 when that leaves the test accuracy
unchanged, float32 otherwise. The last line printed is ``classifier test_accuracy=0.XXXX``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cinn_cli.tasks.mnist.classifier import MnistClassifier  # noqa: E402
from cinn_cli.tasks.mnist.data import find_mnist_dir, load_mnist  # noqa: E402

FORMAT = "cinn-classifier"
VERSION = "1"


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image of (B, 1, H, W) by its own random (dy, dx) in [-max_shift, max_shift], zero fill."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    xp = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (B, 1, W)
    return xp[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)


@torch.no_grad()
def accuracy(model: MnistClassifier, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy of ``model`` on uint8 (N, 28, 28) images."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        x = images[i : i + batch].unsqueeze(1).float() / 255.0
        correct += int((model(x).argmax(1) == labels[i : i + batch]).sum())
    return correct / len(images)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="MNIST directory (default: $CINN_MNIST or ../shared/data/mnist)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--shift", type=int, default=2, help="random shift augmentation, in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(REPO / "weights" / "mnist-classifier.safetensors"))
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    data_dir = find_mnist_dir(args.data) or Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if data_dir is None:
        sys.exit("MNIST directory not found: pass --data or set $CINN_MNIST.")
    train_x, train_y = load_mnist(data_dir, "train")
    test_x, test_y = load_mnist(data_dir, "test")
    train_f = train_x.unsqueeze(1).float() / 255.0

    model = MnistClassifier()
    n_params = sum(q.numel() for q in model.parameters())
    print(f"MnistClassifier: {n_params:,} parameters; data {data_dir}", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = (len(train_x) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)

    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(train_x), generator=gen)
        total, n = 0.0, 0
        for i in range(0, len(perm), args.batch):
            idx = perm[i : i + args.batch]
            x = random_shift(train_f[idx], args.shift, gen)
            loss = F.cross_entropy(model(x), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        acc = accuracy(model, test_x, test_y)
        print(
            f"epoch {epoch + 1}/{args.epochs}: train loss {total / n:.4f}, test accuracy {acc:.4f}, "
            f"{time.time() - t0:.0f} s",
            flush=True,
        )

    acc32 = accuracy(model, test_x, test_y)
    state32 = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    # BatchNorm's num_batches_tracked is an int64 counter, unused at eval: keep it as is.
    state16 = {k: (v.half() if v.is_floating_point() else v) for k, v in state32.items()}
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state16.items()})
    acc16 = accuracy(model, test_x, test_y)
    use16 = acc16 >= acc32
    state, acc = (state16, acc16) if use16 else (state32, acc32)
    print(
        f"test accuracy float32 {acc32:.4f}, float16 {acc16:.4f}: storing {'float16' if use16 else 'float32'}",
        flush=True,
    )

    command = "python bench/train_classifier.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": "MnistClassifier",
        "config": json.dumps(model.config),
        "test_accuracy": f"{acc:.4f}",
        "test_accuracy_definition": f"top-1 on the {len(test_y):,} test images of {data_dir.name}/, pixels/255",
        "dtype": "float16" if use16 else "float32",
        "parameters": str(n_params),
        "epochs": str(args.epochs),
        "seed": str(args.seed),
        "command": command.strip(),
        "torch": torch.__version__,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata=metadata)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB) in {time.time() - t0:.0f} s", flush=True)
    print(f"classifier test_accuracy={acc:.4f}")


if __name__ == "__main__":
    main()
