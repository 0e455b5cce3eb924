#!/usr/bin/env bash
# The GPU measurements this project owes, as one prepared command for a session that is lent a
# device machine (15 minutes of device time in all, at most 10 per command; bench/README.md).
#
#   bash bench/gpu_session.sh stage     # here: data and the FrEIA wheel into .gpu/ (git-ignored)
#   bash bench/gpu_session.sh run       # there, from the repository root:
#       run(command="bash bench/gpu_session.sh run", carry=[".gpu"], timeout_s=600)
#
# "run" needs only what the device image already has (python3 with CUDA PyTorch, click, pillow,
# scikit-image, tqdm, rich, safetensors) and .gpu/; nothing is fetched. Everything it prints also
# goes to $OUT/gpu_session.log. It measures, each step under its own time limit so that one
# hanging step cannot eat the lease (the limits add up to 540 s, inside one 600 s call with the
# install):
#   1. training speed of both MNIST presets, fp32 and bf16, against FrEIA (bench/train_speed.py);
#   2. cinn colorize throughput on the 41 val photos, -n 5, against a pure I/O pass, with the
#      default workers and with 12 (bench/pipeline.py);
#   3. cinn sample throughput: 10 x 1000 digits with latents, grids off;
#   4. whether outputs are batch-invariant on this GPU: cinn sample --batch-size 1 against 256,
#      and cinn colorize --batch-size 1 against 8 (README: on the CPU they are not, which is why
#      photos are not batched together; on a GPU that would pay only if they were).
# A CPU smoke test of the script itself: DEVICE=cpu QUICK=1 bash bench/gpu_session.sh run
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
stage=.gpu

if [[ "${1:-}" == stage ]]; then
    shared=${SHARED:-$here/../shared}
    set -e
    mkdir -p "$stage/data" "$stage/whl"
    rm -rf "$stage/data/mnist" "$stage/data/val"
    cp -r "$shared/data/mnist" "$stage/data/mnist"
    cp -r "$shared/data/photos/val" "$stage/data/val"
    # FrEIA 0.2 is an sdist on PyPI: build its (pure Python) wheel here, install it there offline
    python3 -m pip wheel -q --no-deps -w "$stage/whl" freia==0.2
    du -sh "$stage"
    exit 0
fi
if [[ "${1:-}" != run ]]; then
    echo "usage: bash bench/gpu_session.sh stage|run" >&2
    exit 2
fi

device=${DEVICE:-cuda}
quick=${QUICK:-0}
out=${OUT:-$here/$stage/out}
mkdir -p "$out"
exec > >(tee -a "$out/gpu_session.log") 2>&1
export PYTHONUNBUFFERED=1
status=0
step() { echo; echo "== $(date -u +%T) $*"; }
# run a step under a time limit; a failed step is reported (and its status returned) and the
# others still run
try() {
    local limit=$1 rc=0
    shift
    timeout "$limit" "$@" || rc=$?
    if ((rc)); then
        echo "!! failed or timed out ($rc): $*"
        status=1
    fi
    return $rc
}

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "(no nvidia-smi)"
nproc
step "install (offline: the image's packages, the carried FrEIA wheel)"
python3 -m pip install -q --no-index --no-deps --target /tmp/site "$stage"/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
# cinn itself: an editable install needs the image's setuptools to build wheels offline (an old
# one without the wheel package cannot). Failing that, the source tree itself, with weights/
# linked where the installed package has it (cinn_cli/weights; removed again on exit).
if ! python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>/tmp/pip-cinn.err; then
    echo "(editable install failed: $(tail -n 1 /tmp/pip-cinn.err); running from the source tree)"
    if [[ ! -e cinn_cli/weights ]]; then
        ln -s ../weights cinn_cli/weights && trap 'rm -f cinn_cli/weights' EXIT
    fi
    export PYTHONPATH="$PWD:/tmp/site"
fi
python3 -c "import torch, cinn_cli.cli; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

if [[ $quick == 1 ]]; then
    speed_args=(--steps 2 --rounds 1 --warmup 0) photos=3 rounds=1 per_digit=20
else
    speed_args=() photos=41 rounds=3 per_digit=1000
fi

step "1. training speed (bench/train_speed.py)"
try 150 python3 bench/train_speed.py --device "$device" "${speed_args[@]}"

step "2. colorize throughput (bench/pipeline.py, $photos val photos, -n 5)"
try 90 python3 bench/pipeline.py --photos "$stage/data/val" --limit "$photos" --device "$device" --rounds "$rounds"
try 60 python3 bench/pipeline.py --photos "$stage/data/val" --limit "$photos" --device "$device" --rounds "$rounds" \
    --workers 12

work=$(mktemp -d)
step "3. sample throughput (10 digits x $per_digit, latents on, grids off)"
start=$(date +%s.%N)
try 90 python3 -m cinn_cli sample -d 0-9 -n "$per_digit" --seed 0 --no-grid --device "$device" -o "$work/s" &&
    python3 -c "import sys; n, t = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2]); \
print(f'sample: {n} digits in {t:.1f} s (start-up included): {n / t:.0f} digits/s')" \
    "$((10 * per_digit))" "$start" "$(date +%s.%N)"

step "4. batch invariance"
try 30 python3 -m cinn_cli sample -d 0-9 -n 32 --seed 1 --no-grid --no-latents --device "$device" --batch-size 1 \
    -o "$work/b1"
try 30 python3 -m cinn_cli sample -d 0-9 -n 32 --seed 1 --no-grid --no-latents --device "$device" --batch-size 256 \
    -o "$work/b256"
ls "$stage/data/val" | head -3 | sed "s|^|$stage/data/val/|" > "$work/photos.txt"
try 30 python3 -m cinn_cli colorize - "$work/c1" -n 5 --seed 1 --no-latents --device "$device" --batch-size 1 \
    < "$work/photos.txt"
try 30 python3 -m cinn_cli colorize - "$work/c8" -n 5 --seed 1 --no-latents --device "$device" --batch-size 8 \
    < "$work/photos.txt"
try 30 python3 - "$work" <<'PY'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

work = Path(sys.argv[1])
for a, b in (("b1", "b256"), ("c1", "c8")):
    files = sorted(p.name for p in (work / a).glob("*.png"))
    values = differing = files_differing = 0
    for name in files:
        x = np.asarray(Image.open(work / a / name), dtype=np.int16)
        y = np.asarray(Image.open(work / b / name), dtype=np.int16)
        values += x.size
        differing += int((x != y).sum())
        files_differing += bool((x != y).any())
    print(f"batch invariance {a} vs {b}: {len(files)} files, {files_differing} differ, "
          f"{differing} of {values} values")
PY
rm -rf "$work"
step "done (status $status)"
exit $status
