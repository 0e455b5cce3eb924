"""Store a model file's floating-point tensors in float16 (how the shipped weights are made).

    python bench/store_half.py IN.safetensors OUT.safetensors [--level-temperatures 1,1,0.97]

The model is loaded strictly (``cinn_cli.tasks.load_model``) and written again with
``save_model(..., half=True)``: config, training record and metrics are carried over unchanged
(loading returns float32). ``--level-temperatures`` (colorization) also sets the file's own
sampling factors per latent level, finest first, which ``cinn colorize`` uses by default; the
tensors do not change, and the training record keeps the setting under ``set_after_training``.
Re-run ``cinn eval`` on OUT before shipping it: the shipped weights are float16 only where the
evaluation numbers stay where they were.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cinn_cli.files.model_file import save_model  # noqa: E402
from cinn_cli.tasks import load_model  # noqa: E402


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path)
    ap.add_argument("target", type=Path)
    ap.add_argument("--level-temperatures", default=None, metavar="T,..,T")
    args = ap.parse_args(argv)
    if args.source.resolve() == args.target.resolve():
        raise SystemExit("store_half: write to another file (IN stays as it is)")
    model, info = load_model(args.source)
    training = dict(info.training)
    if args.level_temperatures is not None:
        temps = tuple(float(v) for v in args.level_temperatures.split(","))
        if not hasattr(model, "check_level_temperatures"):
            raise SystemExit(f"store_half: a {info.task} model has no latent levels to set temperatures for")
        model.check_level_temperatures(temps)
        model.config = dataclasses.replace(model.config, level_temperatures=temps)
        training["set_after_training"] = {
            "level_temperatures": list(temps),
            "by": "bench/store_half.py --level-temperatures (sampling defaults only; tensors unchanged)",
        }
    save_model(model, args.target, training=training, metrics=info.metrics, half=True)
    print(f"wrote {args.target} ({args.target.stat().st_size / 2**20:.1f} MiB, float16) from {args.source}")


if __name__ == "__main__":
    main(sys.argv[1:])
