"""cinn explore: principal axes of the latents, walked and decoded."""

from __future__ import annotations

import json

import torch
from helpers import invoke, tree
from PIL import Image

from cinn_cli.tasks.mnist.explore import principal_axes


def test_principal_axes_find_the_direction_of_largest_spread():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=g, dtype=torch.float64) * torch.tensor([0.1, 3.0, 1.0], dtype=torch.float64)
    axes, std, share = principal_axes(x - x.mean(0), 2)
    assert 0.85 < share[0] < 0.95 and share[1] < share[0]  # variances 9, 1, 0.01 of 10.01
    assert torch.allclose(axes[0].abs(), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=0.05)
    assert 2.7 < std[0] < 3.3 and 0.9 < std[1] < 1.1
    assert bool((axes.gather(1, axes.abs().argmax(1, keepdim=True)) > 0).all())  # signs fixed


def test_explore_writes_a_sheet_per_digit_and_per_style_axis(mnist_dir, mnist_weights, tmp_path):
    out = tmp_path / "ex"
    args = ["explore", "--data", mnist_dir, "--weights", mnist_weights, "-d", "0,1", "--axes", 2, "--steps", 5]
    result = invoke(*args, "-o", out, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    shares = json.loads(result.output.splitlines()[0])
    files = sorted(p.name for p in out.iterdir())
    assert files == ["0-axes.png", "1-axes.png", "style-1.png", "style-2.png"]
    with Image.open(out / "0-axes.png") as im:  # 2 rows of 5 tiles of 28 px (2 px gaps), shown 4x
        assert im.size == (4 * (5 * 30 + 2), 4 * (2 * 30 + 2))
    with Image.open(out / "style-1.png") as im:  # a row per digit
        assert im.size == (4 * (5 * 30 + 2), 4 * (2 * 30 + 2))
    for d in ("0", "1"):
        v = shares["digits"][d]["variance_share"]
        assert len(v) == 2 and 0 < v[1] <= v[0] < 1
    before = tree(out)
    again = invoke(*args, "-o", out, "--device", "cpu")
    assert again.exit_code == 0 and "4 skipped" in again.output and tree(out) == before
    rewrite = invoke(*args, "-o", out, "--device", "cpu", "--overwrite")
    assert rewrite.exit_code == 0 and tree(out) == before  # the same bytes again


def test_explore_needs_the_data(tmp_path, monkeypatch):
    monkeypatch.delenv("CINN_MNIST", raising=False)
    result = invoke("explore", "-o", tmp_path / "ex")
    assert result.exit_code == 2 and "--data" in result.output
