"""The training loop shared by every task.

A task (see ``pipelines/train.py``) provides the data and the numbers; this module provides the
rest: Adam with weight decay, a per-step LR schedule, gradient clipping, a NaN/inf guard that
never lets a bad step into the weights, tqdm progress on stderr, periodic atomic checkpoints
beside the output file, ``resume``, and the model file written after every evaluation.

Distributed (under ``torchrun``, see ``distributed.py``): ``recipe.batch_size`` is the *global*
batch. Every process walks the same data order and draws the same noise for the whole global
batch, then computes its own equal slice of it; DistributedDataParallel averages the gradients,
which is the gradient of the mean loss over the global batch, so N processes compute what one
process would (to float rounding). Rank 0 alone evaluates and writes the model file, checkpoint,
log and progress bar.

Precision: ``"bf16"`` runs the forward pass under ``torch.autocast`` (bfloat16 matmuls and
convolutions); the core sums log-dets and ``||z||^2`` in float32 (``blocks.sum_except_batch``),
so the loss is a float32 number. Weights, Adam state and evaluation stay float32.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from cinn_cli.files.atomic import atomic_write_bytes
from cinn_cli.files.model_file import save_model
from cinn_cli.training import distributed
from cinn_cli.training.distributed import World

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Recipe:
    """Optimisation settings. ``milestones`` are in epochs (MultiStepLR); ``cosine`` decays the
    LR to ``lr * final_lr_frac`` over all steps after a linear warm-up."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 1e-5
    schedule: str = "cosine"  # "cosine" | "multistep"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_steps: int = 0
    final_lr_frac: float = 0.0
    clip: float = 10.0
    adam_eps: float = 1e-8


class TrainTask(Protocol):
    """What the loop needs from a task."""

    n_train: int

    def batch(self, indices: Tensor, generator: torch.Generator, device: torch.device, part: slice) -> tuple:
        """Rows ``part`` of the training batch for these example indices. The random draws
        (noise, crops) from ``generator`` are made for all of ``indices`` whatever ``part`` is, so
        the generator advances the same way in every process of a distributed run."""

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        """``(B,)`` negative log-likelihood in nats per dimension."""

    def to_bits(self, nats_per_dim: float) -> float:
        """Convert a training loss to the bits/dim the user sees."""

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Held-out metrics, e.g. ``{"test_bits_per_dim": ...}``."""

    # Optional: ``compile_min_steps`` (int or None), the planned steps from which --compile auto
    # compiles this task's step (``compiling.COMPILE_MIN_STEPS`` when absent; None: never).


def task_modules(task: TrainTask) -> nn.Module | None:
    """A task's training-only weights (e.g. an auxiliary loss's head), if it has any: optimised
    and checkpointed with the model, never written to the model file."""
    return getattr(task, "trainable", None)


RISING_EVALS = 3  # warn when the held-out metric rose this many evaluations in a row


def rose(history: list[float], times: int) -> bool:
    """Whether the last ``times`` values each went up."""
    recent = history[-(times + 1) :]
    return len(recent) == times + 1 and all(a < b for a, b in zip(recent, recent[1:], strict=False))


class NonFiniteError(RuntimeError):
    pass


def lr_factor(recipe: Recipe, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of the base LR at ``step`` (0-based)."""
    warm = min(1.0, (step + 1) / recipe.warmup_steps) if recipe.warmup_steps else 1.0
    if recipe.schedule == "multistep":
        epoch = step // steps_per_epoch
        return warm * recipe.gamma ** sum(epoch >= m for m in recipe.milestones)
    if recipe.schedule == "cosine":
        t = min(1.0, step / max(1, total_steps))
        lo = recipe.final_lr_frac
        return warm * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t)))
    raise ValueError(f"unknown schedule {recipe.schedule!r}")


