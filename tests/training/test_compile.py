"""``cinn train --compile auto|on|off`` (issue 24): the decision, and a compiled run that trains
the same weights as an eager one to float rounding, its compile time reported apart."""

from __future__ import annotations

import shutil

import pytest
import torch
from helpers import run_tiny

from cinn_cli.training import compiling
from cinn_cli.training.compiling import COMPILE_MIN_STEPS, decide

CPU = torch.device("cpu")


def test_auto_compiles_long_runs_only_and_says_why():
    assert decide("off", 10**6, CPU) == (False, "off")
    assert decide("auto", COMPILE_MIN_STEPS - 1, CPU)[0] is False
    assert "fewer than" in decide("auto", 10, CPU)[1]
    if compiling.compile_unavailable(CPU) is None:
        assert decide("auto", COMPILE_MIN_STEPS, CPU)[0] is True
        assert decide("on", 1, CPU) == (True, "on")
    assert decide("auto", 10**6, torch.device("mps"))[0] is False
    assert decide("auto", 10**6, CPU, min_steps=None) == (
        False,
        "auto: not compiled (no measured gain for this task's step)",
    )
    assert decide("auto", 99, CPU, min_steps=100)[0] is False
    with pytest.raises(ValueError, match="--compile on: .*MPS"):
        decide("on", 10, torch.device("mps"))
    with pytest.raises(ValueError, match="must be one of"):
        decide("sometimes", 10, CPU)


def test_without_a_cxx_compiler_on_is_refused_and_auto_stays_eager(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="C\\+\\+ compiler"):
        decide("on", 10, CPU)
    compiled, reason = decide("auto", 10**6, CPU)
    assert not compiled and "C++ compiler" in reason


def test_the_option_offers_exactly_the_loop_modes():
    from cinn_cli.clikit.training import _TRAINING_OPTIONS

    @click_command_with(_TRAINING_OPTIONS)
    def cmd(**_):
        pass

    option = next(p for p in cmd.params if p.name == "compile_mode")
    assert tuple(option.type.choices) == compiling.COMPILE_MODES and option.default == "auto"


def click_command_with(options):
    import click

    def wrap(f):
        for option in reversed(options):
            f = option(f)
        return click.command()(f)

    return wrap


@pytest.mark.skipif(compiling.compile_unavailable(CPU) is not None, reason="no C++ compiler for TorchInductor")
def test_a_compiled_run_trains_the_eager_weights_and_times_its_compile(mnist_dir, tmp_path):
    from cinn_cli.files.model_file import read_model_info

    eager_model, eager = run_tiny(mnist_dir, tmp_path / "eager.safetensors", steps=3)
    compiled_model, compiled = run_tiny(mnist_dir, tmp_path / "compiled.safetensors", steps=3, compile_mode="on")
    assert eager.compile == "off" and eager.compile_seconds is None
    assert compiled.compile == "on" and compiled.compile_seconds > 0
    # the compile is not training time: counted, it would put the compiled run past this bound
    assert compiled.seconds < eager.seconds + 0.5 * compiled.compile_seconds
    for (name, a), b in zip(eager_model.state_dict().items(), compiled_model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), name
    info = read_model_info(tmp_path / "compiled.safetensors").training
    assert (
        info["compile_seconds"] > 0
        and "compile_seconds" not in read_model_info(tmp_path / "eager.safetensors").training
    )


def test_auto_leaves_default_colorization_runs_eager():
    """Measured to pay only after ~15,600 steps (bench/compile_speed.py): auto must not spend
    minutes compiling the default colorization run."""
    from cinn_cli.tasks.colorize.train import COLORIZE_RECIPES, ColorizeTask
    from cinn_cli.tasks.mnist.train import MnistTask

    recipe, photos = COLORIZE_RECIPES["default"], 396  # train/ + extra/, 64 crops of each per epoch
    default_steps = recipe.epochs * photos * 64 // recipe.batch_size
    assert decide("auto", default_steps, CPU, ColorizeTask.compile_min_steps)[0] is False
    assert getattr(MnistTask, "compile_min_steps", COMPILE_MIN_STEPS) == COMPILE_MIN_STEPS
