"""Speed of cinn's flow core against FrEIA on the same architectures (CPU, float32).

Builds two architectures twice, once from ``cinn_cli.flows`` and once from FrEIA (a bench-only
dependency: ``pip install freia==0.2``; the cinn package itself never imports FrEIA):

1. ``mnist``: the reference MNIST model, 20 x [fixed random permutation, GLOW coupling] on 784
   dims, fully connected subnets Linear(402, 512)-ReLU-Linear(512, 784), one-hot condition of 10,
   clamp 1.0 (24,341,120 trainable parameters). Ours is ``MnistCINN(PRESETS["paper"])``.
2. ``conv``: a convolutional multi-scale stack on 2x64x64 inputs with a 1x64x64 condition:
   Haar -> 8x32x32, 4 x [conv GLOW coupling (3x3, hidden 64), fixed 1x1 orthogonal], half the
   channels exit, Haar -> 16x16x16, 4 x [conv GLOW coupling (3x3, hidden 128), fixed 1x1
   orthogonal]. The condition enters each level space-to-depth'ed to the level's resolution
   (4x32x32 and 16x16x16), precomputed once and fed to both implementations. Ours gets
   channels-last weights, as the shipped convolutional models (MnistCINN) are built.

Both builds get the same weights, permutations and mixing matrices, and the script checks that
they compute the same function (forward and inverse) before timing, with FrEIA's clamp function
temporarily set to ours. FrEIA 0.2's GLOWCouplingBlock soft clamp is ``alpha * 0.636 *
atan(s)`` (the post-2021 semantics), ours is ``alpha * 2/pi * atan(s / alpha)`` (the 2019 reference
code's); at clamp 1.0 they differ only by 0.636 vs 2/pi. The timed FrEIA models use FrEIA's own
"ATAN" clamp: irrelevant for speed.

It then times, alternating ours / FrEIA in every round after a warm-up, in float32 on the CPU:
  (a) a training step: forward + backward + Adam step, loss = mean(0.5 ||z||^2 - logdet) / D
      (batch 256 for mnist, 64 for conv);
  (b) a sampling pass: inverse from random z under torch.no_grad() (same batch sizes);
and in the same rounds a large float32 ``torch.mm`` (4096 x 4096) for this machine's matmul rate.
Medians throughout. Ratios are FrEIA time / our time (> 1: ours is faster); the "paired" column
is the median of the per-round ratios (the two timed back to back), a check on load drift.

Both wall time and this process's CPU time are recorded and printed. The summary line uses CPU
time when running on 1 thread (the default): on a shared machine it discounts the time the process
spends descheduled. With more threads it uses wall time (CPU time would count OpenMP spin-waiting).
Why 1 thread by default: on this 2-core machine with a training job in the background, 2 threads
made every step 2-5x slower and very noisy (OpenMP workers wait for a descheduled sibling).

The last line is machine-readable:
    core_speed train_ratio=<geomean over the 2 archs> sample_ratio=<...> efficiency=<...>
where efficiency = achieved FLOP/s of our mnist (fully connected) training step / mm FLOP/s.
Above it, a ``ceiling`` line: the ratios ours would reach if every Linear/Conv2d FLOP ran at the
fastest rate seen in the run (the mm probe's or any row's) and nothing else took time but, in
training, the Adam step (timed alone on tensors of our parameters' shapes, the same for both);
a target above the ceiling needs fewer FLOPs, not faster code.
With ``--compile`` it adds ``compiled_train_ratio=<geomean, our compiled step against FrEIA's
eager one> break_even_steps=<the slower architecture's>``: the compile time over the time a
compiled step saves (sampling is never compiled: the CLI must start without compile latency).

Usage:
    python bench/core_speed.py                 # 1 thread, 7 rounds after 1 warm-up (~2-4 min here)
    python bench/core_speed.py --quick         # smoke test: 1 round (~1 min)
    python bench/core_speed.py --threads 2     # all cores: only on an otherwise idle machine
    python bench/core_speed.py --compile       # plus our compiled training steps (a few minutes more)
    python bench/core_speed.py --profile mnist # torch.profiler tables, ours and FrEIA; no timing
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn import functional as F

try:
    import FrEIA.framework as Ff
    import FrEIA.modules as Fm
except ImportError:  # pragma: no cover - bench-only dependency
    sys.exit("core_speed needs FrEIA (bench-only dependency): pip install freia==0.2")

from cinn_cli.flows.blocks import (
    AffineCoupling,
    ConvSubnet,
    ExitSplit,
    FixedOrthogonal,
    FixedPermutation,
    Flow,
    HaarDownsample,
)
from cinn_cli.tasks.mnist.model import PRESETS, MnistCINN

MNIST_BATCH = 256
CONV_BATCH = 64
MNIST_PARAMS = 24_341_120
MNIST_MACS = 20 * 2 * (392 * 512 + 10 * 512 + 512 * 784)  # 20 couplings x 2 subnets, per sample
# 4 couplings x 2 subnets per level, 3x3 kernels: (x half + cond) -> h -> h -> 2 x half, per pixel
CONV_MACS = (
    8 * 9 * (32 * 32 * (4 * 64 + 4 * 64 + 64 * 64 + 64 * 8) + 16 * 16 * (8 * 128 + 16 * 128 + 128 * 128 + 128 * 16))
)
MM_N = 4096


# --------------------------------------------------------------------------- helpers


def n_trainable(model: nn.Module) -> int:
    """Trainable parameters only: FrEIA 0.2 keeps permutations, Haar filters and fixed 1x1
    matrices as ``nn.Parameter(requires_grad=False)``, which must not count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def nll_loss(zs: list[Tensor] | tuple[Tensor, ...], logdet: Tensor, dims: int) -> Tensor:
    """mean over the batch of (0.5 ||z||^2 - logdet), per dimension."""
    sq = sum(z.pow(2).reshape(z.shape[0], -1).sum(1) for z in zs)
    return (0.5 * sq - logdet).mean() / dims


