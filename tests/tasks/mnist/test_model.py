"""Correctness of the MNIST cINN models built from configs (DESIGN.md section 4).

Tiny configs of both architectures, in float64, with every parameter randomised first. The
model's log-det is checked against the brute-force Jacobian of the whole map *in data units*,
so it must include the fixed preprocessing (both kinds: the logit ``logit(a + (1 - 2a) x)`` and
the affine ``(x - mean) / std``).
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers import LOGDET_TOL, ROUND_TRIP_TOL, flat, max_abs_diff, randomise_
from torch import Tensor, nn
from torch.autograd.functional import jacobian

from cinn_cli.flows.base import bits_per_dim
from cinn_cli.tasks import build_model
from cinn_cli.tasks.mnist.model import PRESETS, MnistCINN, MnistConfig

pytestmark = pytest.mark.usefixtures("single_thread")

D = 784

_MULTISCALE = dict(arch="multiscale", blocks=(1, 1, 1), hidden=(4, 4, 8), cond_channels=(2, 2, 3))
# fc is hard-wired to 784 dimensions; keep the subnets narrow and the batches small
_FC = dict(arch="fc", blocks=(2,), hidden=(16,), cond_channels=())
# both preprocessings: logit (RealNVP) and the reference code's affine (x - mean) / std
_LOGIT = dict(logit_alpha=0.05)
_AFFINE = dict(logit_alpha=0.0, data_mean=0.128, data_std=0.305)
TINY = {
    "multiscale-logit": MnistConfig(**_MULTISCALE, **_LOGIT),
    "multiscale-affine": MnistConfig(**_MULTISCALE, **_AFFINE),
    "multiscale-mid1": MnistConfig(**_MULTISCALE, **_LOGIT, mid_kernel=1),  # Glow's 3x3-1x1-3x3 subnets
    "fc-logit": MnistConfig(**_FC, **_LOGIT),
    "fc-affine": MnistConfig(**_FC, **_AFFINE, clamp=1.0),
}
LATENT_SHAPES = {"multiscale": [(2, 14, 14), (4, 7, 7), (196,)], "fc": [(784,)]}


def latent_shapes(name: str) -> list[tuple[int, ...]]:
    """The expected latent level shapes of ``TINY[name]`` (they depend on the arch only)."""
    return LATENT_SHAPES[TINY[name].arch]


# --------------------------------------------------------------------------- helpers


def model_jacobian_logdet(model: MnistCINN, x: Tensor, labels: Tensor) -> Tensor:
    """``(B,)`` log|det| of the brute-force Jacobian of ``x -> concat(zs)``, per sample."""
    out = []
    for i in range(x.shape[0]):
        lab = labels[i : i + 1]
        jac = jacobian(lambda t, lab=lab: flat(model(t, lab)[0])[0], x[i : i + 1], vectorize=True)
        sign, logabs = torch.linalg.slogdet(jac.reshape(D, D))
        assert sign != 0, "singular Jacobian"
        out.append(logabs)
    return torch.stack(out)


@pytest.fixture(params=list(TINY), ids=list(TINY))
def setup(request) -> tuple[str, MnistCINN, Tensor, Tensor, list[Tensor]]:
    """``(name, model, x, labels, zs)``: a float64 tiny model with random parameters, two
    dequantized digits in [0, 1], their labels, and a random latent of the model's shapes."""
    name = request.param
    model = randomise_(MnistCINN(TINY[name]).double(), seed=1)
    g = torch.Generator().manual_seed(2)
    k = torch.randint(0, 256, (2, 1, 28, 28), generator=g)
    x = (k + torch.rand(2, 1, 28, 28, generator=g, dtype=torch.float64)) / 256
    labels = torch.tensor([3, 7])
    zs = [torch.randn(2, *s, generator=g, dtype=torch.float64) for s in latent_shapes(name)]
    return name, model, x, labels, zs


# --------------------------------------------------------------------------- shapes and sizes


