"""SHA-256 of every output of a fixed list of cinn commands, to prove that a refactor changed no byte.

    python bench/output_digests.py                      # this checkout's `cinn` (the active venv)
    python bench/output_digests.py --cinn OLD/.venv/bin/cinn  # another checkout's installed cinn
    python bench/output_digests.py --photos DIR         # photos to colorize (default: 3 val photos)

For the commit before a change: `git worktree add OLD <commit>`, install it there
(`python3 -m venv OLD/.venv && OLD/.venv/bin/pip install torch==2.13.0 -e OLD`), then diff the two
listings: every line is
`<sha256>  <command number>/<relative path>`, plus one line per command for its `--json` lines with
the timing fields removed. The two tiny training runs are hashed by what they trained (the model
file's tensors, config and metrics), not by their wall times. The shipped models, fixed seeds
and fixed inputs make the list deterministic on one machine (float results can differ between
CPU types, so compare within one machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos" / "val"
MNIST = ROOT.parent / "shared" / "data" / "mnist"
TIMING_KEYS = {"seconds", "elapsed", "elapsed_s", "images_per_s", "time", "wall_s", "duration_s"}

# Each entry: the arguments after `cinn`. {W} is the work folder, {P} the photo folder, {M} MNIST's.
COMMANDS = [
    "sample --digit 3,7 -n 4 --seed 1 -o {W}/s --json",
    "sample --from-latent {W}/s/3-0001.safetensors -d 0-2 -o {W}/st --json",
    "sample --from-latent {W}/s -o {W}/rt --json",
    "sample --interpolate {W}/s/3-0001.safetensors {W}/s/7-0002.safetensors --steps 4 -o {W}/ip --json",
    "encode {W}/s/3-0001.png {W}/enc --digit 3 --verify --json",
    "sample --from-latent {W}/enc -o {W}/dec --json",
    "colorize {P} {W}/c -n 3 --seed 2 --json",
    "encode {P} {W}/cz --model colorize --verify --json",
    "colorize {P} {W}/cdec --from-latent {W}/cz --seed 3 --json",
    # tiny seeded training runs: the weights and metrics they write (not their wall times)
    "train mnist --data {M} --out {W}/tm/m.safetensors --steps 3 --batch-size 16 --eval-every 3 --seed 0 "
    "--config blocks=[1,1,1] --config hidden=[4,4,8] --config cond_channels=[2,2,3]",
    "train colorize --data {P} --val {P} --out {W}/tc/c.safetensors --steps 3 --batch-size 4 --eval-every 3 "
    "--seed 0 --config blocks=[1,1] --config hidden=[4,4] --config cond_channels=[2,3] "
    "--config cond_widths=[4,4,4] --config global_dim=4 --config crop_size=16 --config work_size=16",
]
# what a training run writes beside its wall times: the model file's tensors, config and metrics
TRAINED = ("tm", "tc")


def strip_timings(line: str) -> str:
    """A JSON line without the fields that hold wall times (they differ between runs)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return line
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k not in TIMING_KEYS and not k.endswith("_seconds")}
    return json.dumps(obj, sort_keys=True)


def run_all(cinn: list[str], env: dict, work: Path, photos: Path) -> list[str]:
    lines = []
    for number, template in enumerate(COMMANDS, 1):
        args = template.format(W=work, P=photos, M=MNIST).split()
        done = subprocess.run([*cinn, *args], env=env, capture_output=True, text=True, timeout=900)
        stdout = (
            "\n".join(strip_timings(x) for x in done.stdout.splitlines())
            .replace(str(work), "W")
            .replace(str(photos), "P")
        )
        digest = hashlib.sha256(stdout.encode()).hexdigest()
        lines.append(f"{digest}  {number}/stdout (rc {done.returncode}) cinn {template}")
        if done.returncode != 0:
            sys.stderr.write(f"command {number} exited {done.returncode}: {done.stderr[-2000:]}\n")
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        relative = path.relative_to(work)
        if relative.parts[0] in TRAINED:
            if path.suffix != ".safetensors":
                continue  # the checkpoint: it records wall times; its weights are the model file's
            digest = trained_model_digest(path)
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {relative}")
    return lines


def trained_model_digest(path: Path) -> str:
    """SHA-256 of a trained model file's tensor bytes, config and metrics (its training record
    holds the run's seconds, which differ between runs)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    metadata = json.loads(raw[8 : 8 + n]).get("__metadata__", {})
    kept = json.dumps({k: metadata.get(k) for k in ("config", "metrics")}, sort_keys=True)
    return hashlib.sha256(kept.encode() + raw[8 + n :]).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cinn", default=shutil.which("cinn") or "cinn", help="the cinn executable to run")
    parser.add_argument("--photos", type=Path, default=None, help="photo folder (default: 3 val photos)")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cinn = [args.cinn]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        photos = args.photos
        if photos is None:
            photos = Path(tmp) / "photos"
            photos.mkdir()
            for src in sorted(PHOTOS.iterdir())[:3]:
                shutil.copy(src, photos / src.name)
        for line in run_all(cinn, env, work, photos):
            print(line)


if __name__ == "__main__":
    main()
