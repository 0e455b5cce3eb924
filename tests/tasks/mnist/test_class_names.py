"""Class names stored in an MNIST-task model file, and drawing by name (issue 23, first slice)."""

from __future__ import annotations

import json

from helpers import invoke

from cinn_cli.files.model_file import read_model_info

NAMES = "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
TINY = ["--config", "blocks=[1,1,1]", "--config", "hidden=[4,4,8]", "--config", "cond_channels=[2,2,3]"]


def test_train_stores_the_names_and_sample_draws_by_name(mnist_dir, tmp_path):
    model = tmp_path / "fashion.safetensors"
    args = ["train", "mnist", "--data", mnist_dir, "--out", model, "--steps", 2, "--batch-size", 16, *TINY]
    result = invoke(*args, "--class-names", NAMES, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert read_model_info(model).config["class_names"] == NAMES.split(",")
    drawn = invoke(
        "sample", "--weights", model, "--class", "Ankle boot", "--class", "Bag", "-n", 2, "-o", tmp_path / "s"
    )
    assert drawn.exit_code == 0, drawn.output
    assert sorted(p.name for p in (tmp_path / "s").glob("*.png")) == [
        "Ankle_boot-0001.png",
        "Ankle_boot-0002.png",
        "Ankle_boot-grid.png",
        "Bag-0001.png",
        "Bag-0002.png",
        "Bag-grid.png",
    ]  # fmt: skip  (named classes name the files: a space is made "_")
    from PIL import Image

    with Image.open(tmp_path / "s" / "Ankle_boot-0001.png") as im:
        assert (im.text["cinn:digit"], im.text["cinn:class"]) == ("9", "Ankle boot")
    every = invoke("sample", "--weights", model, "--class", "all", "-n", 1, "-o", tmp_path / "a", "--json")
    summary = [json.loads(line) for line in every.output.splitlines() if line.startswith("{")][-1]
    assert every.exit_code == 0 and summary["written"] == 10


def test_wrong_class_names_and_classes_are_usage_errors(mnist_dir, tmp_path):
    args = ["train", "mnist", "--data", mnist_dir, "--out", tmp_path / "m.safetensors", "--steps", 1, *TINY]
    for bad in ("a,b,c", "a,a,b,c,d,e,f,g,h,i"):
        result = invoke(*args, "--class-names", bad)
        assert result.exit_code == 2 and "ten different names" in result.output
    unknown = invoke("sample", "--class", "Sock", "-n", 1, "-o", tmp_path / "s")
    assert unknown.exit_code == 2 and "'Sock': not a class of this model (0, 1, 2" in unknown.output
    both = invoke("sample", "--class", "3", "--digit", "3", "-n", 1, "-o", tmp_path / "s")
    assert both.exit_code == 2 and "not both" in both.output
    assert not (tmp_path / "s").exists()


def test_eval_judges_with_another_classifier_or_refuses_a_bad_one(mnist_dir, mnist_weights, tmp_path):
    from helpers import ROOT

    args = ["eval", "mnist", "--data", mnist_dir, "--weights", mnist_weights, "--per-digit", 2]
    args += ["--transfer-images", 0, "--device", "cpu", "--json"]
    shipped = ROOT / "weights" / "mnist-classifier.safetensors"
    judged = invoke(*args, "--classifier", shipped)
    assert judged.exit_code == 0, judged.output
    assert json.loads(judged.stdout)["classifier"] == str(shipped)
    refused = invoke(*args, "--classifier", mnist_weights)  # a cINN model file, not a classifier
    assert refused.exit_code == 1 and "not a cinn classifier file" in refused.output
    assert "Traceback" not in refused.output


def test_a_model_file_sets_its_own_sampling_temperature(mnist_dir, tmp_path):
    from PIL import Image

    model = tmp_path / "warm.safetensors"
    args = ["train", "mnist", "--data", mnist_dir, "--out", model, "--steps", 1, "--batch-size", 16, *TINY]
    assert invoke(*args, "--config", "sample_temperature=0.8", "--device", "cpu").exit_code == 0
    assert invoke("sample", "--weights", model, "-d", 1, "-n", 1, "-o", tmp_path / "s").exit_code == 0
    with Image.open(tmp_path / "s" / "1-0001.png") as im:
        assert im.text["cinn:temperature"] == "0.8"
    assert invoke("sample", "--weights", model, "-d", 1, "-n", 1, "-t", 0.5, "-o", tmp_path / "t").exit_code == 0
    with Image.open(tmp_path / "t" / "1-0001.png") as im:
        assert im.text["cinn:temperature"] == "0.5"  # -t still decides when given
    judged = invoke("eval", "mnist", "--data", mnist_dir, "--weights", model, "--per-digit", 2, "--transfer-images", 0)
    assert judged.exit_code == 0 and "T=0.8" in judged.output
