"""What a task is to the rest of the tool: its name, how to rebuild its model from a stored
config, what its latent files may hold, and its commands.

Everything here is cheap to import (no torch): ``cinn --help`` reads every task's commands.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _named(ref: str):
    """``"package.module:name"`` -> that object (the module imported now, not before)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Task:
    """One task: a folder ``cinn_cli/tasks/<name>/`` whose ``__init__`` defines ``TASK``.

    Its parts are named ``"module:object"`` and imported only when used, so listing the tasks
    costs nothing. ``model`` and ``config``: the ``ConditionalFlow`` class and its config class
    (``build`` rebuilds a model from a model file's config). ``commands``: its top-level Click
    commands (e.g. ``sample``); ``train_commands``: its ``cinn train`` subcommands (``cinn train <name>``
    first); ``eval_command``: ``cinn eval <name>``. ``encode``: ``cinn encode`` for its models, called with the generic
    options plus its own ``encode_options`` (``(parameter, flag, "module:option decorator")``
    triples added to ``cinn encode``); ``encode_help``: its paragraph in that command's help.
    ``shipped``: the names of its shipped models (``weights/<name>.safetensors``), the task's own
    name first.
    """

    name: str
    model: str
    config: str
    commands: tuple[str, ...]
    train_commands: tuple[str, ...]
    eval_command: str
    encode: str
    encode_options: tuple[tuple[str, str, str], ...]
    encode_help: str
    shipped: tuple[str, ...] = ()

    def build(self, config: dict[str, Any]):
        return _named(self.model)(_named(self.config).from_dict(config))

    def top_commands(self) -> list:
        return [_named(ref) for ref in self.commands]

    def train(self) -> list:
        return [_named(ref) for ref in self.train_commands]

    def eval(self):
        return _named(self.eval_command)

    def run_encode(self, run, **options) -> None:
        """``cinn encode`` of a model of this task: ``run`` (a ``BatchRun``) and the options."""
        _named(self.encode)(run, **options)

    def encode_option_decorators(self) -> list[tuple[str, str, Callable]]:
        return [(name, flag, _named(ref)) for name, flag, ref in self.encode_options]
