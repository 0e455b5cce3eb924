"""Race: the ``default`` preset against the ``paper`` preset.

Both presets train from scratch side by side (two processes, one thread each, so the machine's
load falls on both alike), then ``cinn eval`` scores both. With ``--minutes`` both get about the
same wall time: the number of steps each gets is set from a timing probe, both presets training
side by side for two minutes as in the race (each recipe's schedule is compressed to its step
count). With ``--full-recipe`` each runs its own complete recipe (MNIST: 10 epochs for
``default``, the reference's 60 for ``paper``); a rerun resumes runs a stopped session left in
``--out``, and ``--only PRESET`` trains one of them (a fixed number of steps: its quality stands
beside the other's from an earlier run). Either way the seconds each run actually took are read
back from the model files and printed, so a reader can check which got more time.

    python bench/preset_race.py --task mnist --minutes 20 --data ../shared/data/mnist --out /tmp/race
    python bench/preset_race.py --task mnist --full-recipe --data ../shared/data/mnist --out /tmp/race-full
    python bench/preset_race.py --task mnist --full-recipe --only default \
        --data ../shared/data/mnist --out /tmp/race-full
    python bench/preset_race.py --task colorize --minutes 20 \
        --data ../shared/data/photos/train --val ../shared/data/photos/val --out /tmp/race

Last line: ``preset_race task=<task> minutes=<m|full> <metric>_default=<..> <metric>_paper=<..> ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from cinn_cli.training.loop import checkpoint_path

# The probe: both presets train side by side, as in the race, for this long; each run's step
# count and seconds are read from the checkpoint SIGTERM makes it write.
PROBE_SECONDS = 120
SINGLE_THREAD = dict(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")


def train_command(args, preset: str, length: list[str], out: Path) -> list[str]:
    data = ["--data", str(args.data)] + (["--val", str(args.val)] if args.val else [])
    cmd = ["cinn", "train", args.task, *data, "--preset", preset, *length]
    return cmd + ["--out", str(out), "--checkpoint-minutes", "10"]


def probe_seconds_per_step(args, presets, scratch: Path) -> dict[str, float]:
    """Seconds per training step of each preset on 1 thread, all presets training at once.

    Timing each preset alone on an idle machine misjudged the race: the default's small
    convolutions took 0.22 s/step alone but 0.33 beside the paper preset's large matrix
    products, so the default got 15 % more time than the paper preset."""
    env = dict(os.environ, **SINGLE_THREAD)
    procs, outs = {}, {}
    for p in presets:
        outs[p] = scratch / f"probe-{p}.safetensors"
        cmd = train_command(args, p, ["--steps", "1000000", "--eval-every", "1000000000"], outs[p])
        procs[p] = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(PROBE_SECONDS)
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)  # checkpoints at the next step boundary, then exits
    seconds = {}
    for p, proc in procs.items():
        proc.wait()
        state = torch.load(checkpoint_path(outs[p]), map_location="cpu", weights_only=False)
        if state["step"] < 2:
            sys.exit(f"probe of {p} made {state['step']} steps in {PROBE_SECONDS} s; cannot time it")
        seconds[p] = state["seconds"] / state["step"]
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=["mnist", "colorize"], required=True)
    ap.add_argument("--minutes", type=float, default=20.0, help="Training wall time per preset.")
    ap.add_argument("--full-recipe", action="store_true", help="Each preset trains its whole recipe instead.")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--val", type=Path, default=None, help="Held-out photos (colorize).")
    ap.add_argument("--out", type=Path, required=True, help="Folder for the two model files and logs.")
    ap.add_argument("--eval-only", action="store_true", help="Score the model files a previous run left in --out.")
    ap.add_argument(
        "--only",
        choices=["default", "paper"],
        default=None,
        help="With --full-recipe: train and score this preset alone (its recipe is a fixed number of steps, so its "
        "quality can be set beside the other's from an earlier run; it still trains on one thread).",
    )
    args = ap.parse_args()
    if args.only and not args.full_recipe:
        ap.error("--only needs --full-recipe: a timed race needs both presets running side by side")
    args.out.mkdir(parents=True, exist_ok=True)
    presets = (args.only,) if args.only else ("default", "paper")

    if not args.eval_only:
        train_both(args, presets)
    report(args, presets)


def train_both(args, presets) -> None:
    """Train both side by side: each its whole recipe, or as many steps as the probe of its step
    time says fit in ``--minutes``."""
    length = {p: [] for p in presets}
    if args.full_recipe:
        for p in presets:
            if checkpoint_path(model_file(args, p)).exists():
                length[p] = ["--resume"]
    else:
        seconds = probe_seconds_per_step(args, presets, args.out)
        for p in presets:
            steps = max(10, int(args.minutes * 60 / seconds[p]))
            length[p] = ["--steps", str(steps)]
            print(f"probe {p}: {seconds[p]:.3f} s/step on 1 thread beside the other -> {steps} steps", file=sys.stderr)

    env = dict(os.environ, **SINGLE_THREAD)
    procs = {}
    for p in presets:
        cmd = train_command(args, p, length[p], model_file(args, p))
        log = open(args.out / f"{args.task}-{p}.log", "w")
        procs[p] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        print("started:", " ".join(cmd), file=sys.stderr)
    for p, proc in procs.items():
        if proc.wait() != 0:
            sys.exit(f"training {p} failed; see {args.out / f'{args.task}-{p}.log'}")


def model_file(args, preset: str) -> Path:
    return args.out / f"{args.task}-{preset}.safetensors"


def report(args, presets) -> None:
    """``cinn eval`` both model files; print a table and the summary line."""
    env = dict(os.environ, **SINGLE_THREAD)
    results = {}
    for p in presets:
        model = model_file(args, p)
        cmd = ["cinn", "eval", args.task, "--weights", str(model), "--json"]
        cmd += ["--data", str(args.data if args.task == "mnist" else (args.val or args.data))]
        r = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
        info = json.loads(
            subprocess.run(["cinn", "info", str(model), "--json"], check=True, capture_output=True, text=True).stdout
        )
        r["train_seconds"] = info["metadata"]["training"]["seconds"]
        r["train_steps"] = info["metadata"]["training"]["steps"]
        results[p] = r
        (args.out / f"{args.task}-{p}-eval.json").write_text(json.dumps(r, indent=1))

    if args.task == "mnist":
        keys = {
            "bpd": lambda r: r["test_bits_per_dim"],
            "bpd_median": lambda r: r["test_bits_per_dim_median"],
            "acc": lambda r: r["samples"][0]["sample_accuracy"],
            "worst_acc": lambda r: r["samples"][0]["worst_digit_accuracy"],
        }
    else:
        keys = {
            "val_bpd": lambda r: r["val_bits_per_dim"],
            "best_of_8": lambda r: r["best_of_8_rmse"],
            "colourfulness": lambda r: r["colourfulness_ratio"],
        }
    keys["seconds"] = lambda r: r["train_seconds"]
    keys["steps"] = lambda r: r["train_steps"]
    print(f"{'':>14}" + "".join(f" {p:>10}" for p in presets))
    for k, f in keys.items():
        print(f"{k:>14}" + "".join(f" {f(results[p]):>10.4g}" for p in presets))
    fields = " ".join(f"{k}_{p}={f(results[p]):.4g}" for k, f in keys.items() for p in presets)
    minutes = "full" if args.full_recipe else f"{args.minutes:g}"
    print(f"preset_race task={args.task} minutes={minutes} {fields}")


if __name__ == "__main__":
    main()
