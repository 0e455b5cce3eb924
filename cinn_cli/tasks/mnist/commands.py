"""MNIST's commands: ``cinn sample``, ``cinn train mnist``, ``cinn eval mnist`` and its part of
``cinn encode`` (``--digit``). Torch is imported inside the commands only."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from cinn_cli.clikit.errors import user_errors
from cinn_cli.clikit.options import (
    batch_size_option,
    data_option,
    device_option,
    given_on_command_line,
    json_option,
    overwrite_option,
    preset_option,
    record_option,
    seed_option,
    weights_option,
)
from cinn_cli.clikit.runs import interruptible, resolve_device
from cinn_cli.clikit.training import run_training, training_options
from cinn_cli.tasks.mnist import SAMPLE_TEMPERATURE

# The sampling temperature of a model file that names none (its config's sample_temperature).
MNIST_TEMPERATURE = SAMPLE_TEMPERATURE


# Style transfer (sample --from-latent -d) scales the stored latent by this: the highest
# temperature, in steps of 0.05, at which the shipped model's transfers meet the 95 % legibility
# target (README: style transfer by temperature). 1.0 keeps the latent as stored.
MNIST_TRANSFER_TEMPERATURE = 0.8


def parse_digits(spec: str) -> list[int]:
    """``"7"``, ``"3,5"``, ``"0-9"`` or ``"1,4-6"`` -> sorted unique digits."""
    digits: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            a, b = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise click.BadParameter(f"{spec!r} is not a digit list such as 7, 3,5 or 0-9") from None
        if not (0 <= a <= b <= 9):
            raise click.BadParameter(f"{spec!r}: digits must be 0-9 (ranges low-high)")
        digits.update(range(a, b + 1))
    return sorted(digits)


# --------------------------------------------------------------------------- sample


@click.command()
@click.option(
    "--digit",
    "-d",
    "digit_spec",
    default=None,
    help="Digits to draw: 7, a list 3,5 or a range 0-9 [default: 0-9]. With --from-latent: decode under "
    "these digits instead of the latent's own (style transfer).",
)
@click.option(
    "--class",
    "classes",
    multiple=True,
    metavar="NAME",
    help="A class to draw by its name in the model file (repeatable; 'all': every class), for models "
    "trained with --class-names; instead of --digit.",
)
@click.option("-n", "n", default=16, show_default=True, type=click.IntRange(1, 100_000), help="Samples per digit.")
@click.option(
    "-t",
    "--temperature",
    default=None,
    type=click.FloatRange(0.0, 5.0),
    help="Scale of the latent noise z ~ N(0, T^2). Below 1 trades variety for cleaner, more "
    "legible digits; 1 draws from the model's own distribution. [default: the model file's "
    "sample_temperature, 0.65 unless it says otherwise; its measured legibility and variety: cinn info]",
)
@seed_option(None)
@click.option("-o", "--out", default="samples", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--grid/--no-grid", default=True, show_default=True, help="Write a contact sheet DIR/<digit>-grid.png.")
@click.option("--latents/--no-latents", default=True, show_default=True, help="Write each sample's latent beside it.")
@overwrite_option
@weights_option("MNIST")
@batch_size_option(256)
@click.option(
    "--from-latent",
    "from_latent",
    multiple=True,
    type=click.Path(exists=True),
    help="Decode stored latent files (or folders of them) instead of drawing new ones: "
    "DIR/<stem>.png under the latent's own digit, DIR/<stem>-<D>.png with --digit.",
)
@click.option(
    "--transfer-temperature",
    default=None,
    type=click.FloatRange(0.0, 5.0),
    help=f"With --from-latent and --digit (style transfer): scale each stored latent by T before decoding it "
    f"under the new digit [default: {MNIST_TRANSFER_TEMPERATURE}]. 1 keeps the latent as stored, every trait of "
    "the handwriting; lower values pull it towards the model's typical digit, which the new digit then draws "
    "more legibly (measured per model: cinn info). Decoding without --digit never scales: it is the exact "
    "round trip.",
)
@click.option(
    "--interpolate",
    nargs=2,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="A B",
    help="Decode the spherical path between two latent files (see --steps).",
)
@click.option("--steps", default=10, show_default=True, type=click.IntRange(2, 1000), help="Images on the path.")
@device_option
@json_option
def sample(
    digit_spec,
    classes,
    n,
    temperature,
    seed,
    out,
    grid,
    latents,
    overwrite,
    weights,
    batch_size,
    from_latent,
    transfer_temperature,
    interpolate,
    steps,
    device,
    json_lines,
):
    """Draw class-conditional MNIST digits, or the classes of another model of this task
    (--weights fashion, or a file from cinn train classes).

    Writes DIR/<digit>-<k>.png for k = 0001..n (28x28 grayscale, white digit on black, as MNIST;
    a model's own size and colours otherwise; for a model whose file names its classes, <digit>
    is the class name, each character other than A-Z a-z 0-9 . _ - made _) and beside each its
    latent DIR/<digit>-<k>.safetensors (decodable again, see cinn info).
    Each image's noise comes from its own seed derived from (--seed, digit, k), stored in the
    latent file and the PNG metadata. Existing outputs are skipped unless --overwrite.

    \b
    Latent files (from sample or cinn encode) decode again:
      cinn sample --from-latent 7-0001.safetensors           # the same image, exactly
      cinn sample --from-latent z/ -d 0-9                    # every latent under every digit
      cinn sample --interpolate a.safetensors b.safetensors  # the path between two latents
    """
    digits = parse_digits(digit_spec) if digit_spec is not None else None
    if classes:
        if digit_spec is not None:
            raise click.UsageError("give --digit or --class, not both")
        digits = class_labels(classes, weights)
    n_classes = stored_config(weights).get("n_classes", 10)
    if digits is not None and max(digits) >= n_classes:
        raise click.BadParameter(f"this model has {n_classes} classes, labels 0-{n_classes - 1}", param_hint="--digit")
    if transfer_temperature is None:
        transfer_temperature = MNIST_TRANSFER_TEMPERATURE
    elif not (from_latent and digits is not None):
        raise click.UsageError("--transfer-temperature applies to --from-latent with --digit (style transfer) only")
    if (from_latent or interpolate) and temperature is not None:
        raise click.UsageError(
            "-t/--temperature draws new latents; stored ones are decoded as they are "
            "(with --from-latent and --digit, --transfer-temperature scales them)"
        )
    from cinn_cli.batch.report import RunReport
    from cinn_cli.files.latents import new_seed
    from cinn_cli.tasks import resolve_weights
    from cinn_cli.tasks.mnist.sample import decode_latents, interpolate_latents, sample_digits

    common = dict(digits=digits, out=out, overwrite=overwrite)
    if interpolate:
        report = RunReport("sample --interpolate", json_lines=json_lines, extra={"out": str(out)})
        run, kw = interpolate_latents, dict(start=interpolate[0], end=interpolate[1], steps=steps)
    elif from_latent:
        report = RunReport("sample --from-latent", json_lines=json_lines, extra={"out": str(out)})
        run, kw = decode_latents, dict(sources=list(from_latent), transfer_temperature=transfer_temperature)
    else:
        seed = new_seed() if seed is None else seed
        report = RunReport("sample", json_lines=json_lines, extra={"seed": seed, "out": str(out)})
        run = sample_digits
        temperature = model_temperature(weights) if temperature is None else temperature
        kw = dict(n=n, temperature=temperature, seed=seed, make_grid=grid, latents=latents, batch_size=batch_size)
        common["digits"] = digits if digits is not None else list(range(n_classes))
    with interruptible(report), user_errors():
        run(weights=resolve_weights(weights, "mnist"), device=resolve_device(device), report=report, **common, **kw)
    sys.exit(report.finish())


mnist_data_option = data_option(
    "Folder with the MNIST IDX files (gzip or raw). Default: $CINN_MNIST.", required=False, exists=False
)
digit_option = click.option(
    "--digit", "-d", type=click.IntRange(0, 999), default=None, help="The digit (class label) of every input."
)
encode_batch_option = click.option(
    "--batch-size", type=click.IntRange(1, 1 << 16), default=None, help="MNIST models: images per batch [default: 256]."
)


def stored_config(weights: str | None) -> dict:
    """The config stored in the ``--weights`` model file (its header only; no tensor is read)."""
    from cinn_cli.files.model_file import read_model_info
    from cinn_cli.tasks import resolve_weights

    with user_errors():
        return read_model_info(resolve_weights(weights, "mnist")).config


def model_temperature(weights: str | None) -> float:
    """The model file's own sampling temperature (its config's ``sample_temperature``)."""
    value = stored_config(weights).get("sample_temperature", SAMPLE_TEMPERATURE)
    if not isinstance(value, (int, float)) or not 0 <= value <= 5:
        raise click.ClickException(f"the model file's sample_temperature {value!r} is not a number in [0, 5]")
    return float(value)


def class_labels(classes: tuple[str, ...], weights: str | None) -> list[int]:
    """``--class`` names -> their labels, from the model file's class names ("all": every label)."""
    config = stored_config(weights)
    names = list(config.get("class_names") or [str(i) for i in range(config.get("n_classes", 10))])
    if classes == ("all",):
        return list(range(len(names)))
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(map(repr, unknown))}: not a class of this model ({', '.join(names)})", param_hint="--class"
        )
    return sorted({names.index(c) for c in classes})