def test_default_preset_latent_shapes():
    """The default multi-scale model exits 2x14x14, then 4x7x7, then the remaining 196 dims."""
    assert MnistCINN(PRESETS["default"]).latent_shapes() == [(2, 14, 14), (4, 7, 7), (196,)]


def test_latent_shapes_and_output_shapes(setup):
    """latent_shapes() matches what forward really emits, and the latents hold all 784 dims."""
    name, model, x, labels, _ = setup
    zs, logdet = model(x, labels)
    assert model.latent_shapes() == latent_shapes(name)
    assert [tuple(z.shape) for z in zs] == [(2, *s) for s in latent_shapes(name)]
    assert flat(zs).shape == (2, D)
    assert logdet.shape == (2,)


def test_config_without_mid_kernel_is_the_3x3_model():
    """Model files written before ``mid_kernel`` existed (3x3 middle convolutions) rebuild as that
    model: the missing field defaults to 3, and the parameter count is theirs (2,417,744)."""
    stored = {k: v for k, v in MnistConfig().to_dict().items() if k != "mid_kernel"}
    model = build_model("mnist", stored)
    assert model.config.mid_kernel == 3
    assert sum(p.numel() for p in model.parameters()) == 2_417_744


def test_paper_preset_parameter_count():
    """The 'paper' preset has the reference mnist_minimal_example's 24,341,120 parameters."""
    assert sum(p.numel() for p in MnistCINN(PRESETS["paper"]).parameters()) == 24_341_120


# --------------------------------------------------------------------------- invertibility


def test_round_trip_forward_then_inverse(setup):
    """inverse(forward(x)) == x to 1e-10, in data units (preprocessing undone too)."""
    _, model, x, labels, _ = setup
    zs, _ = model(x, labels)
    assert max_abs_diff(model.inverse(zs, labels), x) < ROUND_TRIP_TOL


def test_round_trip_inverse_then_forward(setup):
    """forward(inverse(zs)) == zs to 1e-10, from a random latent."""
    _, model, _, labels, zs = setup
    again, _ = model(model.inverse(zs, labels), labels)
    assert max_abs_diff(flat(again), flat(zs)) < ROUND_TRIP_TOL


def test_logdet_matches_jacobian_including_preprocessing(setup):
    """The model's log-det equals log|det| of the brute-force 784x784 Jacobian of the map from
    data units to the latent, per sample (so the -D*log(data_std) term is accounted for)."""
    _, model, x, labels, _ = setup
    _, logdet = model(x, labels)
    assert max_abs_diff(logdet, model_jacobian_logdet(model, x, labels)) < LOGDET_TOL


def test_flow_logdets_opposite(setup):
    """The model's flow gives opposite forward and inverse log-dets (sum 0 to 1e-10)."""
    _, model, x, labels, _ = setup
    v, _ = model.preprocess(x)
    feats = model.cond_feats(labels, x.dtype)
    zs, logdet = model.flow(v, feats)
    back, logdet_inv = model.flow.inverse(zs, feats)
    assert max_abs_diff(back, v) < ROUND_TRIP_TOL
    assert (logdet + logdet_inv).abs().max().item() < ROUND_TRIP_TOL


def test_inputs_not_modified(setup):
    """forward, inverse and log_prob leave x, the labels and the latents untouched."""
    _, model, x, labels, zs = setup
    tensors = [x, labels, *zs]
    saved = [t.clone() for t in tensors]
    model(x, labels)
    model.inverse(zs, labels)
    model.log_prob(x, labels)
    for before, now in zip(saved, tensors, strict=True):
        assert torch.equal(before, now)


def test_label_changes_latent(setup):
    """The label is really used: another digit maps the same image to another latent."""
    _, model, x, labels, _ = setup
    z1 = flat(model(x, labels)[0])
    z2 = flat(model(x, (labels + 1) % 10)[0])
    assert max_abs_diff(z1, z2) > 1e-3


# --------------------------------------------------------------------------- densities


def test_log_prob_by_hand(setup):
    """log_prob = -||z||^2/2 - (D/2) log(2 pi) + logdet, with z and logdet from forward."""
    _, model, x, labels, _ = setup
    zs, logdet = model(x, labels)
    by_hand = -0.5 * flat(zs).pow(2).sum(1) - 0.5 * D * math.log(2 * math.pi) + logdet
    assert max_abs_diff(model.log_prob(x, labels), by_hand) < 1e-9


