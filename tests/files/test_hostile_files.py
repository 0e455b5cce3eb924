"""A hostile corpus of model, latent and data files, built here: every case must fail by itself in
one sentence naming the file, with the documented exit code, no traceback and no hang."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import invoke, photo, tiny_colorize_file
from PIL import Image

from cinn_cli.files.model_file import shipped_weights

pytestmark = pytest.mark.usefixtures("single_thread")


def safetensors_bytes(header, data: bytes = b"") -> bytes:
    """A safetensors file from a header (an object, or raw JSON bytes) and its data area."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def latent_header(**meta):
    """The metadata of a valid MNIST latent with one 4-value level; ``meta`` overrides fields."""
    base = {
        "format": "cinn-latent",
        "format_version": "1",
        "task": "mnist",
        "condition": '{"digit": 3}',
        "image_size": "28x28",
        "seed": "",
        "temperature": "",
        "model_sha256": "",
    }
    return {k: v for k, v in {**base, **meta}.items() if v is not None}


F32x4 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
ZEROS = bytes(16)

# (name, header, data): each must be refused by the strict reader
MALFORMED = [
    ("short", None, b"\x01\x02"),
    ("huge-length", None, struct.pack("<Q", 1 << 60) + b"{}"),
    ("not-json", b"{nope", b""),
    ("list-top", [1, 2], b""),
    ("entry-not-object", {"z0": 5, "__metadata__": latent_header()}, ZEROS),
    ("no-dtype", {"z0": {"shape": [4], "data_offsets": [0, 16]}}, ZEROS),
    ("no-offsets", {"z0": {"dtype": "F32", "shape": [4]}}, ZEROS),
    ("bad-dtype", {"z0": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}}, bytes(4)),
    ("str-shape", {"z0": {"dtype": "F32", "shape": "4", "data_offsets": [0, 16]}}, ZEROS),
    ("negative-shape", {"z0": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, ZEROS),
    ("lying-shape", {"z0": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}}, ZEROS),
    ("past-end", {"z0": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}, ZEROS),
    ("trailing", {"z0": F32x4, "__metadata__": latent_header()}, ZEROS + b"junk"),
    (
        "overlap",
        {"z0": F32x4, "z1": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}},
        ZEROS,
    ),
    ("meta-list", {"z0": F32x4, "__metadata__": ["a"]}, ZEROS),
    ("meta-string", {"z0": F32x4, "__metadata__": "x"}, ZEROS),
    ("meta-object-value", {"z0": F32x4, "__metadata__": {**latent_header(), "seed": {"a": 1}}}, ZEROS),
    ("deep", b"[" * 100_000 + b"]" * 100_000, b""),
]

BAD_LATENTS = [
    *[
        (f"digit-{name}", latent_header(condition=cond))
        for name, cond in [
            ("42", '{"digit": 42}'),
            ("-1", '{"digit": -1}'),
            ("null", '{"digit": null}'),
            ("3.5", '{"digit": 3.5}'),
            ("true", '{"digit": true}'),
            ("seven", '{"digit": "seven"}'),
            ("missing", "{}"),
            ("list", "[3]"),
        ]
    ],
    ("seed-text", latent_header(seed="abc")),
]


def write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def weights(mnist_weights):
    """This module's ``weights``: the tiny MNIST model (conftest's ``mnist_weights``)."""
    return mnist_weights


