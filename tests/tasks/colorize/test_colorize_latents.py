"""cinn encode --model colorize and cinn colorize --from-latent (round trip, colour transfer, errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, invoke, photo, tiny_colorize_file
from PIL import Image

from cinn_cli.batch.photos import read_gray, read_rgb
from cinn_cli.files.latents import Latent, load_latent, save_latent
from cinn_cli.files.model_file import shipped_weights
from cinn_cli.tasks import load_model
from cinn_cli.tasks.colorize.transfer import (
    VERIFY_LIMIT_RGB,
    fit_latent,
    mix_levels,
    parse_levels,
    photo_ab,
    rgb_at_colour_grid,
    working_lightness,
)

pytestmark = pytest.mark.usefixtures("single_thread")
VAL = ROOT.parent / "shared" / "data" / "photos" / "val"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("collat")
    weights = tiny_colorize_file(root / "tiny.safetensors")
    src = root / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(photo(3, 40, 56)).save(src / "a.png")
    Image.fromarray(photo(4, 64, 48)).save(src / "sub" / "b.png")
    return root, weights


def mean_abs_rgb(a: Path, b: Path) -> float:
    x = np.asarray(Image.open(a).convert("RGB"), dtype=np.float64)
    y = np.asarray(Image.open(b).convert("RGB"), dtype=np.float64)
    return float(np.abs(x - y).mean())


def test_encode_verify_and_decode_gives_the_photo_back(setup, tmp_path):
    root, weights = setup
    r = invoke("encode", root / "in", tmp_path / "lat", "--model", weights, "--verify", "--json")
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in r.stdout.splitlines()]
    written = [e for e in events if e["event"] == "written"]
    assert len(written) == 2 and all(e["roundtrip_error_8bit"] <= VERIFY_LIMIT_RGB for e in written)
    lat = load_latent(tmp_path / "lat" / "sub" / "b.safetensors")
    assert lat.task == "colorize" and lat.image_size == "48x64" and float(lat.extra["bits_per_dim"]) > 0
    # the photo's own latent under its own lightness: its colours back, at full size
    r = invoke(
        "colorize",
        root / "in" / "a.png",
        tmp_path / "out",
        "--from-latent",
        tmp_path / "lat" / "a.safetensors",
        "--weights",
        weights,
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "out" / "a-from-a.png"
    assert Image.open(out).size == (56, 40)
    Image.open(root / "in" / "a.png").convert("L").save(tmp_path / "gray.png")
    # colour comes back from a coarse grid (the tiny model: 8 px) upsampled: much nearer than no colour
    assert mean_abs_rgb(out, root / "in" / "a.png") < 0.5 * mean_abs_rgb(tmp_path / "gray.png", root / "in" / "a.png")
    # a sample decoded under another digit of colour: the transfer output has the target's size
    r = invoke(
        "colorize",
        root / "in" / "a.png",
        tmp_path / "out",
        "--from-latent",
        tmp_path / "lat" / "sub",
        "--weights",
        weights,
        "--transfer-levels",
        "1,0.5",
    )
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "out" / "a-from-b.png").size == (56, 40)
    used = load_latent(tmp_path / "out" / "a-from-b.safetensors")
    assert used.extra["from_latent"] == "b.safetensors" and used.extra["transfer_levels"] == "1,0.5"
    # Every colour latent records where the model ran: here at a's working size, as a's own latent.
    own = load_latent(tmp_path / "lat" / "a.safetensors")
    assert used.extra["working_size"] == own.extra["working_size"] != lat.extra["working_size"]


def test_work_size_sets_where_the_model_runs_for_encode_decode_and_sampling(setup, tmp_path):
    """--work-size replaces the file's working short side (the tiny model's: 16) for the run."""
    root, weights = setup
    a = root / "in" / "a.png"  # 56x40
    r = invoke("encode", a, tmp_path / "lat", "--model", weights, "--work-size", 32, "--verify", "--json")
    assert r.exit_code == 0, r.output
    lat = load_latent(tmp_path / "lat" / "a.safetensors")
    assert lat.extra["working_size"] == "48x32"  # short side 32, the long side 44.8 -> a multiple of 8
    assert [tuple(z.shape) for z in lat.zs] == [(4, 8, 12), (16, 4, 6)]  # ab 2x16x24, two levels
    # decoded at the same working size: the encoded colours back (as at the default size)
    own = tmp_path / "lat" / "a.safetensors"
    dec = invoke("colorize", a, tmp_path / "dec", "--from-latent", own, "--weights", weights, "--work-size", 32)
    assert dec.exit_code == 0, dec.output
    gray = tmp_path / "gray.png"
    Image.open(a).convert("L").save(gray)
    assert mean_abs_rgb(tmp_path / "dec" / "a-from-a.png", a) < 0.5 * mean_abs_rgb(gray, a)
    # sampling at the default and at a larger working size
    for size, expect in ((None, "24x16"), (48, "64x48")):
        extra = [] if size is None else ["--work-size", size]
        out = tmp_path / f"s{size}"
        r = invoke("colorize", a, out, "-n", 1, "--seed", 0, "--weights", weights, *extra)
        assert r.exit_code == 0, r.output
        assert load_latent(out / "a-1.safetensors").extra["working_size"] == expect
    # where it does not apply: an MNIST model, or a size below any model's
    assert invoke("encode", a, tmp_path / "m", "--work-size", 32).exit_code == 2
    assert invoke("colorize", a, tmp_path / "x", "--weights", weights, "--work-size", 8).exit_code == 2


def test_own_latent_reproduces_the_encoded_colours_exactly(setup):
    """Decode(encode(photo)) under the photo's lightness gives the encoded ab (float rounding)."""
    root, weights = setup
    model, info = load_model(weights)
    gray, _ = read_gray(root / "in" / "a.png")
    _, L_work = working_lightness(model, gray, torch.device("cpu"))
    ab = photo_ab(model, read_rgb(root / "in" / "a.png"), L_work)
    with torch.no_grad():
        zs, _ = model(ab, L_work)
        lat = Latent(zs=[z[0] for z in zs], task="colorize", condition={}, image_size="", model_sha256=info.sha256)
        shapes = model.latent_shapes(*L_work.shape[-2:])
        fitted = mix_levels(fit_latent(lat, Path("x"), shapes, info.sha256), zs, parse_levels("all", len(shapes)))
        back = model.inverse([z[None] for z in fitted], L_work)
    assert torch.allclose(back, ab, atol=1e-3)


