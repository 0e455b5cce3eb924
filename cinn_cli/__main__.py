"""``python -m cinn_cli`` (also the entry point for ``torchrun -m cinn_cli``)."""

from .cli import entry

entry()
