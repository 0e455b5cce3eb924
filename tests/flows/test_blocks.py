"""Correctness of the invertible blocks and of the ``Flow`` container (DESIGN.md section 4).

Every check runs in float64 with the parameters randomised first: the last subnet layers start
at zero, so an untouched coupling is the identity and would hide a wrong inverse or log-det.
The log-det is checked against ``slogdet`` of the brute-force autograd Jacobian, per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pytest
import torch
from helpers import LOGDET_TOL, ROUND_TRIP_TOL, flat, max_abs_diff, randomise_
from torch import Tensor, nn
from torch.autograd.functional import jacobian

from cinn_cli.flows.blocks import (
    AffineCoupling,
    ConvSubnet,
    ExitSplit,
    FCSubnet,
    FixedOrthogonal,
    FixedPermutation,
    Flatten,
    Flow,
    HaarDownsample,
    soft_clamp,
)

pytestmark = pytest.mark.usefixtures("single_thread")


# --------------------------------------------------------------------------- helpers


def randn(*shape: int, seed: int) -> Tensor:
    """A seeded float64 standard-normal tensor."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def jacobian_logdets(fn: Callable[[Tensor, int], Tensor], x: Tensor) -> Tensor:
    """``(B,)`` log|det J| of ``fn`` per sample, from the brute-force autograd Jacobian.

    ``fn(x_i, i)`` maps sample ``i`` (a batch of one) to its flattened output ``(D,)``.
    """
    out = []
    for i in range(x.shape[0]):
        jac = jacobian(lambda t, i=i: fn(t, i), x[i : i + 1], vectorize=True)
        jac = jac.reshape(jac.shape[0], -1)
        assert jac.shape[0] == jac.shape[1], "the map must be square"
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign != 0, "singular Jacobian"
        out.append(logabs)
    return torch.stack(out)


# --------------------------------------------------------------------------- the block cases


@dataclass
class Case:
    """One block under test: how to build it and the shapes it is fed."""

    make: Callable[[], nn.Module]
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    cond_shape: tuple[int, ...] | None = None


def _coupling(channels: int, subnet: Callable, **kw) -> Callable[[], nn.Module]:
    return lambda: AffineCoupling(channels, subnet, **kw)


CASES = {
    # odd widths (5 = 2 + 3, 3 = 1 + 2) so the two halves differ in size
    "coupling-fc": Case(_coupling(5, partial(FCSubnet, d_cond=0, hidden=8)), (3, 5), (3, 5)),
    "coupling-fc-cond": Case(
        _coupling(5, partial(FCSubnet, d_cond=3, hidden=8, depth=3), clamp=0.7, cond_index=0),
        (3, 5),
        (3, 5),
        cond_shape=(3, 3),
    ),
    "coupling-conv": Case(_coupling(3, partial(ConvSubnet, c_cond=0, hidden=4)), (2, 3, 4, 4), (2, 3, 4, 4)),
    "coupling-conv-cond": Case(
        _coupling(4, partial(ConvSubnet, c_cond=2, hidden=4), clamp=2.0, cond_index=0),
        (2, 4, 4, 4),
        (2, 4, 4, 4),
        cond_shape=(2, 2, 4, 4),
    ),
    "permutation-vec": Case(lambda: FixedPermutation(6, seed=3), (3, 6), (3, 6)),
    "permutation-img": Case(lambda: FixedPermutation(4, seed=3), (2, 4, 3, 3), (2, 4, 3, 3)),
    "orthogonal-vec": Case(lambda: FixedOrthogonal(5, seed=1), (3, 5), (3, 5)),
    "orthogonal-img": Case(lambda: FixedOrthogonal(4, seed=2), (2, 4, 3, 3), (2, 4, 3, 3)),
    # non-square images catch a swapped height/width
    "haar-1.0": Case(lambda: HaarDownsample(1.0), (2, 2, 4, 6), (2, 8, 2, 3)),
    "haar-0.5": Case(lambda: HaarDownsample(0.5), (2, 2, 4, 6), (2, 8, 2, 3)),
    "flatten": Case(lambda: Flatten((2, 3, 4)), (2, 2, 3, 4), (2, 24)),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request) -> tuple[nn.Module, Tensor, Tensor, Tensor | None]:
    """``(block, x, y, cond)``: a float64 block with random parameters and random inputs.

    ``y`` is a random point of the output space (for the inverse-first checks).
    """
    c = CASES[request.param]
    block = randomise_(c.make().double(), seed=1)
    x = randn(*c.x_shape, seed=2)
    y = randn(*c.y_shape, seed=3)
    cond = None if c.cond_shape is None else randn(*c.cond_shape, seed=4)
    return block, x, y, cond


