"""Wall time of whole commands, start-up included (EVALUATION.md, Speed).

    python bench/cli_speed.py [--runs 5] [--work-size 64] [--compare-tree DIR]

Times, with the shipped models, into a fresh temporary folder each run (so nothing is skipped):

* ``cinn sample --digit 7 -n 64``;
* ``cinn colorize photo.png OUT -n 5`` on a 1600x1000 photo (a validation photo from
  ``../shared/data/photos/val`` resized to that size, or a synthetic one when absent);

alternating, in the same run, with the reference ``python -c "import torch"`` (the floor every
PyTorch command line pays). ``--work-size N`` adds the same colorize command at working short
side N (``colorize_wsN``), to price the shipped model's working size against another.
``--compare-tree DIR`` adds both commands run from another checkout's code (``python -m cinn_cli``
in DIR, e.g. ``git worktree add /tmp/prev <commit>``), interleaved in the same rounds, and
prints the median of the paired differences (this tree minus that one).
One warm-up round, then the median of ``--runs``. Last lines:

    sample_speed median_s=<...> import_torch_s=<...> overhead_s=<median - import>
    colorize_speed median_s=<...> import_torch_s=<...> overhead_s=<...>
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
VAL = ROOT.parent / "shared" / "data" / "photos" / "val" / "explore_farm_animals__cow.webp"


def wall(cmd: list[str], cwd: Path | None = None) -> float:
    """Seconds ``cmd`` takes; with ``cwd``, ``python -m cinn_cli`` runs the code found there."""
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    return time.perf_counter() - t


def photo(path: Path) -> Path:
    if VAL.exists():
        Image.open(VAL).convert("RGB").resize((1600, 1000), Image.Resampling.LANCZOS).save(path)
    else:
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (1000, 1600, 3), dtype=np.uint8)).save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="time whole cinn commands against a bare torch import")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work-size", type=int, default=None, help="Also time colorize at this working size.")
    parser.add_argument("--compare-tree", type=Path, default=None, help="Also time the code of this checkout.")
    args = parser.parse_args()
    cinn = [sys.executable, "-m", "cinn_cli"]
    reference = [sys.executable, "-c", "import torch"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = photo(tmp / "photo.png")

        def colorize(out: Path, *extra: str) -> list[str]:
            return [*cinn, "colorize", str(src), str(out), "-n", "5", *extra]

        commands = {
            "sample": lambda i: [*cinn, "sample", "--digit", "7", "-n", "64", "-o", str(tmp / f"s{i}")],
            "colorize": lambda i: colorize(tmp / f"c{i}"),
        }
        if args.work_size:
            ws = str(args.work_size)
            commands[f"colorize_ws{ws}"] = lambda i: colorize(tmp / f"w{i}", "--work-size", ws)
        base = list(commands)
        times: dict[str, list[float]] = {name: [] for name in [*commands, "import"]}
        if args.compare_tree:
            times.update({f"{name}_other": [] for name in base})
        for i in range(args.runs + 1):
            results = {name: wall(make(i), ROOT) for name, make in commands.items()}
            if args.compare_tree:
                results.update({f"{n}_other": wall(commands[n](f"o{i}"), args.compare_tree) for n in base})
            results["import"] = wall(reference)
            if i:  # round 0 is the warm-up
                for name, t in results.items():
                    times[name].append(t)
    floor = statistics.median(times["import"])
    for name, ts in times.items():
        print(f"{name:9s} {', '.join(f'{t:.2f}' for t in ts)} s")
    for name in [n for n in times if n != "import"]:
        med = statistics.median(times[name])
        print(f"{name}_speed median_s={med:.2f} import_torch_s={floor:.2f} overhead_s={med - floor:.2f}")
    if args.compare_tree:
        for name in base:
            diff = statistics.median(a - b for a, b in zip(times[name], times[f"{name}_other"], strict=True))
            print(f"{name}_vs_other paired_median_diff_s={diff:+.2f}")


if __name__ == "__main__":
    main()
