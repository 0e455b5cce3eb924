"""Colorization's commands: ``cinn colorize``, ``cinn train colorize``, ``cinn eval colorize``
and its part of ``cinn encode`` (``--work-size``). Torch is imported inside the commands only."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cinn_cli.clikit.errors import user_errors
from cinn_cli.clikit.options import (
    _crop_sizes,
    batch_size_option,
    data_option,
    device_option,
    given_on_command_line,
    json_option,
    level_temperatures_option,
    overwrite_option,
    preset_option,
    record_option,
    seed_option,
    shard_option,
    temperature_option,
    weights_option,
    work_size_option,
    workers_option,
)
from cinn_cli.clikit.runs import interruptible, output_folder, require_input, resolve_device
from cinn_cli.clikit.training import run_training, training_options

COLORIZE_TEMPERATURE = 1.0


# --------------------------------------------------------------------------- colorize


@click.command()
@click.argument("source", metavar="IN")
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option("-n", "n", default=5, show_default=True, type=click.IntRange(1, 10_000), help="Colourings per image.")
@temperature_option(
    COLORIZE_TEMPERATURE,
    help="Scale of the latent noise z ~ N(0, T^2), times each level's factor (--level-temperatures): "
    "lower gives safer, less varied colours.",
)
@seed_option(None)
@click.option("--format", "fmt", type=click.Choice(["png", "jpg", "webp"]), default="png", show_default=True)
@click.option("--grid", "make_grid", is_flag=True, help="Also write a contact sheet <stem>-grid.<fmt> per input.")
@click.option("--latents/--no-latents", default=True, show_default=True, help="Write each output's latent beside it.")
@overwrite_option
@weights_option("colorization")
@batch_size_option(8)
@click.option(
    "--from-latent",
    "from_latents",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Decode this stored latent (or a folder of them; repeatable) under each input's lightness "
    "instead of sampling: OUT/<stem>-from-<latent stem>.<fmt>.",
)
@click.option(
    "--transfer-levels",
    default="all",
    show_default=True,
    help="With --from-latent: 'all' (the file's latent as is) or one weight in [0, 1] per latent "
    "level, finest first, of the file's latent; the rest of each level is drawn anew (--seed, -t, "
    "--level-temperatures).",
)
@work_size_option
@level_temperatures_option
@device_option
@json_option
@workers_option
@shard_option
def colorize(
    source,
    out,
    n,
    temperature,
    seed,
    fmt,
    make_grid,
    latents,
    overwrite,
    weights,
    batch_size,
    from_latents,
    transfer_levels,
    work_size,
    level_temperatures,
    device,
    json_lines,
    workers,
    shard,
):
    """Colorize grayscale photos: n different colourings of each.

    IN is an image, a folder (recursive; sub-folders are mirrored in OUT) or - (paths on stdin).
    Writes OUT/<rel dir>/<stem>-<k>.<fmt> for k = 1..n, each with the input's exact size and its
    own lightness (Lab L); colour is predicted at the model's working resolution and upsampled
    with a guided filter steered by the full-resolution lightness, so it follows the photo's
    edges. Colour inputs are first reduced to gray as PIL's convert('L') does; alpha is kept
    (except in JPEG). Beside each output its latent OUT/<rel dir>/<stem>-<k>.safetensors.

    Sample 1 is the best guess: the latent's mode (z = 0 on every level, i.e. temperature 0),
    the model's most probable colouring in its latent space; take the first file if you want one
    result (its PNG text and latent record draw=mode). Samples 2..n are diverse random draws:
    each output's noise comes from its own seed derived from (--seed, relative path, k).

    With --from-latent FILE the colours come from a stored latent (cinn encode --model colorize,
    or a colouring's own latent) instead: one output per input and latent,
    OUT/<rel dir>/<stem>-from-<latent stem>.<fmt>. The photo's own latent gives its encoded
    colours back; another photo's latent carries its colours over (colour transfer; a latent of
    another size is resized by nearest neighbour). --transfer-levels 0,0.3,1 keeps the coarse
    level from the file and draws the fine ones anew, as the reference code's colour transfer.
    """
    from functools import partial

    from cinn_cli.batch.report import RunReport
    from cinn_cli.batch.run import BatchRun
    from cinn_cli.files.latents import new_seed
    from cinn_cli.tasks.colorize.colorize import colorize_photos

    require_input(source)
    seed = new_seed() if seed is None else seed
    report = RunReport("colorize", json_lines=json_lines, extra={"seed": seed, "out": str(out)})
    options = dict(
        weights=weights,
        temperature=temperature,
        seed=seed,
        fmt=fmt,
        latents=latents,
        work_size=work_size,
        level_temperatures=level_temperatures,
    )
    with output_folder(source, out), interruptible(report):
        run = partial(BatchRun, source, out, report, overwrite=overwrite, workers=workers, shard=shard)
        if from_latents:
            _colorize_from_latents(run, from_latents, transfer_levels, device, options)
        else:
            with user_errors():
                colorize_photos(run(resolve_device(device)), n=n, make_grid=make_grid, batch_size=batch_size, **options)
    sys.exit(report.finish())


def _colorize_from_latents(run, from_latents, transfer_levels: str, device: str, options: dict) -> None:
    """``cinn colorize --from-latent``: refuse the options that do not apply, then decode."""
    from cinn_cli.tasks.colorize.transfer import colorize_from_latents

    given = given_on_command_line("n", "make_grid", "batch_size")
    if given:
        raise click.UsageError(
            f"{' and '.join(given)} cannot be used with --from-latent (one output per input and latent; "
            "vary --seed for other draws of the resampled levels)"
        )
    given = given_on_command_line("temperature", "level_temperatures")
    if given and transfer_levels.strip().lower() == "all":
        raise click.UsageError(
            f"{' and '.join(given)} only scale the levels drawn anew, and --transfer-levels all draws none "
            "(give one weight per level, e.g. 0,0.3,1)"
        )
    with user_errors():
        colorize_from_latents(
            run(resolve_device(device)),
            latent_sources=[str(p) for p in from_latents],
            levels=transfer_levels,
            **options,
        )


@click.command("colorize")
@click.option(
    "--data",
    "data_dir",
    required=True,
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of colour photos (recursive; png, jpg, webp, ...); repeat to train on several "
    "(--data train --data extra).",
)
@click.option(
    "--val",
    "val_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of held-out photos for val bits/dim (default: centre crops of the training photos).",
)
@preset_option(
    "default: our fully convolutional cINN (ab at half resolution, global context); paper: the "
    "reference colorization_minimal_example (64x64, 11.0 M parameters) and recipe.",
)
@click.option(
    "--crops-per-photo", type=click.IntRange(1), default=64, show_default=True, help="Random crops per photo per epoch."
)
@click.option(
    "--crop-sizes",
    callback=_crop_sizes,
    metavar="N,..,N",
    default=None,
    help="Train on square crops of these sizes, one size per batch drawn at random, e.g. 64,128 "
    "(default: the model's crop size, 64). Larger crops show the model scenes at the size "
    "cinn colorize runs whole photos at; val bits/dim stays on the model's crop size.",
)
@click.option(
    "--colour-loss",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Weight of a direct colour signal for the condition network: the cross-entropy of each "
    "pixel's ab bin (grid 10 Lab units, rare colours weighted up, Zhang et al. 2016) predicted "
    "from its finest features by a training-only head, added to the loss (0: likelihood only). "
    "The shown train bits/dim then include it; val bits/dim do not.",
)
@click.option(
    "--train-part",
    type=click.Choice(["all", "condition", "flow"]),
    default="all",
    show_default=True,
    help="What the run trains. all: every weight. condition: the condition network alone, as a "
    "colour predictor on the --colour-loss cross-entropy only, the flow untouched (pre-training; "
    "the shown train bits/dim are then that loss). flow: the flow alone, the condition network's "
    "features fixed. Chain runs with --init to pre-train, then train the flow, then fine-tune all.",
)
@training_options
def train_colorize_cmd(**options):
    """Train a colorization model (ab given L) on a folder of photos.

    Photos are decoded once (short side at most 256 px); each step takes random 64x64 crops
    (--crop-sizes: other sizes) at the short side scaled by 1, 1/2 or 1/4 (never below the
    crop), flipped at random. Val bits/dim
    (bits per ab dimension, Lab units, ab + U[-0.5, 0.5) dequantization) is evaluated per epoch
    and the model file is rewritten after every evaluation; --resume continues from <out>.ckpt.
    """
    from cinn_cli.tasks.colorize.train import train_colorize

    run_training(train_colorize, **options)


@click.command("colorize")
@data_option("Folder of colour photos (e.g. the val photos).")
@weights_option("colorization")
@click.option("-n", "n", default=8, show_default=True, type=click.IntRange(1, 64), help="Samples per image.")
@temperature_option(COLORIZE_TEMPERATURE)
@seed_option(0)
@record_option("its SHA-256 changes")
@work_size_option
@level_temperatures_option
@device_option
@json_option
def eval_colorize_cmd(
    data_dir, weights, n, temperature, seed, record, work_size, level_temperatures, device, json_lines
):
    """Val bits/dim and sample quality of a colorization model on 64x64 centre crops and on the
    whole photos at full size (gray input -> cinn colorize's output, compared with the photo).

    \b
    val bits/dim      -log2 p(ab | L) per ab dimension at the model's working resolution, Lab
                      units, ab + U[-0.5, 0.5) (one fixed-seed draw)
    best-of-n RMSE    RGB in [0, 1]: per image the best of n samples, mean over images; the
                      per-pixel variant takes the best sample per pixel and channel
    best-of-1 RMSE    the first sample only
    variance          across the n samples, per pixel and channel, mean over pixels and images
    colourfulness     Hasler-Süsstrunk M of the samples / M of the photos
    gray baseline     the same numbers for the photo's own L with ab = 0
    ceiling           the photo's own colour brought to the model's colour resolution and back
                      the way samples are (guided filter): a sample exactly right at that resolution
    typical ab error  whole photos: per pixel the Euclidean ab distance (CIE Lab) to the photo at a
                      256-pixel short side, mean over samples and photos, / gray's (the photo's
                      mean ab magnitude): below 1x a colouring is closer to the truth than gray
    better than gray  the fraction of photos whose typical ab error is below their own gray's
    best-of-n ab      the same with the best of the n samples per photo
    sample 1 / others typical ab error of the first sample alone and of samples 2..n
    """
    import json

    from cinn_cli.tasks.colorize.evaluate import evaluate_colorize

    with user_errors():
        r = evaluate_colorize(
            weights=weights,
            data_dir=data_dir,
            n=n,
            temperature=temperature,
            device=resolve_device(device),
            seed=seed,
            work_size=work_size,
            level_temperatures=level_temperatures,
        )
    if record:
        from cinn_cli.files.model_file import record_evaluation

        record_evaluation(r)
    if json_lines:
        click.echo(json.dumps(r))
    else:
        _print_evaluation(r, n, temperature)


def _print_evaluation(r: dict, n: int, temperature: float) -> None:
    """The evaluation as aligned lines on stdout."""
    levels = ",".join(f"{t:g}" for t in r["level_temperatures"])
    click.echo(f"model {r['weights']} ({r['images']} photos, n={n}, T={temperature} x levels {levels})")
    w = {k.removeprefix("whole_"): v for k, v in r.items() if k.startswith("whole_")}
    rows = [
        ("val bits/dim", "val_bits_per_dim", ".4f"),
        (f"best-of-{n} RMSE", "best_of_n_rmse", ".4f"),
        (f"best-of-{n} RMSE, per-pixel min", "best_of_n_rmse_pixel", ".4f"),
        ("best-of-1 RMSE", "best_of_1_rmse", ".4f"),
        ("variance", "variance", ".5f"),
        ("colourfulness ratio", "colourfulness_ratio", ".3f"),
        ("gray baseline: RMSE", "gray_best_of_n_rmse", ".4f"),
        ("gray baseline: colourfulness", "gray_colourfulness_ratio", ".3f"),
        ("ceiling: RMSE", "ceiling_rmse", ".4f"),
        ("ceiling: colourfulness", "ceiling_colourfulness_ratio", ".3f"),
    ]
    click.echo(f"{'':32} {'64x64 crops':>12} {'whole photos':>13} (working short side {r['whole_work_size']})")
    for label, key, fmt in rows:
        whole = format(w[key], fmt) if key in w else "-"
        click.echo(f"{label:32} {format(r[key], fmt):>12} {whole:>13}")
    if "min_variance" in w:
        click.echo(f"{'smallest variance of one photo':32} {'':>12} {format(w['min_variance'], '.5f'):>13}")
    if "typical_ab_error" in w:
        click.echo(f"whole photos, ab error (Lab units; x gray's {w['gray_ab_error']:.2f}):")
        for label, key in (
            ("typical", "typical_ab_error_ratio"),
            (f"best of {n}", "best_of_n_ab_error_ratio"),
            ("sample 1", "sample_1_ab_error_ratio"),
            ("samples 2..n", "other_samples_ab_error_ratio"),
        ):
            click.echo(f"  {label:30} {w[key]:.3f}x")
        click.echo(f"  {'better-than-gray rate':30} {w['better_than_gray_rate']:.1%}")
