"""Task-free set-up of a training run: recipe and config overrides, the starting model, the run record."""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict, replace

import torch

from cinn_cli.tasks import load_model, resolve_weights
from cinn_cli.training.loop import Recipe


def with_overrides(recipe: Recipe, **options) -> Recipe:
    """The preset's recipe with the command-line options that were given (not None)."""
    return replace(recipe, **{k: v for k, v in options.items() if v is not None})


def with_config(config, overrides: dict | None):
    """The preset's model config with these fields replaced (JSON lists become tuples);
    ``ValueError`` names unknown fields."""
    return type(config).from_dict({**config.to_dict(), **(overrides or {})})


def run_info(preset: str, recipe: Recipe, seed: int, device: torch.device, **extra) -> dict:
    """What a model file records about the run that trained it."""
    return {
        "command": shlex.join(["cinn", *sys.argv[1:]]) if sys.argv else "",
        "preset": preset,
        **extra,
        "recipe": asdict(recipe),
        "seed": seed,
        "device": str(device),
    }


def initial_model(task: str, build, preset_config, overrides: dict | None, init: str | None):
    """``(model, run-info fields)``: a new model from the preset's config (with ``--config``
    overrides), or, with ``init`` (a model file, or a shipped model's name), that file's
    architecture and weights to fine-tune. ``--config`` cannot change a trained architecture.

    A fine-tuned file records the init file's own training record under ``init_training`` (which
    holds that file's ``init_training`` in turn), so the whole chain of commands that made it
    stays readable with ``cinn info`` after the intermediate files are gone."""
    if init is None:
        return build(with_config(preset_config, overrides)), {}
    if overrides:
        raise ValueError("--config cannot be combined with --init: the model is the init file's, as it was trained")
    path = resolve_weights(init, task)
    model, info = load_model(path, task=task)
    fields = {"init": f"{path} (sha256 {info.sha256})"}
    if info.training:
        fields["init_training"] = info.training
    return model, fields