def _one(cond: Tensor | None, i: int) -> Tensor | None:
    return None if cond is None else cond[i : i + 1]


# --------------------------------------------------------------------------- per-block checks


def test_output_shape(case):
    """Forward gives the documented output shape and a (B,) log-det; inverse restores the shape."""
    block, x, y, cond = case
    out, logdet = block(x, cond)
    assert out.shape == y.shape
    assert logdet.shape == (x.shape[0],)
    back, logdet_inv = block.inverse(out, cond)
    assert back.shape == x.shape
    assert logdet_inv.shape == (x.shape[0],)
    assert out.dtype == back.dtype == logdet.dtype == torch.float64


def test_round_trip_forward_then_inverse(case):
    """inverse(forward(x)) == x to 1e-10: the inverse really undoes the forward map."""
    block, x, _, cond = case
    out, _ = block(x, cond)
    back, _ = block.inverse(out, cond)
    assert max_abs_diff(back, x) < ROUND_TRIP_TOL


def test_round_trip_inverse_then_forward(case):
    """forward(inverse(y)) == y to 1e-10, starting from a random point of the output space."""
    block, _, y, cond = case
    x, _ = block.inverse(y, cond)
    again, _ = block(x, cond)
    assert max_abs_diff(again, y) < ROUND_TRIP_TOL


def test_forward_logdet_matches_jacobian(case):
    """The forward log-det equals log|det| of the brute-force Jacobian, per sample, to 1e-8."""
    block, x, _, cond = case
    _, logdet = block(x, cond)
    expected = jacobian_logdets(lambda t, i: flat(block(t, _one(cond, i))[0])[0], x)
    assert max_abs_diff(logdet, expected) < LOGDET_TOL


def test_inverse_logdet_matches_jacobian(case):
    """The inverse log-det equals log|det| of the inverse map's Jacobian, per sample, to 1e-8."""
    block, _, y, cond = case
    _, logdet_inv = block.inverse(y, cond)
    expected = jacobian_logdets(lambda t, i: flat(block.inverse(t, _one(cond, i))[0])[0], y)
    assert max_abs_diff(logdet_inv, expected) < LOGDET_TOL


def test_forward_and_inverse_logdets_opposite(case):
    """log|det| of the inverse at y = f(x) is exactly minus that of the forward at x (1e-10)."""
    block, x, _, cond = case
    out, logdet = block(x, cond)
    _, logdet_inv = block.inverse(out, cond)
    assert (logdet + logdet_inv).abs().max().item() < ROUND_TRIP_TOL


def test_inputs_not_modified(case):
    """Neither forward nor inverse writes into x, y or the condition."""
    block, x, y, cond = case
    saved = [t.clone() for t in (x, y, cond) if t is not None]
    block(x, cond)
    block.inverse(y, cond)
    for before, now in zip(saved, [t for t in (x, y, cond) if t is not None], strict=True):
        assert torch.equal(before, now)


