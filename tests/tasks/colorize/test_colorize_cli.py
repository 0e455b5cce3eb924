"""cinn colorize, train colorize and eval colorize on a tiny model and tiny synthetic photos."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import TINY_COLORIZE, Terminal, invoke, photo, tiny_colorize_file
from PIL import Image

from cinn_cli.files.latents import load_latent
from cinn_cli.files.model_file import save_model
from cinn_cli.tasks import load_model
from cinn_cli.tasks.colorize.metrics import best_of_n_rmse, best_of_n_rmse_pixel, colourfulness, sample_variance
from cinn_cli.tasks.colorize.model import ColorizeCINN, ColorizeConfig

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("col")
    weights = tiny_colorize_file(root / "tiny.safetensors")
    src = root / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(photo(0, 40, 40)).convert("L").save(src / "square.png")
    Image.fromarray(photo(1, 30, 57)).save(src / "sub" / "wide colour.jpg")
    rgba = np.concatenate([photo(2, 24, 20), np.full((24, 20, 1), 128, np.uint8)], 2)
    Image.fromarray(rgba).save(src / "sub" / "alpha.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    for split, n in (("train", 4), ("val", 2)):
        (root / split).mkdir()
        for i in range(n):
            Image.fromarray(photo(10 + i + 5 * (split == "val"), 48, 72)).save(root / split / f"p{i}.png")
    return root, weights


def test_colorize_folder_sizes_latents_and_failures(setup, tmp_path):
    root, weights = setup
    out = tmp_path / "out"
    result = invoke("colorize", root / "in", out, "-n", 2, "--seed", 1, "--weights", weights, "--grid", "--json")
    assert result.exit_code == 1, result.output  # the corrupt file fails, the rest is written
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events].count("written") == 6 and events[-1]["failed"] == 1
    assert events[-1]["failures"][0]["path"].endswith("broken.png")
    for rel, size, mode in (
        ("square", (40, 40), "RGB"),
        ("sub/wide colour", (57, 30), "RGB"),
        ("sub/alpha", (20, 24), "RGBA"),
    ):
        for k in (1, 2):
            with Image.open(out / f"{rel}-{k}.png") as im:
                assert im.size == size and im.mode == mode
                assert im.text["cinn:seed"] and "Machine-generated" in im.text["Comment"]
            assert (out / f"{rel}-{k}.safetensors").exists()
        assert (out / f"{rel}-grid.png").exists()
    latent = load_latent(out / "sub" / "wide colour-1.safetensors")
    assert (
        latent.task == "colorize"
        and latent.image_size == "57x30"
        and latent.condition["source"] == "sub/wide colour.jpg"
    )
    # sample 1 is the best guess, the latent's mode (z = 0); sample 2 a random draw; both say which
    second = load_latent(out / "sub" / "wide colour-2.safetensors")
    assert latent.extra["draw"] == "mode" and all(not z.any() for z in latent.zs)
    assert second.extra["draw"] == "random" and all(z.std() > 0.1 for z in second.zs if z.numel() > 1)
    with Image.open(out / "sub" / "wide colour-1.png") as im:
        assert im.text["cinn:draw"] == "mode"


def test_output_keeps_the_input_lightness(setup, tmp_path):
    """Converting an output back to gray (PIL convert('L')) gives the input's gray to within a
    few levels (out-of-gamut ab can be clipped in RGB; then lightness shifts a little)."""
    root, weights = setup
    assert (
        invoke(
            "colorize", root / "in" / "square.png", tmp_path, "-n", 1, "--seed", 3, "-t", 0.3, "--weights", weights
        ).exit_code
        == 0
    )
    with Image.open(root / "in" / "square.png") as a, Image.open(tmp_path / "square-1.png") as b:
        diff = np.abs(np.asarray(a.convert("L"), float) - np.asarray(b.convert("L"), float))
    assert np.median(diff) <= 2


def test_same_seed_same_bytes_skip_existing_and_stdin(setup, tmp_path):
    root, weights = setup
    src = root / "in" / "sub" / "wide colour.jpg"
    for name, seed, bs in (("a", 5, 8), ("b", 5, 1), ("c", 6, 8)):
        args = ("colorize", src, tmp_path / name, "-n", 3, "--seed", seed, "--batch-size", bs, "--weights", weights)
        assert invoke(*args).exit_code == 0
    read = lambda d: [(tmp_path / d / f"wide colour-{k}.png").read_bytes() for k in (1, 2, 3)]  # noqa: E731
    assert read("a") == read("b") and read("a") != read("c")
    again = invoke("colorize", src, tmp_path / "a", "-n", 3, "--seed", 5, "--weights", weights, "--json")
    summary = json.loads(again.stdout.splitlines()[-1])
    assert again.exit_code == 0 and summary["written"] == 0 and summary["skipped"] == 3
    piped = invoke(
        "colorize",
        "-",
        tmp_path / "d",
        "-n",
        1,
        "--seed",
        5,
        "--weights",
        weights,
        "--no-latents",
        "--format",
        "webp",
        input=f"{src}\n",
    )
    assert piped.exit_code == 0, piped.output
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["wide colour-1.webp"]


def test_colouring_on_the_main_thread_writes_the_same_bytes(setup, tmp_path, monkeypatch):
    """The GPU arrangement (full-size colouring on the main thread, workers only encode), run on
    the CPU, writes exactly what the CPU arrangement (colouring in the workers) writes."""
    from cinn_cli.tasks.colorize import colorize as pipeline

    root, weights = setup
    args = ("colorize", root / "in" / "sub", "-n", 2, "--seed", 7, "--weights", weights, "--grid")
    assert invoke(*args[:2], tmp_path / "workers", *args[2:]).exit_code == 0
    monkeypatch.setattr(pipeline, "colour_in_workers", lambda device: False)
    assert invoke(*args[:2], tmp_path / "main", *args[2:]).exit_code == 0
    files = sorted(p.relative_to(tmp_path / "workers") for p in (tmp_path / "workers").rglob("*.*"))
    assert len(files) == 10  # 2 photos x (2 outputs + 2 latents + a contact sheet)
    for f in files:
        assert (tmp_path / "main" / f).read_bytes() == (tmp_path / "workers" / f).read_bytes(), f


@pytest.mark.parametrize(
    "cores, workers, omp, expected",
    [(2, None, None, 1), (16, 3, None, 4), (16, 20, None, 1), (2, None, "2", 2)],
)
def test_the_model_and_workers_share_the_cores_on_the_cpu(setup, tmp_path, monkeypatch, cores, workers, omp, expected):
    """On the CPU colorize gives each of its workers + 1 Python threads cores // (workers + 1)
    torch threads (this machine: 2 workers by default, so one each) and restores the setting
    after; a user's OMP_NUM_THREADS decides instead."""
    from cinn_cli.tasks.colorize import colorize as pipeline

    root, weights = setup
    real, seen = pipeline.working_ab, []

    def spy(model, L, zs):
        seen.append(torch.get_num_threads())
        return real(model, L, zs)

    monkeypatch.setattr(pipeline, "working_ab", spy)
    monkeypatch.setattr(pipeline, "default_workers", lambda: 2)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    torch.set_num_threads(cores)
    try:
        extra = [] if workers is None else ["--workers", workers]
        result = invoke("colorize", root / "in" / "square.png", tmp_path, "-n", 1, "--weights", weights, *extra)
        assert result.exit_code == 0, result.output
        assert seen == [expected] and torch.get_num_threads() == cores
    finally:
        torch.set_num_threads(1)  # the module's single_thread setting