def test_bits_per_dim_known_values():
    """bits/dim = -log p(y) / (D ln 2) + log2(levels): uniform density on [0, 1]^D (log p = 0)
    costs exactly 8 bits per 8-bit pixel; halving the density per dim costs one bit more."""
    assert bits_per_dim(torch.tensor([0.0]), D).item() == pytest.approx(8.0, abs=1e-12)
    lp = torch.tensor([-D * math.log(2), 2 * D * math.log(2)], dtype=torch.float64)
    assert torch.allclose(bits_per_dim(lp, D), torch.tensor([9.0, 6.0], dtype=torch.float64))
    assert bits_per_dim(torch.tensor([0.0]), D, levels=2).item() == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------- mixing buffers and configs


def _saved_buffers(model: nn.Module) -> dict[str, Tensor]:
    """The buffers that go into the state_dict (the fixed mixing; Haar's matrix is not saved)."""
    sd = model.state_dict()
    return {k: sd[k] for k, _ in model.named_buffers() if k in sd}


@pytest.mark.parametrize("name", ["multiscale-logit", "fc-logit"])
def test_mixing_buffers_saved_and_independent_of_global_rng(name):
    """The fixed mixing matrices/permutations are in the state_dict and depend only on the
    config's mixing_seed, not on the global RNG state at build time."""
    with torch.random.fork_rng():  # leave the global RNG as it was for the other tests
        torch.manual_seed(0)
        a = _saved_buffers(MnistCINN(TINY[name]))
        torch.manual_seed(123)
        b = _saved_buffers(MnistCINN(TINY[name]))
    # multiscale: 2 orthogonal mixings (weight) and 1 permutation; fc: 2 permutations
    expected = {
        "multiscale": ["inv_perm", "perm", "weight", "weight"],
        "fc": ["inv_perm", "inv_perm", "perm", "perm"],
    }[TINY[name].arch]
    assert sorted(k.rsplit(".", 1)[-1] for k in a) == expected
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_config_round_trip_rebuilds_model():
    """A config survives to_dict/from_dict, and build_model rebuilds a model that loads the
    original's state_dict strictly and computes the same latent."""
    cfg = TINY["multiscale-logit"]
    assert MnistConfig.from_dict(cfg.to_dict()) == cfg
    model = randomise_(MnistCINN(cfg).double(), seed=1)
    rebuilt = build_model("mnist", cfg.to_dict()).double()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.tensor([4])
    assert torch.equal(flat(model(x, labels)[0]), flat(rebuilt(x, labels)[0]))


def test_log_prob_under_bf16_autocast_is_accumulated_in_float32():
    """--precision bf16: matmuls and convolutions in bfloat16, log-dets and ||z||^2 summed in
    float32, so log p stays a float32 number close to the float32 model's."""
    from cinn_cli.flows.blocks import sum_except_batch

    ones = torch.ones(1, 1001, dtype=torch.bfloat16)
    assert sum_except_batch(ones).dtype == torch.float32 and sum_except_batch(ones).item() == 1001.0  # bf16: 1000
    torch.manual_seed(0)
    model = MnistCINN(MnistConfig(blocks=(1, 1, 1), hidden=(8, 8, 16), cond_channels=(2, 2, 3)))
    randomise_(model, scale=0.05)
    x, labels = torch.rand(4, 1, 28, 28) * 0.9 + 0.05, torch.tensor([0, 3, 7, 9])
    reference = model.log_prob(x, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        zs, logdet = model(x, labels)
        lp = model.log_prob(x, labels)
    assert any(z.dtype == torch.bfloat16 for z in zs), "autocast did not reach the flow: the test would be vacuous"
    assert logdet.dtype == torch.float32 and lp.dtype == torch.float32
    torch.testing.assert_close(lp / 784, reference / 784, rtol=0.0, atol=2e-3)  # nats per dimension
