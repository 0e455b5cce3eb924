"""Does dropout on the condition features help the colorization model generalise? One fine-tune arm.

    python bench/condition_dropout.py --p 0.2 --out drop.safetensors     # ~1,200 s on one thread
    python bench/condition_dropout.py --p 0 --out ctrl.safetensors       # the control, same recipe

Fine-tunes the shipped colorization model exactly as `cinn train colorize --init colorize --data
../shared/data/photos/train --data SPLIT/extra-train --val ../shared/data/photos/val --steps 2000
--lr 1.5e-4 --crop-sizes 64,128 --seed 0 --compile off` would (session 17's continuation recipe;
SPLIT from `python bench/everyday_split.py ../shared/data/photos/extra SPLIT`), with element-wise
dropout of probability ``--p`` on every level's condition features while training (none at
evaluation, so the model file is an ordinary one). Score the result with `cinn eval colorize
--data ../shared/data/photos/val --weights FILE -n 8 --seed 0 --device cpu --json
--level-temperatures 1,1,0.97`. Results: docs/colorize-results.md, section 8.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from cinn_cli.tasks.colorize import model as colorize_model
from cinn_cli.tasks.colorize.train import train_colorize

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=float, required=True, help="dropout probability on the condition features (0: control)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--extra", type=Path, default=Path("SPLIT/extra-train"), help="everyday_split.py's extra-train")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1.5e-4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    features = colorize_model.ColorizeCINN.cond_feats

    def dropped_features(self, L, dtype=None):
        feats = features(self, L, dtype)
        return [F.dropout(f, args.p) for f in feats] if self.training and args.p > 0 else feats

    colorize_model.ColorizeCINN.cond_feats = dropped_features
    train_colorize(
        data_dir=[PHOTOS / "train", args.extra],
        val_dir=PHOTOS / "val",
        preset="default",
        epochs=None,
        batch_size=None,
        lr=args.lr,
        seed=0,
        steps=args.steps,
        crop_sizes=(64, 128),
        init="colorize",
        out=args.out,
        device=torch.device("cpu"),
        progress=False,
        compile_mode="off",
        log_jsonl=args.out.with_suffix(".jsonl"),
        checkpoint_minutes=5,
    )


if __name__ == "__main__":
    main()
