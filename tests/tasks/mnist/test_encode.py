"""cinn encode and cinn sample --from-latent: exact round trips, style transfer, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import invoke, tiny_mnist_file
from PIL import Image

from cinn_cli.files.latents import load_latent


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    weights = tiny_mnist_file(root / "tiny.safetensors", 0)
    rng = np.random.default_rng(0)
    digits = {}
    for d in (3, 7):
        (root / "in" / str(d)).mkdir(parents=True)
        for k in range(2):
            px = (rng.random((28, 28)) ** 4 * 255).astype(np.uint8)
            Image.fromarray(px).save(root / "in" / str(d) / f"img {k}.png")
            digits[f"{d}/img {k}"] = px
    return root, weights, digits


def test_encode_then_decode_reproduces_every_pixel(setup, tmp_path):
    root, weights, digits = setup
    result = invoke("encode", root / "in", tmp_path / "z", "--model", weights, "--verify", "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    written = [e for e in events if e["event"] == "written"]
    assert len(written) == 4 and all(e["roundtrip_error_8bit"] <= 0.5 for e in written)
    latent = load_latent(tmp_path / "z" / "7" / "img 1.safetensors")
    assert latent.condition == {"digit": 7} and float(latent.extra["bits_per_dim"]) > 0
    assert latent.zs[0].dtype == torch.float64  # encoded in float64, decoded in float64
    assert (
        invoke("sample", "--from-latent", tmp_path / "z", "--weights", weights, "-o", tmp_path / "dec").exit_code == 0
    )
    for key, px in digits.items():
        assert np.array_equal(np.asarray(Image.open(tmp_path / "dec" / f"{key}.png")), px), key


def test_decode_under_other_digits_writes_one_image_per_digit(setup, tmp_path):
    root, weights, _ = setup
    invoke("encode", root / "in" / "3", tmp_path / "z", "--model", weights, "--digit", "3")
    result = invoke("sample", "--from-latent", tmp_path / "z", "-d", "0-9", "--weights", weights, "-o", tmp_path / "st")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "st").iterdir())
    sheets = [f"img {k}-grid.png" for k in range(2)]  # one row: the style under every digit
    assert names == sorted([f"img {k}-{d}.png" for k in range(2) for d in range(10)] + sheets)
    a, b = (np.asarray(Image.open(tmp_path / "st" / f"img 0-{d}.png")) for d in (1, 8))
    assert not np.array_equal(a, b)


def test_style_transfer_scales_the_latent_by_the_transfer_temperature(setup, tmp_path):
    """Under --digit every decode is of the stored latent times --transfer-temperature (default
    MNIST_TRANSFER_TEMPERATURE, recorded in the PNG); without --digit the latent is decoded as stored."""
    from cinn_cli.batch.images import quantize
    from cinn_cli.tasks import load_model
    from cinn_cli.tasks.mnist.commands import MNIST_TRANSFER_TEMPERATURE

    root, weights, digits = setup
    invoke("encode", root / "in" / "3" / "img 0.png", tmp_path / "z", "--model", weights, "--digit", "3")
    model = load_model(weights)[0].double()
    zs = load_latent(tmp_path / "z" / "img 0.safetensors").zs
    for extra, t in (([], MNIST_TRANSFER_TEMPERATURE), (["--transfer-temperature", "0.5"], 0.5)):
        out = tmp_path / f"st{t}"
        args = ["sample", "--from-latent", tmp_path / "z", "-d", "3,8", "--weights", weights, "-o", out, *extra]
        result = invoke(*args, "--json")
        assert result.exit_code == 0, result.output
        events = [json.loads(line) for line in result.stdout.splitlines()]
        assert [e["transfer_temperature"] for e in events if e["event"] == "written"] == [t, t]
        for d in (3, 8):
            with torch.no_grad():
                want = quantize(model.inverse([t * z[None] for z in zs], torch.tensor([d]))[0, 0])
            png = Image.open(out / f"img 0-{d}.png")
            assert np.array_equal(np.asarray(png), want) and png.text["cinn:transfer_temperature"] == repr(t)
    same = invoke("sample", "--from-latent", tmp_path / "z", "--weights", weights, "-o", tmp_path / "own")
    assert same.exit_code == 0 and np.array_equal(
        np.asarray(Image.open(tmp_path / "own" / "img 0.png")), digits["3/img 0"]
    )
    assert "cinn:transfer_temperature" not in Image.open(tmp_path / "own" / "img 0.png").text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--transfer-temperature", "0.5"], "applies to --from-latent with --digit"),
        (["--from-latent", "Z", "--transfer-temperature", "0.5"], "applies to --from-latent with --digit"),
        (["--from-latent", "Z", "-d", "3", "-t", "0.5"], "-t/--temperature draws new latents"),
    ],
)
def test_temperatures_that_would_be_ignored_are_usage_errors(setup, tmp_path, args, message):
    root, weights, _ = setup
    invoke("encode", root / "in" / "3", tmp_path / "z", "--model", weights, "--digit", "3")
    args = [tmp_path / "z" if a == "Z" else a for a in args]
    result = invoke("sample", *args, "--weights", weights, "-o", tmp_path / "out")
    assert result.exit_code == 2 and message in result.output and not (tmp_path / "out").exists()


def test_bad_inputs_are_named_and_the_rest_still_encoded(setup, tmp_path):
    root, weights, _ = setup
    src = tmp_path / "src"
    (src / "5").mkdir(parents=True)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(src / "5" / "ok.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(src / "5" / "big.png")
    (src / "5" / "text.png").write_text("not an image")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(src / "nolabel.png")
    result = invoke("encode", src, tmp_path / "z", "--model", weights)
    assert result.exit_code == 1
    assert "big.png: is 32x32" in result.output and "text.png: is not an image" in result.output
    assert "nolabel.png: has no label" in result.output and "Traceback" not in result.output
    assert (tmp_path / "z" / "5" / "ok.safetensors").exists()
    again = invoke("encode", src / "5" / "ok.png", tmp_path / "z" / "5", "--model", weights, "--json")
    assert json.loads(again.stdout.splitlines()[-1])["skipped"] == 1


def test_latents_of_another_model_or_truncated_are_refused(setup, tmp_path):
    root, weights, _ = setup
    other = tiny_mnist_file(tmp_path / "other.safetensors", 1)
    invoke("encode", root / "in" / "7", tmp_path / "z", "--model", weights)
    truncated = tmp_path / "z" / "img 1.safetensors"
    truncated.write_bytes(truncated.read_bytes()[:-50])
    result = invoke("sample", "--from-latent", tmp_path / "z", "--weights", other, "-o", tmp_path / "x")
    assert result.exit_code == 1
    assert "img 0.safetensors: made by another model" in result.output
    assert "img 1.safetensors: the file is truncated" in result.output


def test_slerp_keeps_endpoints_and_a_typical_norm():
    from cinn_cli.files.latents import slerp

    g = torch.Generator().manual_seed(0)
    a = [torch.randn(2, 3, 3, generator=g), torch.randn(5, generator=g)]
    b = [torch.randn(2, 3, 3, generator=g), torch.randn(5, generator=g)]
    for t, ref in ((0.0, a), (1.0, b)):
        assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(slerp(a, b, t), ref, strict=True))
    norm = lambda zs: torch.cat([z.flatten() for z in zs]).norm()  # noqa: E731
    mid, lerp = slerp(a, b, 0.5), [(x + y) / 2 for x, y in zip(a, b, strict=True)]
    assert abs(norm(mid) - (norm(a) + norm(b)) / 2) < 1e-5 and norm(lerp) < norm(mid)


def test_interpolation_path_starts_and_ends_at_the_samples(setup, tmp_path):
    _, weights, _ = setup
    assert (
        invoke("sample", "-d", "3", "-n", "2", "--seed", "4", "--weights", weights, "-o", tmp_path / "s").exit_code == 0
    )
    a, b = tmp_path / "s" / "3-0001.safetensors", tmp_path / "s" / "3-0002.safetensors"
    result = invoke("sample", "--interpolate", a, b, "--steps", "5", "--weights", weights, "-o", tmp_path / "i")
    assert result.exit_code == 0, result.output
    first, last = (np.asarray(Image.open(tmp_path / "i" / f"3-0001-3-0002-3-{i:02d}.png")) for i in (0, 4))
    assert np.array_equal(first, np.asarray(Image.open(tmp_path / "s" / "3-0001.png")))
    assert np.array_equal(last, np.asarray(Image.open(tmp_path / "s" / "3-0002.png")))
    assert Image.open(tmp_path / "i" / "3-0001-3-0002-3.png").size[0] > 5 * 28


def test_shipped_model_has_no_outlier_and_round_trips_exactly():
    """Every test image is under 8 bits/dim under the shipped model (the clamp-1.5 model it
    replaced sent test image 5627 to 7e5 bits/dim with a latent of norm 3e4), and the float64
    encode/decode of the commands gives back the first 500 test images and 5627 exactly."""
    from cinn_cli.files.model_file import shipped_weights
    from cinn_cli.tasks.mnist.data import find_mnist_dir, load_mnist
    from cinn_cli.tasks.mnist.evaluate import per_image_bits_per_dim, round_trip_errors
    from cinn_cli.tasks.mnist.sample import load_mnist_model

    data = find_mnist_dir()
    if data is None or not data.is_dir():
        pytest.skip("MNIST data directory not found (set $CINN_MNIST)")
    x, y = load_mnist(data, "test")
    model, _ = load_mnist_model(shipped_weights("mnist"), torch.device("cpu"))
    bpd = per_image_bits_per_dim(model, x, y, torch.device("cpu"))
    assert bpd.max().item() < 8.0, (bpd.argmax().item(), bpd.max().item())
    assert 1.0 < bpd.mean().item() < 1.6
    idx = torch.cat([torch.arange(500), torch.tensor([5627])])
    errors = round_trip_errors(model.double(), x[idx], y[idx], torch.device("cpu"))
    assert errors.max().item() <= 0.5, errors.max().item()
