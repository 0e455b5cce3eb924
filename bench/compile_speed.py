"""Where ``cinn train --compile`` pays: the shipped presets' training steps, eager against compiled.

    python bench/compile_speed.py [--threads 1] [--steps 15] [--device cpu]

For each default preset (``mnist``: the multi-scale MNIST model, batch 64 of MNIST's training
images; ``colorize``: the colorization model, batch 16 of 64x64 crops of the val photos), the
training step exactly as the loop runs it (the task's loss through ``_Objective``, backward,
gradient clipping, the fused Adam step) is timed eager, then compiled with the loop's own
``compiling.compile_objective`` (the compile time measured apart), then timed again, eager and
compiled rounds alternating. Medians over ``--steps`` steps per round. Printed per preset:
ms/step and training images/s both ways, the ratio, the compile time and the break-even number
of steps (compile time / time saved per step), beside the steps of the preset's default run. Last line:

    compile_speed mnist_ratio=<eager/compiled> mnist_break_even=<steps> colorize_ratio=... colorize_break_even=...
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cinn_cli.tasks.colorize.model import COLORIZE_PRESETS, ColorizeCINN  # noqa: E402
from cinn_cli.tasks.colorize.train import COLORIZE_NOISE, COLORIZE_RECIPES, ColorizeTask  # noqa: E402
from cinn_cli.tasks.mnist.model import PRESETS, MnistCINN  # noqa: E402
from cinn_cli.tasks.mnist.train import MNIST_RECIPES, MNIST_TRAIN_NOISE, MnistTask  # noqa: E402
from cinn_cli.training import compiling  # noqa: E402
from cinn_cli.training.loop import _Objective  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def setups(device: torch.device):
    """``(name, model, task, batch size, steps of the preset's default run)`` per preset."""
    torch.manual_seed(0)
    mnist = MnistTask(DATA / "mnist", MNIST_TRAIN_NOISE["default"], eval_limit=100)
    recipe = MNIST_RECIPES["default"]
    yield "mnist", MnistCINN(PRESETS["default"]), mnist, recipe.batch_size, recipe.epochs * (60000 // recipe.batch_size)
    # channels-last, as train_colorize trains it
    model = ColorizeCINN(COLORIZE_PRESETS["default"]).to(memory_format=torch.channels_last)
    task = ColorizeTask(model, DATA / "photos" / "val", None, COLORIZE_NOISE["default"])
    recipe = COLORIZE_RECIPES["default"]
    train_photos = sum(1 for p in (DATA / "photos" / "train").rglob("*") if p.suffix in (".jpg", ".png", ".webp"))
    yield "colorize", model, task, recipe.batch_size, recipe.epochs * (train_photos * 64 // recipe.batch_size)


def step_timer(objective, model, task, batch_size: int, device: torch.device):
    """One loop-like training step, returning its wall seconds."""
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-4, fused=device.type in ("cpu", "cuda"))
    g = torch.Generator().manual_seed(1)
    idx = torch.arange(batch_size) % task.n_train

    def step() -> float:
        batch = task.batch(idx, g, device)
        t0 = time.perf_counter()
        loss = objective(batch).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {device}")
    summary = []
    for name, model, task, batch_size, run_steps in setups(device):
        model.to(device).train()
        eager_obj = _Objective(model, task)
        eager = step_timer(eager_obj, model, task, batch_size, device)
        for _ in range(3):
            eager()

        def warm_up(compiled, task=task, batch_size=batch_size):
            batch = task.batch(torch.arange(batch_size) % task.n_train, torch.Generator().manual_seed(0), device)
            return compiled(batch).mean()

        compiled_obj, compile_s = compiling.compile_objective(eager_obj, warm_up)
        fast = step_timer(compiled_obj, model, task, batch_size, device)
        for _ in range(3):
            fast()
        times = {"eager": [], "compiled": []}
        for _ in range(args.rounds):
            times["eager"] += [eager() for _ in range(args.steps)]
            times["compiled"] += [fast() for _ in range(args.steps)]
        e, c = statistics.median(times["eager"]), statistics.median(times["compiled"])
        saved = e - c
        break_even = compile_s / saved if saved > 0 else float("inf")
        print(
            f"{name:9s} eager {e * 1000:7.1f} ms/step ({batch_size / e:5.0f} images/s)  compiled {c * 1000:7.1f} "
            f"ms/step ({batch_size / c:5.0f} images/s)  ratio {e / c:.3f}  "
            f"compile {compile_s:6.1f} s  break-even {break_even:,.0f} steps (default run: {run_steps:,} steps)"
        )
        summary.append(f"{name}_ratio={e / c:.3f} {name}_break_even={break_even:.0f}")
    print("compile_speed " + " ".join(summary))


if __name__ == "__main__":
    main()