def epoch_order(seed: int, epoch: int, n: int) -> Tensor:
    """The data order of one epoch: a permutation that depends only on (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


@dataclass
class TrainResult:
    steps: int
    epochs_done: float
    seconds: float
    train_bits_per_dim: float
    metrics: dict[str, float]
    skipped_steps: int
    out: Path
    world_size: int = 1
    rank: int = 0
    compile: str = "off"  # the --compile decision, in words
    compile_seconds: float | None = None  # compiling the step (not in ``seconds``); None: not compiled


class _Stop(Exception):
    """Raised after SIGTERM or SIGINT so the loop can checkpoint before exiting."""

    def __init__(self, exit_code: int = 143):
        super().__init__()
        self.exit_code = exit_code


class _Objective(nn.Module):
    """The task's ``(B,)`` loss as one module call, so that DistributedDataParallel, which hooks
    ``forward``, sees the whole computation (the tasks call ``model.log_prob``, not ``model``)."""

    def __init__(self, model: nn.Module, task: TrainTask):
        super().__init__()
        self.model, self.task = model, task
        self.extra = task_modules(task)  # a submodule, so DistributedDataParallel syncs its gradients

    def forward(self, batch: tuple) -> Tensor:
        return self.task.loss(self.model, batch)


class TrainingInterrupted(Exception):
    """Training stopped by SIGINT/SIGTERM after writing its checkpoint; ``exit_code`` says which."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".ckpt")


def model_config(model: nn.Module) -> dict[str, Any] | None:
    """The model's frozen config as a dict with its task (``None`` for a model without one)."""
    config = getattr(model, "config", None)
    return None if config is None else {"task": config.task, **config.to_dict()}


def load_same_model(model: nn.Module, state: dict[str, Any], ckpt: Path) -> None:
    """Load the checkpoint's weights into ``model``, or say in one sentence why they are another
    model's (another task, preset or ``--config``): resuming must never silently continue a
    different model, and PyTorch's list of shape mismatches is no answer for a user."""
    saved, wanted = state.get("config"), model_config(model)
    if saved is not None and wanted is not None:
        if saved.get("task") != wanted["task"]:
            raise ValueError(f"{ckpt} is the checkpoint of a {saved.get('task')} model, not {wanted['task']}")
        saved = _with_defaults(saved, type(model.config))
        if saved != wanted:
            keys = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
            was = ", ".join(f"{k}={_json_value(saved.get(k))}" for k in keys)
            now = ", ".join(f"{k}={_json_value(wanted.get(k))}" for k in keys)
            raise ValueError(
                f"{ckpt} was trained with {was} but this run asks for {now}: resume with the same "
                "--preset and --config, or train into another --out"
            )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:  # a checkpoint from before configs were stored in it
        raise ValueError(
            f"{ckpt} holds another model (its weights do not fit this --preset and --config): resume "
            "with the ones it was trained with, or train into another --out"
        ) from None


def _with_defaults(saved: dict[str, Any], config_class: type) -> dict[str, Any]:
    """``saved`` with the fields added since it was written at their defaults, which rebuild the
    model it was (a model file loads the same way): a checkpoint of the 3x3 default preset, written
    before ``mid_kernel`` existed, resumes with ``--config mid_kernel=3``."""
    fields = {k: v for k, v in saved.items() if k != "task"}
    try:
        return {"task": saved["task"], **config_class.from_dict(fields).to_dict()}
    except (TypeError, ValueError):  # fields this version does not know: compare as written
        return saved


