"""``cinn train --compile auto|on|off``: whether the training step runs through ``torch.compile``.

Compiling costs a fixed time before the first step and saves a fraction of every step after it,
so it pays only for runs long enough: ``auto`` compiles when the run's planned steps (the whole
run's, so a resumed run decides as the first one did) reach the task's ``compile_min_steps``
(``COMPILE_MIN_STEPS`` when the task sets none). Only the
training step is compiled (the task's loss, forward and backward); evaluation, the model file
and every sampling command stay eager, free of compile latency.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable

import torch
from torch import nn

COMPILE_MODES = ("auto", "on", "off")
# `python bench/compile_speed.py` (bench/README.md): the MNIST default preset's step on one CPU
# thread breaks even after about 1,300 steps; auto asks for a margin over that, so a short
# experiment never waits for a compile it cannot win back. A task where compiling was measured
# not to pay sets ``compile_min_steps = None`` (auto then never compiles it).
COMPILE_MIN_STEPS = 4000


def compile_unavailable(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run the training step on ``device`` (``None``: it can)."""
    if device.type == "mps":
        return "torch.compile of the training step is not supported on MPS"
    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX") or "g++", "c++", "clang++")):
        return "TorchInductor needs a C++ compiler (g++, c++ or clang++) on PATH for CPU code"
    return None


def decide(
    mode: str, planned_steps: int, device: torch.device, min_steps: int | None = COMPILE_MIN_STEPS
) -> tuple[bool, str]:
    """``(compile?, the reason in words)`` for ``--compile mode`` and a run of ``planned_steps``
    (``min_steps``: the task's threshold for auto, ``None``: auto never compiles it);
    ``ValueError`` for ``on`` where compiling is impossible."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"--compile must be one of {', '.join(COMPILE_MODES)}, not {mode!r}")
    if mode == "off":
        return False, "off"
    blocked = compile_unavailable(device)
    if mode == "on":
        if blocked:
            raise ValueError(f"--compile on: {blocked}")
        return True, "on"
    if blocked:
        return False, f"auto: not compiled ({blocked})"
    if min_steps is None:
        return False, "auto: not compiled (no measured gain for this task's step)"
    if planned_steps < min_steps:
        return False, f"auto: not compiled ({planned_steps:,} planned steps, fewer than {min_steps:,})"
    return True, f"auto: compiled ({planned_steps:,} planned steps)"


def compile_objective(objective: nn.Module, warm_up: Callable[[nn.Module], torch.Tensor]) -> tuple[nn.Module, float]:
    """``(compiled objective, seconds)``: compiled and run once forward and backward on the
    loss ``warm_up(compiled)`` returns (in the loop: a batch the size of the run's, drawn from its
    own generator so that the run's noise stream stays as it is), so the compile time is measured
    apart from training; the warm-up's gradients are dropped and no weight moves."""
    compiled = torch.compile(objective)
    t0 = time.monotonic()
    loss = warm_up(compiled)
    loss.backward()
    for p in objective.parameters():
        p.grad = None
    return compiled, time.monotonic() - t0
