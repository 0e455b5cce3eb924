"""Distributed training under torchrun (gloo on the CPU) computes what one process computes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from cinn_cli.cli.app import main
from cinn_cli.tasks import load_model
from cinn_cli.tasks.mnist.model import MnistCINN
from cinn_cli.tasks.mnist.train import MNIST_TRAIN_NOISE, PRESETS, MnistTask
from cinn_cli.training.loop import checkpoint_path
from cinn_cli.training.setup import with_config

# The paper preset (fully connected, no LR warm-up, Gaussian noise), shrunk: 3 steps at lr 5e-4
# move every weight by 10-100 % of its norm, so equal results are not equal initialisations.
TINY_PAPER = {"blocks": [2], "hidden": [16]}


def train_args(data, out, batch_size=8) -> list[str]:
    args = ["train", "mnist", "--preset", "paper", "--data", str(data), "--out", str(out), "--steps", "3"]
    args += ["--batch-size", str(batch_size), "--device", "cpu"]
    for key, value in TINY_PAPER.items():
        args += ["--config", f"{key}={value}".replace(" ", "")]
    return args


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(mnist_dir, tmp_path):
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    result = CliRunner().invoke(main, train_args(mnist_dir, one))
    assert result.exit_code == 0, result.output

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(
        [*torchrun, "-m", "cinn_cli", *train_args(mnist_dir, two)], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "world size 2 (gloo), global batch 8 (4 per process), lr 0.0005" in run.stderr
    assert run.stderr.count("cinn train: summary") == 1  # rank 0 reports for the job

    a, info_a = load_model(one)
    b, info_b = load_model(two)
    assert (info_a.training["world_size"], info_b.training["world_size"]) == (1, 2)
    torch.manual_seed(0)  # train_mnist's seed: the initial weights
    init = MnistCINN(with_config(PRESETS["paper"], TINY_PAPER)).state_dict()
    for name, wa in a.state_dict().items():
        wb, w0 = b.state_dict()[name], init[name]
        if not wa.is_floating_point() or name.endswith("perm"):
            assert torch.equal(wa, wb), name
            continue
        moved = (wa - w0).norm() / wa.norm()
        assert moved > 0.05, f"{name} barely trained ({moved:.2g}): the comparison would be vacuous"
        assert (wa - wb).norm() / wa.norm() < 1e-5, name
    assert info_a.metrics["test_bits_per_dim"] == pytest.approx(info_b.metrics["test_bits_per_dim"], rel=1e-6)
    # resuming either run continues the same noise stream: the RNG states match exactly
    ckpt_a, ckpt_b = (torch.load(checkpoint_path(p), weights_only=False) for p in (one, two))
    assert torch.equal(ckpt_a["noise_rng"], ckpt_b["noise_rng"]) and ckpt_a["step"] == ckpt_b["step"] == 3


def test_a_global_batch_that_does_not_split_evenly_is_a_clear_error(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")  # as torchrun --nproc_per_node 3 would set it
    result = CliRunner().invoke(main, train_args(mnist_dir, tmp_path / "x.safetensors", batch_size=8))
    assert result.exit_code == 1 and "divisible by the 3 processes" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_each_process_gets_its_rows_of_the_single_process_batch(mnist_dir, preset):
    task = MnistTask(mnist_dir, MNIST_TRAIN_NOISE[preset])
    idx = torch.tensor([5, 0, 17, 3, 90, 41])
    g_whole = torch.Generator().manual_seed(3)
    whole = task.batch(idx, g_whole, torch.device("cpu"))
    parts = []
    for rank in range(3):
        g = torch.Generator().manual_seed(3)
        parts.append(task.batch(idx, g, torch.device("cpu"), slice(rank * 2, rank * 2 + 2)))
        assert torch.equal(g.get_state(), g_whole.get_state())  # every process draws the same stream
    for k in range(2):
        assert torch.equal(torch.cat([p[k] for p in parts]), whole[k])


def test_each_process_takes_the_gpu_of_its_local_rank():
    from cinn_cli.training.distributed import rank_device

    assert rank_device(torch.device("cuda"), 3) == torch.device("cuda", 3)
    assert rank_device(torch.device("cuda:1"), 1) == torch.device("cuda", 1)
    assert rank_device(torch.device("cpu"), 2) == torch.device("cpu")
    with pytest.raises(ValueError, match="give --device cuda"):
        rank_device(torch.device("cuda:0"), 1)


def test_colorize_processes_get_their_rows_of_the_single_process_batch(tmp_path):
    """Crops, flips and noise are drawn for the whole global batch in every process."""
    import numpy as np
    from PIL import Image

    from cinn_cli.tasks.colorize.model import ColorizeCINN, ColorizeConfig
    from cinn_cli.tasks.colorize.train import COLORIZE_NOISE, ColorizeTask

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8)).save(tmp_path / f"p{i}.png")
    tiny = {"blocks": (1, 1), "hidden": (4, 4), "cond_channels": (2, 3), "cond_widths": (4, 4, 4), "global_dim": 4}
    model = ColorizeCINN(ColorizeConfig(**tiny, crop_size=16, work_size=16))
    task = ColorizeTask(model, tmp_path, None, COLORIZE_NOISE["default"], crops_per_photo=4)
    idx, cpu = torch.tensor([7, 2, 11, 0]), torch.device("cpu")
    g_whole = torch.Generator().manual_seed(5)
    whole = task.batch(idx, g_whole, cpu)
    parts = []
    for rank in range(2):
        g = torch.Generator().manual_seed(5)
        parts.append(task.batch(idx, g, cpu, slice(rank * 2, rank * 2 + 2)))
        assert torch.equal(g.get_state(), g_whole.get_state())
    for k in range(2):
        assert torch.equal(torch.cat([p[k] for p in parts]), whole[k])
