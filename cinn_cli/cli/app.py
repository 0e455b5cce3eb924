"""The ``cinn`` command line: parse, validate, call one pipeline, print the report.

Torch is imported inside the commands only, so ``cinn --help`` and ``cinn --version`` start fast.
"""

from __future__ import annotations

import gc
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click

# The default sampling temperatures, shared by the commands that make images and the ``eval``
# commands that score what they make by default (README: how each was chosen).
MNIST_TEMPERATURE = 0.65
# Style transfer (sample --from-latent -d) scales the stored latent by this: the highest
# temperature, in steps of 0.05, at which the shipped model's transfers meet the 95 % legibility
# target (README: style transfer by temperature). 1.0 keeps the latent as stored.
MNIST_TRANSFER_TEMPERATURE = 0.8
COLORIZE_TEMPERATURE = 1.0
DEVICE_HELP = "auto (CUDA if available, else MPS, else CPU), cpu, cuda, cuda:N or mps."
BITS_HELP = (
    "Bits/dim follow the RealNVP/Glow convention: 8-bit pixels k, dequantized as y = (k + u) / 256 "
    "with u ~ U[0,1), bits/dim = -log p(y) / (784 ln 2) + 8, on the 10,000 MNIST test images."
)


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


def resolve_device(spec: str):
    import torch

    _end_startup()  # every command that runs a model comes here once, after its heavy imports

    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise click.BadParameter(f"{spec!r} is not a device ({DEVICE_HELP})", param_hint="--device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA was requested but is not available", param_hint="--device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise click.BadParameter("MPS was requested but is not available", param_hint="--device")
    return device


def _shard(ctx, param, value: str | None):
    """``--shard i/N`` -> ``(i, N)``; a malformed value is a usage error (exit 2)."""
    if value is None:
        return None
    from cinn_cli.batch.stream import parse_shard

    try:
        return parse_shard(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def prepare_output_folder(out: Path) -> None:
    """Create OUT before any work, so a folder that cannot be written is one error (exit 1),
    not the same failure once per input. (A sub-folder that cannot be written fails per input.)"""
    import os

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.ClickException(f"{out}: cannot create the output folder ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise click.ClickException(f"{out}: the output folder is not writable")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so a run ends as on Ctrl-C (but exits 143, not 130)."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextmanager
def sigterm_as_interrupt():
    """Let SIGTERM (kill, timeout, a scheduler stopping the job) end a run as Ctrl-C does: the
    writes in flight finish, queued ones are dropped and no temporary file is left behind."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread may
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def interruptible(report):
    """Around a batch run: SIGTERM or Ctrl-C stops it, then the summary of what was done is printed
    (written, skipped, failed; the rest not started; ``--json`` ends with a summary marked
    ``"aborted": true``) and the exit code is 143 (SIGTERM) or 130 (Ctrl-C), as a shell reports
    a process killed by that signal."""
    import threading

    with sigterm_as_interrupt():
        try:
            yield
        except KeyboardInterrupt as e:
            code = report.finish(aborted_by="SIGTERM" if isinstance(e, Terminated) else "SIGINT")
            # Every write has finished and been reported (Pool.__exit__), but a worker may still be
            # decoding an input (seconds for a huge photo), and a normal exit would wait for it.
            busy = [t for t in threading.enumerate() if t.name.startswith("cinn-io")]
            for t in busy:
                t.join(timeout=0.5)  # idle ones end at once
            if any(t.is_alive() for t in busy):
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            sys.exit(code)


@contextmanager
def output_folder(source: str, out: Path):
    """Check that OUT can be used with IN, create it, and remove it again (when this run made it
    and it is still empty) if the run then fails on usage or on its first check, so a mistyped
    command leaves nothing behind.

    OUT = IN, or IN inside OUT, is refused (exit 2): outputs would land among the inputs, a rerun
    would take them for inputs, and a photo named like an output (d-1.png) could be replaced. OUT
    inside IN is allowed: the listing never enters OUT (``discover``'s ``skip``)."""
    if source != "-" and Path(source).is_dir():
        src, dst = Path(source).resolve(), out.resolve()
        if src == dst or dst in src.parents:
            raise click.BadParameter(
                f"{out} is {'the input folder' if src == dst else 'a folder holding the input folder'}; "
                "write the outputs to another folder (a rerun would take them for inputs)",
                param_hint="OUT",
            )
    made = None  # the outermost folder this run creates
    for p in (out, *out.absolute().parents):
        if p.exists():
            break
        made = p
    prepare_output_folder(out)
    try:
        yield
    except click.ClickException:
        if made is not None:
            for p in (out.absolute(), *out.absolute().parents):
                try:
                    p.rmdir()  # only succeeds on an empty folder
                except OSError:
                    break
                if p == made.absolute():
                    break
        raise


def _version() -> str:
    from cinn_cli.files.model_file import package_version

    return package_version()


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
    "file's; the shipped model's is 128). Larger: finer colour detail, slower.",
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
shard_option = click.option(
    "--shard",
    default=None,
    metavar="i/N",
    callback=_shard,
    help="Only the inputs whose relative path hashes to i of N (0 <= i < N). N runs (a job array, "
    "several machines) split the inputs the same way and together write what one run writes.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "--version", "-V", prog_name="cinn")
def main() -> None:
    """Conditional invertible neural networks (cINN) from the command line.

    Sample class-conditional MNIST digits from shipped weights, colorize grayscale photos in
    several plausible ways, turn images into latent codes and back, and train your own models.
    Progress and summaries go to stderr; stdout stays clean for pipelines (use --json for
    machine-readable lines). Exit codes: 0 all done, 1 some inputs failed, 2 usage error.

    \b
    Examples:
      cinn sample --digit 7 -n 64
      cinn colorize ./bw ./out -n 5
      cinn encode ./digits ./z --verify
      cinn train mnist --data ./mnist --out my-mnist.safetensors
      cinn eval mnist --data ./mnist
      cinn info weights/mnist.safetensors
    """


_startup_gc_off = False  # set by entry(): collection is off until the command's imports are done


def entry() -> None:
    """The ``cinn`` executable and ``python -m cinn_cli``: ``main`` without garbage collection
    during start-up.

    Importing torch creates about a million objects that live until exit; collecting while they
    are created (some 400 passes) and scanning them again in every later full collection costs
    0.2-0.6 s of a 2-4 s ``cinn sample`` or ``cinn colorize`` and frees nothing
    (``python bench/cli_speed.py``). So collection stays off until the command has imported what
    it needs; ``resolve_device``, which every command that runs a model calls after its imports,
    then ends start-up (``_end_startup``). ``main`` called directly (tests, embedding) is unchanged.
    """
    global _startup_gc_off
    gc.disable()
    _startup_gc_off = True
    main()


def _end_startup() -> None:
    """Freeze what start-up allocated (``gc.freeze``: never scanned again) and turn collection
    back on, once per process started by ``entry``; a no-op otherwise."""
    global _startup_gc_off
    if _startup_gc_off:
        _startup_gc_off = False
        gc.freeze()
        gc.enable()


# --------------------------------------------------------------------------- info


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def info(file: Path, json_lines: bool) -> None:
    """Show a model or latent file's metadata, parameter count and tensor shapes."""
    import json
    import math

    from cinn_cli.files.model_file import SHIPPED, ModelFileError, read_header, shipped_weights

    if str(file) in SHIPPED and not file.exists():  # a shipped model's name, as --model/--init take
        file = shipped_weights(str(file))
    try:
        metadata, tensors = read_header(file)
    except ModelFileError as e:
        raise click.ClickException(str(e)) from None
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


# --------------------------------------------------------------------------- sample


@main.command()
@click.option(
    "--digit",
    "-d",
    "digit_spec",
    default=None,
    help="Digits to draw: 7, a list 3,5 or a range 0-9 [default: 0-9]. With --from-latent: decode under "
    "these digits instead of the latent's own (style transfer).",
)
@click.option("-n", "n", default=16, show_default=True, type=click.IntRange(1, 100_000), help="Samples per digit.")
@click.option(
    "-t",
    "--temperature",
    default=MNIST_TEMPERATURE,
    show_default=True,
    type=click.FloatRange(0.0, 5.0),
    help="Scale of the latent noise z ~ N(0, T^2). Below 1 trades variety for cleaner, more "
    "legible digits; 1 draws from the model's own distribution. The model file's measured legibility "
    "and variety at each temperature: cinn info.",
)
@click.option("--seed", type=int, default=None, help="Run seed; same seed, same bytes. Default: a fresh one (printed).")
@click.option("-o", "--out", default="samples", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--grid/--no-grid", default=True, show_default=True, help="Write a contact sheet DIR/<digit>-grid.png.")
@click.option("--latents/--no-latents", default=True, show_default=True, help="Write each sample's latent beside it.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (default: skip them).")
@click.option("--weights", default=None, help="Model file (default: the shipped MNIST model).")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1, 1 << 16))
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
    """Draw class-conditional MNIST digits.

    Writes DIR/<digit>-<k>.png for k = 0001..n (28x28 grayscale, white digit on black, as MNIST)
    and beside each its latent DIR/<digit>-<k>.safetensors (decodable again, see cinn info).
    Each image's noise comes from its own seed derived from (--seed, digit, k), stored in the
    latent file and the PNG metadata. Existing outputs are skipped unless --overwrite.

    \b
    Latent files (from sample or cinn encode) decode again:
      cinn sample --from-latent 7-0001.safetensors           # the same image, exactly
      cinn sample --from-latent z/ -d 0-9                    # every latent under every digit
      cinn sample --interpolate a.safetensors b.safetensors  # the path between two latents
    """
    digits = parse_digits(digit_spec) if digit_spec is not None else None
    if transfer_temperature is None:
        transfer_temperature = MNIST_TRANSFER_TEMPERATURE
    elif not (from_latent and digits is not None):
        raise click.UsageError("--transfer-temperature applies to --from-latent with --digit (style transfer) only")
    temperature_given = click.get_current_context().get_parameter_source("temperature").name != "DEFAULT"
    if (from_latent or interpolate) and temperature_given:
        raise click.UsageError(
            "-t/--temperature draws new latents; stored ones are decoded as they are "
            "(with --from-latent and --digit, --transfer-temperature scales them)"
        )
    from cinn_cli.batch.report import RunReport
    from cinn_cli.files.latents import new_seed
    from cinn_cli.files.model_file import ModelFileError, resolve_weights
    from cinn_cli.tasks.mnist.sample import decode_latents, sample_digits

    if interpolate:
        from cinn_cli.tasks.mnist.sample import interpolate_latents

        report = RunReport("sample --interpolate", json_lines=json_lines, extra={"out": str(out)})
        with interruptible(report):
            try:
                interpolate_latents(
                    weights=resolve_weights(weights, "mnist"),
                    start=interpolate[0],
                    end=interpolate[1],
                    steps=steps,
                    digits=digits,
                    out=out,
                    overwrite=overwrite,
                    device=resolve_device(device),
                    report=report,
                )
            except (ModelFileError, ValueError) as e:
                raise click.ClickException(str(e)) from None
        sys.exit(report.finish())
    if from_latent:
        report = RunReport("sample --from-latent", json_lines=json_lines, extra={"out": str(out)})
        with interruptible(report):
            try:
                decode_latents(
                    weights=resolve_weights(weights, "mnist"),
                    sources=list(from_latent),
                    digits=digits,
                    out=out,
                    overwrite=overwrite,
                    device=resolve_device(device),
                    report=report,
                    transfer_temperature=transfer_temperature,
                )
            except (ModelFileError, ValueError) as e:
                raise click.ClickException(str(e)) from None
        sys.exit(report.finish())
    seed = new_seed() if seed is None else seed
    report = RunReport("sample", json_lines=json_lines, extra={"seed": seed, "out": str(out)})
    with interruptible(report):
        try:
            sample_digits(
                weights=resolve_weights(weights, "mnist"),
                digits=digits if digits is not None else list(range(10)),
                n=n,
                temperature=temperature,
                seed=seed,
                out=out,
                make_grid=grid,
                latents=latents,
                overwrite=overwrite,
                device=resolve_device(device),
                batch_size=batch_size,
                report=report,
            )
        except (ModelFileError, ValueError) as e:
            raise click.ClickException(str(e)) from None
        except BrokenPipeError:  # stdout's reader went away (--json | head): Click ends quietly, exit 1
            raise
        except OSError as e:
            raise click.ClickException(f"{e.filename or out}: {e.strerror}") from None
    sys.exit(report.finish())


# --------------------------------------------------------------------------- encode


@main.command()
@click.argument("source", metavar="IN")
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--model",
    "--weights",
    "model",
    default="mnist",
    show_default=True,
    help="mnist, colorize (the shipped models) or a model file.",
)
@click.option("--digit", "-d", type=click.IntRange(0, 9), default=None, help="The digit of every input.")
@click.option(
    "--verify",
    is_flag=True,
    help="Decode again and report the error; fail an input whose round trip exceeds 0.5/255 (MNIST) "
    "or 1/255 in RGB at the model's colour resolution (colorize).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing latent files (default: skip them).")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1, 1 << 16))
@work_size_option
@device_option
@json_option
@workers_option
@shard_option
def encode(source, out, model, digit, verify, overwrite, batch_size, work_size, device, json_lines, workers, shard):
    """Turn images into latent codes (.safetensors) that decode again.

    IN is an image, a folder (recursive; sub-folders are mirrored in OUT) or - (paths on stdin).
    Each image becomes OUT/<rel dir>/<stem>.safetensors holding its latent levels, its condition,
    the model's SHA-256 and its bits/dim under the model (a per-image likelihood: high values
    flag odd inputs). --model is mnist (default), colorize, or a model file (its task is read
    from the file).

    \b
    mnist     28x28 grayscale digits, white on black; the digit comes from --digit or from
              the parent folder's name (IN/3/x.png is a 3). Other sizes are refused. Decode
              with cinn sample --from-latent (optionally under other digits).
    colorize  colour photos of any size: the photo's ab under its own lightness, at the
              model's working resolution. Decode with cinn colorize IMG OUT --from-latent
              (the same photo: its colours back; another photo: colour transfer).
    """
    from cinn_cli.batch.report import RunReport

    if source != "-" and not Path(source).exists():
        raise click.BadParameter(f"{source}: no such file or folder", param_hint="IN")
    report = RunReport("encode", json_lines=json_lines, extra={"out": str(out)})
    with output_folder(source, out), interruptible(report):
        _encode(report, source, out, model, digit, verify, overwrite, batch_size, work_size, device, workers, shard)
    sys.exit(report.finish())


def _encode(report, source, out, model, digit, verify, overwrite, batch_size, work_size, device, workers, shard):
    """The body of ``cinn encode``: the model's task picks the pipeline."""
    from cinn_cli.files.model_file import ModelFileError, read_model_info, resolve_weights

    try:
        weights = resolve_weights(model, "mnist")
        task = read_model_info(weights).task
        common = dict(
            weights=weights,
            source=source,
            out=out,
            verify=verify,
            overwrite=overwrite,
            device=resolve_device(device),
            report=report,
            workers=workers,
            shard=shard,
        )
        if task == "colorize":
            if digit is not None:
                raise click.UsageError("--digit applies to MNIST models only")
            from cinn_cli.tasks.colorize.transfer import encode_photos

            encode_photos(work_size=work_size, **common)
        elif task == "mnist":
            if work_size is not None:
                raise click.UsageError("--work-size applies to colorize models only")
            from cinn_cli.tasks.mnist.encode import encode_digits

            encode_digits(digit=digit, batch_size=batch_size, **common)
        else:
            raise ModelFileError(f"{weights}: a {task!r} model; cinn encode takes mnist or colorize models")
    except (ModelFileError, ValueError) as e:
        raise click.ClickException(str(e)) from None


# --------------------------------------------------------------------------- colorize


@main.command()
@click.argument("source", metavar="IN")
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option("-n", "n", default=5, show_default=True, type=click.IntRange(1, 10_000), help="Colourings per image.")
@click.option(
    "-t",
    "--temperature",
    default=COLORIZE_TEMPERATURE,
    show_default=True,
    type=click.FloatRange(0.0, 5.0),
    help="Scale of the latent noise z ~ N(0, T^2), times each level's factor (--level-temperatures): "
    "lower gives safer, less varied colours.",
)
@click.option("--seed", type=int, default=None, help="Run seed; same seed, same bytes. Default: a fresh one (printed).")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg", "webp"]), default="png", show_default=True)
@click.option("--grid", "make_grid", is_flag=True, help="Also write a contact sheet <stem>-grid.<fmt> per input.")
@click.option("--latents/--no-latents", default=True, show_default=True, help="Write each output's latent beside it.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (default: skip them).")
@click.option("--weights", default=None, help="Model file (default: the shipped colorization model).")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1, 1 << 16))
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
    from cinn_cli.batch.report import RunReport
    from cinn_cli.files.latents import new_seed
    from cinn_cli.files.model_file import ModelFileError
    from cinn_cli.tasks.colorize.colorize import LevelTemperaturesError, colorize_photos

    if source != "-" and not Path(source).exists():
        raise click.BadParameter(f"{source}: no such file or folder", param_hint="IN")
    seed = new_seed() if seed is None else seed
    report = RunReport("colorize", json_lines=json_lines, extra={"seed": seed, "out": str(out)})
    options = dict(
        weights=weights,
        source=source,
        out=out,
        temperature=temperature,
        seed=seed,
        fmt=fmt,
        latents=latents,
        overwrite=overwrite,
        report=report,
        workers=workers,
        shard=shard,
        work_size=work_size,
        level_temperatures=level_temperatures,
    )
    with output_folder(source, out), interruptible(report):
        if from_latents:
            _colorize_from_latents(from_latents, transfer_levels, device, options)
        else:
            try:
                colorize_photos(
                    n=n, make_grid=make_grid, device=resolve_device(device), batch_size=batch_size, **options
                )
            except LevelTemperaturesError as e:
                raise click.BadParameter(str(e), param_hint="--level-temperatures") from None
            except (ModelFileError, ValueError) as e:
                raise click.ClickException(str(e)) from None
    sys.exit(report.finish())


