"""The shared training loop on a tiny config: model file, exact resume, NaN guard, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import TINY_TRAINING as TINY
from helpers import Terminal, run_tiny

from cinn_cli.cli.app import main
from cinn_cli.tasks import load_model
from cinn_cli.tasks.mnist import train as train_module
from cinn_cli.tasks.mnist.commands import MNIST_TEMPERATURE
from cinn_cli.tasks.mnist.model import MnistCINN, MnistConfig
from cinn_cli.tasks.mnist.train import MnistTask
from cinn_cli.training.loop import TrainingInterrupted, checkpoint_path, load_same_model, model_config


def test_training_writes_a_loadable_model_with_metrics(mnist_dir, tmp_path):
    out = tmp_path / "m.safetensors"
    model, result = run_tiny(mnist_dir, out)
    assert result.steps == 6 and result.skipped_steps == 0
    loaded, info = load_model(out)
    assert math.isfinite(info.metrics["test_bits_per_dim"])
    assert info.training["steps"] == 6 and info.training["preset"] == "default"
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert checkpoint_path(out).exists()


def test_resume_after_interruption_reproduces_the_uninterrupted_run(mnist_dir, tmp_path, monkeypatch):
    whole, _ = run_tiny(mnist_dir, tmp_path / "whole.safetensors", steps=10)

    calls = {"n": 0}
    original = MnistTask.batch

    def interrupted_batch(self, *args):
        calls["n"] += 1
        if calls["n"] == 7:  # stop before the 7th step draws its noise
            raise KeyboardInterrupt
        return original(self, *args)

    out = tmp_path / "split.safetensors"
    monkeypatch.setattr(MnistTask, "batch", interrupted_batch)
    with pytest.raises(TrainingInterrupted) as stopped:
        run_tiny(mnist_dir, out, steps=10)
    assert stopped.value.exit_code == 130 and "step 6" in str(stopped.value)
    monkeypatch.setattr(MnistTask, "batch", original)
    resumed, result = run_tiny(mnist_dir, out, steps=10, resume=True)
    assert result.steps == 10
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("stopped_call", [1, 3])  # the evaluation at step 4, and the final one at step 10
def test_stop_during_an_evaluation_is_finished_on_resume(mnist_dir, tmp_path, monkeypatch, stopped_call):
    """Stopped inside an evaluation (the long part of a step that a signal interrupts at once),
    --resume evaluates that step first: the model file ends with the uninterrupted run's weights
    (before, a stop in the final evaluation left the file one evaluation behind for good)."""
    whole, _ = run_tiny(mnist_dir, tmp_path / "whole.safetensors", steps=10)
    calls = {"n": 0}
    original = MnistTask.evaluate

    def interrupted_evaluate(self, *args):
        calls["n"] += 1
        if calls["n"] == stopped_call:
            raise KeyboardInterrupt
        return original(self, *args)

    out = tmp_path / "split.safetensors"
    monkeypatch.setattr(MnistTask, "evaluate", interrupted_evaluate)
    with pytest.raises(TrainingInterrupted):
        run_tiny(mnist_dir, out, steps=10)
    monkeypatch.setattr(MnistTask, "evaluate", original)
    _, result = run_tiny(mnist_dir, out, steps=10, resume=True)
    assert result.steps == 10 and result.metrics
    saved = load_model(out)[0].state_dict()
    for name, a in whole.state_dict().items():
        assert torch.equal(a, saved[name]), name


def test_non_finite_steps_never_reach_the_weights(mnist_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = MnistTask.loss

    def sometimes_nan(self, model, batch):
        calls["n"] += 1
        loss = original(self, model, batch)
        return loss * float("nan") if calls["n"] in (2, 3) else loss

    monkeypatch.setattr(MnistTask, "loss", sometimes_nan)
    model, result = run_tiny(mnist_dir, tmp_path / "m.safetensors", steps=5)
    assert result.skipped_steps == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cli_train_reports_and_writes(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(train_module.PRESETS, "default", train_module.PRESETS["default"].__class__(**TINY))
    out = tmp_path / "cli.safetensors"
    args = ["train", "mnist", "--data", str(mnist_dir), "--out", str(out), "--steps", "3", "--batch-size", "16"]
    result = CliRunner().invoke(main, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert out.exists() and "test bits per dim" in result.output


def test_bf16_training_on_the_cpu_is_finite_and_close_to_fp32(mnist_dir, tmp_path):
    _, fp32 = run_tiny(mnist_dir, tmp_path / "fp32.safetensors", steps=2)
    _, bf16 = run_tiny(mnist_dir, tmp_path / "bf16.safetensors", steps=2, precision="bf16")
    assert bf16.skipped_steps == 0 and math.isfinite(bf16.train_bits_per_dim)
    assert bf16.train_bits_per_dim != fp32.train_bits_per_dim  # autocast did run in bf16
    assert bf16.train_bits_per_dim == pytest.approx(fp32.train_bits_per_dim, abs=0.02)
    assert load_model(tmp_path / "bf16.safetensors")[1].training["precision"] == "bf16"


def test_cli_train_config_overrides_are_checked(mnist_dir, tmp_path):
    args = ["train", "mnist", "--data", str(mnist_dir), "--out", str(tmp_path / "c.safetensors"), "--steps", "1"]
    result = CliRunner().invoke(main, [*args, "--config", "blocks=(1,1)"])
    assert result.exit_code == 2 and "KEY=VALUE with a JSON value" in result.output
    result = CliRunner().invoke(main, [*args, "--config", "depth=3"])
    assert result.exit_code == 1 and "unknown config field(s) ['depth']" in result.output


def test_resume_refuses_a_checkpoint_of_another_model_in_one_sentence(mnist_dir, tmp_path):
    out = tmp_path / "r.safetensors"
    tiny = [f"--config=blocks={list(TINY['blocks'])}", f"--config=cond_channels={list(TINY['cond_channels'])}"]
    args = ["train", "mnist", "--data", str(mnist_dir), "--out", str(out), "--batch-size", "16", *tiny]
    first = CliRunner().invoke(main, [*args, "--steps", "2", "--config=hidden=[4,4,8]"])
    assert first.exit_code == 0, first.output
    ckpt = checkpoint_path(out)
    before = ckpt.read_bytes()

    # Same shapes, another clamp: loading would "work" and silently train a different model.
    result = CliRunner().invoke(
        main, [*args, "--steps", "4", "--resume", "--config=hidden=[4,4,8]", "--config=clamp=0.5"]
    )
    assert result.exit_code == 1 and result.exception.__class__ is SystemExit
    assert "was trained with clamp=1.0 but this run asks for clamp=0.5" in result.output
    # Other widths: one sentence, not PyTorch's list of shape mismatches.
    result = CliRunner().invoke(main, [*args, "--steps", "4", "--resume", "--config=hidden=[8,4,8]"])
    assert result.exit_code == 1 and "hidden=[4, 4, 8] but this run asks for hidden=[8, 4, 8]" in result.output
    assert "size mismatch" not in result.output and "Traceback" not in result.output

    # A checkpoint written before configs were stored in it: the weights' shapes still tell.
    state = torch.load(ckpt, weights_only=False)
    del state["config"]
    torch.save(state, ckpt)
    result = CliRunner().invoke(main, [*args, "--steps", "4", "--resume", "--config=hidden=[8,4,8]"])
    assert result.exit_code == 1 and "holds another model" in result.output and "size mismatch" not in result.output
    # The same model resumes.
    ckpt.write_bytes(before)
    result = CliRunner().invoke(main, [*args, "--steps", "4", "--resume", "--config=hidden=[4,4,8]"])
    assert result.exit_code == 0, result.output
    assert load_model(out)[1].training["steps"] == 4


def test_resume_takes_a_checkpoint_from_before_a_config_field_existed():
    """A checkpoint of the 3x3 default (its config has no ``mid_kernel``) is that field's default,
    3: it resumes under ``mid_kernel=3`` and is refused, naming the field, under the new default 1."""
    model = MnistCINN(MnistConfig(**TINY, mid_kernel=3))
    saved = model_config(model)
    del saved["mid_kernel"]
    state = {"config": saved, "model": model.state_dict()}
    load_same_model(MnistCINN(MnistConfig(**TINY, mid_kernel=3)), state, Path("x.ckpt"))
    with pytest.raises(ValueError, match=r"trained with mid_kernel=3 but this run asks for mid_kernel=1"):
        load_same_model(MnistCINN(MnistConfig(**TINY, mid_kernel=1)), state, Path("x.ckpt"))


def test_resume_refuses_a_checkpoint_of_another_task():
    model = MnistCINN(MnistConfig(**TINY))
    state = {"config": {"task": "colorize"}, "model": {}}
    with pytest.raises(ValueError, match=r"^x.ckpt is the checkpoint of a colorize model, not mnist$"):
        load_same_model(model, state, Path("x.ckpt"))


def test_cli_train_without_data_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.delenv("CINN_MNIST", raising=False)
    result = CliRunner().invoke(main, ["train", "mnist", "--out", str(tmp_path / "x.safetensors")])
    assert result.exit_code == 2 and "--data" in result.output


def test_cli_eval_prints_every_number(mnist_dir, tmp_path):
    out = tmp_path / "e.safetensors"
    run_tiny(mnist_dir, out, steps=2)
    args = [
        "eval",
        "mnist",
        "--data",
        str(mnist_dir),
        "--weights",
        str(out),
        "--per-digit",
        "3",
        "-t",
        "0.5",
        "-t",
        "1",
    ]
    result = CliRunner().invoke(main, [*args, "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    import json

    r = json.loads(result.stdout)
    assert math.isfinite(r["test_bits_per_dim"]) and r["frechet_floor_train_vs_test"] >= 0
    assert [s["temperature"] for s in r["samples"]] == [0.5, 1.0]
    for s in r["samples"]:
        assert 0 <= s["sample_accuracy"] <= 1 and len(s["per_digit_accuracy"]) == 10 and s["diversity"] > 0


def test_log_jsonl_has_one_record_per_evaluation(mnist_dir, tmp_path):
    import json

    log = tmp_path / "log.jsonl"
    run_tiny(mnist_dir, tmp_path / "m.safetensors", steps=8, log_jsonl=log)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [4, 8]
    for r in records:
        assert math.isfinite(r["test_bits_per_dim"]) and r["lr"] > 0 and r["grad_norm"] > 0 and r["seconds"] >= 0


def test_rising_held_out_metric_is_detected():
    from cinn_cli.training.loop import rose

    assert rose([2.0, 1.5, 1.6, 1.7, 1.8], 3)
    assert not rose([2.0, 1.5, 1.6, 1.55, 1.8], 3)
    assert not rose([1.0, 1.1, 1.2], 3)


def test_eval_record_stores_the_numbers_in_the_model_file(mnist_dir, tmp_path):
    import json

    out = tmp_path / "r.safetensors"
    run_tiny(mnist_dir, out, steps=2)
    before = load_model(out)[0].state_dict()
    args = ["eval", "mnist", "--data", str(mnist_dir), "--weights", str(out), "--per-digit", "2", "--record", "--json"]
    result = CliRunner().invoke(main, [*args, "--transfer-images", "7", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    model, info = load_model(out)
    assert info.metrics["test_bits_per_dim"] == json.loads(result.stdout)["test_bits_per_dim"]
    from cinn_cli.tasks.mnist.commands import MNIST_TRANSFER_TEMPERATURE

    transfers = info.metrics["style_transfer"]
    assert [st["temperature"] for st in transfers] == [MNIST_TRANSFER_TEMPERATURE, 1.0]
    for st in transfers:
        assert st["images"] == 7 and 0 <= st["accuracy"] <= 1 and len(st["per_digit_accuracy"]) == 10
        assert -1 <= st["slant_correlation"] <= 1 and -1 <= st["ink_correlation"] <= 1
    assert info.metrics["round_trip_exact"] == info.metrics["round_trip_images"]  # a fresh model is tame
    assert info.metrics["samples"][0]["temperature"] == MNIST_TEMPERATURE and "training" in dir(info)
    for (k, a), b in zip(before.items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_style_transfer_under_the_own_digit_is_the_exact_round_trip(mnist_dir, tmp_path):
    from cinn_cli.tasks.mnist.data import load_mnist
    from cinn_cli.tasks.mnist.evaluate import style_transfer

    out = tmp_path / "s.safetensors"
    run_tiny(mnist_dir, out, steps=2)
    model, _ = load_model(out)
    x, y = load_mnist(mnist_dir, "test")
    x, y = x[:6], y[:6]
    images, wanted = style_transfer(model, x, y, torch.device("cpu"), batch_size=4)
    assert images.shape == (60, 28, 28) and wanted.tolist() == [d for d in range(10) for _ in range(6)]
    for i in range(6):
        assert torch.equal(images[int(y[i]) * 6 + i], x[i])  # own digit: the image itself


def test_sigterm_checkpoints_and_resume_finishes_as_if_never_stopped(mnist_dir, tmp_path):
    """A real process, as a scheduler or cron stops it: SIGTERM mid-run writes the checkpoint and
    exits 143 with one line; --resume then ends with the weights of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def command(out, *extra):
        tiny = [f"--config={k}={list(v)}" for k, v in TINY.items()]
        return [
            sys.executable, "-m", "cinn_cli", "train", "mnist", "--data", str(mnist_dir), "--out", str(out),
            "--steps", "400", "--batch-size", "16", "--eval-every", "5", "--device", "cpu", *tiny, *extra,
        ]  # fmt: skip

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out, log = tmp_path / "stopped.safetensors", tmp_path / "log.jsonl"
    proc = subprocess.Popen(command(out, "--log-jsonl", str(log)), env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (log.exists() and log.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "continue with --resume" in stderr
    stopped_at = torch.load(checkpoint_path(out), weights_only=False)["step"]
    assert 10 <= stopped_at < 400

    resumed = subprocess.run(command(out, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    whole = subprocess.run(
        command(tmp_path / "whole.safetensors"), env=env, capture_output=True, text=True, timeout=300
    )
    assert whole.returncode == 0, whole.stderr
    a, b = load_model(out)[0].state_dict(), load_model(tmp_path / "whole.safetensors")[0].state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_init_fine_tunes_a_model_file_and_records_it(mnist_dir, tmp_path):
    tiny = [f"--config={k}={list(v)}" for k, v in TINY.items()]
    base = ["train", "mnist", "--data", str(mnist_dir), "--batch-size", "16", "--steps", "2"]
    first = tmp_path / "first.safetensors"
    assert CliRunner().invoke(main, [*base, "--out", str(first), *tiny]).exit_code == 0

    # --lr 0: the fine-tuned file holds exactly the init file's weights, and its architecture
    tuned = tmp_path / "tuned.safetensors"
    result = CliRunner().invoke(main, [*base, "--out", str(tuned), "--init", str(first), "--lr", "0"])
    assert result.exit_code == 0, result.output
    (a, a_info), (b, b_info) = load_model(first), load_model(tuned)
    assert b_info.config == a_info.config and b_info.config["blocks"] == list(TINY["blocks"])
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert b_info.training["init"] == f"{first} (sha256 {a_info.sha256})"
    assert b_info.training["init_training"] == a_info.training  # the chain of commands survives
    # a real fine-tune moves the weights
    moved = tmp_path / "moved.safetensors"
    assert CliRunner().invoke(main, [*base, "--out", str(moved), "--init", str(tuned)]).exit_code == 0
    lineage = load_model(moved)[1].training
    assert lineage["init_training"]["init_training"] == a_info.training  # two generations back
    assert not torch.equal(
        load_model(moved)[0].state_dict()["flow.steps.1.sub1.last.weight"],
        a.state_dict()["flow.steps.1.sub1.last.weight"],
    )

    refused = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "x.safetensors"), "--init", str(first), *tiny])
    assert refused.exit_code == 1 and "--config cannot be combined with --init" in refused.output
    wrong = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "y.safetensors"), "--init", "colorize"])
    assert wrong.exit_code == 1 and "needs a 'mnist' model" in wrong.output


def test_eval_mnist_names_its_stages_on_a_terminal(mnist_dir, tmp_path, monkeypatch):
    import sys

    from cinn_cli.tasks.mnist.evaluate import evaluate_mnist

    out = tmp_path / "e.safetensors"
    run_tiny(mnist_dir, out, steps=1)
    monkeypatch.setattr(sys, "stderr", Terminal())
    evaluate_mnist(
        weights=out,
        data_dir=mnist_dir,
        temperatures=[0.5, 1.0],
        per_digit=2,
        device=torch.device("cpu"),
        transfer_images=4,
    )
    shown = sys.stderr.getvalue()
    for stage in ("test bits/dim", "round trips", "classifier features", "style transfer", "samples at T 1"):
        assert stage in shown, stage
    assert "/6 [" in shown  # stages: bits/dim, round trips, features, transfer, two temperatures
