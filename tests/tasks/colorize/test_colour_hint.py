"""The training-only colour signal (--colour-loss): bins, rarity weights, the head's loss, and
that the head is trained, checkpointed and kept out of the model file."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import TINY_COLORIZE, invoke, photo
from PIL import Image

from cinn_cli.files.model_file import read_header
from cinn_cli.tasks.colorize.colour_hint import N_BINS, SIDE, ColourHead, ab_bins, count_bins, rebalancing_weights
from cinn_cli.tasks.colorize.model import ColorizeConfig

pytestmark = pytest.mark.usefixtures("single_thread")


def test_bins_by_hand():
    ab = torch.tensor([[-110.0, -110.0], [-99.9, -110.0], [0.0, 0.0], [109.9, 109.9], [500.0, -500.0]])
    bins = ab_bins(ab.T.reshape(1, 2, 1, 5)).reshape(-1).tolist()
    assert bins == [0, SIDE, 11 * SIDE + 11, N_BINS - 1, (SIDE - 1) * SIDE]


def test_rare_colours_weigh_more_and_the_mean_weight_is_one():
    counts = torch.zeros(N_BINS)
    counts[11 * SIDE + 11] = 1000.0  # gray, common
    counts[3 * SIDE + 18] = 10.0  # a saturated colour, rare
    w = rebalancing_weights(counts).double()
    assert w[3 * SIDE + 18] > 2 * w[11 * SIDE + 11]  # (0.5 x 0.99 + 0.25) / (0.5 x 0.01 + 0.25), smoothed
    # E_p~[w] = 1 under the smoothed distribution, so the loss keeps its scale
    p = counts / counts.sum()
    assert w.min() > 0 and math.isfinite(float(w.sum()))
    assert float((p * w).sum()) < 1.0  # the raw distribution puts its mass on gray, weighted below 1
    # mix=1 (uniform): every weight 1
    assert torch.allclose(rebalancing_weights(counts, mix=1.0), torch.ones(N_BINS))


def test_head_loss_is_the_weighted_cross_entropy():
    torch.manual_seed(0)
    ab = torch.randn(2, 2, 8, 8) * 30
    counts = count_bins([ab[i : i + 1] for i in range(2)])
    assert counts.sum() == 2 * 64
    head = ColourHead(5, rebalancing_weights(counts))
    feats = torch.randn(2, 5, 4, 4)
    loss = head.loss(feats, ab)
    target = ab_bins(torch.nn.functional.avg_pool2d(ab, 2))
    logp = torch.log_softmax(head.classify(feats), 1)
    expected = -(logp.gather(1, target[:, None])[:, 0] * head.weights[target]).flatten(1).mean(1)
    assert loss.shape == (2,) and torch.allclose(loss, expected, atol=1e-6)


@pytest.fixture
def tiny_train_photos(tmp_path, monkeypatch):
    """A folder of three small photos, with the tiny colorize config as the default preset."""
    from cinn_cli.tasks.colorize import model as core

    monkeypatch.setitem(core.COLORIZE_PRESETS, "default", ColorizeConfig(**TINY_COLORIZE))
    data = tmp_path / "train"
    data.mkdir()
    for i in range(3):
        Image.fromarray(photo(i, 40, 48)).save(data / f"p{i}.png")
    return data


def test_train_with_colour_loss_resumes_its_head_and_ships_without_it(tmp_path, tiny_train_photos):
    data = tiny_train_photos
    out = tmp_path / "m.safetensors"
    common = ["--batch-size", 4, "--crops-per-photo", 4, "--device", "cpu", "--colour-loss", 0.5, "--seed", 1]
    args = ["train", "colorize", "--data", data, "--out", out, *common]
    first = invoke(*args, "--steps", 2)
    assert first.exit_code == 0, first.output
    state = torch.load(f"{out}.ckpt", weights_only=False)
    assert set(state["task_modules"]) == {"classify.weight", "classify.bias", "weights"}
    meta, tensors = read_header(out)
    assert not any("classify" in k for k in tensors)  # not in the model file
    assert json.loads(meta["training"])["colour_loss"] == 0.5
    # a resumed run loads the head from the checkpoint and trains it on
    resumed = invoke(*args, "--steps", 3, "--resume")
    assert resumed.exit_code == 0 and "resumed from" in resumed.output, resumed.output
    after = torch.load(f"{out}.ckpt", weights_only=False)["task_modules"]
    assert not torch.equal(after["classify.bias"], state["task_modules"]["classify.bias"])
    assert torch.equal(after["weights"], state["task_modules"]["weights"])
    # a checkpoint written without the head cannot silently start a fresh one
    plain = tmp_path / "plain.safetensors"
    assert invoke("train", "colorize", "--data", data, "--out", plain, *common[:-4], "--steps", 2).exit_code == 0
    wrong = invoke("train", "colorize", "--data", data, "--out", plain, *common, "--steps", 3, "--resume")
    assert wrong.exit_code == 1 and "training-only weights" in wrong.output and "Traceback" not in wrong.output


def test_train_part_trains_only_its_part_and_is_refused_where_it_would_train_nothing(tmp_path, tiny_train_photos):
    from cinn_cli.tasks import load_model

    data = tiny_train_photos
    common = ["--data", data, "--batch-size", 4, "--crops-per-photo", 4, "--device", "cpu", "--steps", 2]
    init = tmp_path / "init.safetensors"
    assert invoke("train", "colorize", *common, "--out", init).exit_code == 0
    before, _ = load_model(init, task="colorize")

    def changed(out):
        after, info = load_model(out, task="colorize")
        moved = {
            part: any(
                not torch.equal(a, b)
                for a, b in zip(getattr(before, part).parameters(), getattr(after, part).parameters(), strict=True)
            )
            for part in ("cond_net", "flow")
        }
        return moved, info.training

    pre = tmp_path / "pre.safetensors"
    r = invoke(
        "train", "colorize", *common, "--init", init, "--train-part", "condition", "--colour-loss", 1, "--out", pre
    )
    assert r.exit_code == 0, r.output
    moved, record = changed(pre)
    assert moved == {"cond_net": True, "flow": False} and record["train_part"] == "condition"
    flow = tmp_path / "flow.safetensors"
    r = invoke("train", "colorize", *common, "--init", init, "--train-part", "flow", "--out", flow)
    assert r.exit_code == 0, r.output
    moved, record = changed(flow)
    assert moved == {"cond_net": False, "flow": True} and record["train_part"] == "flow"
    for args, words in (
        (["--train-part", "condition"], "give --colour-loss > 0"),
        (["--train-part", "flow", "--colour-loss", 1], "would train nothing"),
    ):
        r = invoke("train", "colorize", *common, "--init", init, *args, "--out", tmp_path / "no.safetensors")
        assert r.exit_code != 0 and words in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "no.safetensors").exists()
    # the Python function hands back a model whose every weight trains again
    from cinn_cli.tasks.colorize.train import train_colorize

    model, _ = train_colorize(
        data_dir=data,
        val_dir=None,
        preset="default",
        epochs=None,
        batch_size=4,
        lr=None,
        seed=0,
        steps=1,
        crops_per_photo=4,
        init=str(init),
        train_part="flow",
        out=tmp_path / "api.safetensors",
        device=torch.device("cpu"),
        progress=False,
    )
    assert all(p.requires_grad for p in model.parameters())
    # trained with channels-last weights, handed back in the default layout (here, samples drawn
    # alone or together agree exactly)
    assert all(p.is_contiguous() for p in model.parameters())
    from cinn_cli.tasks.colorize.colorize import working_ab

    g = torch.Generator().manual_seed(0)
    L = 100 * torch.rand(1, 1, 64, 96, generator=g)
    zs = [torch.randn(3, *s, generator=g) for s in model.latent_shapes(*model.working_size(64, 96))]
    with torch.no_grad():
        one, three = working_ab(model, L, [z[:1] for z in zs]), working_ab(model, L, zs)
    assert torch.equal(one, three[:1])


def test_train_part_choices_are_the_tasks():
    from cinn_cli.tasks.colorize.commands import train_colorize_cmd
    from cinn_cli.tasks.colorize.train import TRAIN_PARTS

    (option,) = [p for p in train_colorize_cmd.params if p.name == "train_part"]
    assert tuple(option.type.choices) == TRAIN_PARTS
