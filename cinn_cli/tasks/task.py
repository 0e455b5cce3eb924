"""What a task is to the rest of the tool: its name, how to rebuild its model from a stored
config, what its latent files may hold, and its commands.

Everything here is cheap to import (no torch): ``cinn --help`` reads every task's commands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    """One task: a folder ``cinn_cli/tasks/<name>/`` whose ``__init__`` defines ``TASK``.

    ``build(config) -> model`` rebuilds its ``ConditionalFlow`` from a model file's config.
    ``commands()`` gives its top-level Click commands (e.g. ``sample``), ``train_command()`` and
    ``eval_command()`` its ``cinn train <name>`` and ``cinn eval <name>``. ``encode(**options)``
    is ``cinn encode`` for its models: the generic options plus its own ``encode_options()``,
    ``(parameter name, flag, Click option decorator)`` triples added to ``cinn encode``;
    ``encode_help`` is its paragraph in that command's help.
    """

    name: str
    encode_help: str
    build: Callable[[dict[str, Any]], Any]
    commands: Callable[[], list]
    train_command: Callable[[], Any]
    eval_command: Callable[[], Any]
    encode: Callable[..., None]
    encode_options: Callable[[], list[tuple[str, str, Callable]]]
