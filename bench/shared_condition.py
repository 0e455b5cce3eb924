"""The colorization model's pass for n samples of one photo: condition shared (batch 1, what
`cinn colorize` runs) against the condition repeated per sample (what it ran before), same run.

    python bench/shared_condition.py [-n 8] [--size 1000x1600] [--rounds 7] [--threads 1]

Times ``working_ab`` (the condition network and every coupling's condition term once per photo)
against ``model.inverse`` under the lightness expanded to n samples, alternating the two each
round, with the shipped model on a random lightness of the given size (the model runs at its
working size). Checks first that both give the same ab (to float32 rounding). Last line:

    shared_condition n=<n> repeated_ms=<median> shared_ms=<median> ratio=<repeated / shared>
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cinn_cli.tasks import load_model, resolve_weights
from cinn_cli.tasks.colorize.color import resize
from cinn_cli.tasks.colorize.colorize import working_ab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=8, help="samples per photo")
    ap.add_argument("--size", default="1000x1600", help="photo size HxW")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))

    model, _ = load_model(resolve_weights(None, "colorize"), device="cpu", task="colorize")
    g = torch.Generator().manual_seed(0)
    L = 100 * torch.rand(1, 1, h, w, generator=g)
    size = model.working_size(h, w)
    zs = [torch.randn(args.n, *s, generator=g) for s in model.latent_shapes(*size)]

    @torch.no_grad()
    def repeated() -> torch.Tensor:
        return model.inverse(zs, resize(L, size).expand(args.n, 1, *size)).clamp(-128.0, 128.0)

    def shared() -> torch.Tensor:
        return working_ab(model, L, zs)

    diff = (repeated() - shared()).abs().max().item()
    print(
        f"shared_condition: {h}x{w} photo, working size {size[0]}x{size[1]}, n={args.n}, "
        f"{torch.get_num_threads()} thread(s); same ab (max abs diff {diff:.1e} Lab units)"
    )
    assert diff < 1e-3, diff
    times: dict[str, list[float]] = {"repeated": [], "shared": []}
    for r in range(args.rounds + 1):  # round 0 warms up
        for name, fn in sorted({"repeated": repeated, "shared": shared}.items(), reverse=r % 2 == 1):
            t = time.perf_counter()
            fn()
            if r:
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"shared_condition n={args.n} repeated_ms={med['repeated'] * 1e3:.1f} shared_ms={med['shared'] * 1e3:.1f} "
        f"ratio={med['repeated'] / med['shared']:.3f}"
    )


if __name__ == "__main__":
    main()
