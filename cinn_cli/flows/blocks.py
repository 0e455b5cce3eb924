"""Invertible building blocks and the container that chains them.

Contract shared by every block (the FrEIA idea, in one place):

    y, logdet = block(x, cond)          # data -> latent direction
    x, logdet_inv = block.inverse(y, cond)

``logdet`` is log|det dy/dx| as a ``(B,)`` tensor; ``logdet_inv`` is the log-det of the inverse
map, i.e. exactly ``-logdet``. ``cond`` is the condition feature this block reads (or ``None``);
``block.cond_index`` says which entry of the model's ``cond_feats`` list that is. No block
modifies its inputs in place. Tensors are ``(B, D)`` vectors or ``(B, C, H, W)`` images; blocks
act on dimension 1 (features or channels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

_TWO_OVER_PI = 2.0 / math.pi


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype sums and log-dets use for tensors of ``dtype``: float32 for half precision
    (bf16/fp16, e.g. under autocast), else ``dtype`` itself (float32 and float64 unchanged)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def widen(t: Tensor) -> Tensor:
    """``t`` in ``acc_dtype(t.dtype)``."""
    return t.to(acc_dtype(t.dtype))


def sum_except_batch(t: Tensor) -> Tensor:
    """``(B, ...) -> (B,)`` sum over every non-batch dimension, accumulated in ``acc_dtype``.

    Why: a log-det or ``||z||^2`` sums hundreds of terms into one number of a few hundred nats;
    in bf16 (8 mantissa bits) the total alone would round by about 1 nat.
    """
    return t.reshape(t.shape[0], -1).sum(dim=1, dtype=acc_dtype(t.dtype))


def soft_clamp(s: Tensor, alpha: float) -> Tensor:
    """The reference code's soft clamp of a log-scale: ``alpha * 2/pi * atan(s / alpha)``.

    Keeps log-scales in (-alpha, alpha) with slope 2/pi at 0.
    """
    return (alpha * _TWO_OVER_PI) * torch.atan(s / alpha)


def _bcast(ld: Tensor, like: Tensor) -> Tensor:
    """``(B,)`` -> ``(B, 1, ...)`` broadcastable against ``like``, in ``like``'s dtype."""
    return ld.to(like.dtype).reshape(ld.shape[0], *([1] * (like.dim() - 1)))


def _scaled_atan(s: Tensor, alpha: float, sign: float) -> tuple[Tensor, Tensor]:
    """``(a, sign * soft_clamp(s))`` with ``a = s / alpha``; ``a`` is ``s`` itself at ``alpha == 1``
    (the division would be exact), and the sign rides on the scale (``x * -k == -(x * k)`` exactly,
    so the inverse needs no separate negation)."""
    a = s if alpha == 1.0 else s / alpha
    return a, torch.atan(a).mul_(sign * alpha * _TWO_OVER_PI)


def _affine_fwd_into(x: Tensor, s: Tensor, t: Tensor, alpha: float, out: Tensor | None):
    """``y = x * exp(c) + t`` (into ``out`` when given), ``c = soft_clamp(s)``: ``(y, e, a, ld)``."""
    a, c = _scaled_atan(s, alpha, 1.0)
    e = torch.exp(c)
    y = torch.addcmul(t, x, e) if out is None else torch.addcmul(t, x, e, out=out)
    return y, e, a, sum_except_batch(c)


def _affine_inv_into(y: Tensor, s: Tensor, t: Tensor, alpha: float, out: Tensor | None):
    """``x = (y - t) * exp(-c)`` (into ``out`` when given): ``(x, exp(-c), a, -sum(c))``."""
    a, c_neg = _scaled_atan(s, alpha, -1.0)
    einv = torch.exp(c_neg)
    x = (torch.sub(y, t) if out is None else torch.sub(y, t, out=out)).mul_(einv)
    return x, einv, a, sum_except_batch(c_neg)