def test_missing_shipped_model_is_one_sentence(tmp_path, monkeypatch):
    from cinn_cli.files import model_file as storage

    monkeypatch.setattr(storage, "shipped_weights", lambda name: tmp_path / f"{name}.safetensors")
    (tmp_path / "x.png").write_bytes(b"")
    result = invoke("colorize", tmp_path / "x.png", tmp_path / "o")
    assert result.exit_code == 1 and "no shipped colorization model yet" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("inputs", ["empty folder", "one photo"])
def test_bad_model_file_fails_the_run_with_or_without_inputs(setup, tmp_path, inputs):
    """The model loads while the first photos decode; its error still ends the run (exit 1,
    one sentence, nothing written), also when there was no photo to wait for."""
    root, _ = setup
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    src = root / "in" / "square.png" if inputs == "one photo" else tmp_path / "empty"
    (tmp_path / "empty").mkdir()
    result = invoke("colorize", src, tmp_path / "o", "-n", 2, "--weights", bad)
    assert result.exit_code == 1 and "bad.safetensors" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.png"))


def test_train_colorize_three_steps_then_eval(setup, tmp_path, monkeypatch):
    from cinn_cli.tasks.colorize import model as core

    root, _ = setup
    monkeypatch.setitem(core.COLORIZE_PRESETS, "default", ColorizeConfig(**TINY_COLORIZE))
    out = tmp_path / "m.safetensors"
    args = ["train", "colorize", "--data", root / "train", "--val", root / "val", "--out", out]
    result = invoke(*args, "--steps", 3, "--batch-size", 4, "--crops-per-photo", 2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert out.exists() and "val bits per dim" in result.output
    ev = invoke("eval", "colorize", "--data", root / "val", "--weights", out, "-n", 2, "--json", "--device", "cpu")
    assert ev.exit_code == 0, ev.output
    r = json.loads(ev.stdout)
    assert math.isfinite(r["val_bits_per_dim"]) and r["images"] == 2
    assert 0 < r["best_of_n_rmse"] <= r["best_of_1_rmse"] and r["best_of_n_rmse_pixel"] <= r["best_of_n_rmse"]
    assert r["variance"] >= 0 and r["gray_colourfulness_ratio"] < 0.05
    # the ceiling: the photo's own colour, only coarsened to the model's resolution
    for prefix in ("", "whole_"):
        assert r[f"{prefix}ceiling_rmse"] < 0.5 * r[f"{prefix}gray_best_of_n_rmse"]
        assert 0.5 < r[f"{prefix}ceiling_colourfulness_ratio"] <= 1.05
    # whole photos at full size (72x48 here), as cinn colorize makes them
    assert r["whole_images"] == 2 and math.isfinite(r["whole_val_bits_per_dim"])
    assert 0 < r["whole_best_of_n_rmse"] <= r["whole_best_of_1_rmse"] and r["whole_min_variance"] > 0
    # plausibility: best-of-n <= typical, the mean of sample 1 and sample 2 (n = 2)
    ab = {k.removeprefix("whole_"): v for k, v in r.items() if k.startswith("whole_")}
    assert 0 < ab["best_of_n_ab_error_ratio"] <= ab["typical_ab_error_ratio"] and 0 <= ab["better_than_gray_rate"] <= 1
    mid = (ab["sample_1_ab_error_ratio"] + ab["other_samples_ab_error_ratio"]) / 2
    assert math.isclose(mid, ab["typical_ab_error_ratio"], rel_tol=1e-9)
    assert math.isclose(ab["typical_ab_error"], ab["typical_ab_error_ratio"] * ab["gray_ab_error"], rel_tol=1e-9)
    text = invoke("eval", "colorize", "--data", root / "val", "--weights", out, "-n", 2, "--device", "cpu")
    assert text.exit_code == 0 and "whole photos" in text.output and "better-than-gray rate" in text.output
    # --init fine-tunes that file: with --lr 0 the new file holds exactly its weights
    tuned = tmp_path / "tuned.safetensors"
    ft = invoke(*args[:-1], tuned, "--init", out, "--steps", 2, "--batch-size", 4, "--lr", 0, "--crop-sizes", "16,32")
    assert ft.exit_code == 0, ft.output
    (a, _), (b, info) = load_model(out), load_model(tuned)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert info.training["init"].startswith(str(out)) and info.training["crop_sizes"] == [16, 32]
    bad = invoke(*args[:-1], tmp_path / "x.safetensors", "--steps", 1, "--crop-sizes", "16,a")
    assert bad.exit_code == 2 and "--crop-sizes" in bad.output


# --------------------------------------------------------------------------- metrics


def test_colorization_metrics_by_hand():
    target = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    samples = torch.stack([torch.full((3, 2, 2), 0.5), torch.full((3, 2, 2), 0.1)]).unsqueeze(0).double()
    samples[0, 0, 0, 0, 0] = 0.0  # the worse sample is perfect on one value
    assert best_of_n_rmse(samples, target).item() == pytest.approx(0.1)
    per_pixel = math.sqrt((0.0 + 11 * 0.01) / 12)
    assert best_of_n_rmse_pixel(samples, target).item() == pytest.approx(per_pixel)
    var = ((0.5 - 0.1) / 2) ** 2 * 11 / 12 + (0.05**2) / 12
    assert sample_variance(samples).item() == pytest.approx(var)


def test_colourfulness_known_values():
    gray = torch.full((3, 4, 4), 0.3, dtype=torch.float64)
    assert colourfulness(gray).item() == pytest.approx(0.0)
    red = torch.zeros(3, 4, 4, dtype=torch.float64)
    red[0] = 1.0  # rg = 1, yb = 0.5 everywhere: no spread, M = 0.3 * sqrt(1.25)
    assert colourfulness(red).item() == pytest.approx(0.3 * math.sqrt(1.25))
    half = red.clone()
    half[0, :, :2] = 0.0  # rg and yb each 0 or 1 / 0.5 on half the pixels
    expected = math.sqrt(0.25 + 0.0625) + 0.3 * math.sqrt(0.25 + 0.0625)
    assert colourfulness(half).item() == pytest.approx(expected)


def test_training_crops_follow_the_recipe(setup):
    """Crops are crop_size squares from scales 1, 1/2, 1/4 that keep the short side >= the crop;
    a photo smaller than the crop is enlarged; batches are (ab at half resolution, L)."""
    from cinn_cli.tasks.colorize.train import ColorizeTask, crop_pyramid

    levels = crop_pyramid(photo(0, 72, 100), 16)
    assert [tuple(t.shape) for t in levels] == [(3, 72, 100), (3, 36, 50), (3, 18, 25)]
    assert [tuple(t.shape) for t in crop_pyramid(photo(0, 10, 20), 16)] == [(3, 16, 32)]
    root, _ = setup
    task = ColorizeTask(
        ColorizeCINN(ColorizeConfig(**TINY_COLORIZE)), root / "train", None, ((-0.5, -0.5), (0.5, 0.5)), 3
    )
    assert task.n_train == 12 and task.metric == "train_center_bits_per_dim"
    ab, L = task.batch(torch.arange(5), torch.Generator().manual_seed(0), torch.device("cpu"))
    assert ab.shape == (5, 2, 8, 8) and L.shape == (5, 1, 16, 16) and 0 <= L.min() and L.max() <= 100


def test_training_on_several_folders_takes_every_photo_in_order(setup):
    """--data A --data B: the photos of A, then B's (the same task as one folder holding both)."""
    from cinn_cli.tasks.colorize.train import ColorizeTask

    root, _ = setup
    model, noise = ColorizeCINN(ColorizeConfig(**TINY_COLORIZE)), ((-0.5, -0.5), (0.5, 0.5))
    both = ColorizeTask(model, [root / "train", root / "val"], None, noise, 3)
    one = ColorizeTask(model, root / "train", None, noise, 3)
    assert both.n_train == 18 and len(both.pyramids) == 6
    assert all(torch.equal(a[0], b[0]) for a, b in zip(one.pyramids, both.pyramids[:4], strict=True))


def test_training_crop_sizes_one_size_per_batch(setup):
    """--crop-sizes: each batch at one of the sizes, drawn from the run's generator; one size
    (the default) draws nothing extra, so a run without the option keeps its random stream."""
    from cinn_cli.tasks.colorize.train import ColorizeTask

    root, _ = setup
    model, noise = ColorizeCINN(ColorizeConfig(**TINY_COLORIZE)), ((-0.5, -0.5), (0.5, 0.5))
    default = ColorizeTask(model, root / "train", None, noise, 3)
    same = ColorizeTask(model, root / "train", None, noise, 3, crop_sizes=(16,))
    batch = [t.batch(torch.arange(4), torch.Generator().manual_seed(1), torch.device("cpu")) for t in (default, same)]
    assert all(torch.equal(x, y) for x, y in zip(*batch, strict=True))
    mixed = ColorizeTask(model, root / "train", None, noise, 3, crop_sizes=(16, 32))
    g = torch.Generator().manual_seed(0)
    sizes = {tuple(mixed.batch(torch.arange(3), g, torch.device("cpu"))[1].shape) for _ in range(12)}
    assert sizes == {(3, 1, 16, 16), (3, 1, 32, 32)}
    assert mixed.evaluate(model, torch.device("cpu"))  # val stays on the model's crop size
    with pytest.raises(ValueError, match="multiple of 8"):
        ColorizeTask(model, root / "train", None, noise, 3, crop_sizes=(16, 20))


def test_colorize_with_a_same_resolution_model(setup, tmp_path):
    """ab_downscale=1 (as the paper model): ab at the working size, still guided to full size."""
    root, _ = setup
    torch.manual_seed(1)
    cfg = ColorizeConfig(**{**TINY_COLORIZE, "cond_widths": (4, 4), "ab_downscale": 1})
    weights = tmp_path / "same.safetensors"
    save_model(ColorizeCINN(cfg), weights)
    result = invoke(
        "colorize", root / "in" / "sub" / "alpha.png", tmp_path / "o", "-n", 1, "--seed", 0, "--weights", weights
    )
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "o" / "alpha-1.png") as im:
        assert im.size == (20, 24)
        assert np.asarray(im)[..., 3].min() == 128  # alpha carried through


