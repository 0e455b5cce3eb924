"""Make the README's MNIST pictures from the real commands' outputs.

    python docs/figures.py [--data DIR] [--weights FILE]

1. ``docs/mnist-samples.png``: ``cinn sample -d 0-9 -n 10 --seed 1`` (one row per digit, the default T = 0.65).
2. ``docs/mnist-style-transfer.png``: the first 8 MNIST test images (left column) encoded with
   ``cinn encode IN Z --verify`` (labels from folder names), then decoded under every digit with
   ``cinn sample --from-latent Z -d 0-9``: each row keeps one writer's style.
3. ``docs/colorize-val.png`` (``--task colorize``): for a few validation photos, the grayscale
   input (PIL ``convert('L')``), the original, then ``cinn colorize GRAY OUT -n 5 --seed 1``.
5. ``docs/fashion-samples.png`` (``--task fashion``): ``cinn sample --weights fashion --class all -n 10
   --seed 1`` (one row per class at the model's T = 0.8, its name on the left), and
   ``docs/fashion-explore.png``: ``cinn explore --data FASHION --weights fashion --class Dress
   --class Sneaker --axes 3 --steps 9 --images 1000`` (each class's three largest axes, -2 to +2 std).
4. ``docs/colour-transfer.png`` (``--task transfer``): per row a validation photo, its gray
   decoded with its own latent (``cinn encode --model colorize``, then ``cinn colorize GRAY OUT
   --from-latent``), the same gray with another photo's latent, and that other photo.
6. ``docs/colorize-people.png`` (``--task people``): the same for photos of people from
   ``../shared/data/photos/extra/`` (dlib's examples, public domain per Debian's copyright file;
   training photos of the shipped model: the held-out everyday photos are GPL-licensed, so they
   are scored in docs/colorize-results.md but not shown).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from cinn_cli.batch.images import grid, write_png
from cinn_cli.tasks.mnist.data import find_mnist_dir, load_mnist

DOCS = Path(__file__).resolve().parent


def cinn(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cinn_cli", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"cinn {' '.join(args)} failed:\n{done.stderr}")


def photo_folder(args, default: str) -> Path:
    """``--photos``, or the workspace's ``../shared/data/photos/<default>``."""
    return Path(args.photos) if args.photos else DOCS.parents[1] / "shared" / "data" / "photos" / default


def upscale(a: np.ndarray, k: int = 3) -> np.ndarray:
    return np.kron(a, np.ones((k, k), np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="MNIST folder (default: $CINN_MNIST or ../shared/data/mnist)")
    parser.add_argument("--weights", default=None, help="model file (default: the shipped one)")
    parser.add_argument("--task", choices=["mnist", "colorize", "people", "transfer", "fashion"], default="mnist")
    parser.add_argument(
        "--photos",
        default=None,
        help="photo folder (default: ../shared/data/photos/val; --task people: ../shared/data/photos/extra)",
    )
    args = parser.parse_args()
    if args.task == "colorize":
        root = photo_folder(args, "val")
        picks = [root / name for name in COLORIZE_PICKS if (root / name).exists()] or sorted(root.glob("*.webp"))[:4]
        return colorize_figure(args, picks, "colorize-val.png")
    if args.task == "people":
        root = photo_folder(args, "extra")
        picks = [root / name for name in PEOPLE_PICKS if (root / name).exists()]
        if not picks:
            sys.exit(f"none of the people photos ({', '.join(PEOPLE_PICKS)}) is in {root}")
        return colorize_figure(args, picks, "colorize-people.png")
    if args.task == "transfer":
        return transfer_figure(args)
    if args.task == "fashion":
        return fashion_figures(args)
    weights = ["--weights", args.weights] if args.weights else []
    data = find_mnist_dir(args.data) or Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = str(tmp / "s")
        cinn("sample", "-d", "0-9", "-n", "10", "--seed", "1", "--no-grid", "--no-latents", "-o", out, *weights)
        tiles = [np.asarray(Image.open(tmp / "s" / f"{d}-{k:04d}.png")) for d in range(10) for k in range(1, 11)]
        write_png(DOCS / "mnist-samples.png", upscale(grid(tiles, columns=10)))

        images, labels = load_mnist(data, "test")
        for i in range(8):  # labels come from the folder names: in/<digit>/test<i>.png
            src = tmp / "in" / str(int(labels[i])) / f"test{i}.png"
            src.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i].numpy()).save(src)
        cinn("encode", str(tmp / "in"), str(tmp / "z"), "--verify", *weights)
        cinn("sample", "--from-latent", str(tmp / "z"), "-d", "0-9", "-o", str(tmp / "st"), *weights)
        rows = []
        for i in range(8):
            folder = tmp / "st" / str(int(labels[i]))
            rows.append(images[i].numpy())
            rows += [np.asarray(Image.open(folder / f"test{i}-{t}.png")) for t in range(10)]
        write_png(DOCS / "mnist-style-transfer.png", upscale(grid(rows, columns=11)))
    print(f"wrote {DOCS / 'mnist-samples.png'} and {DOCS / 'mnist-style-transfer.png'}")


