"""Task-free set-up of a training run: recipe and config overrides, the run record."""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict, replace

import torch

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
