"""Store a model file's floating-point tensors in float16 (how the shipped weights are made).

    python bench/store_half.py IN.safetensors OUT.safetensors

The model is loaded strictly (``cinn_cli.tasks.load_model``) and written again with
``save_model(..., half=True)``: config, training record and metrics are carried over unchanged
(loading returns float32). Re-run ``cinn eval`` on OUT before shipping it: the shipped weights
are float16 only where the evaluation numbers stay where they were.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cinn_cli.files.model_file import save_model  # noqa: E402
from cinn_cli.tasks import load_model  # noqa: E402


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    source, target = (Path(a) for a in argv)
    if source.resolve() == target.resolve():
        raise SystemExit("store_half: write to another file (IN stays as it is)")
    model, info = load_model(source)
    save_model(model, target, training=info.training, metrics=info.metrics, half=True)
    print(f"wrote {target} ({target.stat().st_size / 2**20:.1f} MiB, float16) from {source}")


if __name__ == "__main__":
    main(sys.argv[1:])