class _AffineFwd(torch.autograd.Function):
    """Fused ``y = x * exp(clamp(s)) + t`` and ``ld = sum(clamp(s))`` per sample.

    One pass computes the clamp, the exponential and the affine map; the backward reuses the saved
    ``exp(clamp(s))`` and ``s / alpha`` instead of re-running atan/exp through autograd's generic
    graph. ``d clamp / ds = (2/pi) / (1 + (s/alpha)^2)``. Inputs are never modified.
    """

    @staticmethod
    def forward(ctx, x: Tensor, s: Tensor, t: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
        y, e, a, ld = _affine_fwd_into(x, s, t, alpha, None)
        ctx.save_for_backward(x, e, a)
        ctx.t_dtype = t.dtype
        return y, ld

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy: Tensor, gld: Tensor):
        x, e, a = ctx.saved_tensors
        gx = gs = gt = None
        if ctx.needs_input_grad[0]:
            gx = (gy * e).to(x.dtype)
        if ctx.needs_input_grad[1]:
            gs = torch.addcmul(_bcast(gld, e), gy, x * e)
            gs = gs.mul_(_TWO_OVER_PI / (1.0 + a * a)).to(a.dtype)
        if ctx.needs_input_grad[2]:
            gt = gy.to(ctx.t_dtype)
        return gx, gs, gt, None


class _AffineInv(torch.autograd.Function):
    """Fused inverse ``x = (y - t) * exp(-clamp(s))`` and ``ld = -sum(clamp(s))`` per sample."""

    @staticmethod
    def forward(ctx, y: Tensor, s: Tensor, t: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
        x, einv, a, ld = _affine_inv_into(y, s, t, alpha, None)
        ctx.save_for_backward(x, einv, a)
        ctx.dtypes = (y.dtype, t.dtype)
        return x, ld

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gx: Tensor, gld: Tensor):
        x, einv, a = ctx.saved_tensors
        gy = (gx * einv) if (ctx.needs_input_grad[0] or ctx.needs_input_grad[2]) else None
        gs = None
        if ctx.needs_input_grad[1]:
            gs = torch.addcmul(_bcast(gld, x), gx, x).mul_(-_TWO_OVER_PI / (1.0 + a * a)).to(a.dtype)
        gt = (-gy).to(ctx.dtypes[1]) if ctx.needs_input_grad[2] else None
        gy = gy.to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        return gy, gs, gt, None


