"""The ``cinn`` command line: the group, the commands every task shares (``info``, ``encode``,
the ``train`` and ``eval`` groups), and each task's own commands, from the registry.

Torch is imported inside the commands only, so ``cinn --help`` and ``cinn --version`` start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cinn_cli import tasks
from cinn_cli.clikit.errors import user_errors
from cinn_cli.clikit.options import (
    device_option,
    json_option,
    shard_option,
    workers_option,
)
from cinn_cli.clikit.runs import (
    interruptible,
    output_folder,
    require_input,
    resolve_device,
    start_without_gc,
)


def _version() -> str:
    from cinn_cli.files.model_file import package_version

    return package_version()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "--version", "-V", prog_name="cinn")
def main() -> None:
    """Conditional invertible neural networks (cINN) from the command line.

    Sample class-conditional digits and clothes (MNIST, Fashion-MNIST) from shipped weights,
    colorize grayscale photos in several plausible ways, turn images into latent codes and back,
    and train your own models (from a folder per class, or of photos).
    Progress and summaries go to stderr; stdout stays clean for pipelines (use --json for
    machine-readable lines). Exit codes: 0 all done, 1 some inputs failed, 2 usage error.

    \b
    Examples:
      cinn sample --digit 7 -n 64
      cinn sample --weights fashion --class "Ankle boot" -n 16
      cinn colorize ./bw ./out -n 5
      cinn encode ./digits ./z --verify
      cinn train mnist --data ./mnist --out my-mnist.safetensors
      cinn train classes --data ./icons --out icons.safetensors
      cinn eval mnist --data ./mnist
      cinn info weights/mnist.safetensors
    """


def entry() -> None:
    """The ``cinn`` executable and ``python -m cinn_cli``: ``main`` without garbage collection
    during start-up.

    Importing torch creates about a million objects that live until exit; collecting while they
    are created (some 400 passes) and scanning them again in every later full collection costs
    0.2-0.6 s of a 2-4 s ``cinn sample`` or ``cinn colorize`` and frees nothing
    (``python bench/cli_speed.py``). So collection stays off until the command has imported what
    it needs; ``resolve_device``, which every command that runs a model calls after its imports,
    then ends start-up. ``main`` called directly (tests, embedding) is unchanged.
    """
    start_without_gc()
    main()


@main.group()
def train() -> None:
    """Train a model from your data (progress bars, checkpoints, --resume).

    Distributed: torchrun --nproc_per_node N -m cinn_cli train ... runs N processes with
    DistributedDataParallel (NCCL on GPUs, gloo on CPUs); --batch-size is then the global batch,
    split evenly over the processes, and rank 0 writes the files.
    """


@main.group("eval")
def eval_group() -> None:
    """Measure a model: likelihood and sample quality (definitions in the README)."""


# --------------------------------------------------------------------------- info


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def info(file: Path, json_lines: bool) -> None:
    """Show a model or latent file's metadata, parameter count and tensor shapes."""
    import json
    import math

    from cinn_cli.files.model_file import read_header

    file = tasks.resolve_weights(file, "")  # a shipped model's name, as --model/--init take
    with user_errors():
        metadata, tensors = read_header(file)
    decoded = {}
    for k, v in metadata.items():
        try:
            decoded[k] = json.loads(v) if v[:1] in "{[" else v
        except json.JSONDecodeError:
            decoded[k] = v
    shapes = {k: v["shape"] for k, v in tensors.items()}
    dtypes = sorted({v["dtype"] for v in tensors.values()})
    kind = metadata.get("format", "safetensors (no cinn metadata)")
    n_params = sum(math.prod(v["shape"]) for k, v in tensors.items() if v["dtype"] in ("F32", "F16", "BF16", "F64"))
    if json_lines:
        click.echo(
            json.dumps(
                {
                    "path": str(file),
                    "format": kind,
                    "metadata": decoded,
                    "parameters": n_params,
                    "tensors": shapes,
                }
            )
        )
        return
    click.echo(f"{file}: {kind}")
    for k, v in decoded.items():
        if k == "format":
            continue
        _echo_tree(k, v, 1)
    label = "values" if kind == "cinn-latent" else "parameters and buffers (floating point)"
    click.echo(f"  {len(tensors)} tensors ({', '.join(dtypes)}), {n_params:,} {label}")
    shown = list(shapes)
    if kind != "cinn-latent" and len(tensors) > 12:  # a model: its largest tensors say what it is
        shown = sorted(shapes, key=lambda k: -math.prod(shapes[k]))[:8]
        click.echo("  largest:")
    for k in shown:
        click.echo(f"    {k}: {tuple(shapes[k])}")