def _json_value(value: Any) -> str:
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def train(
    model: nn.Module,
    task: TrainTask,
    recipe: Recipe,
    *,
    out: Path,
    device: torch.device,
    seed: int = 0,
    max_steps: int | None = None,
    resume: bool = False,
    checkpoint_minutes: float = 5.0,
    eval_every: int | None = None,
    training_info: dict[str, Any] | None = None,
    log_jsonl: Path | None = None,
    progress: bool = True,
    precision: str = "fp32",
    log: Callable[[str], None] | None = None,
    compile_mode: str = "off",
) -> TrainResult:
    """Train ``model`` on ``task``; write ``out`` after every evaluation and at the end.

    ``eval_every`` is in steps (default: once per epoch). A checkpoint (model, optimiser, step,
    RNG states) is kept at ``<out>.ckpt``; ``resume=True`` continues from it. Under torchrun the
    process joins the job here (``device`` ``cuda`` becomes ``cuda:LOCAL_RANK``) and leaves it at
    the end. ``precision``: ``"fp32"`` or ``"bf16"`` (autocast of the forward pass).
    ``compile_mode``: ``"auto"``, ``"on"`` or ``"off"``, the training step through
    ``torch.compile`` (``compiling.decide``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    size = distributed.env_world_size()
    if recipe.batch_size % size:
        raise ValueError(
            f"batch size {recipe.batch_size} is the global batch and must be divisible by the "
            f"{size} processes (e.g. {recipe.batch_size - recipe.batch_size % size or size})"
        )
    world, device = distributed.join(device)
    try:
        return _train(
            model,
            task,
            recipe,
            out=out,
            device=device,
            world=world,
            seed=seed,
            max_steps=max_steps,
            resume=resume,
            checkpoint_minutes=checkpoint_minutes,
            eval_every=eval_every,
            training_info=training_info,
            log_jsonl=log_jsonl,
            progress=progress,
            precision=precision,
            log=log or (lambda message: print(message, file=sys.stderr)),
            compile_mode=compile_mode,
        )
    finally:
        distributed.leave(world)


class _Run:
    """One run's state: the weights' optimiser, the noise generator, the counters and the
    statistics shown to the user. A checkpoint is exactly this state, so ``save_checkpoint`` and
    ``load_checkpoint`` are each other's inverse; ``write_model`` writes the user's model file."""

    def __init__(
        self,
        model: nn.Module,
        recipe: Recipe,
        *,
        out: Path,
        device: torch.device,
        world: World,
        seed: int,
        precision: str,
        training_info: dict[str, Any] | None,
        extra: nn.Module | None = None,
    ):
        self.model, self.recipe, self.out, self.world, self.precision = model, recipe, out, world, precision
        self.extra = extra
        self.params = [*model.parameters(), *(extra.parameters() if extra is not None else ())]
        self.training_info = training_info or {}
        self.ckpt = checkpoint_path(out)
        # The fused kernel updates all tensors at once (2.7x faster Adam step on the CPU, bench/README.md).
        fused = device.type in ("cpu", "cuda")
        self.opt = torch.optim.Adam(
            self.params, lr=recipe.lr, weight_decay=recipe.weight_decay, eps=recipe.adam_eps, fused=fused
        )
        self.noise = torch.Generator().manual_seed(seed + 1)
        self.step, self.skipped = 0, 0
        self.ema: float | None = None  # train bits/dim, exponential moving average
        self.gnorm_ema: float | None = None
        self.metrics: dict[str, float] = {}
        self.history: list[float] = []  # the first held-out metric after each evaluation
        self.evaluated_step = 0  # the step of the last finished evaluation (and model file)
        self.spent = 0.0  # seconds of training before this process (from the checkpoint)
        self.compile_seconds: float | None = None  # this process's torch.compile of the step
        self.t0 = time.monotonic()

    def seconds(self) -> float:
        return self.spent + time.monotonic() - self.t0

    def load_checkpoint(self) -> None:
        """Every process loads the same checkpoint (multi-node: ``--out`` on a shared filesystem)."""
        if not self.ckpt.exists():
            raise FileNotFoundError(f"no checkpoint to resume from at {self.ckpt}")
        state = torch.load(self.ckpt, map_location="cpu", weights_only=False)
        load_same_model(self.model, state, self.ckpt)
        if self.extra is not None:
            if "task_modules" not in state:
                raise ValueError(f"{self.ckpt}: the checkpoint was written without this run's training-only weights")
            self.extra.load_state_dict(state["task_modules"])
        self.opt.load_state_dict(state["optimizer"])
        self.noise.set_state(state["noise_rng"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        self.step, self.skipped, self.ema, self.metrics = (
            state["step"],
            state["skipped"],
            state["ema"],
            state["metrics"],
        )
        self.gnorm_ema, self.history = state.get("gnorm_ema"), state.get("history", [])
        self.evaluated_step = state.get("evaluated_step", self.step)  # older checkpoints: assume done
        self.spent = state["seconds"]

    def save_checkpoint(self) -> None:
        if not self.world.main:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "noise_rng": self.noise.get_state(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "step": self.step,
            "skipped": self.skipped,
            "ema": self.ema,
            "gnorm_ema": self.gnorm_ema,
            "history": self.history,
            "evaluated_step": self.evaluated_step,
            "metrics": self.metrics,
            "seconds": self.seconds(),
            "recipe": asdict(self.recipe),
            "world_size": self.world.size,
            "config": model_config(self.model),
        }
        if self.extra is not None:
            state["task_modules"] = self.extra.state_dict()
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(self.ckpt, buf.getvalue())

    def write_model(self) -> None:
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise NonFiniteError("parameters became non-finite; the model file was not written")
        info = dict(
            self.training_info,
            steps=self.step,
            seconds=round(self.seconds(), 1),
            world_size=self.world.size,
            precision=self.precision,
        )
        if self.compile_seconds is not None:  # only compiled runs say so: other files stay as they were
            info["compile_seconds"] = round(self.compile_seconds, 1)
        save_model(self.model, self.out, training=info, metrics=self.metrics)

    def record(self, global_loss: float, gnorm: Tensor, task: TrainTask) -> None:
        """Fold a step that reached the weights into the running averages."""
        value = task.to_bits(global_loss)
        self.ema = value if self.ema is None else 0.98 * self.ema + 0.02 * value
        g = float(gnorm)
        self.gnorm_ema = g if self.gnorm_ema is None else 0.98 * self.gnorm_ema + 0.02 * g

    def postfix(self) -> dict[str, Any]:
        """The numbers beside the progress bar."""
        return dict(
            bpd=f"{self.ema:.3f}" if self.ema is not None else "-",
            lr=f"{self.opt.param_groups[0]['lr']:.1e}",
            gnorm=f"{self.gnorm_ema:.2f}" if self.gnorm_ema is not None else "-",
            skipped=self.skipped,
            **({k: f"{v:.3f}" for k, v in self.metrics.items()}),
        )


class _StopSignals:
    """SIGTERM and SIGINT while training, as a context manager.

    A signal raised at an arbitrary point (say between the optimiser step and the step counter)
    would checkpoint a state that resumes differently, so the handler only sets ``code``; each
    step checks it (through its all-reduce, so distributed processes stop at the same step) before
    anything changes. Inside ``at_once()`` (evaluation and writing files), where every state is
    consistent, a single process stops immediately instead of after a long evaluation.
    """

    def __init__(self, world: World):
        self.distributed = world.distributed
        self.code = 0
        self.raise_now = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if _main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    @contextmanager
    def at_once(self) -> Iterator[None]:
        self.raise_now = not self.distributed
        try:
            yield
        finally:
            self.raise_now = False

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        self.code = self.code or (130 if signum == signal.SIGINT else 143)
        if self.raise_now:
            raise _Stop(self.code)


def _train(
    model: nn.Module,
    task: TrainTask,
    recipe: Recipe,
    *,
    out: Path,
    device: torch.device,
    world: World,
    seed: int,
    max_steps: int | None,
    resume: bool,
    checkpoint_minutes: float,
    eval_every: int | None,
    training_info: dict[str, Any] | None,
    log_jsonl: Path | None,
    progress: bool,
    precision: str,
    log: Callable[[str], None],
    compile_mode: str = "off",
) -> TrainResult:
    from tqdm import tqdm

    from cinn_cli.training import compiling

    steps_per_epoch = task.n_train // recipe.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch size {recipe.batch_size} is larger than the data ({task.n_train})")
    total = max_steps if max_steps is not None else recipe.epochs * steps_per_epoch
    eval_every = eval_every or steps_per_epoch
    # the planned run's steps, not what is left of it: a resumed run decides as the first did
    min_steps = getattr(task, "compile_min_steps", compiling.COMPILE_MIN_STEPS)
    use_compile, compile_reason = compiling.decide(compile_mode, total, device, min_steps)

    def evaluation_due(step: int) -> bool:
        return step % eval_every == 0 or step == total

    local_batch = recipe.batch_size // world.size
    part = slice(world.rank * local_batch, (world.rank + 1) * local_batch)  # this process's rows
    main = world.main
    if not main:
        log = lambda message: None  # noqa: E731 - rank 0 speaks for the job
    model.to(device).train()
    extra = task_modules(task)
    if extra is not None:
        extra.to(device).train()
    run = _Run(
        model,
        recipe,
        out=out,
        device=device,
        world=world,
        seed=seed,
        precision=precision,
        training_info=training_info,
        extra=extra,
    )
    if resume:
        run.load_checkpoint()
        log(f"resumed from {run.ckpt} at step {run.step}")

    objective: nn.Module = _Objective(model, task)
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        objective = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
        log(
            f"distributed: world size {world.size} ({'nccl' if device.type == 'cuda' else 'gloo'}), "
            f"global batch {recipe.batch_size} ({local_batch} per process), lr {recipe.lr:g}, precision {precision}"
        )

    if use_compile and run.step < total:
        noise = torch.Generator().manual_seed(0)  # not the run's generator: its stream stays as it is
        warm_up_batch = task.batch(torch.arange(recipe.batch_size) % task.n_train, noise, device, part)
        log("compiling the training step (torch.compile; its time is not counted as training)")
        objective, run.compile_seconds = compiling.compile_objective(
            objective, lambda compiled: _mean_loss(compiled, warm_up_batch, device, precision)
        )
        log(f"compiled in {run.compile_seconds:.1f} s")
    # The clock restarts here so that set-up (data, DDP, checkpoint load) is not counted as training.
    run.t0 = last_ckpt = time.monotonic()
    # drawn only on a terminal: a log file or cron mail gets the evaluation lines, not bar redraws
    bar = tqdm(
        total=total,
        initial=run.step,
        disable=not (progress and main and sys.stderr.isatty()),
        unit="step",
        dynamic_ncols=True,
    )
    try:
        with _StopSignals(world) as signals:
            if evaluation_due(run.step) and run.evaluated_step != run.step:
                # Stopped during this step's evaluation: finish it first, or the model file would
                # stay one evaluation behind (after the last step, for good).
                with signals.at_once():
                    _evaluate(run, task, device, bar, log_jsonl, steps_per_epoch)
            while run.step < total:
                epoch, offset = divmod(run.step, steps_per_epoch)
                idx = epoch_order(seed, epoch, task.n_train)[
                    offset * recipe.batch_size : (offset + 1) * recipe.batch_size
                ]
                for g in run.opt.param_groups:
                    g["lr"] = recipe.lr * lr_factor(recipe, run.step, total, steps_per_epoch)
                _train_step(run, objective, task, idx, device, part, signals)
                bar.update(1)
                if progress and main and (run.step % 10 == 0 or run.step == total):
                    bar.set_postfix(**run.postfix())
                if evaluation_due(run.step):
                    with signals.at_once():
                        _evaluate(run, task, device, bar, log_jsonl, steps_per_epoch)
                    last_ckpt = time.monotonic()
                elif time.monotonic() - last_ckpt > checkpoint_minutes * 60:
                    with signals.at_once():
                        run.save_checkpoint()
                    last_ckpt = time.monotonic()
    except (KeyboardInterrupt, _Stop) as e:
        run.save_checkpoint()
        code = e.exit_code if isinstance(e, _Stop) else 130
        raise TrainingInterrupted(
            f"interrupted at step {run.step}: checkpoint written to {run.ckpt}; continue with --resume", code
        ) from None
    finally:
        bar.close()
    return TrainResult(
        steps=run.step,
        epochs_done=run.step / steps_per_epoch,
        seconds=run.seconds(),
        train_bits_per_dim=float("nan") if run.ema is None else run.ema,
        metrics=run.metrics,
        skipped_steps=run.skipped,
        out=out,
        world_size=world.size,
        rank=world.rank,
        compile=compile_reason,
        compile_seconds=run.compile_seconds,
    )


def _mean_loss(objective: nn.Module, batch: tuple, device: torch.device, precision: str) -> Tensor:
    """The scalar training loss of ``batch`` (the mean of the objective's ``(B,)`` losses), its
    forward under bfloat16 autocast for ``precision`` ``"bf16"``: the step and the compile's
    warm-up run exactly this."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        return objective(batch).mean()


def _train_step(
    run: _Run,
    objective: nn.Module,
    task: TrainTask,
    idx: Tensor,
    device: torch.device,
    part: slice,
    signals: _StopSignals,
) -> None:
    """One optimiser step on the global batch ``idx``, or a skipped one when the loss or the
    gradient is not finite (a NaN/inf never reaches the weights). Raises ``_Stop`` when any
    process was signalled."""
    noise_before = run.noise.get_state()
    batch = task.batch(idx, run.noise, device, part)
    loss = _mean_loss(objective, batch, device, run.precision)
    run.opt.zero_grad(set_to_none=True)
    # One all-reduce per step: the global-batch loss (NaN anywhere makes it NaN everywhere, so
    # every process skips the same steps) and whether any process was signalled.
    shared = distributed.all_sum(
        torch.stack([loss.detach().float(), loss.new_tensor(float(signals.code > 0))]), run.world
    )
    loss_sum, stop = shared.tolist()  # one device sync per step
    if stop:
        run.noise.set_state(noise_before)  # the checkpoint resumes at this step, before its draws
        raise _Stop(signals.code or 143)
    global_loss = loss_sum / run.world.size
    ok = math.isfinite(global_loss)
    if ok:
        loss.backward()  # DDP: gradients averaged over the processes
        gnorm = torch.nn.utils.clip_grad_norm_(run.params, run.recipe.clip)
        ok = bool(torch.isfinite(gnorm))  # equal gradients everywhere: every process agrees
    if ok:
        run.opt.step()
        run.record(global_loss, gnorm, task)
    else:
        run.skipped += 1
        run.opt.zero_grad(set_to_none=True)
    run.step += 1


def _evaluate(
    run: _Run, task: TrainTask, device: torch.device, bar, log_jsonl: Path | None, steps_per_epoch: int
) -> None:
    """Held-out metrics, the model file and a checkpoint. Rank 0 evaluates and writes; the
    others wait in the broadcast of the metrics."""
    main = run.world.main
    if main:
        run.model.eval()
        run.metrics = task.evaluate(run.model, device)
        run.model.train()
        run.write_model()
    run.metrics = distributed.broadcast_from_main(run.metrics, run.world)
    run.history.append(next(iter(run.metrics.values())))
    run.evaluated_step = run.step
    run.save_checkpoint()
    if not main:
        return
    report_evaluation(bar, run.step, run.metrics, run.history)
    if log_jsonl is not None:
        record = {
            "step": run.step,
            "epoch": round(run.step / steps_per_epoch, 3),
            "seconds": round(run.seconds(), 1),
            "train_bits_per_dim": run.ema,
            "lr": run.opt.param_groups[0]["lr"],
            "grad_norm": run.gnorm_ema,
            **run.metrics,
        }
        with open(log_jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")


def report_evaluation(bar, step: int, metrics: dict[str, float], history: list[float]) -> None:
    """The evaluation line under the progress bar, and a warning when the metric keeps rising."""
    bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if rose(history, RISING_EVALS):
        bar.write(
            f"warning: {next(iter(metrics))} rose for {RISING_EVALS} evaluations in a row "
            f"({', '.join(f'{v:.4f}' for v in history[-4:])}): overfitting or a too high LR?"
        )


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread() and os.name == "posix"