def test_transfer_levels_mix_is_variance_preserving():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200_000, generator=g), torch.randn(200_000, generator=g)
    (m,) = mix_levels([a], [b], [0.3])
    assert abs(m.std().item() - 1.0) < 0.01
    assert mix_levels([a], [b], [1.0])[0] is a
    assert parse_levels("0, 0.3,1", 3) == [0.0, 0.3, 1.0]
    for bad in ("0,1", "2,0,0", "x,y,z"):
        with pytest.raises(ValueError):
            parse_levels(bad, 3)


def test_latents_that_do_not_fit_fail_in_one_sentence(setup, tmp_path):
    root, weights = setup
    assert invoke("encode", root / "in" / "a.png", tmp_path / "lat", "--model", weights).exit_code == 0
    good = load_latent(tmp_path / "lat" / "a.safetensors")
    bad = tmp_path / "bad"
    bad.mkdir()
    save_latent(bad / "other-model.safetensors", Latent(**{**good.__dict__, "model_sha256": "ab" * 32}))
    save_latent(bad / "mnist.safetensors", Latent(**{**good.__dict__, "task": "mnist"}))
    save_latent(bad / "levels.safetensors", Latent(**{**good.__dict__, "zs": good.zs[:-1]}))
    data = (tmp_path / "lat" / "a.safetensors").read_bytes()
    (bad / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    r = invoke("colorize", root / "in" / "a.png", tmp_path / "out", "--from-latent", bad, "--weights", weights)
    assert r.exit_code == 1
    assert r.exception is None or isinstance(r.exception, SystemExit)
    lines = [line for line in r.stderr.splitlines() if ".safetensors" in line and "cinn colorize" not in line]
    assert len(lines) == 4 and "Traceback" not in r.output
    reasons = " ".join(lines)
    assert "another model" in reasons and "'mnist'" in reasons and "do not fit" in reasons
    assert not list((tmp_path / "out").glob("*.png")) if (tmp_path / "out").exists() else True


def test_usage_errors(setup, tmp_path):
    root, weights = setup
    lat = tmp_path / "lat"
    assert invoke("encode", root / "in" / "a.png", lat, "--model", weights).exit_code == 0
    common = ["colorize", root / "in" / "a.png", tmp_path / "o", "--from-latent", lat / "a.safetensors"]
    assert invoke(*common, "--weights", weights, "-n", "3").exit_code == 2
    r = invoke(*common, "--weights", weights, "--transfer-levels", "0.5")
    assert r.exit_code == 2 and "latent levels" in r.output
    assert invoke("encode", root / "in", tmp_path / "x", "--model", weights, "--digit", "3").exit_code == 2


@pytest.mark.skipif(not VAL.is_dir(), reason=f"no validation photos at {VAL}")
def test_every_val_photo_round_trips_within_one_level_with_the_shipped_model():
    """Issue target: encode -> decode reproduces every colorization input within 1/255 in RGB at the
    model's colour resolution."""
    model, _ = load_model(shipped_weights("colorize"))
    worst = 0.0
    for path in sorted(VAL.iterdir()):
        gray, _ = read_gray(path)
        _, L_work = working_lightness(model, gray, torch.device("cpu"))
        ab = photo_ab(model, read_rgb(path), L_work)
        with torch.no_grad():
            back = model.inverse(model(ab, L_work)[0], L_work)
        err = (rgb_at_colour_grid(L_work, back) - rgb_at_colour_grid(L_work, ab)).abs().max().item() * 255
        worst = max(worst, err)
    assert worst <= VERIFY_LIMIT_RGB, worst


def test_colour_encode_shards_and_workers_give_the_unsplit_bytes(setup, tmp_path):
    root, weights = setup
    whole = tmp_path / "whole"
    assert invoke("encode", root / "in", whole, "--model", weights, "--workers", 1).exit_code == 0
    for i in range(2):
        r = invoke("encode", root / "in", tmp_path / "split", "--model", weights, "--shard", f"{i}/2", "--workers", 3)
        assert r.exit_code == 0, r.output
    names = sorted(p.relative_to(whole) for p in whole.rglob("*.safetensors"))
    assert names == sorted(p.relative_to(tmp_path / "split") for p in (tmp_path / "split").rglob("*.safetensors"))
    assert len(names) == 2
    for name in names:
        assert (whole / name).read_bytes() == (tmp_path / "split" / name).read_bytes(), name


def test_transfer_batches_and_thread_arrangements_write_the_same_bytes(setup, tmp_path, monkeypatch):
    """Colour transfer decodes several latents per model call and colours in the workers; one
    latent per call, or colouring on the main thread (the GPU arrangement), writes the same bytes.
    An output that cannot be written fails alone."""
    from cinn_cli.tasks.colorize import transfer as pipeline

    root, weights = setup
    assert invoke("encode", root / "in", tmp_path / "lat", "--model", weights).exit_code == 0
    for i in range(9):  # 11 latents: more than one model call of TRANSFER_BATCH
        (tmp_path / "lat" / f"copy{i}.safetensors").write_bytes((tmp_path / "lat" / "a.safetensors").read_bytes())
    args = ["--from-latent", tmp_path / "lat", "--weights", weights, "--seed", 3, "--transfer-levels", "1,0.5"]

    def run(name):
        return invoke("colorize", root / "in" / "a.png", tmp_path / name, *args)

    assert pipeline.TRANSFER_BATCH < 11 and run("batched").exit_code == 0
    monkeypatch.setattr(pipeline, "TRANSFER_BATCH", 1)
    assert run("single").exit_code == 0
    monkeypatch.setattr(pipeline, "colour_in_workers", lambda device: False)
    assert run("main").exit_code == 0
    files = sorted(p.name for p in (tmp_path / "batched").iterdir())
    assert len(files) == 22  # 11 images + 11 latents
    for name in files:
        a = (tmp_path / "batched" / name).read_bytes()
        assert a == (tmp_path / "single" / name).read_bytes() == (tmp_path / "main" / name).read_bytes(), name
    monkeypatch.undo()
    blocked = tmp_path / "blocked"
    (blocked / "a-from-copy3.png").mkdir(parents=True)  # a folder where an output should go
    r = invoke("colorize", root / "in" / "a.png", blocked, *args, "--json")
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.exit_code == 1 and events[-1]["written"] == 10 and events[-1]["failed"] == 1
    assert "a-from-copy3.png" in events[-1]["failures"][0]["reason"]


def test_level_temperatures_scale_each_latent_level_of_new_draws_only(setup, tmp_path):
    """--level-temperatures multiplies -t per latent level (finest first) wherever latents are
    drawn (sampling, and the resampled levels of a colour transfer), is recorded in the outputs,
    and leaves a stored latent's own levels as they are."""
    root, weights = setup
    a = root / "in" / "a.png"
    runs = {}
    for temps in ("1,1", "0.5,2"):
        out = tmp_path / temps
        r = invoke(
            "colorize", a, out, "-n", 2, "-t", 0.8, "--seed", 3, "--weights", weights, "--level-temperatures", temps
        )
        assert r.exit_code == 0, r.output
        runs[temps] = [load_latent(out / f"a-{k}.safetensors") for k in (1, 2)]
        assert Image.open(out / "a-1.png").text["cinn:level_temperatures"] == temps
        assert runs[temps][0].extra["level_temperatures"] == temps and runs[temps][0].temperature == 0.8
    for plain, scaled in zip(runs["1,1"], runs["0.5,2"], strict=True):
        torch.testing.assert_close(scaled.zs[0], 0.5 * plain.zs[0], rtol=1e-6, atol=0)
        torch.testing.assert_close(scaled.zs[1], 2.0 * plain.zs[1], rtol=1e-6, atol=0)
    # colour transfer keeping the fine level from the file and drawing the coarse one anew
    r = invoke("encode", a, tmp_path / "lat", "--model", weights)
    assert r.exit_code == 0, r.output
    moved = {}
    for temps in ("1,1", "0.5,2"):
        out = tmp_path / f"transfer{temps}"
        args = ("--transfer-levels", "1,0", "--level-temperatures", temps, "--seed", 5, "--weights", weights)
        r = invoke("colorize", a, out, "--from-latent", tmp_path / "lat" / "a.safetensors", *args)
        assert r.exit_code == 0, r.output
        moved[temps] = load_latent(out / "a-from-a.safetensors")
    torch.testing.assert_close(moved["0.5,2"].zs[0], moved["1,1"].zs[0], rtol=0, atol=0)  # the file's level
    torch.testing.assert_close(moved["0.5,2"].zs[1], 2.0 * moved["1,1"].zs[1], rtol=1e-6, atol=0)  # drawn anew
    # nothing is drawn anew when every level comes from the file: scaling it is refused, not ignored
    for flag, value in (("-t", "0.5"), ("--level-temperatures", "1,1")):
        r = invoke(
            "colorize", a, tmp_path / "all", "--from-latent", tmp_path / "lat", "--weights", weights, flag, value
        )
        assert r.exit_code == 2 and "draws none" in r.output, r.output
    # the wrong number of levels, or not numbers: usage errors naming the option, nothing written
    for bad in ("1,1,1", "a,b", "-1,1"):
        r = invoke("colorize", a, tmp_path / "bad", "--weights", weights, "--level-temperatures", bad)
        assert r.exit_code != 0 and "level temperatures" in r.output.lower().replace("-", " "), r.output
        assert not list((tmp_path / "bad").glob("*.png"))
