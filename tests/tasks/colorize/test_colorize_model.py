"""Correctness of the colorization cINN (DESIGN.md section 4), in float64 with random parameters.

The log-det is checked against the brute-force Jacobian of the whole map from ab *in Lab units*
to the latent, so it must include the ab normalisation.
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers import LOGDET_TOL, ROUND_TRIP_TOL, flat, max_abs_diff, randomise_
from torch import nn
from torch.autograd.functional import jacobian

from cinn_cli.tasks import build_model
from cinn_cli.tasks.colorize.model import COLORIZE_PRESETS, ColorizeCINN, ColorizeConfig, ab_bits_per_dim

pytestmark = pytest.mark.usefixtures("single_thread")


# ab at half of L's resolution (ours) and at L's resolution; 2 levels, so L is a multiple of 8 / 4
TINY = {
    "half-res": ColorizeConfig(blocks=(1, 1), hidden=(4, 4), cond_channels=(2, 3), cond_widths=(4, 4, 4), global_dim=4),
    "same-res": ColorizeConfig(
        blocks=(2, 1), hidden=(4, 4), cond_channels=(2, 3), cond_widths=(4, 4), global_dim=3, ab_downscale=1
    ),
}
L_SIZE = {"half-res": (8, 16), "same-res": (4, 8)}  # non-square on purpose


@pytest.fixture(params=list(TINY), ids=list(TINY))
def setup(request):
    """``(model, ab, L, zs)``: a float64 tiny model with random parameters, two ab images in Lab
    units, their lightness and a random latent of the model's shapes."""
    name = request.param
    model = randomise_(ColorizeCINN(TINY[name]).double(), seed=1)
    g = torch.Generator().manual_seed(2)
    H, W = L_SIZE[name]
    L = 100 * torch.rand(2, 1, H, W, generator=g, dtype=torch.float64)
    h, w = model.ab_size(H, W)
    ab = 30 * torch.randn(2, 2, h, w, generator=g, dtype=torch.float64)
    zs = [torch.randn(2, *s, generator=g, dtype=torch.float64) for s in model.latent_shapes(H, W)]
    return model, ab, L, zs


def test_latent_shapes_match_forward(setup):
    model, ab, L, _ = setup
    zs, logdet = model(ab, L)
    assert [tuple(z.shape[1:]) for z in zs] == model.latent_shapes(*L.shape[-2:])
    assert flat(zs).shape[1] == ab[0].numel() and logdet.shape == (2,)
    assert len(zs) == model.n_latent_levels


def test_round_trips(setup):
    model, ab, L, zs = setup
    assert max_abs_diff(model.inverse(model(ab, L)[0], L), ab) < ROUND_TRIP_TOL
    assert max_abs_diff(flat(model(model.inverse(zs, L), L)[0]), flat(zs)) < ROUND_TRIP_TOL


def test_logdet_matches_jacobian_including_normalisation(setup):
    model, ab, L, _ = setup
    _, logdet = model(ab, L)
    d = ab[0].numel()
    for i in range(2):
        jac = jacobian(lambda t, i=i: flat(model(t, L[i : i + 1])[0])[0], ab[i : i + 1], vectorize=True)
        sign, logabs = torch.linalg.slogdet(jac.reshape(d, d))
        assert sign != 0
        assert abs(logdet[i].item() - logabs.item()) < LOGDET_TOL


def test_flow_logdets_opposite(setup):
    model, ab, L, _ = setup
    v, _ = model.preprocess(ab)
    feats = model.cond_feats(L)
    zs, fwd = model.flow(v, feats)
    back, inv = model.flow.inverse(zs, feats)
    assert max_abs_diff(back, v) < ROUND_TRIP_TOL and (fwd + inv).abs().max().item() < ROUND_TRIP_TOL


def test_inputs_not_modified(setup):
    model, ab, L, zs = setup
    tensors = [ab, L, *zs]
    saved = [t.clone() for t in tensors]
    model(ab, L)
    model.inverse(zs, L)
    model.log_prob(ab, L)
    assert all(torch.equal(a, b) for a, b in zip(saved, tensors, strict=True))


def test_log_prob_by_hand_and_bits(setup):
    model, ab, L, _ = setup
    zs, logdet = model(ab, L)
    d = ab[0].numel()
    by_hand = -0.5 * flat(zs).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi) + logdet
    lp = model.log_prob(ab, L)
    assert max_abs_diff(lp, by_hand) < 1e-9
    assert max_abs_diff(ab_bits_per_dim(lp, d), -lp / (d * math.log(2))) < 1e-12


def test_global_context_reaches_every_position():
    """Changing L in one corner changes the latent far away (the pooled global vector), so the
    whole photo informs every position even though the network is fully convolutional."""
    model = randomise_(ColorizeCINN(TINY["half-res"]).double(), seed=3)
    g = torch.Generator().manual_seed(4)
    L = 100 * torch.rand(1, 1, 16, 32, generator=g, dtype=torch.float64)
    ab = 20 * torch.randn(1, 2, 8, 16, generator=g, dtype=torch.float64)
    other = L.clone()
    other[..., :4, :4] = 100 - other[..., :4, :4]
    z1, z2 = model(ab, L)[0][0], model(ab, other)[0][0]
    assert (z1 - z2)[..., -1, -1].abs().max() > 1e-6  # the opposite corner of the first level


