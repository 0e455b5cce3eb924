"""Colorization: the ab colour channels of a photo given its lightness L (``cinn colorize``,
``cinn train colorize``, ``cinn eval colorize``, ``cinn encode --model colorize``).

    model.py      the config, presets and the cINN       condnet.py    the lightness network
    color.py      Lab conversion, guided upsampling      sampling.py   which latent each colouring gets
    colorize.py   photos -> n colourings at full size    transfer.py   photos -> latents, latents -> colours
    train.py      photos, crops, the training task       evaluate.py   the colour metrics on val photos
    metrics.py    RMSE, colourfulness, ab error          commands.py   the commands
"""

from __future__ import annotations

import click

from cinn_cli.tasks.task import Task


def _build(config: dict):
    from cinn_cli.tasks.colorize.model import ColorizeCINN, ColorizeConfig

    return ColorizeCINN(ColorizeConfig.from_dict(config))


def _commands() -> list[click.Command]:
    from cinn_cli.tasks.colorize.commands import colorize

    return [colorize]


def _train_command() -> click.Command:
    from cinn_cli.tasks.colorize.commands import train_colorize_cmd

    return train_colorize_cmd


def _eval_command() -> click.Command:
    from cinn_cli.tasks.colorize.commands import eval_colorize_cmd

    return eval_colorize_cmd


def _encode(*, work_size: int | None, batch_size: int, **common) -> None:  # noqa: ARG001 (one photo at a time)
    from cinn_cli.tasks.colorize.transfer import encode_photos

    encode_photos(work_size=work_size, **common)


def _encode_options() -> list:
    from cinn_cli.clikit.options import work_size_option

    return [("work_size", "--work-size", work_size_option)]


TASK = Task(
    name="colorize",
    encode_help="""colour photos of any size: the photo's ab under its own lightness, at the
model's working resolution. Decode with cinn colorize IMG OUT --from-latent
(the same photo: its colours back; another photo: colour transfer).""",
    build=_build,
    commands=_commands,
    train_command=_train_command,
    eval_command=_eval_command,
    encode=_encode,
    encode_options=_encode_options,
)
