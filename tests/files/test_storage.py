"""Model files: round trip, strict loading and one-sentence errors."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import TINY_MNIST
from safetensors.torch import save_file

from cinn_cli.files.atomic import atomic_write_bytes
from cinn_cli.files.model_file import ModelFileError, read_model_info, save_model
from cinn_cli.tasks import load_model
from cinn_cli.tasks.mnist.model import MnistCINN, MnistConfig


@pytest.fixture
def tiny_file(tmp_path):
    torch.manual_seed(0)
    model = MnistCINN(TINY_MNIST)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    path = tmp_path / "tiny.safetensors"
    save_model(model, path, training={"command": "test"}, metrics={"test_bits_per_dim": 1.5})
    return model, path


def test_round_trip_restores_every_tensor_and_the_config(tiny_file):
    model, path = tiny_file
    loaded, info = load_model(path)
    assert info.task == "mnist" and MnistConfig.from_dict(info.config) == TINY_MNIST
    assert info.metrics == {"test_bits_per_dim": 1.5} and info.training == {"command": "test"}
    assert len(info.sha256) == 64
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    x = torch.rand(3, 1, 28, 28)
    labels = torch.tensor([0, 4, 9])
    assert torch.allclose(model.log_prob(x, labels), loaded.log_prob(x, labels))


def test_half_precision_file_loads_as_float32(tmp_path, tiny_file):
    model, _ = tiny_file
    path = tmp_path / "half.safetensors"
    save_model(model, path, half=True)
    loaded, _ = load_model(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(tmp_path / "nope.safetensors")


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"hello, this is not a model at all" * 10)
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        load_model(path)


def test_safetensors_without_cinn_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ModelFileError, match="not a cinn model file"):
        load_model(path)


def test_truncated_file(tiny_file):
    _, path = tiny_file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(path)


def test_config_that_does_not_match_the_tensors(tmp_path, tiny_file):
    model, _ = tiny_file
    other = MnistConfig(blocks=(1, 1, 1), hidden=(8, 4, 8), cond_channels=(2, 2, 3))
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": "cinn-model",
        "format_version": "1",
        "task": "mnist",
        "config": json.dumps(other.to_dict()),
    }
    path = tmp_path / "mismatch.safetensors"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ModelFileError, match="does not match the tensors"):
        load_model(path)


def test_unknown_format_version_and_bad_config(tmp_path):
    path = tmp_path / "v9.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"format": "cinn-model", "format_version": "9"})
    with pytest.raises(ModelFileError, match="version '9' is not supported"):
        read_model_info(path)
    save_file(
        {"w": torch.zeros(1)},
        str(path),
        metadata={"format": "cinn-model", "format_version": "1", "config": "{"},
    )
    with pytest.raises(ModelFileError, match="not JSON"):
        read_model_info(path)
    cfg = json.dumps({"arch": "multiscale", "bogus": 1})
    save_file(
        {"w": torch.zeros(1)},
        str(path),
        metadata={"format": "cinn-model", "format_version": "1", "config": cfg, "task": "mnist"},
    )
    with pytest.raises(ModelFileError, match="cannot build a model"):
        load_model(path)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"abc")
    atomic_write_bytes(target, b"defg")
    assert target.read_bytes() == b"defg"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_atomic_write_gives_files_the_usual_permissions(tmp_path):
    import os

    target = tmp_path / "p.bin"
    old = os.umask(0o022)
    try:
        atomic_write_bytes(target, b"x")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_model_of_another_task_is_refused(tiny_file):
    _, path = tiny_file
    with pytest.raises(ModelFileError, match="a 'mnist' model, but this command needs a 'colorize' model"):
        load_model(path, task="colorize")
    assert load_model(path, task="mnist")[1].task == "mnist"


def test_canonical_safetensors_gives_equal_bytes_for_equal_contents(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load, save

    from cinn_cli.files.model_file import canonical_safetensors

    tensors = {"z0": torch.arange(3.0), "z1": torch.ones(2, 2)}
    metadata = {f"key{i}": f"välue {i}" for i in range(12)}
    files = {canonical_safetensors(save(tensors, metadata=dict(reversed(metadata.items())))) for _ in range(5)}
    files.add(canonical_safetensors(save(tensors, metadata=metadata)))
    assert len(files) == 1  # raw save() output differs with the metadata order; canonical does not
    data = files.pop()
    assert int.from_bytes(data[:8], "little") % 8 == 0
    assert all(torch.equal(a, tensors[k]) for k, a in load(data).items())
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == metadata


def test_model_files_with_equal_contents_are_equal_bytes(tmp_path):
    """save_model and record_metrics write canonical files: the same model and metadata give the
    same bytes (and SHA-256) every time, as latent files do."""
    from cinn_cli.files.model_file import record_metrics

    torch.manual_seed(0)
    model = MnistCINN(TINY_MNIST)
    paths = [tmp_path / f"m{i}.safetensors" for i in range(5)]
    for p in paths:
        save_model(model, p, training={"steps": 3, "data": "d"}, metrics={"bits_per_dim": 1.5})
        record_metrics(p, {"eval": {"test_bits_per_dim": 1.4}})
    assert len({p.read_bytes() for p in paths}) == 1