def test_size_errors_are_clear():
    model = ColorizeCINN(TINY["half-res"])
    with pytest.raises(ValueError, match="multiple of 8"):
        model.latent_shapes(12, 16)
    with pytest.raises(ValueError, match="does not fit"):
        model(torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 8, 8))
    paper = ColorizeCINN(COLORIZE_PRESETS["paper"])
    with pytest.raises(ValueError, match="64x64"):
        paper.latent_shapes(64, 128)


def test_working_size_keeps_the_aspect_ratio():
    model = ColorizeCINN(COLORIZE_PRESETS["default"])
    assert model.working_size(480, 640) == (128, 176)  # 128 x 170.7 -> the nearest multiple of 16
    assert model.working_size(1000, 250) == (512, 128)
    assert ColorizeCINN(COLORIZE_PRESETS["paper"]).working_size(480, 640) == (64, 64)


def test_paper_preset_parameter_count_and_latents():
    """The reference colorization_minimal_example: INN 9,555,080 + CondNet 1,455,680."""
    model = ColorizeCINN(COLORIZE_PRESETS["paper"])
    assert sum(p.numel() for p in model.flow.parameters()) == 9_555_080
    assert sum(p.numel() for p in model.cond_net.parameters()) == 1_455_680
    assert model.latent_shapes(64, 64) == [(6, 32, 32), (4, 16, 16), (1024,)]


def test_paper_preset_round_trip():
    model = randomise_(ColorizeCINN(COLORIZE_PRESETS["paper"]).double(), seed=5, scale=0.02)
    g = torch.Generator().manual_seed(6)
    L = 100 * torch.rand(1, 1, 64, 64, generator=g, dtype=torch.float64)
    ab = 20 * torch.randn(1, 2, 64, 64, generator=g, dtype=torch.float64)
    assert max_abs_diff(model.inverse(model(ab, L)[0], L), ab) < ROUND_TRIP_TOL


@pytest.mark.parametrize("arch", ["tiny", "paper"])
def test_working_ab_shares_the_condition_across_samples(arch):
    """``working_ab`` runs the condition once per photo (batch 1) for n latents: the result equals
    the inverse under the lightness repeated n times (the paper model's last level is fully
    connected, the tiny one's convolutional), in float64."""
    from cinn_cli.tasks.colorize.color import resize
    from cinn_cli.tasks.colorize.colorize import working_ab

    config = TINY["half-res"] if arch == "tiny" else COLORIZE_PRESETS["paper"]
    model = randomise_(ColorizeCINN(config).double(), seed=7, scale=0.02 if arch == "paper" else 1.0)
    g = torch.Generator().manual_seed(8)
    L = 100 * torch.rand(1, 1, 64, 96, generator=g, dtype=torch.float64)
    size = model.working_size(64, 96)
    zs = [torch.randn(3, *s, generator=g, dtype=torch.float64) for s in model.latent_shapes(*size)]
    repeated = model.inverse(zs, resize(L, size).expand(3, 1, *size)).clamp(-128.0, 128.0)
    shared = working_ab(model, L, zs)
    assert shared.shape == repeated.shape and shared.shape[0] == 3
    assert max_abs_diff(shared, repeated) < ROUND_TRIP_TOL


def test_default_preset_is_fully_convolutional():
    model = ColorizeCINN(COLORIZE_PRESETS["default"])
    assert model.latent_shapes(64, 96) == [(4, 16, 24), (8, 8, 12), (32, 4, 6)]
    assert not any(isinstance(m, nn.Linear) for m in model.flow.modules())


def test_config_round_trip_rebuilds_model():
    cfg = TINY["half-res"]
    assert ColorizeConfig.from_dict(cfg.to_dict()) == cfg
    model = randomise_(ColorizeCINN(cfg).double(), seed=1)
    rebuilt = build_model("colorize", cfg.to_dict()).double()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    L = torch.rand(1, 1, 8, 8, dtype=torch.float64) * 100
    ab = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    assert torch.equal(flat(model(ab, L)[0]), flat(rebuilt(ab, L)[0]))
    with pytest.raises(ValueError, match="unknown config"):
        ColorizeConfig.from_dict({"nope": 1})


def test_level_temperatures_are_one_factor_per_latent_level():
    """The config's per-level factors: empty means 1 everywhere; a wrong count or a negative
    factor is refused when the model is built; draw_latent scales each level by its own T."""
    from dataclasses import replace

    from cinn_cli.files.latents import draw_latent

    cfg = TINY["half-res"]
    assert ColorizeCINN(cfg).level_temperatures(0.8) == [0.8, 0.8]
    model = ColorizeCINN(replace(cfg, level_temperatures=(0.5, 2.0)))
    assert model.level_temperatures(0.8) == [0.4, 1.6]
    for bad in ((1.0,), (1.0, 1.0, 1.0), (1.0, -0.5)):
        with pytest.raises(ValueError, match="level temperatures"):
            ColorizeCINN(replace(cfg, level_temperatures=bad))
    shapes = model.latent_shapes(*L_SIZE["half-res"])
    plain, scaled = draw_latent(shapes, 7, 1.0), draw_latent(shapes, 7, model.level_temperatures(1.0))
    assert torch.equal(scaled[0], plain[0] * 0.5) and torch.equal(scaled[1], plain[1] * 2.0)
    with pytest.raises(ValueError):
        draw_latent(shapes, 7, [1.0])  # one factor for two levels