@pytest.mark.parametrize("name,header,data", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_safetensors_one_sentence_everywhere(weights, tmp_path, name, header, data):
    bad = write(tmp_path / f"{name}.safetensors", data if header is None else safetensors_bytes(header, data))
    for args in (
        ("info", bad),
        ("sample", "--weights", bad, "-o", tmp_path / "o1", "-n", "1", "-d", "3"),
        ("sample", "--from-latent", bad, "--weights", weights, "-o", tmp_path / "o2"),
    ):
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert "Traceback" not in result.output
        assert f"{name}.safetensors" in result.output
    assert not any((tmp_path / "o2").rglob("*.png"))


@pytest.mark.parametrize("name,header", BAD_LATENTS, ids=[b[0] for b in BAD_LATENTS])
def test_bad_latent_metadata_fails_that_file_only(weights, tmp_path, name, header):
    """One bad latent among good ones: it fails (exit 1), the good one is still written."""
    z = tmp_path / "z"
    result = invoke("sample", "--weights", weights, "-n", "1", "-d", "3", "-o", z)
    assert result.exit_code == 0, result.output
    good = next(z.rglob("*.safetensors"))  # stays as written; the bad one is made from it
    raw = good.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    h = json.loads(raw[8 : 8 + n])
    h["__metadata__"] = {**h["__metadata__"], **{k: v for k, v in header.items() if k in ("condition", "seed")}}
    if name == "digit-missing":
        h["__metadata__"]["condition"] = "{}"
    write(z / f"bad-{name}.safetensors", safetensors_bytes(h, raw[8 + n :]))
    result = invoke("sample", "--from-latent", z, "--weights", weights, "-o", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"bad-{name}.safetensors" in result.output and "1 written" in result.output


def _header_of(path):
    raw = path.read_bytes()
    return raw[8 : 8 + int.from_bytes(raw[:8], "little")]


def _rewrite_tensor(src, dst, fn):
    """``src`` with every float tensor replaced by ``fn(tensor)`` (same header layout)."""
    from safetensors.torch import load, save

    raw = src.read_bytes()
    meta = json.loads(_header_of(src)).get("__metadata__")
    tensors = {k: (fn(v) if v.is_floating_point() else v) for k, v in load(raw).items()}
    dst.write_bytes(save(tensors, metadata=meta))
    return dst


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_and_latents_are_refused_by_name(weights, tmp_path, value):
    def poison(t):
        t = t.clone()
        t.view(-1)[0] = value
        return t

    bad_w = _rewrite_tensor(weights, tmp_path / "bad-w.safetensors", poison)
    result = invoke("sample", "--weights", bad_w, "-n", "1", "-d", "3", "-o", tmp_path / "o")
    assert result.exit_code == 1 and "bad-w.safetensors" in result.output and "NaN or infinite" in result.output
    assert not any((tmp_path / "o").rglob("*.png"))
    z = tmp_path / "z"
    assert invoke("sample", "--weights", weights, "-n", "1", "-d", "3", "-o", z).exit_code == 0
    _rewrite_tensor(next(z.rglob("*.safetensors")), z / "bad-z.safetensors", poison)
    result = invoke("sample", "--from-latent", z / "bad-z.safetensors", "--weights", weights, "-o", tmp_path / "o2")
    assert result.exit_code == 1 and "bad-z.safetensors" in result.output and "NaN or infinite" in result.output
    assert not any((tmp_path / "o2").rglob("*.png"))


def test_int8_weights_are_refused_by_name(weights, tmp_path):
    bad = _rewrite_tensor(weights, tmp_path / "int8.safetensors", lambda t: t.to(torch.int8))
    result = invoke("sample", "--weights", bad, "-n", "1", "-d", "3", "-o", tmp_path / "o")
    assert result.exit_code == 1 and "int8.safetensors" in result.output and "unsupported dtype" in result.output


@pytest.mark.parametrize(
    "key,value", [("work_size", 100000), ("blocks", [3000]), ("hidden", [10**6, 4, 8]), ("blocks", [1] * 20)]
)
def test_hostile_config_values_are_refused_before_building(weights, tmp_path, key, value):
    raw = weights.read_bytes()
    h = json.loads(_header_of(weights))
    config = {**json.loads(h["__metadata__"]["config"]), key: value}
    h["__metadata__"]["config"] = json.dumps(config)
    bad = write(tmp_path / "cfg.safetensors", safetensors_bytes(h, raw[8 + int.from_bytes(raw[:8], "little") :]))
    result = invoke("sample", "--weights", bad, "-n", "1", "-d", "3", "-o", tmp_path / "o")
    assert result.exit_code == 1, result.output
    assert "cfg.safetensors: the stored config" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_at_once(weights, colour, tmp_path):
    """A FIFO would block open() forever: each command must refuse it, under a timeout."""
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    colour_weights, gray = colour
    for args in (
        ["info", fifo],
        ["sample", "--weights", fifo, "-n", "1", "-o", tmp_path / "o"],
        ["sample", "--from-latent", fifo, "--weights", weights, "-o", tmp_path / "o"],
        ["colorize", gray, tmp_path / "o", "--weights", fifo],
        ["colorize", gray, tmp_path / "o", "--weights", colour_weights, "--from-latent", fifo],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "cinn_cli", *map(str, args)], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 1, run.stderr
        assert "pipe.safetensors: is not a regular file" in run.stderr and "Traceback" not in run.stderr


def test_encoded_latents_interpolate(weights, tmp_path):
    """The README's example: latents from cinn encode (float64) through --interpolate."""
    rng = np.random.default_rng(0)
    (tmp_path / "in" / "3").mkdir(parents=True)
    for k in range(2):
        Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(tmp_path / "in" / "3" / f"{k}.png")
    assert invoke("encode", tmp_path / "in", tmp_path / "z", "--model", weights).exit_code == 0
    a, b = sorted((tmp_path / "z").rglob("*.safetensors"))
    result = invoke("sample", "--interpolate", a, b, "--steps", 4, "--weights", weights, "-o", tmp_path / "i")
    assert result.exit_code == 0, result.output


def test_encode_of_a_photo_points_to_the_colorize_model(weights, tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "photo.png")
    result = invoke("encode", tmp_path / "photo.png", tmp_path / "z", "--model", weights)
    assert result.exit_code == 1 and "for colour photos use --model colorize" in result.output


def test_info_takes_shipped_names_and_prints_readable_lines():
    if not shipped_weights("mnist").exists():
        pytest.skip("no shipped weights")
    result = invoke("info", "mnist")
    assert result.exit_code == 0, result.output
    assert "largest:" in result.output
    assert (
        max(len(line) for line in result.output.splitlines()) < 400
    )  # no KB-long JSON lines (a recorded command line may be long)


def _gzip_stream(path, head: bytes, zeros: int):
    """A gzip file of ``head`` then ``zeros`` zero bytes, compressed in chunks (little memory)."""
    import gzip

    with gzip.open(path, "wb") as f:
        f.write(head)
        chunk = bytes(1 << 20)
        for _ in range(zeros >> 20):
            f.write(chunk)
    return path


def test_gzip_bombs_among_idx_files_are_refused_before_inflating(tmp_path):
    """A header declaring terabytes is refused unread; a stream longer than its header is read
    only to the declared size plus one byte (so a bomb costs what its header says, at most 1 GiB)."""
    from cinn_cli.tasks.mnist.data import MnistDataError, read_idx

    huge = _gzip_stream(tmp_path / "huge-images-idx3-ubyte.gz", struct.pack(">HBBIII", 0, 8, 3, 10**9, 28, 28), 1 << 20)
    with pytest.raises(MnistDataError, match="huge-images-idx3-ubyte.gz declares"):
        read_idx(huge, expected_ndim=3)
    long = _gzip_stream(tmp_path / "long-images-idx3-ubyte.gz", struct.pack(">HBBIII", 0, 8, 3, 100, 28, 28), 64 << 20)
    with pytest.raises(MnistDataError, match="long-images-idx3-ubyte.gz has a size mismatch"):
        read_idx(long, expected_ndim=3)


@pytest.mark.parametrize("name", ["mnist", "colorize", "mnist-classifier", "fashion", "fashion-classifier"])
def test_shipped_metadata_has_no_absolute_paths(name):
    """The build machine's paths were rewritten (bench/relative_paths.py): none may come back."""
    import re

    from cinn_cli.files.model_file import read_header

    path = shipped_weights(name)
    if not path.exists():
        pytest.skip("no shipped weights")
    metadata, _ = read_header(path)
    for key, value in metadata.items():
        assert not re.search(r"(?<![\w./~-])(/(work|root|home|tmp|Users|mnt)/|[A-Z]:\\)", value), (key, value)


def test_no_image_is_written_from_non_finite_model_output(weights, tmp_path, monkeypatch):
    """Finite inputs, a model that overflows: each output fails by name, nothing black is written."""
    from cinn_cli.tasks.mnist.model import MnistCINN

    z = tmp_path / "z"
    assert invoke("sample", "--weights", weights, "-n", "1", "-d", "3", "-o", z).exit_code == 0
    monkeypatch.setattr(MnistCINN, "inverse", lambda self, zs, labels: torch.full((len(labels), 1, 28, 28), np.nan))
    result = invoke("sample", "--weights", weights, "-n", "2", "-d", "3", "-o", tmp_path / "o")
    assert result.exit_code == 1 and "NaN or infinite" in result.output and "3-0001.png" in result.output
    result = invoke("sample", "--from-latent", z, "--weights", weights, "-o", tmp_path / "o2")
    assert result.exit_code == 1 and "NaN or infinite" in result.output and ".safetensors" in result.output
    assert not list(tmp_path.glob("o*/**/*.png"))


@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    """A tiny colorization model (helpers.tiny_colorize_file) and one gray photo."""
    root = tmp_path_factory.mktemp("colour")
    Image.fromarray(photo(0, 32, 32)).convert("L").save(root / "gray.png")
    return tiny_colorize_file(root / "tiny-colour.safetensors"), root / "gray.png"


@pytest.mark.parametrize("value", ["nan,1", "inf,1", "1,1,1", "1"])
def test_bad_level_temperatures_are_usage_errors(colour, tmp_path, value):
    weights, gray = colour
    result = invoke("colorize", gray, tmp_path / "o", "--weights", weights, "--level-temperatures", value)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output and "--level-temperatures" in result.output
    assert not any(tmp_path.rglob("*.png"))


def test_colour_latents_must_be_float32(colour, tmp_path):
    weights, gray = colour
    assert invoke("colorize", gray, tmp_path / "o", "--weights", weights, "-n", "1").exit_code == 0
    good = next((tmp_path / "o").rglob("*.safetensors"))
    (tmp_path / "z").mkdir()
    bad = _rewrite_tensor(good, tmp_path / "z" / "f64.safetensors", lambda t: t.double())
    result = invoke("colorize", gray, tmp_path / "o2", "--weights", weights, "--from-latent", bad.parent)
    assert result.exit_code == 1 and "f64.safetensors: latent level z0 is F64, not F32" in result.output
    assert not any((tmp_path / "o2").rglob("*.png"))