def _colorize_from_latents(from_latents, transfer_levels: str, device: str, options: dict) -> None:
    """``cinn colorize --from-latent``: refuse the options that do not apply, then decode."""
    from click.core import ParameterSource

    from cinn_cli.files.model_file import ModelFileError
    from cinn_cli.tasks.colorize.colorize import LevelTemperaturesError
    from cinn_cli.tasks.colorize.transfer import TransferLevelsError, colorize_from_latents

    ctx = click.get_current_context()
    flags = {"n": "-n", "make_grid": "--grid", "batch_size": "--batch-size"}
    given = [f for name, f in flags.items() if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(
            f"{' and '.join(given)} cannot be used with --from-latent (one output per input and latent; "
            "vary --seed for other draws of the resampled levels)"
        )
    drawing = {"temperature": "-t/--temperature", "level_temperatures": "--level-temperatures"}
    given = [f for name, f in drawing.items() if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
    if given and transfer_levels.strip().lower() == "all":
        raise click.UsageError(
            f"{' and '.join(given)} only scale the levels drawn anew, and --transfer-levels all draws none "
            "(give one weight per level, e.g. 0,0.3,1)"
        )
    try:
        colorize_from_latents(
            latent_sources=[str(p) for p in from_latents],
            levels=transfer_levels,
            device=resolve_device(device),
            **options,
        )
    except TransferLevelsError as e:
        raise click.BadParameter(str(e), param_hint="--transfer-levels") from None
    except LevelTemperaturesError as e:
        raise click.BadParameter(str(e), param_hint="--level-temperatures") from None
    except (ModelFileError, ValueError) as e:
        raise click.ClickException(str(e)) from None


# --------------------------------------------------------------------------- train


@main.group()
def train() -> None:
    """Train a model from your data (progress bars, checkpoints, --resume).

    Distributed: torchrun --nproc_per_node N -m cinn_cli train ... runs N processes with
    DistributedDataParallel (NCCL on GPUs, gloo on CPUs); --batch-size is then the global batch,
    split evenly over the processes, and rank 0 writes the files.
    """


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
    help="Fine-tune: start from this model file's architecture and weights (or the shipped model: "
    "mnist, colorize) instead of a new model; --preset then chooses only the recipe (use a smaller "
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
    init_option,
    config_option,
    device_option,
)


def training_options(command):
    """The options every ``cinn train`` command shares, listed after the command's own."""
    for option in reversed(_TRAINING_OPTIONS):
        command = option(command)
    return command


def run_training(train_fn, errors: tuple[type[Exception], ...], *, config_items, device, **options) -> None:
    """Run ``train_fn`` with the command line's options; user errors become one-line messages, an
    interrupted run exits with its code (its checkpoint written), a finished one prints a summary."""
    from cinn_cli.training.loop import TrainingInterrupted

    try:
        _, result = train_fn(device=resolve_device(device), config_overrides=parse_config(config_items), **options)
    except errors as e:
        raise click.ClickException(str(e)) from None
    except TrainingInterrupted as e:
        click.echo(str(e), err=True)
        sys.exit(e.exit_code)
    _print_training_summary(result)


@train.command("mnist")
@click.option(
    "--data",
    "data_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with the MNIST IDX files (gzip or raw). Default: $CINN_MNIST.",
)
@click.option(
    "--preset",
    type=click.Choice(["default", "paper"]),
    default="default",
    show_default=True,
    help="default: our multi-scale convolutional cINN; paper: the reference code's 20-block fully "
    "connected cINN and recipe (for comparison).",
)
@training_options
def train_mnist_cmd(data_dir, **options):
    """Train the class-conditional MNIST model.

    Test bits/dim is evaluated each epoch and the model file is rewritten (atomically) after
    every evaluation. A checkpoint is kept at <out>.ckpt; --resume continues from it.
    """
    import os

    data_dir = data_dir or (Path(os.environ["CINN_MNIST"]) if os.environ.get("CINN_MNIST") else None)
    if data_dir is None:
        raise click.UsageError("give --data DIR (a folder with the MNIST IDX files) or set $CINN_MNIST")
    from cinn_cli.tasks.mnist.data import MnistDataError
    from cinn_cli.tasks.mnist.train import train_mnist

    run_training(train_mnist, (MnistDataError, FileNotFoundError, ValueError), data_dir=data_dir, **options)


@train.command("colorize")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of colour photos (recursive; png, jpg, webp, ...).",
)
@click.option(
    "--val",
    "val_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of held-out photos for val bits/dim (default: centre crops of the training photos).",
)
@click.option(
    "--preset",
    type=click.Choice(["default", "paper"]),
    default="default",
    show_default=True,
    help="default: our fully convolutional cINN (ab at half resolution, global context); paper: the "
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

    run_training(train_colorize, (FileNotFoundError, ValueError), **options)


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
    table.add_row("train bits/dim (EMA)", f"{result.train_bits_per_dim:.4f}")
    for k, v in result.metrics.items():
        table.add_row(k.replace("_", " "), f"{v:.4f}")
    table.add_row("skipped non-finite steps", str(result.skipped_steps))
    Console(stderr=True).print(table)


# --------------------------------------------------------------------------- eval


@main.group("eval")
def eval_group() -> None:
    """Measure a model: likelihood and sample quality (definitions in the README)."""


@eval_group.command("mnist")
@click.option(
    "--data",
    "data_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with the MNIST IDX files. Default: $CINN_MNIST.",
)
@click.option("--weights", default=None, help="Model file (default: the shipped MNIST model).")
@click.option(
    "-t",
    "--temperature",
    "temperatures",
    multiple=True,
    type=float,
    default=(MNIST_TEMPERATURE,),
    show_default=True,
    help="Sampling temperature; repeat for a sweep.",
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
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--record",
    is_flag=True,
    help="Store the results in the model file's metadata (the file is rewritten, so its SHA-256 changes).",
)
@device_option
@json_option
def eval_mnist_cmd(
    data_dir, weights, temperatures, per_digit, transfer_images, transfer_temperatures, seed, record, device, json_lines
):
    """Test bits/dim and sample quality of an MNIST model.

    \b
    test bits/dim   on the 10,000 test images, one dequantization draw per image (seed 0)
    sample accuracy fraction of samples the shipped MNIST classifier labels as the requested
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
    """
    import json
    import os

    data_dir = data_dir or (Path(os.environ["CINN_MNIST"]) if os.environ.get("CINN_MNIST") else None)
    if data_dir is None:
        raise click.UsageError("give --data DIR (a folder with the MNIST IDX files) or set $CINN_MNIST")
    from cinn_cli.files.model_file import ModelFileError, resolve_weights
    from cinn_cli.tasks.mnist.data import MnistDataError
    from cinn_cli.tasks.mnist.evaluate import evaluate_mnist

    try:
        r = evaluate_mnist(
            weights=resolve_weights(weights, "mnist"),
            data_dir=data_dir,
            temperatures=list(temperatures),
            per_digit=per_digit,
            device=resolve_device(device),
            seed=seed,
            transfer_images=transfer_images,
            transfer_temperatures=tuple(transfer_temperatures),
        )
    except (ModelFileError, MnistDataError, ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    if record:
        from cinn_cli.files.model_file import record_metrics

        record_metrics(r["weights"], {k: v for k, v in r.items() if k not in ("weights", "model_sha256")})
    if json_lines:
        click.echo(json.dumps(r))
        return
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


@eval_group.command("colorize")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of colour photos (e.g. the val photos).",
)
@click.option("--weights", default=None, help="Model file (default: the shipped colorization model).")
@click.option("-n", "n", default=8, show_default=True, type=click.IntRange(1, 64), help="Samples per image.")
@click.option("-t", "--temperature", default=COLORIZE_TEMPERATURE, show_default=True, type=click.FloatRange(0.0, 5.0))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--record", is_flag=True, help="Store the results in the model file's metadata (its SHA-256 changes).")
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

    from cinn_cli.files.model_file import ModelFileError
    from cinn_cli.tasks.colorize.colorize import LevelTemperaturesError
    from cinn_cli.tasks.colorize.evaluate import evaluate_colorize

    try:
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
    except LevelTemperaturesError as e:
        raise click.BadParameter(str(e), param_hint="--level-temperatures") from None
    except (ModelFileError, ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    if record:
        from cinn_cli.files.model_file import record_metrics

        record_metrics(r["weights"], {k: v for k, v in r.items() if k not in ("weights", "model_sha256")})
    if json_lines:
        click.echo(json.dumps(r))
        return
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


if __name__ == "__main__":  # pragma: no cover
    entry()
