"""How long ``cinn colorize`` takes to stop after SIGTERM while a huge photo is being read.

    python bench/sigterm_latency.py [--delays 2,5] [--compare-tree DIR]

Makes an 89-megapixel grayscale PNG (12,000 x 7,400, the largest size the input guard allows),
starts ``cinn colorize`` on it, sends SIGTERM after each delay (seconds) and prints the time from
the signal to the process's exit and its exit code (143 expected). ``--compare-tree DIR`` runs the
same against another checkout (``python -m cinn_cli`` in DIR), interleaved, in the same run.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def stop_time(tree: Path | None, photo: Path, out: Path, delay: float) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "cinn_cli", "colorize", str(photo), str(out), "-n", "1", "--seed", "0"]
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else None
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=300)
    return time.monotonic() - t0, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="2,5")
    parser.add_argument("--compare-tree", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "huge.png"
        x = np.linspace(0, 255, 12000, dtype=np.float32)[None, :] + np.linspace(0, 60, 7400, dtype=np.float32)[:, None]
        Image.fromarray(np.clip(x, 0, 255).astype(np.uint8)).save(photo)
        trees = [("this", None)] + ([("other", args.compare_tree.resolve())] if args.compare_tree else [])
        for delay in (float(d) for d in args.delays.split(",")):
            for label, tree in trees:
                seconds, code = stop_time(tree, photo, Path(tmp) / f"out-{label}-{delay}", delay)
                print(f"sigterm_latency tree={label} delay_s={delay:g} stop_s={seconds:.2f} exit={code}", flush=True)


if __name__ == "__main__":
    main()
