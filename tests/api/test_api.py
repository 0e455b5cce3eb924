"""The Python API gives what the command line writes, from the same seed."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cinn_cli import load
from cinn_cli.cli import main


def photo(h: int = 40, w: int = 56) -> Image.Image:
    """A small colour photo with some structure (smooth gradients and a block)."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 / w, y * 255 / h, np.full((h, w), 90.0)], axis=2)
    rgb[h // 4 : h // 2, w // 4 : w // 2] = (200, 40, 40)
    return Image.fromarray(rgb.astype(np.uint8))


def test_colorize_is_what_the_command_writes(tmp_path):
    photo().convert("L").save(tmp_path / "x.png")
    result = CliRunner().invoke(
        main, ["colorize", str(tmp_path / "x.png"), str(tmp_path / "o"), "-n", "3", "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    images = load("colorize", device="cpu").colorize(Image.open(tmp_path / "x.png"), n=3, seed=4, key="x.png")
    assert [im.size for im in images] == [(56, 40)] * 3
    for k, im in enumerate(images, start=1):
        assert np.array_equal(np.asarray(im), np.asarray(Image.open(tmp_path / "o" / f"x-{k}.png")))
    assert not np.array_equal(np.asarray(images[1]), np.asarray(images[2]))  # different draws


def test_sample_is_what_the_command_writes(tmp_path):
    result = CliRunner().invoke(main, ["sample", "-d", "7", "-n", "3", "--seed", "5", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    digits = load("mnist", device="cpu").sample(digit=7, n=3, seed=5)
    for k, im in enumerate(digits, start=1):
        assert im.size == (28, 28) and im.mode == "L"
        assert np.array_equal(np.asarray(im), np.asarray(Image.open(tmp_path / f"7-{k:04d}.png")))


def test_sample_by_class_name():
    model = load("mnist", device="cpu")
    assert model.class_names == tuple("0123456789")
    by_name = model.sample(digit="7", n=2, seed=5)
    assert [np.asarray(a).tolist() for a in by_name] == [np.asarray(b).tolist() for b in model.sample(7, n=2, seed=5)]
    with pytest.raises(ValueError, match="'Sock' is not a class of this model"):
        model.sample(digit="Sock")


def test_mnist_encode_then_decode_is_exact_and_transfers_style():
    model = load("mnist", device="cpu")
    seven = model.sample(digit=7, n=1, seed=0)[0]
    latent = model.encode(seven, digit=7)
    assert latent.condition == {"digit": 7} and latent.model_sha256 == model.info.sha256
    assert np.array_equal(np.asarray(model.decode(latent)), np.asarray(seven))
    three = model.decode(latent, digit=3)
    assert three.size == (28, 28) and not np.array_equal(np.asarray(three), np.asarray(seven))
    with pytest.raises(ValueError, match="28x28"):
        model.encode(Image.new("L", (20, 20)), digit=1)


def test_colour_encode_then_decode_gives_the_photo_colours_back():
    colorizer = load("colorize", device="cpu")
    original = photo(64, 96)
    back = colorizer.decode(colorizer.encode(original), original)
    assert back.size == original.size
    error = np.abs(np.asarray(back, np.float64) - np.asarray(original, np.float64)).mean()
    gray = np.abs(np.asarray(original.convert("L").convert("RGB"), np.float64) - np.asarray(original)).mean()
    assert error < 0.35 * gray, (error, gray)  # the colours come back, up to the half-resolution colour grid


def test_a_bad_model_file_is_one_error_naming_it(tmp_path):
    (tmp_path / "bad.safetensors").write_text("not a model")
    with pytest.raises(ValueError, match="bad.safetensors"):
        load(tmp_path / "bad.safetensors")