def mnist_data(data_dir: Path | None) -> Path:
    """``--data`` or ``$CINN_MNIST``: the folder with the MNIST IDX files."""
    data_dir = data_dir or (Path(os.environ["CINN_MNIST"]) if os.environ.get("CINN_MNIST") else None)
    if data_dir is None:
        raise click.UsageError(
            "give --data DIR (a folder with the MNIST IDX files, or a folder per class) or set $CINN_MNIST"
        )
    return data_dir


class_names_option = click.option(
    "--class-names",
    default=None,
    metavar="A,B,..",
    help="The ten classes' names in label order, stored in the model file (cinn sample --class NAME); "
    "default: the digits 0-9.",
)
train_preset_option = preset_option(
    "default: our multi-scale convolutional cINN; paper: the reference code's 20-block fully "
    "connected cINN and recipe (for comparison).",
)


def _with_class_names(class_names: str | None, options: dict) -> dict:
    """``--class-names`` as a config override of the new model (ten names, label order)."""
    if class_names is None:
        return options
    names = [n.strip() for n in class_names.split(",")]
    if len(names) != 10 or len(set(names)) != 10 or not all(0 < len(n) <= 100 for n in names):
        raise click.BadParameter(
            "give ten different names of 1-100 characters, label order", param_hint="--class-names"
        )
    if options["init"] is not None:
        raise click.UsageError("--class-names names the classes of a new model; an --init model keeps its own")
    return {**options, "config_items": (*options["config_items"], "class_names=" + json.dumps(names))}


