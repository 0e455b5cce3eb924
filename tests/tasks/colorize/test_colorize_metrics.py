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
