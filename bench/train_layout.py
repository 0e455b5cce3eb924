"""The colorization training step with default (NCHW) against channels-last weights, same run.

    python bench/train_layout.py [--threads 1] [--steps 10] [--rounds 5]

`cinn train colorize` trains with channels-last weights and hands the model back in the default
layout (`train_colorize`). This times the default preset's training step exactly as the loop
runs it (``compile_speed.step_timer``: the task's loss, backward, clipping, fused Adam; batch 16
of 64x64 crops of the val photos) on two copies of the shipped model (trained weights, so the
first check means something: a new model's zero-initialised couplings give equal losses in any
layout), one per layout, alternating rounds; medians. It checks first that both give the same
loss to float rounding. Last line:

    train_layout contiguous_ms=<median> channels_last_ms=<median> ratio=<contiguous / channels-last>
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
from compile_speed import DATA, step_timer

from cinn_cli.tasks import load_model, resolve_weights
from cinn_cli.tasks.colorize.train import COLORIZE_NOISE, COLORIZE_RECIPES, ColorizeTask
from cinn_cli.training.loop import _Objective


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per layout per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")

    torch.manual_seed(0)
    model, _ = load_model(resolve_weights(None, "colorize"), device="cpu", task="colorize")
    task = ColorizeTask(model, DATA / "photos" / "val", None, COLORIZE_NOISE["default"])
    batch_size = COLORIZE_RECIPES["default"].batch_size
    models = {"contiguous": model, "channels_last": copy.deepcopy(model).to(memory_format=torch.channels_last)}

    batch = task.batch(torch.arange(batch_size) % task.n_train, torch.Generator().manual_seed(0), device)
    with torch.no_grad():
        losses = {name: float(_Objective(m, task)(batch).mean()) for name, m in models.items()}
    diff = abs(losses["contiguous"] - losses["channels_last"])
    threads = torch.get_num_threads()
    print(f"train_layout: {threads} thread(s); loss {losses['contiguous']:.6f}, layouts differ by {diff:.1e}")
    assert diff < 1e-4 * abs(losses["contiguous"]), losses

    steps = {name: step_timer(_Objective(m.train(), task), m, task, batch_size, device) for name, m in models.items()}
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.rounds):
        for name in sorted(steps, reverse=r % 2 == 1):
            times[name] += [steps[name]() for _ in range(args.steps)]
    med = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"train_layout contiguous_ms={med['contiguous'] * 1e3:.1f} channels_last_ms={med['channels_last'] * 1e3:.1f} "
        f"ratio={med['contiguous'] / med['channels_last']:.3f}"
    )


if __name__ == "__main__":
    main()