def test_condition_is_used():
    """A conditional coupling's output depends on its condition (so the tests above see it)."""
    c = CASES["coupling-conv-cond"]
    block = randomise_(c.make().double(), seed=1)
    x, cond = randn(*c.x_shape, seed=2), randn(*c.cond_shape, seed=4)
    y1, _ = block(x, cond)
    y2, _ = block(x, cond + 1.0)
    assert max_abs_diff(y1, y2) > 1e-3


def test_couplings_start_as_identity():
    """Freshly built couplings (zero last layers) are the identity with log-det 0."""
    for name in ("coupling-fc-cond", "coupling-conv-cond"):
        c = CASES[name]
        block = c.make().double()
        x, cond = randn(*c.x_shape, seed=2), randn(*c.cond_shape, seed=4)
        y, logdet = block(x, cond)
        assert torch.equal(y, x)
        assert torch.equal(logdet, torch.zeros(x.shape[0], dtype=torch.float64))


def test_haar_rebalance_logdet_value():
    """Haar with rebalance r has log-det C*H*W*log(r): 0 for r = 1, -CHW*log 2 for r = 0.5."""
    x = randn(2, 3, 4, 6, seed=0)
    assert torch.equal(HaarDownsample(1.0).double()(x)[1], torch.zeros(2, dtype=torch.float64))
    ld = HaarDownsample(0.5).double()(x)[1]
    assert torch.allclose(ld, torch.full((2,), -72 * math.log(2), dtype=torch.float64))


def test_haar_rejects_odd_sizes():
    """Haar downsampling of an odd-sized image is a clear ValueError, not a silent crop."""
    with pytest.raises(ValueError, match="even"):
        HaarDownsample()(torch.zeros(1, 1, 5, 4))


# --------------------------------------------------------------------------- soft clamp


def test_soft_clamp_bounded():
    """soft_clamp keeps values strictly inside (-alpha, alpha), even for huge inputs."""
    s = torch.cat([torch.linspace(-1e3, 1e3, 2001, dtype=torch.float64), torch.tensor([-1e6, 1e6])])
    for alpha in (0.5, 1.0, 2.5):
        c = soft_clamp(s, alpha)
        assert c.abs().max().item() < alpha
        assert torch.all(torch.diff(c[:-2]) > 0), "soft_clamp must be strictly increasing"


def test_soft_clamp_slope_at_zero():
    """soft_clamp is 0 at 0 with slope 2/pi there, whatever alpha (the reference code's form)."""
    for alpha in (0.5, 1.0, 2.5):
        s = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        out = soft_clamp(s, alpha)
        (grad,) = torch.autograd.grad(out.sum(), s)
        assert out.item() == 0.0
        assert grad.item() == pytest.approx(2 / math.pi, abs=1e-12)


# --------------------------------------------------------------------------- fixed mixing


@pytest.mark.parametrize("cls", [FixedPermutation, FixedOrthogonal])
def test_mixing_is_saved_seeded_and_leaves_global_rng(cls):
    """The fixed mixing is a state_dict buffer, a function of its seed only, and building it
    does not consume the global torch RNG (so building a model never shifts other randomness)."""
    state = torch.get_rng_state()
    a, b, other = cls(7, seed=5), cls(7, seed=5), cls(7, seed=6)
    assert torch.equal(torch.get_rng_state(), state)

    key = "perm" if cls is FixedPermutation else "weight"
    sd = a.state_dict()
    assert key in sd
    assert torch.equal(sd[key], b.state_dict()[key])
    assert not torch.equal(sd[key], other.state_dict()[key])


def test_permutation_is_a_permutation():
    """FixedPermutation's buffer holds each index exactly once, and inv_perm undoes it."""
    m = FixedPermutation(9, seed=0)
    assert torch.equal(torch.sort(m.perm).values, torch.arange(9))
    assert torch.equal(m.perm[m.inv_perm], torch.arange(9))


def test_orthogonal_weight_is_orthogonal():
    """FixedOrthogonal's stored matrix is orthogonal (to float32 rounding): volume-preserving."""
    w = FixedOrthogonal(6, seed=0).weight.double()
    assert max_abs_diff(w @ w.t(), torch.eye(6, dtype=torch.float64)) < 1e-6


