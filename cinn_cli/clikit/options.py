"""The options the commands share, each declared once (one ``--seed``, ``--device``, ...)."""

from __future__ import annotations

from pathlib import Path

import click

DEVICE_HELP = "auto (CUDA if available, else MPS, else CPU), cpu, cuda, cuda:N or mps."


def given_on_command_line(*names: str) -> list[str]:
    """The current command's options among ``names`` (parameter names) that the user typed, each
    as its flags are spelt (``-t/--temperature``), in the order of ``names``: for refusing options
    that do not apply to the run at hand (a default is never refused)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    params = {p.name: p for p in ctx.command.params}
    return [
        "/".join(params[name].opts) for name in names if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]


device_option = click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)


json_option = click.option(
    "--json",
    "json_lines",
    is_flag=True,
    help="Print one JSON object per line on stdout (files, then a summary).",
)


work_size_option = click.option(
    "--work-size",
    type=click.IntRange(16, 4096),
    default=None,
    help="Colorize models: short side in pixels at which colour is predicted (default: the model "
    "file's work_size, shown by cinn info). Larger: finer colour detail, slower.",
)


def _comma_list(value: str | None, kind, low: float, high: float, example: str) -> tuple | None:
    """``"0.5,0.5,1.2"`` -> ``(0.5, 0.5, 1.2)`` (``kind``: float or int), each in [low, high]."""
    if value is None:
        return None
    try:
        items = tuple(kind(v) for v in value.split(","))
    except ValueError:
        noun = "whole numbers" if kind is int else "numbers"
        raise click.BadParameter(f"{value!r}: expected {noun} separated by commas, e.g. {example}") from None
    if not all(low <= v <= high for v in items):
        raise click.BadParameter(f"{value!r}: each value must be between {low:g} and {high:g}")
    return items


def _level_temperatures(ctx, param, value: str | None) -> tuple[float, ...] | None:
    return _comma_list(value, float, 0.0, 5.0, "0.5,0.5,1.2")


def _crop_sizes(ctx, param, value: str | None) -> tuple[int, ...] | None:
    return _comma_list(value, int, 1, 4096, "64,128")


level_temperatures_option = click.option(
    "--level-temperatures",
    callback=_level_temperatures,
    metavar="F,..,F",
    default=None,
    help="Colorize models: one factor per latent level, finest first, that -t is multiplied by "
    "(default: the model file's own). 1,1,1 draws every level at -t; a factor below 1 on the coarsest "
    "(last) level gives safer region colours, above 1 bolder but more random ones.",
)


workers_option = click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Threads that decode inputs ahead and encode/write outputs behind while the model runs "
    "[default: min(4, CPU count)]. Outputs do not depend on it.",
)


def _shard(ctx, param, value: str | None):
    """``--shard i/N`` -> ``(i, N)``; a malformed value is a usage error (exit 2)."""
    if value is None:
        return None
    from cinn_cli.batch.stream import parse_shard

    try:
        return parse_shard(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


shard_option = click.option(
    "--shard",
    default=None,
    metavar="i/N",
    callback=_shard,
    help="Only the inputs whose relative path hashes to i of N (0 <= i < N). N runs (a job array, "
    "several machines) split the inputs the same way and together write what one run writes.",
)


precision_option = click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="bf16: bfloat16 autocast of the forward pass (log-dets and loss summed in float32; weights, "
    "optimiser and evaluation stay float32).",
)


init_option = click.option(
    "--init",
    default=None,
    metavar="MODEL",
    help="Fine-tune: start from this model file's architecture and weights (or a shipped model's: "
    "mnist, fashion, colorize) instead of a new model; --preset then chooses only the recipe (use a smaller "
    "--lr), and --config is refused.",
)


config_option = click.option(
    "--config",
    "config_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a field of the preset's model config, VALUE in JSON (e.g. blocks=[2,2,2]); repeatable.",
)


def parse_config(items: tuple[str, ...]) -> dict:
    """``("blocks=[2,2,2]", "clamp=1.0")`` -> ``{"blocks": [2, 2, 2], "clamp": 1.0}``."""
    import json

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError(item)
            out[key.strip()] = json.loads(value)
        except ValueError:  # json.JSONDecodeError is one
            raise click.BadParameter(f"{item!r} is not KEY=VALUE with a JSON value", param_hint="--config") from None
    return out


def seed_option(default: int | None):
    """``--seed``: with ``None`` a fresh seed is drawn (and printed); commands that measure use a
    fixed default so that two runs compare."""
    if default is None:
        return click.option(
            "--seed", type=int, default=None, help="Run seed; same seed, same bytes. Default: a fresh one (printed)."
        )
    return click.option("--seed", type=int, default=default, show_default=True)


def weights_option(what: str):
    """``--weights``: a model file, or a shipped model's name; ``what`` names the default."""
    return click.option(
        "--weights", default=None, help=f"Model file, or a shipped model's name (default: the shipped {what} model)."
    )


overwrite_option = click.option("--overwrite", is_flag=True, help="Replace existing outputs (default: skip them).")


def batch_size_option(default: int):
    return click.option("--batch-size", default=default, show_default=True, type=click.IntRange(1, 1 << 16))


def record_option(what: str = "the file is rewritten, so its SHA-256 changes"):
    return click.option("--record", is_flag=True, help=f"Store the results in the model file's metadata ({what}).")


def data_option(help: str, required: bool = True, exists: bool = True):
    """``--data DIR``: the folder a training or evaluation command reads."""
    return click.option(
        "--data",
        "data_dir",
        required=required,
        default=None,
        type=click.Path(exists=exists, file_okay=False, path_type=Path),
        help=help,
    )


def temperature_option(default: float, help: str | None = None, **kw):
    """``-t/--temperature``: the scale of the latent noise."""
    return click.option(
        "-t", "--temperature", default=default, show_default=True, type=click.FloatRange(0.0, 5.0), help=help, **kw
    )


def preset_option(help: str):
    """``--preset default|paper``: ours, or the reference code's architecture and recipe."""
    return click.option(
        "--preset", type=click.Choice(["default", "paper"]), default="default", show_default=True, help=help
    )
