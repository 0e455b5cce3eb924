"""``cinn train classes``: a class-conditional model from a folder per class (issue 23), and every
command of the task on such a model: sample by class name, encode/decode, style transfer, explore."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import invoke
from PIL import Image

from cinn_cli.files.model_file import read_model_info
from cinn_cli.tasks.mnist.folders import ClassDataError, load_class_folders, split_held_out
from cinn_cli.tasks.mnist.model import MnistConfig

TINY = ["--config", "blocks=[1,1,1]", "--config", "hidden=[4,4,8]", "--config", "cond_channels=[2,2,3]"]
CLASSES = ("red disc", "green square", "blue-cross")


def make_folders(root, size=(12, 8), per_class=6, colour=True):
    """``root/<class>/<i>.png``: three shapes, ``size`` = (width, height)."""
    w, h = size
    yy, xx = np.mgrid[:h, :w]
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            r = 1 + i % 3
            masks = [
                (yy - h // 2) ** 2 + (xx - w // 2) ** 2 < r * r,
                (abs(yy - h // 2) < r) & (abs(xx - w // 2) < r),
                (abs(yy - h // 2) < 1) | (abs(xx - w // 2) < 1),
            ]
            a = np.zeros((h, w, 3), np.uint8)
            a[masks[c]] = [(220, 30, 30), (30, 200, 40), (40, 60, 230)][c] if colour else (200, 200, 200)
            Image.fromarray(a).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def folders(tmp_path):
    return make_folders(tmp_path / "shapes")


@pytest.fixture
def trained(folders, tmp_path):
    model = tmp_path / "shapes.safetensors"
    result = invoke("train", "classes", "--data", folders, "--out", model, "--steps", 3, *TINY, "--device", "cpu")
    assert result.exit_code == 0, result.output
    return model


def test_the_data_decide_size_classes_and_names(trained):
    config = read_model_info(trained).config
    assert config["image_shape"] == [3, 8, 12]
    assert (config["n_classes"], config["class_names"]) == (3, sorted(CLASSES))


def test_sample_by_class_name_writes_named_rgb_files(trained, tmp_path):
    out = tmp_path / "s"
    result = invoke("sample", "--weights", trained, "--class", "red disc", "-n", 2, "-o", out, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.png")) == ["red_disc-0001.png", "red_disc-0002.png", "red_disc-grid.png"]
    with Image.open(out / "red_disc-0001.png") as im:
        assert (im.size, im.mode, im.text["cinn:class"]) == ((12, 8), "RGB", "red disc")
    every = invoke("sample", "--weights", trained, "--class", "all", "-n", 1, "-o", tmp_path / "a", "--no-grid")
    assert every.exit_code == 0 and len(list((tmp_path / "a").glob("*.png"))) == 3
    too_high = invoke("sample", "--weights", trained, "-d", 3, "-n", 1, "-o", tmp_path / "b")
    assert too_high.exit_code == 2 and "3 classes" in too_high.output


def test_encode_decodes_back_exactly_and_transfers_to_every_class(trained, folders, tmp_path):
    z, back = tmp_path / "z", tmp_path / "back"
    encoded = invoke("encode", folders, z, "--model", trained, "--verify", "--json")
    assert encoded.exit_code == 0, encoded.output
    assert invoke("sample", "--weights", trained, "--from-latent", z, "-o", back).exit_code == 0
    for name in CLASSES:
        for src in (folders / name).glob("*.png"):
            assert np.array_equal(np.asarray(Image.open(src)), np.asarray(Image.open(back / name / src.name)))
    source = z / "red disc" / "0.safetensors"
    moved = invoke("sample", "--weights", trained, "--from-latent", source, "--class", "all", "-o", tmp_path / "t")
    assert moved.exit_code == 0, moved.output
    assert {p.name for p in (tmp_path / "t").iterdir()} >= {"0-red_disc.png", "0-green_square.png", "0-grid.png"}
    (tmp_path / "loose").mkdir()
    (folders / "red disc" / "0.png").rename(tmp_path / "loose" / "0.png")
    wrong = invoke("encode", tmp_path / "loose", tmp_path / "w", "--model", trained)  # its folder is no class
    assert wrong.exit_code == 1 and "has no label" in wrong.output


def test_explore_walks_every_class(trained, folders, tmp_path):
    out = tmp_path / "ex"
    args = ["explore", "--data", folders, "--weights", trained, "--axes", 2, "--steps", 3, "-o", out, "--json"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    shares = json.loads(result.stdout.splitlines()[0])
    assert sorted(shares["digits"]) == sorted(CLASSES)
    assert {"red_disc-axes.png", "style-1.png", "style-2.png"} <= {p.name for p in out.iterdir()}
    one = invoke("explore", "--data", folders, "--weights", trained, "--class", "blue-cross", "-o", tmp_path / "one")
    assert one.exit_code == 0 and (tmp_path / "one" / "blue-cross-axes.png").exists()


def test_eval_measures_a_folder_per_class_without_a_classifier(trained, folders, tmp_path):
    """cinn eval mnist --data FOLDER: bits/dim of every image, exact round trips, diversity per
    class (the numbers that need no classifier), as JSON and as text, and --record."""
    args = ["eval", "mnist", "--data", folders, "--weights", trained, "--per-digit", 4, "-t", 0.5, "-t", 1]
    result = invoke(*args, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["images"] == 18 and r["class_names"] == sorted(CLASSES)
    assert 0 < r["bits_per_dim"] < 16 and r["images_above_8_bits_per_dim"] <= 18
    assert r["round_trip_images"] == 18 and r["round_trip_exact"] == 18
    assert [s["temperature"] for s in r["samples"]] == [0.5, 1.0]
    for s in r["samples"]:
        assert s["diversity"] > 0 and sorted(s["per_class_diversity"]) == sorted(CLASSES)
    # a lower temperature gives samples closer together
    assert r["samples"][0]["diversity"] < r["samples"][1]["diversity"]
    text = invoke(*args, "--device", "cpu", "--record")
    assert text.exit_code == 0 and "18/18 images exact" in text.output and "diversity" in text.output
    assert read_model_info(trained).metrics["round_trip_exact"] == 18  # --record stored it


def test_eval_of_a_folder_refuses_what_it_cannot_measure(trained, folders, tmp_path):
    result = invoke("eval", "mnist", "--data", folders, "--weights", trained, "--classifier", "mnist")
    assert result.exit_code == 2 and "--classifier needs a classifier of the data" in result.output
    gray = make_folders(tmp_path / "gray", colour=False)  # gray images: given to the colour model as RGB
    assert invoke("eval", "mnist", "--data", gray, "--weights", trained, "--per-digit", 2).exit_code == 0
    small = make_folders(tmp_path / "small", size=(6, 8))
    result = invoke("eval", "mnist", "--data", small, "--weights", trained)
    assert result.exit_code == 1 and "images are 6x8, but the model's are 12x8" in result.output
    assert "Traceback" not in result.output


def test_gray_folders_train_a_one_channel_model(tmp_path):
    data = make_folders(tmp_path / "gray", size=(8, 8), colour=False)
    assert load_class_folders(data).image_shape == (1, 8, 8)
    model = tmp_path / "g.safetensors"
    assert invoke("train", "classes", "--data", data, "--out", model, "--steps", 1, *TINY).exit_code == 0
    assert read_model_info(model).config["image_shape"] == [1, 8, 8]


def test_held_out_split_is_fixed_and_keeps_every_class(folders):
    data = load_class_folders(folders)
    train, held = split_held_out(data, 0.3)
    again_train, again_held = split_held_out(data, 0.3)
    assert torch.equal(held.images, again_held.images) and len(train.labels) + len(held.labels) == 18
    assert sorted(set(held.labels.tolist())) == [0, 1, 2] and sorted(set(train.labels.tolist())) == [0, 1, 2]


def test_mnist_config_files_stay_as_they_were():
    assert "image_shape" not in MnistConfig().to_dict()  # MNIST model files: not one byte more
    assert MnistConfig(image_shape=(3, 8, 8)).to_dict()["image_shape"] == (3, 8, 8)


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda d: Image.new("RGB", (8, 8)).save(d / "red disc" / "odd.png"), "odd.png is 8x8, but"),
        (lambda d: (d / "empty").mkdir(), "class folder"),
        (lambda d: (d / "green square" / "notes.txt").write_text("x"), "notes.txt is not an image"),
        (lambda d: (d / "blue-cross" / "fake.png").write_bytes(b"not a png"), "fake.png is not an image"),
        (lambda d: Image.new("RGB", (12, 8)).save(d / "loose.png"), "loose.png is not in a class folder"),
        (lambda d: Image.new("RGB", (100, 8)).save(d / "red disc" / "wide.png"), "at most 64x64"),
    ],
)
def test_bad_data_is_refused_naming_the_file_and_nothing_is_written(folders, tmp_path, spoil, message):
    spoil(folders)
    out = tmp_path / "m.safetensors"
    result = invoke("train", "classes", "--data", folders, "--out", out, "--steps", 1, *TINY)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not out.exists() and not list(tmp_path.glob("m.safetensors*"))


def test_fewer_than_two_classes_and_a_mismatched_val_folder_are_refused(tmp_path):
    data = make_folders(tmp_path / "d")
    one = tmp_path / "one"
    one.mkdir()
    (data / "red disc").rename(one / "red disc")
    with pytest.raises(ClassDataError, match="needs at least two"):
        load_class_folders(one)
    val = make_folders(tmp_path / "v")
    (val / "blue-cross").rename(val / "purple")
    result = invoke("train", "classes", "--data", data, "--val", val, "--out", tmp_path / "m", "--steps", 1, *TINY)
    assert result.exit_code == 1 and "missing blue-cross" in result.output and "purple" in result.output
    taken = invoke("train", "classes", "--data", data, "--out", tmp_path / "m", "--config", "n_classes=5")
    assert taken.exit_code == 1 and "come from the data folder" in taken.output


def test_an_init_model_of_other_classes_is_refused(trained, tmp_path):
    other = make_folders(tmp_path / "other", size=(8, 8))
    result = invoke("train", "classes", "--data", other, "--init", trained, "--out", tmp_path / "m", "--steps", 1)
    assert result.exit_code == 1 and "the --init model takes 12x8 RGB images" in result.output


def test_idx_data_train_as_mnist_with_their_names(mnist_dir, tmp_path):
    model = tmp_path / "idx.safetensors"
    names = ",".join("abcdefghij")
    args = ["train", "classes", "--data", mnist_dir, "--out", model, "--steps", 1, "--batch-size", 16, *TINY]
    result = invoke(*args, "--class-names", names)
    assert result.exit_code == 0, result.output
    config = read_model_info(model).config
    assert config["class_names"] == list("abcdefghij") and "image_shape" not in config


def test_the_python_api_takes_such_a_model_by_class_name(trained, folders):
    from cinn_cli import load

    model = load(trained, device="cpu")
    drawn = model.sample("green square", n=2, seed=3)
    assert [(im.size, im.mode) for im in drawn] == [((12, 8), "RGB")] * 2
    source = Image.open(folders / "blue-cross" / "2.png")
    latent = model.encode(source, "blue-cross")
    assert np.array_equal(np.asarray(model.decode(latent)), np.asarray(source))
    assert model.decode(latent, "red disc").size == (12, 8)
    with pytest.raises(ValueError, match="not a class of this model"):
        model.sample("purple")


def test_the_shipped_fashion_model_draws_a_class_by_name(tmp_path):
    """`cinn sample --weights fashion --class "Ankle boot"`: the second shipped model, by name;
    its files are named after the class and say which class they are."""
    from cinn_cli.files.model_file import shipped_weights

    if not shipped_weights("fashion").exists():
        pytest.skip("no shipped weights")
    info = read_model_info(shipped_weights("fashion"))
    assert info.config["class_names"][9] == "Ankle boot" and info.config["sample_temperature"] == 0.8
    out = tmp_path / "s"
    r = invoke("sample", "--weights", "fashion", "--class", "Ankle boot", "-n", "2", "--seed", "1", "-o", out)
    assert r.exit_code == 0, r.output
    png = Image.open(out / "Ankle_boot-0002.png")
    assert png.size == (28, 28) and png.text["cinn:class"] == "Ankle boot"
    assert (out / "Ankle_boot-0001.safetensors").exists()
    unknown = invoke("sample", "--weights", "fashion", "--class", "Sock", "-o", tmp_path / "x")
    assert unknown.exit_code == 2 and "Ankle boot" in unknown.output