def _no_graph(*tensors: Tensor) -> bool:
    """True when autograd records nothing for these tensors (sampling, encoding, evaluation)."""
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def affine_forward(x: Tensor, s: Tensor, t: Tensor, alpha: float, out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(x * exp(soft_clamp(s)) + t, sum_except_batch(soft_clamp(s)))``, fused (one custom
    autograd function with a hand-written backward). ``out``: a tensor of ``x``'s shape to write
    ``y`` into, used only when no graph is recorded (``out=`` is not differentiable)."""
    if _no_graph(x, s, t):
        y, _, _, ld = _affine_fwd_into(x, s, t, float(alpha), out)
        return y, ld
    return _AffineFwd.apply(x, s, t, float(alpha))


def affine_inverse(y: Tensor, s: Tensor, t: Tensor, alpha: float, out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``((y - t) * exp(-soft_clamp(s)), -sum_except_batch(soft_clamp(s)))``, fused; ``out`` as in
    ``affine_forward``."""
    if _no_graph(y, s, t):
        x, _, _, ld = _affine_inv_into(y, s, t, float(alpha), out)
        return x, ld
    return _AffineInv.apply(y, s, t, float(alpha))


class InvertibleModule(nn.Module):
    """Base class: ``forward(x, cond) -> (y, logdet)``, ``inverse(y, cond) -> (x, -logdet)``."""

    cond_index: int | None = None

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the output (without batch) for an input of ``shape``; most blocks keep it."""
        return shape

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


# --------------------------------------------------------------------------- subnetworks


class FCSubnet(nn.Module):
    """Fully connected coupling subnet: ``[x, c] -> Linear -> ReLU -> ... -> Linear``.

    The first layer is stored as two weight matrices (for ``x`` and for the condition) so the
    condition is never concatenated onto ``x`` (one fewer copy per call); the parameter count is
    that of ``Linear(d_in + d_cond, hidden)``. The last layer starts at zero, so the coupling
    starts as the identity.

    Shapes: ``x (B, d_in)``, ``cond (B, d_cond)`` or ``(1, d_cond)`` -> ``(B, d_out)``. A condition
    of batch 1 is shared by the whole batch: its term is computed once and broadcast (several
    samples of one input then pay for the condition once).
    """

    def __init__(self, d_in: int, d_out: int, *, d_cond: int, hidden: int, depth: int = 2):
        super().__init__()
        self.first = nn.Linear(d_in, hidden)
        self.first_cond = nn.Linear(d_cond, hidden, bias=False) if d_cond else None
        layers: list[nn.Module] = [nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        self.hidden_layers = nn.Sequential(*layers)
        self.last = nn.Linear(hidden, d_out)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        h = self.first(x)
        if self.first_cond is not None:
            if cond.shape[0] == h.shape[0]:
                h = torch.addmm(h, cond, self.first_cond.weight.t())
            else:  # a shared condition (batch 1): (1, hidden) broadcast over the batch
                h = h + self.first_cond(cond)
        return self.last(self.hidden_layers(h))


class ConvSubnet(nn.Module):
    """Convolutional coupling subnet: ``conv(k) -> ReLU -> conv(m) -> ReLU -> conv(k)``.

    As in ``FCSubnet`` the first convolution is split into an ``x`` part and a condition part
    (same parameter count as one convolution over ``cat([x, cond])``); the last convolution
    starts at zero.

    Shapes: ``x (B, c_in, H, W)``, ``cond (B, c_cond, H, W)`` or ``(1, c_cond, H, W)`` -> ``(B, c_out, H,
    W)``; a condition of batch 1 is shared by the whole batch (convolved once, broadcast).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        *,
        c_cond: int,
        hidden: int,
        kernel: int = 3,
        depth: int = 3,
        mid_kernel: int | None = None,  # the hidden-to-hidden convolutions' kernel (None: ``kernel``)
    ):
        super().__init__()
        pad = kernel // 2
        mid_kernel = kernel if mid_kernel is None else mid_kernel
        self.first = nn.Conv2d(c_in, hidden, kernel, padding=pad)
        self.first_cond = nn.Conv2d(c_cond, hidden, kernel, padding=pad, bias=False) if c_cond else None
        layers: list[nn.Module] = [nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(hidden, hidden, mid_kernel, padding=mid_kernel // 2), nn.ReLU()]
        self.hidden_layers = nn.Sequential(*layers)
        self.last = nn.Conv2d(hidden, c_out, kernel, padding=pad)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        h = self.first(x)
        if self.first_cond is not None:
            h = h + self.first_cond(cond)
        return self.last(self.hidden_layers(h))


SubnetFactory = Callable[[int, int], nn.Module]


# --------------------------------------------------------------------------- coupling


class AffineCoupling(InvertibleModule):
    """Two-sided (GLOW-style) conditional affine coupling with the atan soft clamp.

    With ``x = [x1, x2]`` split on dimension 1 (``x1`` the first ``C // 2`` channels):

        s2, t2 = sub2(x2, c);  y1 = x1 * exp(clamp(s2)) + t2
        s1, t1 = sub1(y1, c);  y2 = x2 * exp(clamp(s1)) + t1

    ``logdet = sum(clamp(s1)) + sum(clamp(s2))``. Works on vectors and images alike.
    """

    def __init__(
        self,
        channels: int,
        subnet: SubnetFactory,
        *,
        clamp: float = 1.0,
        cond_index: int | None = None,
    ):
        super().__init__()
        if channels < 2:
            raise ValueError("a coupling needs at least 2 channels to split")
        self.n1 = channels // 2
        self.n2 = channels - self.n1
        self.clamp = float(clamp)
        self.cond_index = cond_index
        self.sub2 = subnet(self.n2, 2 * self.n1)  # reads x2, transforms x1
        self.sub1 = subnet(self.n1, 2 * self.n2)  # reads y1, transforms x2

    def _buffer(self, x: Tensor, st: Tensor, cond: Tensor | None) -> Tensor | None:
        """Without a graph, one output tensor whose two channel slices the affine maps write into,
        instead of two tensors and a ``cat``; ``None`` when autograd records anything (``s`` and
        ``t`` depend on ``x``, ``cond`` and the subnets' parameters, so those decide).

        Its memory format is the subnet output's ``st``, as ``cat`` of the two halves would have
        made it (channels-last after channels-last convolutions): the next blocks then see the
        same layout, and compute the same numbers, with or without a graph."""
        if not _no_graph(x, *(() if cond is None else (cond,)), *self.parameters()):
            return None
        channels_last = st.dim() == 4 and not st.is_contiguous() and st.is_contiguous(memory_format=torch.channels_last)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        dtype = torch.promote_types(x.dtype, st.dtype)
        return torch.empty(x.shape, dtype=dtype, device=x.device, memory_format=fmt)

    def _slices(self, out: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        return (None, None) if out is None else (out.narrow(1, 0, self.n1), out.narrow(1, self.n1, self.n2))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x1, x2 = x.split([self.n1, self.n2], dim=1)
        st2 = self.sub2(x2, cond)
        out = self._buffer(x, st2, cond)
        out1, out2 = self._slices(out)
        s2, t2 = st2.chunk(2, dim=1)
        y1, ld2 = affine_forward(x1, s2, t2, self.clamp, out1)
        s1, t1 = self.sub1(y1, cond).chunk(2, dim=1)
        y2, ld1 = affine_forward(x2, s1, t1, self.clamp, out2)
        return (torch.cat([y1, y2], dim=1) if out is None else out), ld1 + ld2

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y1, y2 = y.split([self.n1, self.n2], dim=1)
        st1 = self.sub1(y1, cond)
        out = self._buffer(y, st1, cond)
        out1, out2 = self._slices(out)
        s1, t1 = st1.chunk(2, dim=1)
        x2, ld1 = affine_inverse(y2, s1, t1, self.clamp, out2)
        s2, t2 = self.sub2(x2, cond).chunk(2, dim=1)
        x1, ld2 = affine_inverse(y1, s2, t2, self.clamp, out1)
        return (torch.cat([x1, x2], dim=1) if out is None else out), ld1 + ld2


# --------------------------------------------------------------------------- fixed mixing


def _generator(seed: int) -> torch.Generator:
    """A local generator: building a model never touches the global RNG."""
    return torch.Generator().manual_seed(seed)


class FixedPermutation(InvertibleModule):
    """A fixed random permutation of dimension 1, stored as a buffer (saved with the model).

    Volume-preserving: logdet = 0.
    """

    def __init__(self, channels: int, seed: int):
        super().__init__()
        perm = torch.randperm(channels, generator=_generator(seed))
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.perm), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y.index_select(1, self.inv_perm), y.new_zeros(y.shape[0])


def random_orthogonal(n: int, seed: int) -> Tensor:
    """A Haar-distributed random orthogonal ``(n, n)`` matrix from a seeded local generator."""
    a = torch.randn(n, n, generator=_generator(seed), dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


class FixedOrthogonal(InvertibleModule):
    """Fixed random orthogonal mixing of dimension 1: a matrix for vectors, a 1x1 conv for images.

    The matrix is a buffer (saved with the model, never redrawn on load). ``logdet`` is
    ``log|det W|`` (0 up to rounding for an orthogonal ``W``) times the number of pixels.
    """

    def __init__(self, channels: int, seed: int):
        super().__init__()
        w = random_orthogonal(channels, seed)
        self.register_buffer("weight", w.float())

    def _mix(self, x: Tensor, w: Tensor) -> Tensor:
        if x.dim() == 2:
            return x @ w.t()
        return F.conv2d(x, w[:, :, None, None])

    def _logdet(self, x: Tensor, w: Tensor) -> Tensor:
        pixels = x[0, 0].numel()
        return torch.linalg.slogdet(w)[1] * pixels * x.new_ones(x.shape[0], dtype=acc_dtype(x.dtype))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._mix(x, self.weight), self._logdet(x, self.weight)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # The exact inverse of the stored W in the working dtype, not W^T: W is stored rounded
        # (float32, or float16 in half-precision files), so W^T inverts it only to that rounding.
        w_inv = torch.linalg.inv_ex(self.weight).inverse
        return self._mix(y, w_inv), -self._logdet(y, self.weight)


# --------------------------------------------------------------------------- resolution changes


class HaarDownsample(InvertibleModule):
    """Haar wavelet downsampling ``(B, C, H, W) -> (B, 4C, H/2, W/2)``.

    Output channels are grouped by wavelet: ``[low-pass of all C, then horizontal, vertical,
    diagonal detail]``. Each 2x2 patch is multiplied by the orthonormal Haar matrix (entries
    +-1/2) times ``rebalance``; the reference code uses ``rebalance=0.5``, which is not
    volume-preserving, so ``logdet = C*H*W * log(rebalance)``.
    """

    def __init__(self, rebalance: float = 1.0):
        super().__init__()
        self.rebalance = float(rebalance)
        h = 0.5 * torch.tensor(
            [[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]
        )
        self.register_buffer("haar", h, persistent=False)

    def _logdet(self, x: Tensor) -> Tensor:
        return x.new_full((x.shape[0],), x[0].numel() * math.log(self.rebalance), dtype=acc_dtype(x.dtype))

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        c, h, w = shape
        return (4 * c, h // 2, w // 2)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"Haar downsampling needs even height and width, got {h}x{w}")
        # (B, C, H/2, 2, W/2, 2) -> patches (B, C, H/2, W/2, 4) in row-major order a b / c d
        p = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h // 2, w // 2, 4)
        m = self.haar.to(x.dtype) * self.rebalance
        out = (p @ m.t()).permute(0, 4, 1, 2, 3).reshape(b, 4 * c, h // 2, w // 2)
        return out, self._logdet(x)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        b, c4, h2, w2 = y.shape
        c = c4 // 4
        p = y.reshape(b, 4, c, h2, w2).permute(0, 2, 3, 4, 1)  # (B, C, H/2, W/2, 4)
        m = self.haar.to(y.dtype) / self.rebalance  # the Haar matrix is symmetric and orthonormal
        x = (p @ m).reshape(b, c, h2, w2, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(b, c, 2 * h2, 2 * w2)
        return x, -self._logdet(x)


class Flatten(InvertibleModule):
    """``(B, *shape) -> (B, prod(shape))``; the inverse restores ``shape``."""

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = tuple(shape)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(shape),)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], -1), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y.reshape(y.shape[0], *self.shape), y.new_zeros(y.shape[0])


class ExitSplit(nn.Module):
    """Marker in a ``Flow``: the first ``n`` channels leave the flow here as one latent level."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n


# --------------------------------------------------------------------------- container


class Flow(nn.Module):
    """A chain of invertible blocks with multi-scale early exits.

    ``forward(x, cond_feats) -> (zs, logdet)``: ``zs`` is the list of latent levels in exit order
    (the last entry is what remains at the end); each block reads ``cond_feats[block.cond_index]``,
    of the batch of ``x`` or of batch 1 (one condition shared by every sample, computed once).
    ``inverse(zs, cond_feats) -> (x, logdet_inv)`` undoes it exactly.
    """

    def __init__(self, steps: Sequence[nn.Module]):
        super().__init__()
        self.steps = nn.ModuleList(steps)

    @staticmethod
    def _cond(step: nn.Module, cond_feats: Sequence[Tensor]) -> Tensor | None:
        idx = getattr(step, "cond_index", None)
        return None if idx is None else cond_feats[idx]

    def latent_shapes(self, input_shape: Sequence[int]) -> list[tuple[int, ...]]:
        """Shapes (without batch) of the latent levels for inputs of ``input_shape``, in exit
        order, computed from the blocks' shape rules (nothing is run)."""
        shape, shapes = tuple(input_shape), []
        for step in self.steps:
            if isinstance(step, ExitSplit):
                shapes.append((step.n, *shape[1:]))
                shape = (shape[0] - step.n, *shape[1:])
            else:
                shape = step.output_shape(shape)
        return [*shapes, shape]

    def forward(self, x: Tensor, cond_feats: Sequence[Tensor] = ()) -> tuple[list[Tensor], Tensor]:
        zs: list[Tensor] = []
        logdet = x.new_zeros(x.shape[0], dtype=acc_dtype(x.dtype))
        for step in self.steps:
            if isinstance(step, ExitSplit):
                zs.append(x[:, : step.n])
                x = x[:, step.n :]
                continue
            x, ld = step(x, self._cond(step, cond_feats))
            logdet = logdet + ld
        zs.append(x)
        return zs, logdet

    def inverse(self, zs: Sequence[Tensor], cond_feats: Sequence[Tensor] = ()) -> tuple[Tensor, Tensor]:
        pending = list(zs)
        x = pending.pop()
        logdet = x.new_zeros(x.shape[0], dtype=acc_dtype(x.dtype))
        for step in reversed(self.steps):
            if isinstance(step, ExitSplit):
                x = torch.cat([pending.pop(), x], dim=1)
                continue
            x, ld = step.inverse(x, self._cond(step, cond_feats))
            logdet = logdet + ld
        if pending:
            raise ValueError(f"{len(pending)} latent level(s) left over: the latent does not fit this model")
        return x, logdet
