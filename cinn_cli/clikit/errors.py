"""One place where the product's user errors become Click's clean exits."""

from __future__ import annotations

from contextlib import contextmanager

import click

from cinn_cli.errors import OptionError


@contextmanager
def user_errors():
    """Around a command's work: an ``OptionError`` becomes a usage error naming its option (exit
    2); any other ``ValueError`` (a bad model, latent or data file: each says in one sentence what
    is wrong and where) or ``OSError`` (a file the command itself needs) becomes ``Error: ...``
    (exit 1). A closed stdout (``--json | head``) ends quietly, as Click does."""
    try:
        yield
    except OptionError as e:
        raise click.BadParameter(str(e), param_hint=e.option) from None
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    except BrokenPipeError:
        raise
    except OSError as e:
        where = e.filename if e.filename is not None else "a file"
        raise click.ClickException(f"{where}: {e.strerror or e}") from None
