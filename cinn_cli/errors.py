"""The one exception type the layers below the command line raise for a bad option value."""

from __future__ import annotations


class OptionError(ValueError):
    """A value the user gave for ``option`` that does not fit (the CLI makes it a usage error,
    exit 2, naming the option); the message is the reason."""

    option = "an option"
