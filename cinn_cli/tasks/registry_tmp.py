"""(temporary)"""

from __future__ import annotations

from typing import Any

from torch import nn

from cinn_cli.tasks.mnist.model import MnistCINN, MnistConfig


def build_model(task: str, config_dict: dict[str, Any]) -> nn.Module:
    """Rebuild a model from its task name and stored config."""
    if task == "mnist":
        return MnistCINN(MnistConfig.from_dict(config_dict))
    if task == "colorize":
        from cinn_cli.tasks.colorize.model import ColorizeCINN, ColorizeConfig

        return ColorizeCINN(ColorizeConfig.from_dict(config_dict))
    raise ValueError(f"unknown task {task!r}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def __getattr__(name: str):
    # The colorization model lives in ``colorize.py`` (this file would otherwise hold two models);
    # re-exported lazily because ``colorize`` imports the shared helpers above.
    if name in ("ColorizeConfig", "ColorizeCINN", "COLORIZE_PRESETS"):
        from cinn_cli.tasks.colorize import model as colorize

        return getattr(colorize, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
