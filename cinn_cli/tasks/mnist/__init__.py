"""MNIST: class-conditional 28x28 digits (``cinn sample``, ``cinn train mnist``, ``cinn eval
mnist``, ``cinn encode --model mnist``).

    model.py       the config, presets and the cINN        condnet.py     the label's features
    data.py        reading the IDX files                   train.py       the training task and recipes
    sample.py      drawing, decoding, interpolating        encode.py      images -> latent files
    evaluate.py    bits/dim, accuracy, Fréchet, transfer   metrics.py     the classifier-based metrics
    classifier.py  the evaluation classifier               commands.py    the commands
"""

from __future__ import annotations

import click

from cinn_cli.tasks.task import Task


def _build(config: dict):
    from cinn_cli.tasks.mnist.model import MnistCINN, MnistConfig

    return MnistCINN(MnistConfig.from_dict(config))


def _commands() -> list[click.Command]:
    from cinn_cli.tasks.mnist.commands import sample

    return [sample]


def _train_command() -> click.Command:
    from cinn_cli.tasks.mnist.commands import train_mnist_cmd

    return train_mnist_cmd


def _eval_command() -> click.Command:
    from cinn_cli.tasks.mnist.commands import eval_mnist_cmd

    return eval_mnist_cmd


def _encode(*, digit: int | None, batch_size: int, **common) -> None:
    from cinn_cli.tasks.mnist.encode import encode_digits

    encode_digits(digit=digit, batch_size=batch_size, **common)


def _encode_options() -> list:
    option = click.option("--digit", "-d", type=click.IntRange(0, 9), default=None, help="The digit of every input.")
    return [("digit", "--digit", option)]


TASK = Task(
    name="mnist",
    encode_help="""28x28 grayscale digits, white on black; the digit comes from --digit or from
the parent folder's name (IN/3/x.png is a 3). Other sizes are refused. Decode
with cinn sample --from-latent (optionally under other digits).""",
    build=_build,
    commands=_commands,
    train_command=_train_command,
    eval_command=_eval_command,
    encode=_encode,
    encode_options=_encode_options,
)
