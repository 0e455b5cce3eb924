"""The command line: `cinn` and its commands."""

from cinn_cli.cli.app import entry, main

__all__ = ["entry", "main"]
