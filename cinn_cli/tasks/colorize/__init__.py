"""Colorization: the ab colour channels of a photo given its lightness L (``cinn colorize``,
``cinn train colorize``, ``cinn eval colorize``, ``cinn encode --model colorize``).

    model.py      the config, presets and the cINN       condnet.py    the lightness network
    color.py      Lab conversion, guided upsampling      sampling.py   which latent each colouring gets
    colorize.py   photos -> n colourings at full size    transfer.py   photos -> latents, latents -> colours
    train.py      photos, crops, the training task       evaluate.py   the colour metrics on val photos
    metrics.py    RMSE, colourfulness, ab error          commands.py   the commands
"""

from __future__ import annotations

from cinn_cli.tasks.task import Task

_HERE = "cinn_cli.tasks.colorize"

TASK = Task(
    name="colorize",
    model=f"{_HERE}.model:ColorizeCINN",
    config=f"{_HERE}.model:ColorizeConfig",
    commands=(f"{_HERE}.commands:colorize",),
    train_commands=(f"{_HERE}.commands:train_colorize_cmd",),
    shipped=("colorize",),
    eval_command=f"{_HERE}.commands:eval_colorize_cmd",
    encode=f"{_HERE}.transfer:encode_photos",
    encode_options=(("work_size", "--work-size", "cinn_cli.clikit.options:work_size_option"),),
    encode_help="""colour photos of any size: the photo's ab under its own lightness, at the
model's working resolution. Decode with cinn colorize IMG OUT --from-latent
(the same photo: its colours back; another photo: colour transfer).""",
)