def test_out_of_memory_halves_the_batch(setup, tmp_path, monkeypatch):
    from cinn_cli.tasks.colorize import colorize as pipeline

    root, weights = setup
    real, sizes = pipeline.working_ab, []

    def flaky(model, L, zs):
        sizes.append(len(zs[0]))
        if len(zs[0]) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, L, zs)

    monkeypatch.setattr(pipeline, "working_ab", flaky)
    src = root / "in" / "square.png"
    result = invoke("colorize", src, tmp_path / "a", "-n", 5, "--seed", 2, "--batch-size", 8, "--weights", weights)
    assert result.exit_code == 0, result.output
    assert sizes == [5, 4, 2, 2, 1]  # 8 -> 4 -> 2, then the rest
    monkeypatch.setattr(pipeline, "working_ab", real)
    assert invoke("colorize", src, tmp_path / "b", "-n", 5, "--seed", 2, "--weights", weights).exit_code == 0
    for k in range(1, 6):
        assert (tmp_path / "a" / f"square-{k}.png").read_bytes() == (tmp_path / "b" / f"square-{k}.png").read_bytes()


@pytest.mark.parametrize("terminal", [True, False])
def test_eval_draws_progress_only_on_a_terminal(setup, monkeypatch, terminal):
    """cinn eval colorize takes minutes on real photos: its stages show a bar on a terminal, and
    nothing on a pipe or in a log file."""
    import io
    import sys

    from cinn_cli.tasks.colorize.evaluate import evaluate_colorize

    root, weights = setup
    err = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    evaluate_colorize(weights=weights, data_dir=root / "val", n=2, temperature=1.0, device=torch.device("cpu"))
    if terminal:
        shown = err.getvalue()
        assert "64x64 crops" in shown and "whole photos" in shown and "/2 [" in shown  # with their total, 2 photos
    else:
        assert err.getvalue() == ""