# --------------------------------------------------------------------------- the Flow container

X_SHAPE = (2, 2, 4, 4)
LATENT_SHAPES = [(4, 2, 2), (6, 1, 1), (10,)]  # 16 + 6 + 10 = 32 = 2 * 4 * 4
COND_SHAPES = [(2, 2, 2), (3, 2, 2), (3,)]


def small_flow() -> Flow:
    """A multi-scale flow on 2x4x4 images with three exits and three condition levels.

    2x4x4 -Haar(0.5)-> 8x2x2 [coupling c0, orthogonal] exit 4 -> 4x2x2 [coupling c1] -squeeze->
    16x1x1 exit 6 -> 10x1x1 -flatten-> 10 [coupling c2, permutation].
    """
    conv0 = partial(ConvSubnet, c_cond=2, hidden=4)
    conv1 = partial(ConvSubnet, c_cond=3, hidden=4)
    fc2 = partial(FCSubnet, d_cond=3, hidden=8)
    return Flow(
        [
            HaarDownsample(0.5),
            AffineCoupling(8, conv0, cond_index=0),
            FixedOrthogonal(8, seed=0),
            ExitSplit(4),
            AffineCoupling(4, conv1, cond_index=1),
            HaarDownsample(1.0),
            ExitSplit(6),
            Flatten((10, 1, 1)),
            AffineCoupling(10, fc2, cond_index=2),
            FixedPermutation(10, seed=1),
        ]
    )


@pytest.fixture
def flow_setup() -> tuple[Flow, Tensor, list[Tensor], list[Tensor]]:
    """``(flow, x, zs, conds)``: float64 flow with random parameters, random data and latents."""
    flow = randomise_(small_flow().double(), seed=1)
    b = X_SHAPE[0]
    x = randn(*X_SHAPE, seed=2)
    zs = [randn(b, *s, seed=10 + k) for k, s in enumerate(LATENT_SHAPES)]
    conds = [randn(b, *s, seed=20 + k) for k, s in enumerate(COND_SHAPES)]
    return flow, x, zs, conds


def _unflat(v: Tensor, b: int) -> list[Tensor]:
    """Split ``(B, 32)`` back into the latent levels of ``small_flow``."""
    sizes = [math.prod(s) for s in LATENT_SHAPES]
    return [p.reshape(b, *s) for p, s in zip(v.split(sizes, dim=1), LATENT_SHAPES, strict=True)]


def _cond_i(conds: list[Tensor], i: int) -> list[Tensor]:
    return [c[i : i + 1] for c in conds]


def test_flow_latent_shapes(flow_setup):
    """The flow emits one latent level per exit plus the remainder, in exit order."""
    flow, x, _, conds = flow_setup
    zs, logdet = flow(x, conds)
    assert [tuple(z.shape[1:]) for z in zs] == LATENT_SHAPES
    assert flow.latent_shapes(X_SHAPE[1:]) == LATENT_SHAPES  # the static shape rules agree
    assert logdet.shape == (X_SHAPE[0],)


def test_flow_round_trips(flow_setup):
    """inverse(forward(x)) == x and forward(inverse(zs)) == zs, to 1e-10."""
    flow, x, zs, conds = flow_setup
    out, _ = flow(x, conds)
    back, _ = flow.inverse(out, conds)
    assert max_abs_diff(back, x) < ROUND_TRIP_TOL
    x2, _ = flow.inverse(zs, conds)
    again, _ = flow(x2, conds)
    assert max_abs_diff(flat(again), flat(zs)) < ROUND_TRIP_TOL


