"""Wall time of whole commands, start-up included (EVALUATION.md, Speed).

    python bench/sample_speed.py [--runs 5] [--weights FILE]

Times ``cinn sample --digit 7 -n 64`` (into a fresh temporary folder each run, so nothing is
skipped) and, alternating with it in the same run, the reference ``python -c "import torch"``,
the floor any PyTorch command line pays. One warm-up each, then the median of ``--runs``. Last line:

    sample_speed median_s=<...> import_torch_s=<...> overhead_s=<median - import>
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description="time cinn sample --digit 7 -n 64")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()
    extra = ["--weights", args.weights] if args.weights else []
    reference = [sys.executable, "-c", "import torch"]
    ours, ref = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs + 1):
            cmd = [sys.executable, "-m", "cinn_cli", "sample", "--digit", "7", "-n", "64", "-o", f"{tmp}/{i}", *extra]
            a, b = wall(cmd), wall(reference)
            if i:  # the first round is the warm-up
                ours.append(a)
                ref.append(b)
    med, floor = statistics.median(ours), statistics.median(ref)
    print(f"cinn sample --digit 7 -n 64: {', '.join(f'{t:.2f}' for t in ours)} s")
    print(f"python -c 'import torch':    {', '.join(f'{t:.2f}' for t in ref)} s")
    print(f"sample_speed median_s={med:.2f} import_torch_s={floor:.2f} overhead_s={med - floor:.2f}")


if __name__ == "__main__":
    main()