@click.command("mnist")
@mnist_data_option
@train_preset_option
@class_names_option
@training_options
def train_mnist_cmd(data_dir, class_names, **options):
    """Train the class-conditional MNIST model.

    Test bits/dim is evaluated each epoch and the model file is rewritten (atomically) after
    every evaluation. A checkpoint is kept at <out>.ckpt; --resume continues from it.
    """
    from cinn_cli.tasks.mnist.train import train_mnist

    run_training(train_mnist, data_dir=mnist_data(data_dir), **_with_class_names(class_names, options))


@click.command("classes")
@data_option(
    "A folder per class, DIR/<class name>/*.png|jpg|jpeg|webp (every image one size, sides 4-64 "
    "pixels; the folder names are the class names), or a folder with the MNIST IDX files."
)
@click.option(
    "--val",
    "val_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Held-out images to evaluate on, a folder per class (the same classes and size) "
    "[default: --val-fraction of each class's images].",
)
@click.option(
    "--val-fraction",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Without --val: the fraction of each class held out (at least one image, never a class's only one; "
    "the same images in every run).",
)
@train_preset_option
@click.option(
    "--class-names",
    default=None,
    metavar="A,B,..",
    help="IDX data only: the ten classes' names in label order (folder data are named by their folders).",
)
@training_options
def train_classes_cmd(data_dir, val_dir, val_fraction, class_names, **options):
    """Train a class-conditional model on your own labelled images.

    DIR holds a folder per class (DIR/cat/*.png, DIR/dog/*.png, ...), at least two, every image
    one size of up to 64x64, grayscale or colour (grayscale when every pixel has R = G = B). The
    image size, the classes and their names are stored in the model file: cinn sample --weights
    FILE --class NAME draws them, cinn encode and cinn explore take the same images. A folder
    with the MNIST IDX files (train and t10k) trains as cinn train mnist.

    Held-out bits/dim is evaluated each epoch (default epochs: the preset's, or more so the run
    makes at least 3,000 steps) and the model file rewritten atomically after every evaluation.
    A checkpoint is kept at <out>.ckpt; --resume continues from it. Bad data (an image of
    another size, an empty class folder, a file that is not an image) are refused, naming the
    file, before anything is written.
    """
    from cinn_cli.tasks.mnist.data import has_mnist_files
    from cinn_cli.tasks.mnist.train import train_classes, train_mnist

    if has_mnist_files(data_dir):
        if val_dir is not None:
            raise click.UsageError("--val is for folder data; the MNIST IDX files hold their own test split")
        run_training(train_mnist, data_dir=data_dir, **_with_class_names(class_names, options))
        return
    if class_names is not None:
        raise click.UsageError("--class-names is for IDX data; a folder per class is named by its folders")
    run_training(train_classes, data_dir=data_dir, val_dir=val_dir, val_fraction=val_fraction, **options)


@click.command("mnist")
@data_option(
    "Folder with the MNIST IDX files (gzip or raw; their test split is measured), or a folder per class "
    "as cinn train classes reads (every image in it is measured: give held-out images). Default: $CINN_MNIST.",
    required=False,
    exists=False,
)
@weights_option("MNIST")
@click.option(
    "-t",
    "--temperature",
    "temperatures",
    multiple=True,
    type=float,
    help="Sampling temperature; repeat for a sweep [default: the model file's sample_temperature].",
)
@click.option("--per-digit", default=1000, show_default=True, type=click.IntRange(2), help="Samples per digit.")
@click.option(
    "--transfer-images",
    default=1000,
    show_default=True,
    type=click.IntRange(0),
    help="Style transfer over the first N test images x 10 digits (0: skip).",
)
@click.option(
    "--transfer-temperature",
    "transfer_temperatures",
    multiple=True,
    type=click.FloatRange(0.0, 5.0),
    default=(MNIST_TRANSFER_TEMPERATURE, 1.0),
    show_default=True,
    help="Scale of the stored latents in the style transfer (as sample --transfer-temperature); repeat for a sweep.",
)
@click.option(
    "--classifier",
    default=None,
    metavar="FILE|NAME",
    help="Classifier that judges the samples: a file (bench/train_classifier.py makes one) or a shipped "
    "model's name, whose classifier is shipped beside it (mnist, fashion) [default: --weights's when it "
    "names a shipped model, else mnist's]. For models trained on other data.",
)
@seed_option(0)
@record_option()
@device_option
@json_option
def eval_mnist_cmd(
    data_dir,
    weights,
    temperatures,
    per_digit,
    transfer_images,
    transfer_temperatures,
    classifier,
    seed,
    record,
    device,
    json_lines,
):
    """Test bits/dim and sample quality of an MNIST model.

    \b
    test bits/dim   on the 10,000 test images, one dequantization draw per image (seed 0)
    sample accuracy fraction of samples the classifier (--classifier) labels as the requested
                    digit (overall and the worst digit)
    Fréchet dist.   between classifier features of samples and of the test images; the
                    train-vs-test value is the floor
    diversity       mean pairwise L2 between samples of a digit / the same for test images
    round trip      test images that encode -> decode reproduces exactly (8-bit)
    style transfer  each of the first N test images encoded under its own digit, its latent
                    scaled by the transfer temperature and decoded under all ten: fraction
                    the classifier labels as the requested digit; and how much handwriting
                    the decodes under other digits keep: correlation of slant (ink's
                    cov(x, y) / var(y)) and of ink (summed intensity) with their source's

    With a folder per class (a model of cinn train classes) no classifier knows the classes, so
    only the numbers that need none are given, over every image of the folder: bits/dim, round
    trip, and diversity per class (--per-digit samples of each class).
    """
    from cinn_cli.tasks import resolve_weights
    from cinn_cli.tasks.mnist.data import has_mnist_files
    from cinn_cli.tasks.mnist.evaluate import evaluate_mnist

    data_dir = mnist_data(data_dir)
    folders = not has_mnist_files(data_dir)
    given = given_on_command_line("transfer_images", "transfer_temperatures", "classifier") if folders else []
    if given:
        raise click.UsageError(
            f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} a classifier of the data: for MNIST IDX "
            "files only, not a folder per class"
        )
    with user_errors():
        common = dict(
            weights=resolve_weights(weights, "mnist"),
            data_dir=data_dir,
            temperatures=list(temperatures) or [model_temperature(weights)],
            device=resolve_device(device),
            seed=seed,
        )
        if folders:
            from cinn_cli.tasks.mnist.evaluate_folders import evaluate_class_folders

            r = evaluate_class_folders(per_class=per_digit, **common)
        else:
            r = evaluate_mnist(
                per_digit=per_digit,
                transfer_images=transfer_images,
                transfer_temperatures=tuple(transfer_temperatures),
                classifier=classifier_file(classifier, weights),
                **common,
            )
    _finish_evaluation(r, record, json_lines, _print_folder_evaluation if folders else _print_evaluation)


