"""What every ``cinn train <task>`` command shares: its options, running it, its summary."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cinn_cli.clikit.errors import user_errors
from cinn_cli.clikit.options import config_option, device_option, init_option, parse_config, precision_option
from cinn_cli.clikit.runs import resolve_device

_TRAINING_OPTIONS = (
    click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Model file to write."),
    click.option("--epochs", type=click.IntRange(1), default=None, help="Epochs (default: the preset's)."),
    click.option(
        "--steps", type=click.IntRange(1), default=None, help="Stop after this many steps (overrides --epochs)."
    ),
    click.option("--batch-size", type=click.IntRange(1), default=None, help="Batch size (default: the preset's)."),
    click.option("--lr", type=float, default=None, help="Peak learning rate (default: the preset's)."),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--resume", is_flag=True, help="Continue from the checkpoint kept beside --out (<out>.ckpt)."),
    click.option("--checkpoint-minutes", type=float, default=5.0, show_default=True),
    click.option(
        "--log-jsonl",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Append one JSON record per evaluation (step, time, train and held-out bits/dim, lr, grad norm).",
    ),
    click.option(
        "--eval-every", type=click.IntRange(1), default=None, help="Evaluate every N steps (default: per epoch)."
    ),
    precision_option,
    click.option(
        "--compile",
        "compile_mode",
        type=click.Choice(["auto", "on", "off"]),  # cinn_cli.training.compiling.COMPILE_MODES
        default="auto",
        show_default=True,
        help="Run the training step through torch.compile: on, off, or auto: when the run plans at least "
        "the task's number of steps (4,000; colorize: 50,000), about three times the steps a compile "
        "takes to pay back (bench/README.md). The compile time is reported apart from the training "
        "time. Evaluation and sampling never compile.",
    ),
    init_option,
    config_option,
    device_option,
)


def training_options(command):
    """The options every ``cinn train`` command shares, listed after the command's own."""
    for option in reversed(_TRAINING_OPTIONS):
        command = option(command)
    return command


def run_training(train_fn, *, config_items, device, **options) -> None:
    """Run ``train_fn`` with the command line's options; user errors become one-line messages, an
    interrupted run exits with its code (its checkpoint written), a finished one prints a summary."""
    from cinn_cli.training.loop import TrainingInterrupted

    with user_errors():
        try:
            _, result = train_fn(device=resolve_device(device), config_overrides=parse_config(config_items), **options)
        except TrainingInterrupted as e:
            click.echo(str(e), err=True)
            sys.exit(e.exit_code)
    _print_training_summary(result)


def _print_training_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    if result.rank != 0:  # distributed: rank 0 reports for the job
        return
    table = Table(title="cinn train: summary", show_header=False)
    table.add_row("model file", str(result.out))
    if result.world_size > 1:
        table.add_row("processes", str(result.world_size))
    table.add_row("steps", f"{result.steps:,} ({result.epochs_done:.2f} epochs)")
    table.add_row("time", f"{result.seconds / 60:.1f} min")
    table.add_row(
        "compile", result.compile + ("" if result.compile_seconds is None else f", {result.compile_seconds:.1f} s")
    )
    table.add_row("train bits/dim (EMA)", f"{result.train_bits_per_dim:.4f}")
    for k, v in result.metrics.items():
        table.add_row(k.replace("_", " "), f"{v:.4f}")
    table.add_row("skipped non-finite steps", str(result.skipped_steps))
    Console(stderr=True).print(table)