def _copy(dst: Tensor, src: Tensor) -> None:
    with torch.no_grad():
        assert dst.shape == src.shape, (dst.shape, src.shape)
        dst.copy_(src)


def _copy_subnet(dst: nn.Sequential, src: nn.Module) -> None:
    """Our split-first-layer subnet (FCSubnet / ConvSubnet) -> FrEIA's nn.Sequential subnet,
    whose first layer reads ``cat([x, cond])``."""
    layers = [m for m in dst if isinstance(m, (nn.Linear, nn.Conv2d))]
    ours = [src.first] + [m for m in src.hidden_layers if isinstance(m, (nn.Linear, nn.Conv2d))]
    ours.append(src.last)
    assert len(layers) == len(ours)
    w0 = src.first.weight
    if src.first_cond is not None:
        w0 = torch.cat([w0, src.first_cond.weight], dim=1)
    _copy(layers[0].weight, w0)
    _copy(layers[0].bias, src.first.bias)
    for d, s in zip(layers[1:], ours[1:], strict=True):
        _copy(d.weight, s.weight)
        _copy(d.bias, s.bias)


def _copy_coupling(dst: nn.Module, src: AffineCoupling) -> None:
    # FrEIA subnet1 reads the first half (+cond) and transforms the second: our sub1.
    assert (dst.split_len1, dst.split_len2) == (src.n1, src.n2)
    _copy_subnet(dst.subnet1, src.sub1)
    _copy_subnet(dst.subnet2, src.sub2)