def _finish_evaluation(r: dict, record: bool, json_lines: bool, print_text) -> None:
    """Store the evaluation in the model file (--record), then print it as JSON or text."""
    if record:
        from cinn_cli.files.model_file import record_evaluation

        record_evaluation(r)
    if json_lines:
        click.echo(json.dumps(r))
    else:
        print_text(r)


def _print_folder_evaluation(r: dict) -> None:
    """A folder-per-class evaluation as aligned lines on stdout."""
    click.echo(f"model            {r['weights']}")
    click.echo(f"data             {r['data']} ({r['images']} images, classes {', '.join(r['class_names'])})")
    click.echo(
        f"bits/dim         {r['bits_per_dim']:.4f} (median {r['bits_per_dim_median']:.4f}; "
        f"{r['images_above_8_bits_per_dim']} images above 8 bits/dim)"
    )
    failed = ", ".join(map(str, r["round_trip_failed_indices"])) or "none"
    click.echo(
        f"round trip       {r['round_trip_exact']}/{r['round_trip_images']} images exact after 8-bit rounding "
        f"(failed: {failed})"
    )
    for s in r["samples"]:
        per = ", ".join(f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in s["per_class_diversity"].items())
        click.echo(f"T={s['temperature']:<5} diversity {s['diversity']:.3f} ({per})")