def fashion_figures(args) -> None:
    """The shipped Fashion-MNIST model's classes, a row each with its name, and two explore sheets."""
    from PIL import ImageDraw

    weights = args.weights or "fashion"
    data = Path(args.data) if args.data else DOCS.parents[1] / "shared" / "data" / "fashion-mnist"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cinn(
            "sample",
            "--weights",
            weights,
            "--class",
            "all",
            "-n",
            "10",
            "--seed",
            "1",
            "--no-grid",
            "-o",
            str(tmp / "s"),
        )
        rows = sorted({p.name.rsplit("-", 1)[0] for p in (tmp / "s").glob("*.png")}, key=lambda n: _label(tmp / "s", n))
        sheet = upscale(
            grid(
                [np.asarray(Image.open(tmp / "s" / f"{r}-{k:04d}.png")) for r in rows for k in range(1, 11)], columns=10
            )
        )
        label_w, row_h = 110, sheet.shape[0] / len(rows)
        canvas = Image.new("L", (label_w + sheet.shape[1], sheet.shape[0]), 40)
        canvas.paste(Image.fromarray(sheet), (label_w, 0))
        draw = ImageDraw.Draw(canvas)
        for i, r in enumerate(rows):
            name = Image.open(tmp / "s" / f"{r}-0001.png").text["cinn:class"]
            draw.text((6, int((i + 0.5) * row_h) - 6), name, fill=235)
        write_png(DOCS / "fashion-samples.png", np.asarray(canvas))
        explore = ["--data", str(data), "--weights", weights, "--class", "Dress", "--class", "Sneaker"]
        cinn("explore", *explore, "--axes", "3", "--steps", "9", "--images", "1000", "-o", str(tmp / "ex"))
        sheets = [np.asarray(Image.open(tmp / "ex" / f"{c}-axes.png")) for c in ("Dress", "Sneaker")]
        gap = np.full((sheets[0].shape[0], 12), 40, np.uint8)
        write_png(DOCS / "fashion-explore.png", np.concatenate([sheets[0], gap, sheets[1]], axis=1))
    print(f"wrote {DOCS / 'fashion-samples.png'} and {DOCS / 'fashion-explore.png'}")


def _label(folder: Path, stem: str) -> int:
    return int(Image.open(folder / f"{stem}-0001.png").text["cinn:digit"])


COLORIZE_PICKS = (
    "erase__giraffe.webp",
    "explore_farm_animals__cow.webp",
    "categorization__renewable__solar1.webp",
    "explore_monuments__france__pontduGard.webp",
)


PEOPLE_PICKS = (
    "libdlib19.1__libdlib19.1_examples_faces_2008_001009.webp",
    "libdlib19.1__libdlib19.1_examples_faces_2008_002470.webp",
    "libdlib19.1__libdlib19.1_examples_johns_John_Simm_000288_00470387.webp",
    "libdlib19.1__libdlib19.1_examples_faces_2009_004587.webp",
)


def colorize_figure(args, picks: list[Path], name: str) -> None:
    """Rows: gray input, original, 5 colourings; every photo scaled to 160 px high for the sheet."""
    weights = ["--weights", args.weights] if args.weights else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "gray").mkdir()
        for p in picks:
            Image.open(p).convert("L").save(tmp / "gray" / f"{p.stem}.png")
        cinn("colorize", str(tmp / "gray"), str(tmp / "out"), "-n", "5", "--seed", "1", "--no-latents", *weights)
        for p in picks:
            original = Image.open(p).convert("RGB")
            h = 160
            w = round(original.width * h / original.height)
            tiles = [Image.open(tmp / "gray" / f"{p.stem}.png").convert("RGB"), original]
            tiles += [Image.open(tmp / "out" / f"{p.stem}-{k}.png").convert("RGB") for k in range(1, 6)]
            rows += [np.asarray(t.resize((w, h), Image.Resampling.LANCZOS)) for t in tiles]
    widths = {r.shape[1] for r in rows}
    if len(widths) > 1:  # different aspect ratios: pad every tile to the widest
        wmax = max(widths)
        rows = [np.pad(r, ((0, 0), (0, wmax - r.shape[1]), (0, 0)), constant_values=40) for r in rows]
    write_png(DOCS / name, grid(rows, columns=7))
    print(f"wrote {DOCS / name}: {', '.join(p.name for p in picks)}")


TRANSFER_PAIRS = (
    ("categorization__monuments__IndiaGate.webp", "categorization__monuments__brandenburgGate.webp"),
    ("explore_farm_animals__cow.webp", "categorization__renewable__solar1.webp"),
)


def transfer_figure(args) -> None:
    """Rows: photo A, A's gray with A's own latent, A's gray with B's latent, photo B (160 px high)."""
    weights = ["--weights", args.weights] if args.weights else []
    root = photo_folder(args, "val")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, (a, b) in enumerate(TRANSFER_PAIRS):
            pa, pb = root / a, root / b
            gray = tmp / f"gray{i}" / f"{pa.stem}.png"
            gray.parent.mkdir()
            Image.open(pa).convert("L").save(gray)
            cinn("encode", str(pa), str(tmp / f"z{i}"), "--model", "colorize", "--verify", *weights)
            cinn("encode", str(pb), str(tmp / f"z{i}"), "--model", "colorize", "--verify", *weights)
            cinn("colorize", str(gray), str(tmp / f"out{i}"), "--from-latent", str(tmp / f"z{i}"), *weights)
            h = 160
            tiles = [
                Image.open(pa).convert("RGB"),
                Image.open(tmp / f"out{i}" / f"{pa.stem}-from-{pa.stem}.png").convert("RGB"),
                Image.open(tmp / f"out{i}" / f"{pa.stem}-from-{pb.stem}.png").convert("RGB"),
                Image.open(pb).convert("RGB"),
            ]
            rows += [np.asarray(t.resize((round(t.width * h / t.height), h), Image.Resampling.LANCZOS)) for t in tiles]
    wmax = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, wmax - r.shape[1]), (0, 0)), constant_values=40) for r in rows]
    write_png(DOCS / "colour-transfer.png", grid(rows, columns=4))
    print(f"wrote {DOCS / 'colour-transfer.png'}")


if __name__ == "__main__":
    main()