def _randomize_last_layers(model: nn.Module, std: float, seed: int = 1) -> None:
    """Our subnets' last layers start at zero (identity couplings); give them small random values
    so the equivalence check is not trivial and both timed models do non-trivial arithmetic."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".last." in name:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def _our_clamp(alpha: float) -> Callable[[Tensor], Tensor]:
    # FrEIA computes s = clamp * f_clamp(s); this makes it alpha * 2/pi * atan(s / alpha) (ours).
    return lambda u: (2.0 / math.pi) * torch.atan(u / alpha)


def _freia_couplings(inn: nn.Module) -> list[nn.Module]:
    return [m for m in inn.modules() if isinstance(m, Fm.GLOWCouplingBlock)]


# --------------------------------------------------------------------------- architecture 1: MNIST


def fc_subnet(c_in: int, c_out: int) -> nn.Module:
    """The reference MNIST subnet (mnist_minimal_example/model.py)."""
    return nn.Sequential(nn.Linear(c_in, 512), nn.ReLU(), nn.Linear(512, c_out))


def build_mnist() -> dict:
    ours = MnistCINN(PRESETS["paper"])
    _randomize_last_layers(ours, std=0.01)
    our_steps = list(ours.flow.steps)
    perms = [m for m in our_steps if isinstance(m, FixedPermutation)]
    couplings = [m for m in our_steps if isinstance(m, AffineCoupling)]

    x_node = Ff.InputNode(1, 28, 28, name="x")
    cond = Ff.ConditionNode(10, name="onehot")
    nodes = [x_node, Ff.Node(x_node, Fm.Flatten, {}, name="flatten")]
    perm_nodes = []
    for k in range(len(couplings)):
        nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": k}, name=f"perm{k}"))
        perm_nodes.append(nodes[-1])
        nodes.append(
            Ff.Node(
                nodes[-1],
                Fm.GLOWCouplingBlock,
                {"subnet_constructor": fc_subnet, "clamp": 1.0},
                conditions=cond,
                name=f"glow{k}",
            )
        )
    nodes.append(Ff.OutputNode(nodes[-1], name="z"))
    freia = Ff.GraphINN(nodes + [cond])

    # Same permutations and weights in both.
    for node, ours_perm in zip(perm_nodes, perms, strict=True):
        _copy(node.module.perm, ours_perm.perm)
        _copy(node.module.perm_inv, ours_perm.inv_perm)
    for dst, src in zip(_freia_couplings(freia), couplings, strict=True):
        _copy_coupling(dst, src)

    cfg = ours.config
    dims = 784

    def prep(x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        # the same fixed preprocessing ours does inside MnistCINN.forward
        return (x - cfg.data_mean) / cfg.data_std, F.one_hot(labels, 10).to(x.dtype)

    def ours_fwd(x, labels):
        return ours(x, labels)

    def freia_fwd(x, labels):
        v, c = prep(x, labels)
        z, jac = freia(v, c=[c])
        return [z], jac - dims * math.log(cfg.data_std)

    def ours_inv(zs, labels):
        return ours.inverse(zs, labels)

    def freia_inv(zs, labels):
        v, _ = freia(zs[0], c=[F.one_hot(labels, 10).to(zs[0].dtype)], rev=True)
        return v * cfg.data_std + cfg.data_mean

    def make_batch(b: int, g: torch.Generator):
        x = (torch.randint(0, 256, (b, 1, 28, 28), generator=g) + torch.rand(b, 1, 28, 28, generator=g)) / 256
        labels = torch.randint(0, 10, (b,), generator=g)
        z = [torch.randn(b, dims, generator=g)]
        return x, labels, z

    return dict(
        name="mnist",
        ours=ours,
        freia=freia,
        dims=dims,
        batch=MNIST_BATCH,
        clamp=1.0,
        ours_fwd=ours_fwd,
        freia_fwd=freia_fwd,
        ours_inv=ours_inv,
        freia_inv=freia_inv,
        make_batch=make_batch,
        shape="20 x [perm, GLOW fc 402-512-784], 784 dims, one-hot 10",
    )


# --------------------------------------------------------------------------- architecture 2: conv stack


class FreiaConvSubnet(nn.Sequential):
    """conv3x3 -> ReLU -> conv3x3 -> ReLU -> conv3x3 on cat([x, cond]) (FrEIA style)."""

    def __init__(self, c_in: int, c_out: int, hidden: int):
        super().__init__(
            nn.Conv2d(c_in, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, c_out, 3, padding=1),
        )


CONV_LEVELS = (  # (channels after Haar, condition channels, hidden width, couplings)
    (8, 4, 64, 4),
    (16, 16, 128, 4),
)


def build_conv() -> dict:
    torch.manual_seed(0)
    clamp = 1.0
    steps: list[nn.Module] = []
    seed = 0
    for level, (ch, cc, hidden, n) in enumerate(CONV_LEVELS):
        steps.append(HaarDownsample(rebalance=1.0))
        subnet = partial(ConvSubnet, c_cond=cc, hidden=hidden)
        for _ in range(n):
            steps.append(AffineCoupling(ch, subnet, clamp=clamp, cond_index=level))
            steps.append(FixedOrthogonal(ch, seed=seed))
            seed += 1
        if level == 0:
            steps.append(ExitSplit(ch // 2))
    ours = Flow(steps)
    _randomize_last_layers(ours, std=0.01)
    # As the shipped convolutional models are built (MnistCINN): channels-last weights.
    ours.to(memory_format=torch.channels_last)
    couplings = [m for m in steps if isinstance(m, AffineCoupling)]
    mixers = iter([m for m in steps if isinstance(m, FixedOrthogonal)])

    x_node = Ff.InputNode(2, 64, 64, name="ab")
    conds = [
        Ff.ConditionNode(cc, 64 // 2 ** (i + 1), 64 // 2 ** (i + 1), name=f"cond{i}")
        for i, (_, cc, _, _) in enumerate(CONV_LEVELS)
    ]
    nodes: list = [x_node]
    outputs = []
    h = x_node
    for level, (ch, _cc, hidden, n) in enumerate(CONV_LEVELS):
        h = Ff.Node(h, Fm.HaarDownsampling, {"order_by_wavelet": True, "rebalance": 1.0}, name=f"haar{level}")
        nodes.append(h)
        for k in range(n):
            h = Ff.Node(
                h,
                Fm.GLOWCouplingBlock,
                {"subnet_constructor": partial(FreiaConvSubnet, hidden=hidden), "clamp": clamp},
                conditions=conds[level],
                name=f"glow{level}_{k}",
            )
            nodes.append(h)
            # FrEIA applies M.t() as the 1x1 kernel; ours applies W: pass M = W.t().
            w = next(mixers).weight
            h = Ff.Node(h, Fm.Fixed1x1Conv, {"M": w.t().contiguous()}, name=f"mix{level}_{k}")
            nodes.append(h)
        if level == 0:
            h = Ff.Node(h, Fm.Split, {"section_sizes": [ch // 2, ch - ch // 2], "dim": 0}, name="split")
            nodes.append(h)
            outputs.append(Ff.OutputNode(h.out0, name="z_exit"))
            h = h.out1
    outputs.append(Ff.OutputNode(h, name="z_final"))
    freia = Ff.GraphINN(nodes + outputs + conds)
    for dst, src in zip(_freia_couplings(freia), couplings, strict=True):
        _copy_coupling(dst, src)

    dims = 2 * 64 * 64

    def cond_feats(lum: Tensor) -> list[Tensor]:
        # 1x64x64 condition, space-to-depth to each level's resolution: 4x32x32, 16x16x16.
        return [F.pixel_unshuffle(lum, 2), F.pixel_unshuffle(lum, 4)]

    def ours_fwd(x, conds_):
        return ours(x, conds_)

    def freia_fwd(x, conds_):
        zs, jac = freia(x, c=conds_)
        return list(zs), jac

    def ours_inv(zs, conds_):
        return ours.inverse(zs, conds_)[0]

    def freia_inv(zs, conds_):
        x, _ = freia(zs, c=conds_, rev=True)
        return x

    def make_batch(b: int, g: torch.Generator):
        x = torch.randn(b, 2, 64, 64, generator=g) * 0.5
        conds_ = cond_feats(torch.rand(b, 1, 64, 64, generator=g))
        zs = [torch.randn(b, 4, 32, 32, generator=g), torch.randn(b, 16, 16, 16, generator=g)]
        return x, conds_, zs

    return dict(
        name="conv",
        ours=ours,
        freia=freia,
        dims=dims,
        batch=CONV_BATCH,
        clamp=clamp,
        ours_fwd=ours_fwd,
        freia_fwd=freia_fwd,
        ours_inv=ours_inv,
        freia_inv=freia_inv,
        make_batch=make_batch,
        shape="2x64x64: Haar, 4 conv GLOW h64 + 1x1, exit half, Haar, 4 conv GLOW h128 + 1x1",
    )


# --------------------------------------------------------------------------- checks


def check_equivalence(arch: dict) -> float:
    """Forward and inverse of both builds agree (FrEIA's clamp temporarily set to ours).
    Returns the largest absolute difference seen."""
    g = torch.Generator().manual_seed(123)
    x, cond, zs = arch["make_batch"](4, g)
    fr_couplings = _freia_couplings(arch["freia"])
    saved = [m.f_clamp for m in fr_couplings]
    for m in fr_couplings:
        m.f_clamp = _our_clamp(arch["clamp"])
    try:
        with torch.no_grad():
            z_o, ld_o = arch["ours_fwd"](x, cond)
            z_f, ld_f = arch["freia_fwd"](x, cond)
            x_o = arch["ours_inv"](zs, cond)
            x_f = arch["freia_inv"]([z.clone() for z in zs], cond)
    finally:
        for m, f in zip(fr_couplings, saved, strict=True):
            m.f_clamp = f
    diffs = [(a - b).abs().max().item() for a, b in zip(z_o, z_f, strict=True)]
    diffs.append((x_o - x_f).abs().max().item())
    ld_diff = (ld_o - ld_f).abs().max().item() / arch["dims"]  # per dimension
    diffs.append(ld_diff)
    worst = max(diffs)
    assert len(z_o) == len(z_f), (len(z_o), len(z_f))
    assert worst < 1e-3, f"{arch['name']}: ours and FrEIA disagree (max abs diff {worst:.3g})"
    assert ld_o.abs().max().item() > 0, "logdet is 0: the check would be trivial"
    return worst


# --------------------------------------------------------------------------- timing


def make_train_step(arch: dict, which: str, x, cond, compiled: bool = False) -> Callable[[], None]:
    """One training step of ``which`` (``ours`` or ``freia``); ``compiled``: the loss (forward and,
    through AOTAutograd, backward) runs through ``torch.compile`` as ``cinn train --compile`` runs
    it, the Adam step eager. The first call of a compiled step compiles."""
    model = arch[which]
    fwd = arch[f"{which}_fwd"]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    dims = arch["dims"]

    def loss_of(x: Tensor, cond) -> Tensor:
        zs, logdet = fwd(x, cond)
        return nll_loss(zs, logdet, dims)

    if compiled:
        loss_of = torch.compile(loss_of)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_of(x, cond)
        loss.backward()
        opt.step()

    return step


def make_sample(arch: dict, which: str, zs, cond) -> Callable[[], None]:
    inv = arch[f"{which}_inv"]

    def sample() -> None:
        with torch.no_grad():
            inv([z.clone() for z in zs], cond)  # clone: no implementation may see a used z

    return sample


def make_adam_probe(arch: dict) -> Callable[[], None]:
    """One ``torch.optim.Adam`` step (the training steps' optimiser, PyTorch's CPU default) over
    fresh tensors of our trainable parameters' shapes with fixed random gradients: the part of a
    training step that neither core can shorten (both have the same parameter shapes)."""
    g = torch.Generator().manual_seed(1)
    params = [torch.zeros(p.shape, requires_grad=True) for p in arch["ours"].parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)
    return torch.optim.Adam(params, lr=1e-4).step


def timed(fn: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def layer_macs(arch: dict) -> int:
    """Multiply-accumulates per sample of every ``nn.Linear`` and ``nn.Conv2d`` of our build in one
    pass (forward or sampling: each layer runs once). Linear layers are counted from their shapes
    (``FCSubnet`` applies its condition weight without calling the module, so a hook would miss
    it), convolutions by forward hooks on a batch of 2 (their cost depends on the image size).
    FrEIA's build has the same count: its first layer reads ``cat([x, cond])``, ours splits it in
    two. The fixed 1x1 mixing (a few channels) is not counted."""
    model = arch["ours"]
    total = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    conv_total = 0

    def count(m: nn.Conv2d, _inp, out: Tensor) -> None:
        nonlocal conv_total
        conv_total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        x, cond, _ = arch["make_batch"](2, torch.Generator().manual_seed(0))
        with torch.no_grad():
            arch["ours_fwd"](x, cond)
    finally:
        for h in handles:
            h.remove()
    return total + conv_total // 2


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_profile(arch: dict, rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    g = torch.Generator().manual_seed(0)
    x, cond, zs = arch["make_batch"](arch["batch"], g)
    for which in ("ours", "freia"):
        train = make_train_step(arch, which, x, cond)
        sample = make_sample(arch, which, zs, cond)
        train(), sample()  # warm-up
        for label, fn in (("train step", train), ("sampling", sample)):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(3):
                    fn()
            print(f"\n=== {arch['name']} {which} {label} (3 calls) ===")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds after 1 warm-up (default 7)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 round after 1 warm-up")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a shared 2-core machine more threads than "
        "free cores make OpenMP wait on descheduled threads; use 2 on an idle machine)",
    )
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default=None,
        help="clock for the summary line (both are printed): 'cpu' = CPU time of this process, immune "
        "to time spent descheduled by other load, meaningful with 1 thread only; default: cpu with "
        "--threads 1, else wall",
    )
    ap.add_argument(
        "--compile",
        action="store_true",
        help="also time our training steps through torch.compile (as cinn train --compile); the "
        "compile time is printed and kept out of the medians, with the steps it takes to pay back",
    )
    ap.add_argument(
        "--profile",
        choices=["mnist", "conv"],
        default=None,
        help="print torch.profiler tables (ours and FrEIA) for one architecture and exit",
    )
    args = ap.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 7)
    warmup = 1
    if rounds < 1:
        ap.error("--rounds must be >= 1")
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    torch.set_default_dtype(torch.float32)

    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"core_speed: torch {torch.__version__}, FrEIA {importlib.metadata.version('freia')}, "
        f"{cpu_name()} ({os.cpu_count()} cores, load average {load}), {torch.get_num_threads()} "
        f"thread(s), float32, {rounds} round(s) after {warmup} warm-up, medians, summary on the {clock} clock"
    )

    archs = [build_mnist(), build_conv()]
    if args.profile:
        run_profile(next(a for a in archs if a["name"] == args.profile), rows=25)
        return

    for arch in archs:
        arch["macs"] = layer_macs(arch)
        n_o, n_f = n_trainable(arch["ours"]), n_trainable(arch["freia"])
        diff = check_equivalence(arch)
        print(
            f"  {arch['name']:5s} {arch['shape']}\n"
            f"        trainable parameters: ours {n_o:,}  FrEIA {n_f:,}; "
            f"same function (max abs diff {diff:.1e})"
        )
        assert n_o == n_f, f"{arch['name']}: parameter counts differ ({n_o} vs {n_f})"
    assert n_trainable(archs[0]["ours"]) == MNIST_PARAMS
    assert [a["macs"] for a in archs] == [MNIST_MACS, CONV_MACS], [a["macs"] for a in archs]  # by hand

    # Tasks: (arch, phase) -> {"ours": fn, "freia": fn[, "compiled": fn]}; plus the matmul probe.
    g = torch.Generator().manual_seed(0)
    tasks = []
    compile_seconds: dict[str, float] = {}
    for arch in archs:
        x, cond, zs = arch["make_batch"](arch["batch"], g)
        for phase, make, data in (("train", make_train_step, x), ("sample", make_sample, zs)):
            fns = {w: make(arch, w, data, cond) for w in ("ours", "freia")}
            if phase == "train" and args.compile:
                fns["compiled"] = make_train_step(arch, "ours", x, cond, compiled=True)
                # the first call compiles (and runs one step): its wall time, not in any median
                compile_seconds[arch["name"]] = timed(fns["compiled"])[0]
                print(f"  {arch['name']:5s} ours compiled: first step (compile) {compile_seconds[arch['name']]:.1f} s")
            tasks.append((arch, phase, fns))
    a = torch.randn(MM_N, MM_N)
    b = torch.randn(MM_N, MM_N)
    adam_probes = {arch["name"]: make_adam_probe(arch) for arch in archs}

    # times[clock][(arch, phase, which)] = per-round seconds; mm[clock] = per-round FLOP/s
    times: dict[str, dict[tuple[str, str, str], list[float]]] = {"wall": {}, "cpu": {}}
    mm: dict[str, list[float]] = {"wall": [], "cpu": []}
    adam: dict[str, dict[str, list[float]]] = {"wall": {}, "cpu": {}}  # [clock][arch] = per-round seconds
    mm_flop = 2 * MM_N**3
    t_start = time.perf_counter()
    for r in range(warmup + rounds):
        measuring = r >= warmup
        tw, tc = timed(lambda: torch.mm(a, b))
        if measuring:
            mm["wall"].append(mm_flop / tw)
            mm["cpu"].append(mm_flop / tc)
        for name, probe in adam_probes.items():
            tw, tc = timed(probe)
            if measuring:
                adam["wall"].setdefault(name, []).append(tw)
                adam["cpu"].setdefault(name, []).append(tc)
        for i, (arch, phase, fns) in enumerate(tasks):
            # alternate which implementation goes first, so neither always runs on a hot cache
            order = sorted(fns, reverse=(r + i) % 2 == 1)  # compiled, freia, ours and back
            for which in order:
                tw, tc = timed(fns[which])
                if measuring:
                    times["wall"].setdefault((arch["name"], phase, which), []).append(tw)
                    times["cpu"].setdefault((arch["name"], phase, which), []).append(tc)
    elapsed = time.perf_counter() - t_start

    summary: dict[str, dict[str, float]] = {}
    for clk in (clock, "wall" if clock == "cpu" else "cpu"):
        summary[clk] = report(clk, clk == clock, tasks, times[clk], mm[clk], adam[clk], compile_seconds)
    s = summary[clock]
    print(f"  timed loop: {elapsed:.0f} s wall")
    compiled = (
        f" compiled_train_ratio={s['compiled_train_ratio']:.3f} break_even_steps={s['break_even_steps']:.0f}"
        if args.compile
        else ""
    )
    print(
        f"core_speed train_ratio={s['train_ratio']:.3f} sample_ratio={s['sample_ratio']:.3f} "
        f"efficiency={s['efficiency']:.3f}{compiled}"
    )


def report(
    clock: str,
    used: bool,
    tasks: list,
    times: dict[tuple[str, str, str], list[float]],
    mm: list[float],
    adam: dict[str, list[float]],
    compile_seconds: dict[str, float],
) -> dict[str, float]:
    """Print one clock's table and return its summary numbers."""
    med = {k: statistics.median(v) for k, v in times.items()}
    mm_flops = statistics.median(mm)
    what = {"cpu": "CPU time of this process", "wall": "wall time"}[clock]
    print(f"\n  [{clock} clock: {what}{'; used for the summary line' if used else ''}]")
    print(
        f"  {'arch':5s} {'phase':6s} {'batch':>5s} {'ours ms':>9s} {'FrEIA ms':>9s} {'FrEIA/ours':>10s} "
        f"{'paired':>7s} {'ours img/s':>10s} {'FrEIA img/s':>11s}   min-max ms ours / FrEIA"
    )
    ratios: dict[str, list[float]] = {"train": [], "sample": [], "compiled": []}
    break_even: list[float] = []
    for arch, phase, fns in tasks:
        name, bs = arch["name"], arch["batch"]
        for which, row in (("ours", phase), ("compiled", "+comp")):
            if which not in fns:
                continue
            lo, lf = times[(name, phase, which)], times[(name, phase, "freia")]
            to, tf = med[(name, phase, which)], med[(name, phase, "freia")]
            ratios[phase if which == "ours" else "compiled"].append(tf / to)
            # median of the per-round ratios (ours and FrEIA timed back to back): robust to slow load drift
            paired = statistics.median(f / o for o, f in zip(lo, lf, strict=True))
            print(
                f"  {name:5s} {row:6s} {bs:5d} {to * 1e3:9.1f} {tf * 1e3:9.1f} {tf / to:10.3f} {paired:7.3f} "
                f"{bs / to:10.0f} {bs / tf:11.0f}   {min(lo) * 1e3:.0f}-{max(lo) * 1e3:.0f} / "
                f"{min(lf) * 1e3:.0f}-{max(lf) * 1e3:.0f}"
            )
        if "compiled" in fns:
            saved = med[(name, phase, "ours")] - med[(name, phase, "compiled")]
            # the compile's first step also trained: only its excess over a compiled step is the cost
            cost = compile_seconds[name] - med[(name, phase, "compiled")]
            break_even.append(cost / saved if saved > 0 else math.inf)
            print(
                f"        compile {compile_seconds[name]:.1f} s, saves {saved * 1e3:.1f} ms/step: "
                f"pays back after {break_even[-1]:,.0f} steps"
            )

    # FLOPs of a step, counting only the Linear and Conv2d layers (layer_macs, 2 FLOPs per MAC):
    # a sampling pass runs each layer once, a training step about 3x (the backward computes grads
    # w.r.t. inputs and weights). Elementwise ops, permutations and Adam are not counted.
    #   efficiency = our mnist training step's FLOP/s / the matmul probe's
    #   ceiling    = FrEIA's time / (FLOPs at the fastest rate this run saw, the probe's or any
    #                row's, plus for training the Adam step alone): the ratio ours would reach if
    #                every counted FLOP ran at that rate and nothing else but the optimiser took
    #                any time. A ratio target above it needs fewer FLOPs, not faster code.
    print(
        f"  matmul {MM_N}x{MM_N} float32: {mm_flops / 1e9:.0f} GFLOP/s (median; "
        f"min {min(mm) / 1e9:.0f}, max {max(mm) / 1e9:.0f})"
    )
    flops = {}
    for arch, phase, _fns in tasks:
        passes = 3 if phase == "train" else 1
        flops[(arch["name"], phase)] = 2 * passes * arch["macs"] * arch["batch"]
    rates = {k: flops[k[:2]] / t for k, t in med.items()}
    peak = max(mm_flops, *rates.values())
    ceiling: dict[str, list[float]] = {"train": [], "sample": []}
    print(
        f"  counted GFLOP (Linear + Conv2d) and GFLOP/s; ceiling at {peak / 1e9:.0f} GFLOP/s "
        "(+ the Adam step alone for training):"
    )
    for (name, phase), f in flops.items():
        t_adam = statistics.median(adam[name]) if phase == "train" else 0.0
        ceiling[phase].append(med[(name, phase, "freia")] / (f / peak + t_adam))
        print(
            f"  {name:5s} {phase:6s} {f / 1e9:6.1f} GFLOP  ours {rates[(name, phase, 'ours')] / 1e9:4.0f}  "
            f"FrEIA {rates[(name, phase, 'freia')] / 1e9:4.0f} GFLOP/s"
            + (f"  Adam {t_adam * 1e3:5.1f} ms" if phase == "train" else " " * 15)
            + f"  ceiling FrEIA/ours <= {ceiling[phase][-1]:.3f}"
        )
    efficiency = rates[("mnist", "train", "ours")] / mm_flops
    print(
        f"  ceiling train_ratio<={math.sqrt(ceiling['train'][0] * ceiling['train'][1]):.3f} "
        f"sample_ratio<={math.sqrt(ceiling['sample'][0] * ceiling['sample'][1]):.3f}; mnist train efficiency "
        f"{efficiency:.3f} (its GFLOP/s over the matmul probe's)"
    )
    summary = {
        "train_ratio": math.sqrt(ratios["train"][0] * ratios["train"][1]),
        "sample_ratio": math.sqrt(ratios["sample"][0] * ratios["sample"][1]),
        "efficiency": efficiency,
    }
    if ratios["compiled"]:
        summary["compiled_train_ratio"] = math.sqrt(ratios["compiled"][0] * ratios["compiled"][1])
        summary["break_even_steps"] = max(break_even)  # the slower architecture's
    return summary


if __name__ == "__main__":
    main()