def classifier_file(classifier: str | None, weights: str | None) -> Path | None:
    """``--classifier`` as a file: a path, or the classifier shipped beside a named model
    (``weights/<name>-classifier.safetensors``); by default that of a shipped ``--weights``
    (``None``: the MNIST classifier)."""
    from cinn_cli.files.model_file import shipped_weights
    from cinn_cli.tasks import shipped_names
    from cinn_cli.tasks.mnist.metrics import CLASSIFIER_FILE

    name = classifier if classifier is not None else weights
    if name in shipped_names() and not Path(name).exists():
        path = shipped_weights(f"{name}-classifier")
        if classifier is None and path.name == CLASSIFIER_FILE:
            return None  # the default one, not named in the results
        if path.is_file():
            return path
        if classifier is not None:
            raise click.BadParameter(f"no classifier is shipped for {name!r}", param_hint="--classifier")
        return None
    return Path(classifier) if classifier is not None else None


def _print_evaluation(r: dict) -> None:
    """The evaluation as aligned lines on stdout."""
    click.echo(f"model            {r['weights']}")
    click.echo(
        f"test bits/dim    {r['test_bits_per_dim']:.4f} (median {r['test_bits_per_dim_median']:.4f}; "
        f"{r['test_images_above_8_bits_per_dim']} images above 8 bits/dim)"
    )
    click.echo(f"Fréchet floor    {r['frechet_floor_train_vs_test']:.3f} (10k train vs test images)")
    failed = ", ".join(map(str, r["round_trip_failed_indices"])) or "none"
    click.echo(
        f"round trip       {r['round_trip_exact']}/{r['round_trip_images']} test images exact after 8-bit "
        f"rounding (failed: {failed})"
    )
    for st in r.get("style_transfer", []):
        click.echo(
            f"style transfer   T={st['temperature']:<5} {st['accuracy']:.4f} (first {st['images']} test images x 10 "
            f"digits; worst digit {st['worst_digit']}: {st['worst_digit_accuracy']:.4f}), style kept: slant "
            f"{st['slant_correlation']:.3f}, ink {st['ink_correlation']:.3f}"
        )
    for s in r["samples"]:
        click.echo(
            f"T={s['temperature']:<5} sample accuracy {s['sample_accuracy']:.4f} "
            f"(worst digit {s['worst_digit']}: {s['worst_digit_accuracy']:.4f}), "
            f"Fréchet {s['frechet_distance']:.3f}, diversity {s['diversity']:.3f}"
        )