def test_flow_logdets_match_jacobian(flow_setup):
    """Forward and inverse log-dets equal the brute-force Jacobians' (latents concatenated)."""
    flow, x, zs, conds = flow_setup
    _, logdet = flow(x, conds)
    expected = jacobian_logdets(lambda t, i: flat(flow(t, _cond_i(conds, i))[0])[0], x)
    assert max_abs_diff(logdet, expected) < LOGDET_TOL

    _, logdet_inv = flow.inverse(zs, conds)
    v = flat(zs)
    expected_inv = jacobian_logdets(lambda t, i: flow.inverse(_unflat(t, 1), _cond_i(conds, i))[0].reshape(-1), v)
    assert max_abs_diff(logdet_inv, expected_inv) < LOGDET_TOL


def test_flow_logdets_opposite(flow_setup):
    """The flow's forward and inverse log-dets sum to 0 (1e-10)."""
    flow, x, _, conds = flow_setup
    out, logdet = flow(x, conds)
    _, logdet_inv = flow.inverse(out, conds)
    assert (logdet + logdet_inv).abs().max().item() < ROUND_TRIP_TOL


def test_flow_inputs_not_modified(flow_setup):
    """Flow.forward/inverse leave x, the latents and every condition untouched."""
    flow, x, zs, conds = flow_setup
    tensors = [x, *zs, *conds]
    saved = [t.clone() for t in tensors]
    flow(x, conds)
    flow.inverse(zs, conds)
    for before, now in zip(saved, tensors, strict=True):
        assert torch.equal(before, now)


def test_flow_routes_conditions_by_cond_index(flow_setup):
    """Each block reads ``conds[cond_index]``: changing condition k changes only the latent
    levels that leave the flow after the block reading it."""
    flow, x, _, conds = flow_setup
    base = flow(x, conds)[0]
    for k, changed_levels in [(0, {0, 1, 2}), (1, {1, 2}), (2, {2})]:
        bumped = list(conds)
        bumped[k] = conds[k] + 0.5
        zs = flow(x, bumped)[0]
        for level, (z, z0) in enumerate(zip(zs, base, strict=True)):
            differs = max_abs_diff(z, z0) > 1e-6
            assert differs == (level in changed_levels), f"condition {k}, level {level}"


def test_flow_shared_condition_equals_repeated(flow_setup):
    """Conditions of batch 1 are shared by the whole batch: forward and inverse give what the
    same conditions repeated per sample give (conv and fully connected subnets, 1e-10)."""
    flow, x, zs, conds = flow_setup
    shared = [c[:1] for c in conds]
    repeated = [c.expand(X_SHAPE[0], *c.shape[1:]) for c in shared]
    out_s, ld_s = flow(x, shared)
    out_r, ld_r = flow(x, repeated)
    assert max_abs_diff(flat(out_s), flat(out_r)) < ROUND_TRIP_TOL
    assert max_abs_diff(ld_s, ld_r) < ROUND_TRIP_TOL
    back_s, ldi_s = flow.inverse(zs, shared)
    back_r, ldi_r = flow.inverse(zs, repeated)
    assert back_s.shape == x.shape
    assert max_abs_diff(back_s, back_r) < ROUND_TRIP_TOL
    assert max_abs_diff(ldi_s, ldi_r) < ROUND_TRIP_TOL


def test_flow_inverse_rejects_extra_latent_levels(flow_setup):
    """A latent with more levels than the flow has exits is a ValueError, not a silent result."""
    flow, _, zs, conds = flow_setup
    extra = torch.zeros_like(zs[0])
    with pytest.raises(ValueError, match="left over"):
        flow.inverse([extra, *zs], conds)


# --------------------------------------------------------------------------- fused affine


