"""Training speed (images/s) of the MNIST presets in fp32 and bf16, against FrEIA's paper preset.

Times full training steps as ``cinn train mnist`` runs them (``cinn_cli/training/loop.py``): forward under
``torch.autocast(dtype=bfloat16)`` for bf16 (``--precision bf16``), loss = mean NLL per
dimension, backward, gradient clipping at 10, fused Adam step. Eight configurations, in the same
run and interleaved round by round (so load drift hits all of them alike):

- ours ``paper``   (``MnistCINN(PRESETS["paper"])``, 24.3 M parameters), batch 256, fp32 / bf16
- ours ``default`` (``MnistCINN(PRESETS["default"])``), batch 64 (its recipe's), fp32 / bf16
- ours ``default3x3``: the default preset before session 10 (``mid_kernel=3``: 3x3 middle
  convolutions in the coupling subnets), batch 64, fp32 / bf16
- FrEIA ``paper``  (the same model built from ``FrEIA.framework.GraphINN`` by
  ``bench/core_speed.py``, weights copied from ours), batch 256, fp32 / bf16

On CUDA every round is synchronised before the clock stops. Medians of the rounds. FrEIA is a
bench-only dependency (``pip install -e ".[bench]"``).

The last line is machine-readable:
    train_speed device=<type> <config>=<images/s> ... freia_ratio_fp32=<ours paper / FrEIA paper>
        freia_ratio_bf16=<...> bf16_speedup_paper=<bf16 / fp32> bf16_speedup_default=<...>
        default_speedup_vs_3x3=<default / default3x3, fp32>

Usage:
    python bench/train_speed.py                           # cuda if available, else cpu
    python bench/train_speed.py --device cpu --steps 2 --rounds 3 --warmup 1   # quick CPU check
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from core_speed import build_mnist, cpu_name, nll_loss  # noqa: E402  (FrEIA check and import there)

from cinn_cli.tasks.mnist.model import PRESETS, MnistCINN

BATCH = {
    "paper": 256,
    "default": 64,
    "default3x3": 64,
}  # the presets' recipe batch sizes (cinn_cli/tasks/mnist/train.py)
CLIP = 10.0


def make_step(model: torch.nn.Module, loss_fn: Callable, device: torch.device, precision: str) -> Callable[[], None]:
    """One training step of ``model`` as the loop runs it; ``loss_fn()`` -> scalar loss."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-5, fused=device.type in ("cpu", "cuda"))

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()

    return step


def batch(n: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Dequantized random pixels ``(n, 1, 28, 28)`` in (0, 1) and labels ``(n,)``."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randint(0, 256, (n, 1, 28, 28), generator=g) + torch.rand(n, 1, 28, 28, generator=g)) / 256
    return x.to(device), torch.randint(0, 10, (n,), generator=g).to(device)


def build(device: torch.device) -> dict[str, Callable[[], None]]:
    """``{"<impl>_<preset>_<precision>": step}`` for the eight configurations."""
    ref = build_mnist()  # ours (paper) and FrEIA with the same weights and permutations
    models = {"ours_paper": ref["ours"], "freia_paper": ref["freia"]}
    torch.manual_seed(0)
    models["ours_default"] = MnistCINN(PRESETS["default"])
    torch.manual_seed(0)
    models["ours_default3x3"] = MnistCINN(replace(PRESETS["default"], mid_kernel=3))
    steps = {}
    for name, model in models.items():
        model.to(device).train()
        x, labels = batch(BATCH[name.split("_")[1]], device)
        if name.startswith("freia"):
            fwd = ref["freia_fwd"]

            def loss_fn(fwd=fwd, x=x, labels=labels):
                zs, logdet = fwd(x, labels)
                return nll_loss(zs, logdet, 784)
        else:

            def loss_fn(model=model, x=x, labels=labels):
                return -model.log_prob(x, labels).mean() / 784

        for precision in ("fp32", "bf16"):
            steps[f"{name}_{precision}"] = make_step(model, loss_fn, device, precision)
    return steps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=20, help="training steps per configuration per round")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (cuDNN autotune, allocator)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if min(args.steps, args.rounds) < 1 or args.warmup < 0:
        ap.error("--steps and --rounds must be >= 1, --warmup >= 0")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{cpu_name()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    print(
        f"train_speed: torch {torch.__version__}, FrEIA {importlib.metadata.version('freia')}, {where}, "
        f"{args.rounds} round(s) of {args.steps} steps after {args.warmup} warm-up, medians"
    )
    steps = build(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    seconds: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(args.warmup + args.rounds):
        names = list(steps) if r % 2 == 0 else list(reversed(steps))  # neither end always first
        for name in names:
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                steps[name]()
            sync()
            if r >= args.warmup:
                seconds[name].append(time.perf_counter() - t0)

    rate = {}
    print(f"  {'configuration':22s} {'batch':>5s} {'ms/step':>9s} {'images/s':>9s}   min-max ms/step")
    for name, times in seconds.items():
        bs = BATCH[name.split("_")[1]]
        per_step = statistics.median(times) / args.steps
        rate[name] = bs / per_step
        lo, hi = min(times) / args.steps, max(times) / args.steps
        print(f"  {name:22s} {bs:5d} {per_step * 1e3:9.1f} {rate[name]:9.0f}   {lo * 1e3:.0f}-{hi * 1e3:.0f}")
    ratios = {
        "freia_ratio_fp32": rate["ours_paper_fp32"] / rate["freia_paper_fp32"],
        "freia_ratio_bf16": rate["ours_paper_bf16"] / rate["freia_paper_bf16"],
        "bf16_speedup_paper": rate["ours_paper_bf16"] / rate["ours_paper_fp32"],
        "bf16_speedup_default": rate["ours_default_bf16"] / rate["ours_default_fp32"],
        "default_speedup_vs_3x3": rate["ours_default_fp32"] / rate["ours_default3x3_fp32"],
    }
    print(
        f"train_speed device={device.type} "
        + " ".join(f"{k}={v:.0f}" for k, v in rate.items())
        + " "
        + " ".join(f"{k}={v:.3f}" for k, v in ratios.items())
    )


if __name__ == "__main__":
    main()
