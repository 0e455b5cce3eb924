"""cinn: conditional invertible neural networks -- sample digits, colorize photos, encode images.

``from cinn_cli import load`` gives the Python API (``cinn_cli.api``); importing the package
alone does not import torch (the command line starts fast).
"""

from __future__ import annotations

__all__ = ["load"]


def __getattr__(name: str):
    if name == "load":
        from cinn_cli.api import load

        return load
    raise AttributeError(f"module 'cinn_cli' has no attribute {name!r}")
