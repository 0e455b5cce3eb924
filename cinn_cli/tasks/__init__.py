"""The registry: task names -> task folders, and what goes through it (building and loading a
model file, finding a shipped model by name, the starting model of a training run).

Adding a task means adding a folder ``cinn_cli/tasks/<name>/`` whose ``__init__.py`` defines
``TASK`` (a ``Task``) and one line in ``TASK_MODULES``. Nothing outside this module and the task
folders branches on a task's name. Importing it costs nothing: a task's folder is imported when
it is first asked for.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from cinn_cli.files import model_file
from cinn_cli.files.model_file import (
    MAX_PARAMETERS,
    ModelFileError,
    ModelInfo,
    check_config,
    read_model_info,
    read_tensors,
)
from cinn_cli.tasks.task import Task

TASK_MODULES = {
    "mnist": "cinn_cli.tasks.mnist",
    "colorize": "cinn_cli.tasks.colorize",
}


def names() -> tuple[str, ...]:
    """The task names, which are also the names of their first shipped models."""
    return tuple(TASK_MODULES)


def shipped_names() -> tuple[str, ...]:
    """Every shipped model's name (``--weights fashion``), each task's own first."""
    return tuple(name for task in names() for name in get(task).shipped)


def get(name: str) -> Task:
    """The task called ``name``; ``ValueError`` for an unknown one."""
    if name not in TASK_MODULES:
        raise ValueError(f"unknown task {name!r} (cinn knows {', '.join(TASK_MODULES)})")
    return importlib.import_module(TASK_MODULES[name]).TASK


def resolve_weights(weights: str | os.PathLike | None, task: str) -> Path:
    """A ``--weights`` value -- a path, or a shipped model's name -- as a path; ``None`` is the
    shipped model of ``task``. A file named like a shipped model in the current folder wins."""
    if weights is None:
        return model_file.shipped_weights(task)
    if str(weights) in shipped_names() and not Path(weights).exists():
        return model_file.shipped_weights(str(weights))
    return Path(weights)


def build_model(task: str, config: dict[str, Any]):
    """Rebuild a model from its task name and stored config."""
    return get(task).build(config)


def load_model(path: str | os.PathLike, device: str = "cpu", task: str | None = None) -> tuple[Any, ModelInfo]:
    """Load a model file strictly: returns ``(model in eval mode, ModelInfo)``.

    With ``task``, a model of another task is refused before its tensors are read. The stored
    config is range-checked and the model sized on the meta device before anything is allocated.
    """
    import torch

    info = read_model_info(path)
    if task is not None and info.task != task:
        raise ModelFileError(f"{path}: a {info.task!r} model, but this command needs a {task!r} model")
    if info.task not in TASK_MODULES:
        raise ModelFileError(f"{path}: a {info.task!r} model; cinn knows {', '.join(TASK_MODULES)} models")
    check_config(path, info.config)
    try:
        with torch.device("meta"):  # sized without allocating: a hostile config may ask for terabytes
            n_params = sum(p.numel() for p in build_model(info.task, info.config).parameters())
        if n_params > MAX_PARAMETERS:
            raise ModelFileError(
                f"{path}: the stored config asks for {n_params:,} parameters (at most {MAX_PARAMETERS:,})"
            )
        model = build_model(info.task, info.config)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: the stored config cannot build a model ({e})") from None
    tensors = read_tensors(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or extra or wrong:
        detail = "; ".join(
            f"{label} {names[:3]}{'...' if len(names) > 3 else ''}"
            for label, names in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
            if names
        )
        raise ModelFileError(f"{path}: the stored config does not match the tensors ({detail})")
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    model.load_state_dict(state, strict=True)
    model.eval().to(device)
    from cinn_cli.files.atomic import file_sha256

    info.sha256 = file_sha256(path)
    return model, info


def initial_model(task: str, build, preset_config, overrides: dict | None, init: str | None):
    """``(model, run-info fields)``: a new model from the preset's config (with ``--config``
    overrides), or, with ``init`` (a model file, or a shipped model's name), that file's
    architecture and weights to fine-tune. ``--config`` cannot change a trained architecture.

    A fine-tuned file records the init file's own training record under ``init_training`` (which
    holds that file's ``init_training`` in turn), so the whole chain of commands that made it
    stays readable with ``cinn info`` after the intermediate files are gone."""
    if init is None:
        from cinn_cli.training.setup import with_config

        return build(with_config(preset_config, overrides)), {}
    if overrides:
        raise ValueError("--config cannot be combined with --init: the model is the init file's, as it was trained")
    path = resolve_weights(init, task)
    model, info = load_model(path, task=task)
    fields = {"init": f"{path} (sha256 {info.sha256})"}
    if info.training:
        fields["init_training"] = info.training
    return model, fields
