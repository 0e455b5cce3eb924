"""Class-conditional small images: MNIST digits (the shipped ``mnist`` model), Fashion-MNIST
(``fashion``) and any folder of labelled images (``cinn sample``, ``cinn train mnist``, ``cinn
train classes``, ``cinn eval mnist``, ``cinn explore``, ``cinn encode --model mnist``).

    model.py       the config, presets and the cINN        condnet.py     the label's features
    data.py        reading the IDX files                   folders.py     reading a folder per class
    train.py       the training task and recipes           sample.py      drawing, decoding, interpolating
    encode.py      images -> latent files                  evaluate.py    bits/dim, accuracy, Fréchet, transfer
    metrics.py     the classifier-based metrics            classifier.py  the evaluation classifier
    explore.py     principal axes of the latents           commands.py    the commands
"""

from __future__ import annotations

from cinn_cli.tasks.task import Task

# cinn sample's temperature for a model file whose config names none (README: why 0.65 for MNIST).
SAMPLE_TEMPERATURE = 0.65

_HERE = "cinn_cli.tasks.mnist"

TASK = Task(
    name="mnist",
    model=f"{_HERE}.model:MnistCINN",
    config=f"{_HERE}.model:MnistConfig",
    commands=(f"{_HERE}.commands:sample", f"{_HERE}.commands:explore"),
    train_commands=(f"{_HERE}.commands:train_mnist_cmd", f"{_HERE}.commands:train_classes_cmd"),
    eval_command=f"{_HERE}.commands:eval_mnist_cmd",
    encode=f"{_HERE}.encode:encode_images",
    encode_options=(
        ("digit", "--digit", f"{_HERE}.commands:digit_option"),
        ("batch_size", "--batch-size", f"{_HERE}.commands:encode_batch_option"),
    ),
    shipped=("mnist", "fashion"),
    encode_help="""28x28 grayscale digits, white on black (or a model's own image size and
colours); the digit comes from --digit or from the parent folder's name
(IN/3/x.png is a 3; IN/Sandal/x.png for a model whose file names its
classes). Other sizes are refused. Decode with cinn sample --from-latent
(optionally under other classes).""",
)
