"""The colorization metrics (ab errors against the photo and against its own gray)."""

from __future__ import annotations

import torch

from cinn_cli.tasks.colorize.color import lab_to_rgb
from cinn_cli.tasks.colorize.metrics import ab_errors


def test_ab_errors_perfect_gray_and_known_case():
    target = torch.rand(2, 3, 300, 520)
    L = torch.full((1, 1, 4, 4), 60.0)
    gray_rgb = lab_to_rgb(torch.cat([L, torch.zeros(1, 2, 4, 4)], 1))
    # perfect colouring -> 0; the photo's own gray -> exactly gray's error
    err, gray = ab_errors(target.unsqueeze(1), target)
    assert err.shape == (2, 1) and err.abs().max() < 1e-9 and (gray > 1).all()
    # a flat colour with ab = (30, 40) against flat gray: distance 50, gray's error 0, and back
    flat = lab_to_rgb(torch.cat([L, torch.tensor([30.0, 40.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4)], 1))
    e, g = ab_errors(flat.unsqueeze(1), gray_rgb)
    assert abs(float(e) - 50.0) < 0.05 and float(g) < 0.05
    e, g = ab_errors(gray_rgb.unsqueeze(1), flat)
    assert abs(float(e) - float(g)) < 1e-4 and abs(float(g) - 50.0) < 0.05


def test_reduced_ab_brings_the_short_side_to_256_and_never_enlarges():
    from cinn_cli.tasks.colorize.metrics import reduced_ab

    assert reduced_ab(torch.rand(1, 3, 300, 520)).shape == (1, 2, 256, 444)
    small = torch.rand(2, 3, 40, 60)
    ab = reduced_ab(small)
    assert ab.shape == (2, 2, 40, 60) and ab.dtype == torch.float64
    # a flat colour keeps its ab when reduced (area average of equal pixels)
    L = torch.full((1, 1, 512, 600), 60.0)
    flat = lab_to_rgb(torch.cat([L, torch.tensor([30.0, -20.0]).view(1, 2, 1, 1).expand(1, 2, 512, 600)], 1))
    got = reduced_ab(flat).mean((0, 2, 3))
    assert torch.allclose(got, torch.tensor([30.0, -20.0], dtype=torch.float64), atol=0.05)
