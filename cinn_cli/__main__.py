"""``python -m cinn_cli`` (also the entry point for ``torchrun -m cinn_cli``)."""

from cinn_cli.cli.app import entry

entry()
