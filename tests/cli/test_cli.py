"""The command line: fast start, info, sample (files, seeds, skip-existing, JSON, errors)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import child_env, invoke, tiny_colorize_file, tiny_mnist_file, watchdog
from PIL import Image

from cinn_cli.batch.images import quantize
from cinn_cli.cli import app as cli
from cinn_cli.cli.app import main
from cinn_cli.clikit import runs
from cinn_cli.files.latents import load_latent
from cinn_cli.tasks import load_model
from cinn_cli.tasks.mnist.commands import MNIST_TEMPERATURE, parse_digits


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A tiny MNIST model whose parameters are all N(0, 0.05), the condition network's too."""
    return tiny_mnist_file(tmp_path_factory.mktemp("w") / "tiny.safetensors", 0, cond_std=0.05)


def run(*args):
    return invoke(*args, catch_exceptions=False)


def test_help_does_not_import_torch():
    code = (
        "import sys; from cinn_cli.cli import main; sys.argv = ['cinn', '--help']\n"
        "try: main()\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip().endswith("False")


def test_entry_collects_no_garbage_until_the_command_resolves_its_device(monkeypatch):
    """``entry`` (the executable) turns collection off for start-up; ``resolve_device``, which
    every model-running command calls after its imports, freezes what start-up made and turns
    collection back on, once."""
    seen = []
    monkeypatch.setattr(cli, "main", lambda: seen.append((gc.isenabled(), runs.resolve_device("cpu"), gc.isenabled())))
    frozen = gc.get_freeze_count()
    try:
        cli.entry()
        assert seen == [(False, torch.device("cpu"), True)]
        assert gc.get_freeze_count() > frozen and not runs._startup_gc_off
        runs.resolve_device("cpu")
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


def test_main_alone_leaves_garbage_collection_alone():
    frozen = gc.get_freeze_count()
    assert runs.resolve_device("cpu") == torch.device("cpu")
    assert gc.isenabled() and gc.get_freeze_count() == frozen


@pytest.mark.parametrize("command", ["sample", "colorize"])
def test_a_closed_stdout_ends_the_run_quietly(tiny_weights, tmp_path, command):
    """``cinn ... --json | head -1``: once the reader is gone the run stops with exit 1 and no
    message blaming the output folder; every file on disk is whole."""
    if command == "sample":
        args = ["sample", "-d", "0-9", "-n", "200", "--weights", tiny_weights, "-o", tmp_path / "o", "--json"]
    else:
        src = tmp_path / "in"
        src.mkdir()
        for i in range(400):
            Image.fromarray(np.full((16, 16), i % 256, np.uint8)).save(src / f"{i:03}.png")
        weights = tiny_colorize_file(tmp_path / "c.safetensors")
        args = ["colorize", src, tmp_path / "o", "-n", "2", "--weights", weights, "--json", "--no-latents"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cinn_cli", *map(str, args)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with watchdog(proc, 120):
        assert json.loads(proc.stdout.readline())["event"] == "written"
        proc.stdout.close()  # the pipe buffer (64 KiB) fills long before 2,000 / 800 lines are written
        err = proc.stderr.read().decode()
        proc.wait()
    assert proc.returncode == 1, err
    assert "Error" not in err and "Traceback" not in err, err
    written = sorted((tmp_path / "o").glob("*.png"))
    assert 0 < len(written) < 800
    for png in written:
        with Image.open(png) as im:
            im.load()
    assert not list((tmp_path / "o").glob(".*.tmp"))


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.output.startswith("cinn, version ")


@pytest.mark.parametrize(
    "spec, digits", [("7", [7]), ("3,5", [3, 5]), ("0-9", list(range(10))), ("1,4-6", [1, 4, 5, 6])]
)
def test_parse_digits(spec, digits):
    assert parse_digits(spec) == digits


def test_bad_digit_is_a_usage_error(tiny_weights, tmp_path):
    result = run("sample", "--digit", "12", "--weights", tiny_weights, "-o", tmp_path)
    assert result.exit_code == 2 and "digits must be 0-9" in result.output


def test_sample_writes_pngs_latents_and_grid(tiny_weights, tmp_path):
    result = run("sample", "--digit", "3,5", "-n", "3", "--seed", "1", "--weights", tiny_weights, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    expected = [f"{d}-{k:04d}.{ext}" for d in (3, 5) for k in (1, 2, 3) for ext in ("png", "safetensors")]
    assert names == sorted(expected + ["3-grid.png", "5-grid.png"])
    with Image.open(tmp_path / "3-0002.png") as im:
        assert im.size == (28, 28) and im.mode == "L"
        assert im.text["cinn:seed"] and "Machine-generated" in im.text["Comment"]


def test_same_seed_same_bytes_and_other_seed_differs(tiny_weights, tmp_path):
    for name, seed, bs in (("a", 1, 256), ("b", 1, 1), ("c", 2, 256)):
        assert (
            run(
                "sample",
                "-d",
                "7",
                "-n",
                "4",
                "--seed",
                seed,
                "--batch-size",
                bs,
                "--weights",
                tiny_weights,
                "-o",
                tmp_path / name,
            ).exit_code
            == 0
        )
    a = [(tmp_path / "a" / f"7-{k:04d}.png").read_bytes() for k in range(1, 5)]
    b = [(tmp_path / "b" / f"7-{k:04d}.png").read_bytes() for k in range(1, 5)]
    c = [(tmp_path / "c" / f"7-{k:04d}.png").read_bytes() for k in range(1, 5)]
    assert a == b
    assert a != c


def test_existing_outputs_are_skipped_unless_overwrite(tiny_weights, tmp_path):
    args = (
        "sample",
        "-d",
        "1",
        "-n",
        "2",
        "--seed",
        "3",
        "--weights",
        tiny_weights,
        "-o",
        tmp_path,
        "--json",
    )
    first = run(*args)
    assert [json.loads(line)["event"] for line in first.stdout.splitlines()] == [
        "written",
        "written",
        "summary",
    ]
    again = run(*args)
    summary = json.loads(again.stdout.splitlines()[-1])
    assert summary["written"] == 0 and summary["skipped"] == 2 and again.exit_code == 0
    forced = run(*args, "--overwrite")
    assert json.loads(forced.stdout.splitlines()[-1])["written"] == 2


def test_latent_file_decodes_to_the_sample(tiny_weights, tmp_path):
    assert run("sample", "-d", "4", "-n", "2", "--seed", "9", "--weights", tiny_weights, "-o", tmp_path).exit_code == 0
    model, info = load_model(tiny_weights)
    latent = load_latent(tmp_path / "4-0002.safetensors")
    assert (
        latent.condition == {"digit": 4}
        and latent.model_sha256 == info.sha256
        and latent.temperature == MNIST_TEMPERATURE
    )
    with torch.no_grad():
        x = model.inverse([z.unsqueeze(0) for z in latent.zs], torch.tensor([4]))
    with Image.open(tmp_path / "4-0002.png") as im:
        assert np.array_equal(quantize(x[0, 0]), np.asarray(im))


def test_unusable_weights_fail_in_one_sentence(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    result = CliRunner().invoke(main, ["sample", "--weights", str(bad), "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert "not a safetensors file" in result.output and "Traceback" not in result.output


def test_info_on_model_and_latent(tiny_weights, tmp_path):
    result = run("info", tiny_weights, "--json")
    meta = json.loads(result.stdout)
    assert meta["format"] == "cinn-model" and meta["metadata"]["task"] == "mnist"
    assert meta["parameters"] > 0 and meta["metadata"]["config"]["blocks"] == [1, 1, 1]
    run("sample", "-d", "2", "-n", "1", "--seed", "0", "--weights", tiny_weights, "-o", tmp_path)
    text = run("info", tmp_path / "2-0001.safetensors").output
    assert "cinn-latent" in text and "z2: (196,)" in text