def _fused_inputs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    s = (2.0 * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()
    t = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    return x, s, t


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 5)])
@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_fused_affine_gradcheck(shape, alpha):
    """The hand-written backward of the fused clamp+exp+affine (forward and inverse) matches
    finite differences in float64, for both outputs (the values and the per-sample log-det)."""
    from cinn_cli.flows.blocks import affine_forward, affine_inverse

    x, s, t = _fused_inputs(shape)
    assert torch.autograd.gradcheck(lambda x, s, t: affine_forward(x, s, t, alpha), (x, s, t))
    assert torch.autograd.gradcheck(lambda y, s, t: affine_inverse(y, s, t, alpha), (x, s, t))


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 5)])
def test_fused_affine_matches_unfused(shape):
    """Fused forward/inverse equal the plain formulas, invert each other, and leave inputs alone;
    also on non-contiguous views (the halves of a subnet output, as the coupling passes them)."""
    from cinn_cli.flows.blocks import affine_forward, affine_inverse

    alpha = 1.5
    x, s, t = _fused_inputs(shape, seed=3)
    st = torch.cat([s, t], dim=1).detach()
    s_v, t_v = st.chunk(2, dim=1)  # non-contiguous views
    before = [v.detach().clone() for v in (x, st)]
    y, ld = affine_forward(x, s_v, t_v, alpha)
    c = soft_clamp(s_v, alpha)
    torch.testing.assert_close(y, x * torch.exp(c) + t_v, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(ld, c.reshape(c.shape[0], -1).sum(1), rtol=1e-14, atol=1e-13)
    x_back, ld_inv = affine_inverse(y, s_v, t_v, alpha)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(ld_inv, -ld, rtol=0, atol=1e-12)
    for b, v in zip(before, (x, st), strict=True):
        assert torch.equal(b, v.detach()), "fused affine modified an input in place"


COUPLING_CASES = [name for name in CASES if name.startswith("coupling")]


@pytest.mark.parametrize(
    ("name", "channels_last"),
    [(name, False) for name in COUPLING_CASES] + [(n, True) for n in COUPLING_CASES if "conv" in n],
)
def test_coupling_without_graph_equals_autograd_path(name, channels_last):
    """Without a graph (sampling, encoding) the coupling writes both halves into one buffer and
    skips the autograd functions; its forward and inverse must give the very same numbers as the
    autograd path (bit for bit) in the same memory layout, and round-trip to 1e-10."""
    c = CASES[name]
    block = randomise_(c.make().double(), seed=1)
    x = randn(*c.x_shape, seed=2)
    cond = None if c.cond_shape is None else randn(*c.cond_shape, seed=4)
    if channels_last:  # channels-last weights, contiguous input (as after an exit split)
        block = block.to(memory_format=torch.channels_last)
    y_graph, ld_graph = block(x, cond)
    back_graph, ldi_graph = block.inverse(y_graph.detach(), cond)
    assert y_graph.requires_grad  # the parameters require grad: this was the autograd path
    with torch.no_grad():
        y, ld = block(x, cond)
        back, ldi = block.inverse(y, cond)
    assert torch.equal(y, y_graph.detach()) and torch.equal(ld, ld_graph.detach())
    assert torch.equal(back, back_graph.detach()) and torch.equal(ldi, ldi_graph.detach())
    assert max_abs_diff(back, x) < ROUND_TRIP_TOL
    # the layout too (the next block's convolutions round by it): what cat made under autograd
    assert y.stride() == y_graph.stride() and back.stride() == back_graph.stride()


def test_coupling_frozen_with_condition_gradient():
    """Frozen subnets (``--train-part condition``) and data without gradients, but a condition
    that needs one: the coupling must take the autograd path, and the gradient reach the
    condition (as it would with trainable subnets)."""
    c = CASES["coupling-conv-cond"]
    block = randomise_(c.make().double(), seed=1).requires_grad_(False)
    x = randn(*c.x_shape, seed=2)
    cond = randn(*c.cond_shape, seed=4).requires_grad_(True)
    y, ld = block(x, cond)
    assert y.requires_grad
    (y.square().sum() + ld.sum()).backward()
    assert cond.grad is not None and cond.grad.abs().max() > 0
    with torch.no_grad():
        y0, _ = block(x, cond)
    assert torch.equal(y.detach(), y0)
