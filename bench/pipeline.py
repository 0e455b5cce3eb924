"""Throughput of ``cinn colorize`` over a folder of real photos against a pure I/O pass.

    python bench/pipeline.py [--photos DIR] [--limit 16] [-n 5] [--workers W] [--device auto]

Two passes over the same ``--limit`` photos (sorted by name), each into a fresh temporary folder,
alternating in each of ``--rounds`` rounds after a one-photo warm-up (model load, CUDA context):

* run: ``cinn colorize - OUT -n N --no-latents --seed 0 --workers W`` in this process (paths on
  stdin), timed from the command's start to its exit, so model loading is included but the
  Python and torch start-up (see cli_speed.py) is not;
* io: the same thread pool (``cinn_cli.batch.stream.Pool``, ``W`` workers) decoding each photo exactly as
  colorize does (``read_gray``) and encoding and atomically writing N full-size RGB PNGs with
  the same text chunks, with no model: the floor a perfectly overlapped pipeline can reach.

Latent files are left out of both (``--no-latents``): they are at the model's working size and
small next to full-size PNGs. Last line (medians of the rounds):

    pipeline images_per_s=<input photos per second of the run> io_ratio=<run time / io time>

io_ratio near 1 means the model hides behind decoding and encoding; on a CPU the model dominates.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = [Path("/work/shared/data/photos/val"), ROOT.parent / "shared" / "data" / "photos" / "val"]


def run_pass(paths: list[Path], out: Path, n: int, workers: int, device: str, batch_size: int) -> float:
    """Seconds for one ``cinn colorize`` over ``paths`` (exit code checked)."""
    from click.testing import CliRunner

    from cinn_cli.cli.app import main

    args = ["colorize", "-", str(out), "-n", str(n), "--no-latents", "--seed", "0", "--workers", str(workers)]
    args += ["--device", device, "--batch-size", str(batch_size)]
    stdin = "".join(f"{p}\n" for p in paths)
    t = time.perf_counter()
    result = CliRunner().invoke(main, args, input=stdin)
    seconds = time.perf_counter() - t
    if result.exit_code != 0:
        sys.exit(f"cinn colorize failed ({result.exit_code}):\n{result.output}")
    return seconds


def io_pass(paths: list[Path], out: Path, n: int, workers: int) -> float:
    """Seconds to decode each photo as colorize does and write N PNGs of its size, with no model."""
    from cinn_cli.batch.images import provenance_text
    from cinn_cli.batch.photos import encode_image, read_gray
    from cinn_cli.batch.stream import Pool
    from cinn_cli.files.atomic import atomic_write_bytes

    text = {**provenance_text("0" * 64), "cinn:temperature": "1.0", "cinn:source": "x", "cinn:seed": "0"}

    def write(target: Path, gray: np.ndarray, k: int) -> None:
        # gray tinted per channel: colour PNGs with the photo's detail, about what colorize writes
        rgb = (gray[..., None] * np.array([1.0, 0.9 - 0.02 * k, 0.75]) * 255).round().astype(np.uint8)
        atomic_write_bytes(target, encode_image(rgb, "png", {**text, "cinn:index": str(k)}))

    t = time.perf_counter()
    with Pool(workers) as pool:
        for path, decoded in pool.read_ahead(paths, read_gray):
            gray, _ = decoded
            for k in range(1, n + 1):
                pool.write(partial(write, out / f"{path.stem}-{k}.png", gray, k), lambda error: None)
    return time.perf_counter() - t


def main() -> None:
    from cinn_cli.batch.stream import default_workers

    parser = argparse.ArgumentParser(description="cinn colorize throughput against pure decode+encode")
    parser.add_argument("--photos", type=Path, default=next((p for p in PHOTOS if p.is_dir()), PHOTOS[0]))
    parser.add_argument("--limit", type=int, default=16, help="photos (the first, by name)")
    parser.add_argument("-n", type=int, default=5, help="colourings per photo")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    paths = paths[: args.limit]
    if not paths:
        sys.exit(f"{args.photos}: no photos")
    pixels = sum(np.prod(Image.open(p).size) for p in paths)
    print(
        f"{len(paths)} photos from {args.photos} ({pixels / len(paths) / 1e6:.2f} Mpixel mean), n={args.n}, "
        f"workers={args.workers}, device={args.device}, torch threads={torch.get_num_threads()}"
    )
    runs, ios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_pass(paths[:1], tmp / "warmup", args.n, args.workers, args.device, args.batch_size)
        for r in range(args.rounds):
            ios.append(io_pass(paths, tmp / f"io{r}", args.n, args.workers))
            runs.append(run_pass(paths, tmp / f"run{r}", args.n, args.workers, args.device, args.batch_size))
            print(f"round {r}: run {runs[-1]:.2f} s, io {ios[-1]:.2f} s")
    run, io_time = statistics.median(runs), statistics.median(ios)
    print(f"run {run:.2f} s ({len(paths) * args.n / run:.2f} outputs/s), io {io_time:.2f} s")
    print(f"pipeline images_per_s={len(paths) / run:.3f} io_ratio={run / io_time:.2f}")


if __name__ == "__main__":
    main()