@click.command()
@data_option(
    "The images whose latents give the axes: a folder with the MNIST IDX files (the test split), or a folder "
    "per class as cinn train classes reads. Default: $CINN_MNIST.",
    required=False,
    exists=False,
)
@weights_option("MNIST")
@click.option(
    "--digit",
    "-d",
    "digit_spec",
    default=None,
    help="Digits (class labels) to explore: 7, a list 3,5 or a range 0-9 [default: every class].",
)
@click.option(
    "--class",
    "classes",
    multiple=True,
    metavar="NAME",
    help="A class to explore by its name in the model file (repeatable; 'all': every class); instead of --digit.",
)
@click.option(
    "--axes", default=4, show_default=True, type=click.IntRange(1, 32), help="Principal axes per class (rows)."
)
@click.option(
    "--steps", default=9, show_default=True, type=click.IntRange(3, 41), help="Images per axis, -2 to +2 std."
)
@click.option(
    "--images",
    default=1000,
    show_default=True,
    type=click.IntRange(2),
    help="Images per class whose latents give the axes (the first ones, in data order).",
)
@click.option("-o", "--out", default="explore", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@overwrite_option
@device_option
@json_option
def explore(data_dir, weights, digit_spec, classes, axes, steps, images, out, overwrite, device, json_lines):
    """Walk the principal axes of each class's latents (the paper's latent-space figure).

    The images of each class are encoded under it and the principal axes of their latents
    found. DIR/<class>-axes.png has one row per axis (--axes), walking it from -2 to +2 standard
    deviations (--steps images; the centre column is the class's mean latent), each point decoded
    under the class. DIR/style-<i>.png walks the i-th style axis: the principal axes of every
    class's latents, each centred on its own class's mean, so one axis means one change of style
    (for digits: slant, stroke width) for all classes (a row per class). --json prints each
    axis's share of the variance. File names use the class as cinn sample's do.
    """
    from cinn_cli.batch.report import RunReport
    from cinn_cli.tasks import resolve_weights
    from cinn_cli.tasks.mnist.explore import explore as run_explore
    from cinn_cli.tasks.mnist.explore import first_per_class
    from cinn_cli.tasks.mnist.sample import load_mnist_model

    if classes and digit_spec is not None:
        raise click.UsageError("give --digit or --class, not both")
    report = RunReport("explore", extra={"out": str(out)})
    with interruptible(report), user_errors():
        model, info = load_mnist_model(resolve_weights(weights, "mnist"), resolve_device(device), exact=True)
        n_classes = model.config.n_classes
        digits = class_labels(classes, weights) if classes else list(range(n_classes))
        if digit_spec is not None:
            digits = parse_digits(digit_spec)
        if max(digits) >= n_classes:
            raise click.BadParameter(
                f"this model has {n_classes} classes, labels 0-{n_classes - 1}", param_hint="--digit"
            )
        test_images, labels = labelled_images(mnist_data(data_dir), model)
        keep = first_per_class(labels, images)
        result = run_explore(
            model=model,
            model_sha256=info.sha256,
            images=test_images[keep],
            labels=labels[keep],
            digits=digits,
            axes=axes,
            steps=steps,
            out=out,
            overwrite=overwrite,
            report=report,
        )
    if json_lines:
        click.echo(json.dumps(result))
    sys.exit(report.finish())


def labelled_images(data_dir: Path, model):
    """``(images (N, C, H, W) or (N, 28, 28) uint8, labels (N,))`` for ``model``: the IDX test split,
    or every image of a folder per class (its folders the model's classes, its images the model's size)."""
    from cinn_cli.tasks.mnist.data import has_mnist_files, load_mnist
    from cinn_cli.tasks.mnist.folders import images_for_model

    if has_mnist_files(data_dir):
        return load_mnist(data_dir, "test")
    data = images_for_model(data_dir, model.class_names, model.config.image_shape)
    return data.images, data.labels