def _echo_tree(key: str, value, depth: int) -> None:
    """One metadata value as indented ``key: value`` lines (nested records one level deeper),
    instead of a long line of JSON; short lists of numbers stay on one line."""
    pad = "  " * depth
    if isinstance(value, dict) and value:
        click.echo(f"{pad}{key}:")
        for k, v in value.items():
            _echo_tree(str(k), v, depth + 1)
    elif isinstance(value, list) and value and not all(isinstance(v, (int, float, str)) for v in value):
        click.echo(f"{pad}{key}:")
        for i, v in enumerate(value):
            _echo_tree(f"[{i}]", v, depth + 1)
    else:

        def show(v):
            return f"{v:.6g}" if isinstance(v, float) else str(v)

        text = ", ".join(map(show, value)) if isinstance(value, list) else show(value)
        click.echo(f"{pad}{key}: {text}")


# --------------------------------------------------------------------------- encode

_ENCODE_OPTIONS = [(task, *opt) for task in tasks.names() for opt in tasks.get(task).encode_option_decorators()]


def _with_task_options(command):
    for _, _, _, option in reversed(_ENCODE_OPTIONS):
        command = option(command)
    return command


@main.command()
@click.argument("source", metavar="IN")
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--model",
    "--weights",
    "model",
    default="mnist",
    show_default=True,
    help=f"{', '.join(tasks.shipped_names())} (the shipped models) or a model file.",
)
@_with_task_options
@click.option(
    "--verify",
    is_flag=True,
    help="Decode again and report the error; fail an input whose round trip exceeds 0.5/255 (MNIST) "
    "or 1/255 in RGB at the model's colour resolution (colorize).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing latent files (default: skip them).")
@device_option
@json_option
@workers_option
@shard_option
def encode(source, out, model, verify, overwrite, device, json_lines, workers, shard, **task_options):
    from cinn_cli.batch.report import RunReport
    from cinn_cli.batch.run import BatchRun
    from cinn_cli.files.model_file import read_model_info

    require_input(source)
    report = RunReport("encode", json_lines=json_lines, extra={"out": str(out)})
    with output_folder(source, out), interruptible(report), user_errors():
        weights = tasks.resolve_weights(model, "mnist")
        task = tasks.get(read_model_info(weights).task)
        for owner, name, flag, _ in _ENCODE_OPTIONS:
            if owner != task.name and task_options[name] is not None:
                raise click.UsageError(f"{flag} applies to {owner} models only")
        own = {name: task_options[name] for owner, name, _, _ in _ENCODE_OPTIONS if owner == task.name}
        run = BatchRun(source, out, report, resolve_device(device), overwrite=overwrite, workers=workers, shard=shard)
        task.run_encode(run, weights=weights, verify=verify, **own)
    sys.exit(report.finish())


encode.help = """Turn images into latent codes (.safetensors) that decode again.

IN is an image, a folder (recursive; sub-folders are mirrored in OUT) or - (paths on stdin).
Each image becomes OUT/<rel dir>/<stem>.safetensors holding its latent levels, its condition,
the model's SHA-256 and its bits/dim under the model (a per-image likelihood: high values
flag odd inputs). --model is a shipped model (mnist, the default; fashion; colorize) or a
model file (its task is read from the file).

\b
""" + "\n".join(f"{name:<9} " + tasks.get(name).encode_help.replace("\n", "\n" + " " * 10) for name in tasks.names())

# --------------------------------------------------------------------------- each task's commands

for _name in tasks.names():
    _task = tasks.get(_name)
    for _command in _task.top_commands():
        main.add_command(_command)
    for _command in _task.train():
        train.add_command(_command)
    eval_group.add_command(_task.eval())


if __name__ == "__main__":  # pragma: no cover
    entry()
