"""The pixel MeanFlow objective (PMF_SPEC.md sections 1-4) and the plain flow-matching baseline.

Time convention (the one used everywhere in this project):
    t = 1 is noise, t = 0 is data,   z_t = (1 - t) x + t s e,   e ~ N(0, I), s = noise scale,
    conditional velocity v = dz/dt = s e - x,   a step is z_r = z_t - (t - r) u(z_t, r, t).

pMF loss for one batch (Eq. numbers refer to the MeanFlow/iMF identity):
    u(z_t, r, t) = (z_t - x_u) / clip(t)                 x-prediction -> velocity, inside the net
    V = u + (t - r) sg(du/dt),  du/dt = JVP of u along (dz, dt, dr) = (v_c, 1, 0)
    v_c  = v-head at (z_t, h = 0, omega', label)        guided instantaneous velocity (tangent)
    v_g  = v_t + (1 - 1/omega') (v_c - v_u)              guided target, v_u = v-head(null, omega=1)
    L_u  = sum (V - v_g)^2,   L_v = sum (v - v_g)^2       per sample, sums over pixels
    loss = mean_B [ w(L_u) + w(L_v) + lambda w(L_perc) ],   w(L) = L / sg((L + eps)^p)

Bidirectional training (``MeanFlowConfig.backward_ratio > 0``, a network with a backward head): a
share of the r < t rows is turned around, r > t, so the same loss (the identity u = v - (t - r) du/dt
holds in both directions, with the same guided v) trains the average velocity toward noise; a share
of those rows jumps to the noise end, r = 1, from t ~ U(0, 1) (inversion is the jump 0 -> 1). Both directions follow one ODE, that of
the clipped field v = (z - x)/clip(t) the forward objective already uses, so generation and inversion
are inverses of each other up to the network's error.

Everything random is drawn from the caller's ``torch.Generator`` by ``draw_batch``; the loss proper
(``pmf_loss_given``) is a pure function of the network, the batch and those draws.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Literal

import torch

from core.attention import forward_ad_safe
from core.model import PixelMeanFlow

PerceptualFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (pred, target) -> (B,)


@dataclass(frozen=True)
class MeanFlowConfig:
    """pMF objective settings. Defaults follow the paper's B/16 recipe (Tab. 8, official code)."""

    P_mean: float = 0.8  # t0, r0 ~ sigmoid(N(P_mean, P_std^2)); +0.8 here = JiT's -0.8 (t=1 noise)
    P_std: float = 0.8
    fm_ratio: float = 0.5  # share of each batch with r = t (its first rows), as the official code
    uniform_tr_prob: float = 0.0  # long recipe: 0.1 of rows draw (t0, r0) ~ U(0, 1) instead
    cfg_max: float = 7.0  # omega in [1, 1 + cfg_max]
    cfg_beta: float = 1.0  # p(omega) ~ omega^-beta on that range (1: log-uniform)
    label_drop: float = 0.1  # overall share of rows trained with the null class
    adaptive_p: float = 1.0  # adaptive weight w(L) = L / sg((L + eps)^p)
    adaptive_eps: float = 0.01
    perceptual_weight: float = 0.0  # lambda; needs a perceptual fn (off where no weights exist)
    perceptual_max_t: float = 0.8  # perceptual term only where t < this
    jvp: Literal["nograd", "fused"] = "nograd"  # see pmf_loss_given; chosen by benchmarks/bench_train_step.py
    backward_ratio: float = 0.0  # share of the r < t rows turned into r > t rows (needs a backward head)
    backward_endpoint_prob: float = 0.25  # share of those backward rows with r = 1, t ~ U(0, 1)

    def __post_init__(self) -> None:
        for name in ("fm_ratio", "uniform_tr_prob", "label_drop", "backward_ratio", "backward_endpoint_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:  # also refuses NaN
                raise ValueError(f"MeanFlowConfig.{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class FlowMatchingConfig:
    """Plain flow matching (r = t only; the JiT baseline) on the same network's u-head."""

    P_mean: float = 0.8
    P_std: float = 0.8
    label_drop: float = 0.1


@dataclass
class MeanFlowBatch:
    """The random draws of one training step (all (B,) unless noted)."""

    e: torch.Tensor  # (B, C, H, W) standard normal noise
    t: torch.Tensor  # the time of z_t, in [0, 1)
    r: torch.Tensor  # the jump's target time: r <= t (r == t on flow-matching rows); r > t on
    #   backward rows (bidirectional training only)
    omega: torch.Tensor  # guidance scale >= 1
    t_min: torch.Tensor  # guidance interval
    t_max: torch.Tensor
    drop: torch.Tensor  # bool: label replaced by the null class


def logit_normal(n: int, mean: float, std: float, generator: torch.Generator) -> torch.Tensor:
    """sigmoid(N(mean, std^2)) samples, (n,) float32 on CPU."""
    return torch.sigmoid(torch.randn(n, generator=generator) * std + mean)


def sample_t_r(
    n: int, cfg: MeanFlowConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, r), each (n,), with 0 < r <= t < 1 (PMF_SPEC 2.1).

    Two independent logit-normal draws; optionally a share of uniform pairs; the first
    ``round(fm_ratio * n)`` rows get r := t; then t, r = max, min.
    """
    t0 = logit_normal(n, cfg.P_mean, cfg.P_std, generator)
    r0 = logit_normal(n, cfg.P_mean, cfg.P_std, generator)
    if cfg.uniform_tr_prob > 0:
        uni = torch.rand(n, generator=generator) < cfg.uniform_tr_prob
        t0 = torch.where(uni, torch.rand(n, generator=generator), t0)
        r0 = torch.where(uni, torch.rand(n, generator=generator), r0)
    n_fm = int(round(cfg.fm_ratio * n))
    r0[:n_fm] = t0[:n_fm]
    return torch.maximum(t0, r0), torch.minimum(t0, r0)


def turn_around(
    t: torch.Tensor, r: torch.Tensor, cfg: MeanFlowConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Make a ``cfg.backward_ratio`` share of the r < t rows backward rows (r > t), (n,) each.

    A turned row swaps its pair (z at the smaller time, jumping up to the larger). A
    ``cfg.backward_endpoint_prob`` share of them jumps to the noise end instead, r = 1, from
    t ~ U(0, 1): inversion needs u(x, 1, 0), and the MeanFlow identity only ties u(z_t, 1, t) to its
    neighbours along t, with the boundary u(z, 1, 1) = v at t = 1, so the whole segment r = 1,
    t in [0, 1] must be trained for the information to reach t = 0 (swapped logit-normal pairs
    almost never have r near 1, and rows at t = 0 alone only constrain the derivative there).
    """
    n = t.shape[0]
    turn = (t > r) & (torch.rand(n, generator=generator) < cfg.backward_ratio)
    end = turn & (torch.rand(n, generator=generator) < cfg.backward_endpoint_prob)
    t_end = torch.rand(n, generator=generator)
    t_new = torch.where(turn, r, t)
    r_new = torch.where(turn, t, r)
    t_new = torch.where(end, t_end, t_new)
    r_new = torch.where(end, torch.ones_like(r_new), r_new)
    return t_new, r_new


def sample_omega(n: int, cfg: MeanFlowConfig, generator: torch.Generator) -> torch.Tensor:
    """Guidance scales on [1, 1 + cfg_max] with density ~ omega^-beta (inverse CDF), (n,)."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    top = 1.0 + cfg.cfg_max
    if abs(cfg.cfg_beta - 1.0) < 1e-8:
        w = top**u  # log-uniform
    else:
        a = 1.0 - cfg.cfg_beta
        w = (1.0 + u * (top**a - 1.0)) ** (1.0 / a)
    return w.float()


def draw_batch(
    x: torch.Tensor, cfg: MeanFlowConfig, generator: torch.Generator
) -> MeanFlowBatch:
    """All random inputs of one pMF step for data ``x`` (B, C, H, W), drawn on the CPU from
    ``generator`` (so results do not depend on the device), then moved to ``x.device``."""
    B = x.shape[0]
    t, r = sample_t_r(B, cfg, generator)
    if cfg.backward_ratio > 0:  # extra draws only here, so forward-only runs keep their streams
        t, r = turn_around(t, r, cfg, generator)
    omega = sample_omega(B, cfg, generator)
    t_min = torch.rand(B, generator=generator) * 0.5
    t_max = 0.5 + torch.rand(B, generator=generator) * 0.5
    fm = t == r
    t_min = torch.where(fm, torch.zeros_like(t_min), t_min)  # r = t rows: interval [0, 1]
    t_max = torch.where(fm, torch.ones_like(t_max), t_max)
    # Null labels only on r = t rows, as in the official code (its first-k trick puts them there),
    # but i.i.d. per row so a row's treatment does not depend on its position or the batch size.
    p_drop = min(1.0, cfg.label_drop / max(cfg.fm_ratio, 1e-8))
    drop = fm & (torch.rand(B, generator=generator) < p_drop)
    e = torch.randn(x.shape, generator=generator)
    dev = x.device
    return MeanFlowBatch(
        e=e.to(dev, x.dtype), t=t.to(dev, x.dtype), r=r.to(dev, x.dtype), omega=omega.to(dev, x.dtype),
        t_min=t_min.to(dev, x.dtype), t_max=t_max.to(dev, x.dtype), drop=drop.to(dev),
    )


def row_noise(shape: tuple[int, ...], seed: int, rows: range) -> torch.Tensor:
    """Standard normal noise (len(rows), *shape) on the CPU, row i from its own generator seeded
    by (seed, i): a row's noise does not depend on which process or micro-batch draws it."""
    return torch.stack([
        torch.randn(shape, generator=torch.Generator().manual_seed((seed * 998_244_353 + i + 1) % (2**63)))
        for i in rows
    ]) if len(rows) else torch.empty(0, *shape)


def spread_rows(same: torch.Tensor) -> torch.Tensor:
    """A permutation (B,) that interleaves the rows where ``same`` (B,) bool is True evenly with the
    others, keeping each group's order: any contiguous slice of the result then holds its share
    of both groups (so every rank and micro-batch gets its share of the JVP rows)."""
    same = same.cpu()
    n_same = int(same.sum())
    pos = torch.where(same, same.long().cumsum(0) - 1, (~same).long().cumsum(0) - 1).double()
    key = (pos + 0.5) / torch.where(same, n_same, len(same) - n_same).clamp(min=1).double()
    return torch.argsort(key, stable=True)


def draw_rows(
    x: torch.Tensor, cfg: MeanFlowConfig, seed: int, start: int, global_batch: int
) -> MeanFlowBatch:
    """The draws of rows ``[start, start + B)`` of a global batch of ``global_batch`` rows, for this
    process's or micro-batch's data ``x`` (B, C, H, W).

    Every split of the global batch (processes, gradient-accumulation micro-batches) sees the same
    draws, so data-parallel and accumulated training equal one big batch: the per-row scalars are
    drawn for the whole global batch by ``draw_batch`` from ``Generator(seed)`` (a few numbers per
    row; ``draw_batch`` on a zero-width batch draws no noise), the r = t rows are spread evenly
    (``spread_rows``), and each row's noise comes from its own generator (``row_noise``), so no
    process draws the whole batch's noise.

    Example:
        >>> x = torch.zeros(8, 1, 32, 32)
        >>> whole = draw_rows(x, MeanFlowConfig(), seed=7, start=0, global_batch=8)
        >>> half = draw_rows(x[4:], MeanFlowConfig(), seed=7, start=4, global_batch=8)
        >>> bool((whole.e[4:] == half.e).all() and (whole.t[4:] == half.t).all())
        True
    """
    B = x.shape[0]
    if not 0 <= start <= global_batch - B:
        raise ValueError(f"rows [{start}, {start + B}) are outside a global batch of {global_batch}")
    scalars = draw_batch(x.new_empty(global_batch, 0), cfg, torch.Generator().manual_seed(seed))
    rows = spread_rows(scalars.t == scalars.r)[start : start + B].to(x.device)
    drawn = {f.name: getattr(scalars, f.name)[rows] for f in fields(MeanFlowBatch) if f.name != "e"}
    e = row_noise(tuple(x.shape[1:]), seed, range(start, start + B)).to(x.device, x.dtype)
    return MeanFlowBatch(e=e, **drawn)


def adaptive_weight(loss: torch.Tensor, p: float, eps: float) -> torch.Tensor:
    """w(L) = L / sg((L + eps)^p), per sample; with p = 1 the gradient is that of log(L + eps)."""
    return loss / (loss.detach() + eps).pow(p)


def _bcast(a: torch.Tensor) -> torch.Tensor:
    return a.view(-1, 1, 1, 1)


def _cond(cond: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The ``cond=`` keyword for a conditional network, none otherwise (so networks without the keyword,
    e.g. test oracles or user wrappers of an unconditional model, keep working)."""
    return {} if cond is None else {"cond": cond}


@torch.no_grad()
def du_dt(
    net: PixelMeanFlow,
    z: torch.Tensor,
    t: torch.Tensor,
    r: torch.Tensor,
    dz: torch.Tensor,
    y: torch.Tensor,
    omega: torch.Tensor,
    t_min: torch.Tensor,
    t_max: torch.Tensor,
    cond: torch.Tensor | None = None,
) -> torch.Tensor:
    """Total derivative du/dt = (du/dz) dz + du/dt|_z of u(z, r, t) along tangents (dz, 1, 0).

    One ``torch.func.jvp`` without gradient and without autocast, through the forward-AD-safe
    attention path; the tangent on t reaches both h = t - r and the 1/clip(t) of the x -> u
    conversion.
    Shapes: z, dz (B, C, H, W); t, r, omega, t_min, t_max (B,); y (B,) int64; cond (B, C', H, W) or
    None (a conditional network's condition: a constant, no tangent). Returns (B, C, H, W).
    """
    # fp32 JVP even under bf16 autocast (tangents through 1/t and softmax are sensitive; the
    # MeanFlow reference disables autocast around its jvp too).
    with forward_ad_safe(), torch.autocast(z.device.type, enabled=False):
        _, tangent = torch.func.jvp(
            lambda z_, t_, r_: net(z_, t_, r_, y, omega, t_min, t_max, heads="u", **_cond(cond)),
            (z, t, r), (dz, torch.ones_like(t), torch.zeros_like(r)),
        )
    return tangent


def pmf_loss_given(
    net: PixelMeanFlow,
    x: torch.Tensor,
    y: torch.Tensor | None,
    b: MeanFlowBatch,
    cfg: MeanFlowConfig,
    perceptual: PerceptualFn | None = None,
    grad_net: torch.nn.Module | None = None,
    cond: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """pMF loss for data ``x`` (B, C, H, W) in [-1, 1], labels ``y`` (B,) (None: unconditional)
    and the draws ``b``. Returns (scalar loss with grad, detached stats).

    ``cond`` (B, C', H, W): the condition of a conditional network (``PMFConfig.cond_channels``),
    e.g. the warped frames of the VFI model; it enters every network call and is no part of the
    flow (the noise interpolates x only).

    JVP strategy (``cfg.jvp``):
      * "nograd": du/dt by ``torch.func.jvp`` under ``no_grad`` on the r < t rows only (r = t rows
        have t - r = 0, so their du/dt is never used), then one ordinary grad forward of both
        heads. No activation memory is kept for the JVP.
      * "fused": one ``torch.func.jvp`` over both heads on the whole batch whose primal output
        carries the gradient (one forward fewer, but the dual activations are kept for backward).
    ``net`` must be the bare module: ``torch.func.jvp`` cannot go through a DDP wrapper, so the
    no-grad passes (guidance, JVP) use ``net`` and only the grad forward goes through ``grad_net``
    (a ``DistributedDataParallel`` wrapper of ``net``, whose backward then all-reduces the
    gradient; default ``net``). An FSDP2 (``fully_shard``) module is passed as both: its forward
    hooks unshard the parameters for every call, the JVP included (core/parallel.py).
    """
    grad_net = net if grad_net is None else grad_net
    if grad_net is not net and cfg.jvp == "fused":
        raise ValueError("jvp='fused' runs the grad forward inside torch.func.jvp, which cannot go "
                         "through a DDP wrapper; use jvp='nograd' with DDP")
    B = x.shape[0]
    s = net.cfg.noise_scale
    null = torch.full((B,), net.null_class, device=x.device, dtype=torch.long)
    y_in = null if y is None else torch.where(b.drop, null, y)
    t, r = b.t, b.r
    z = (1 - _bcast(t)) * x + _bcast(t) * s * b.e
    tc = _bcast(t.clamp(net.cfg.t_clip, 1.0))
    v_t = (z - x) / tc  # = s e - x where t >= t_clip (PMF_SPEC 1.1)
    ones, zeros = torch.ones_like(t), torch.zeros_like(t)

    # Guidance: the v-head's conditional and unconditional instantaneous velocities (no grad).
    inside = (b.t_min <= t) & (t <= b.t_max)
    omega_eff = torch.where(inside, b.omega, ones)  # omega' = 1 outside the interval
    with torch.no_grad():
        v_both = net(
            torch.cat([z, z]), torch.cat([t, t]), torch.cat([t, t]),
            torch.cat([y_in, null]), torch.cat([omega_eff, ones]),
            torch.cat([zeros, zeros]), torch.cat([ones, ones]), heads="v",
            **_cond(None if cond is None else torch.cat([cond, cond])),
        )  # (2B, C, H, W)
        v_c, v_u = v_both.chunk(2)
        v_g = v_t + _bcast(1 - 1 / omega_eff) * (v_c - v_u)
        v_g = torch.where(_bcast(b.drop), v_t, v_g)  # unguided target for null-label rows

    if cfg.jvp == "nograd":
        dudt = torch.zeros_like(z)
        mf = t != r  # r = t rows have t - r = 0: their du/dt is never used
        if mf.any():
            dudt[mf] = du_dt(net, z[mf], t[mf], r[mf], v_c[mf], y_in[mf], b.omega[mf], b.t_min[mf],
                             b.t_max[mf], None if cond is None else cond[mf])
        u, v = grad_net(z, t, r, y_in, b.omega, b.t_min, b.t_max, heads="uv", **_cond(cond))
    elif cfg.jvp == "fused":
        def uv_fn(z_, t_, r_):
            u_, v_ = net(z_, t_, r_, y_in, b.omega, b.t_min, b.t_max, heads="uv", **_cond(cond))
            return u_, v_

        with forward_ad_safe():
            u, dudt, v = torch.func.jvp(uv_fn, (z, t, r), (v_c, ones, zeros), has_aux=True)
        dudt = dudt.detach()
    else:
        raise ValueError(f"unknown jvp strategy {cfg.jvp!r}; use 'nograd' or 'fused'")

    V = u + _bcast(t - r) * dudt  # compound function; gradient only through u
    L_u = (V - v_g).pow(2).flatten(1).sum(1)  # (B,)
    L_v = (v - v_g).pow(2).flatten(1).sum(1)  # (B,)
    total = adaptive_weight(L_u, cfg.adaptive_p, cfg.adaptive_eps)
    total = total + adaptive_weight(L_v, cfg.adaptive_p, cfg.adaptive_eps)
    stats = {"loss_u": L_u.mean().item(), "loss_v": L_v.mean().item()}
    if cfg.perceptual_weight > 0:
        if perceptual is None:
            raise ValueError("perceptual_weight > 0 needs a perceptual feature network")
        x_tilde = z - _bcast(t) * u  # the image field x(z_t, r, t)
        mask = (t < cfg.perceptual_max_t) & (r <= t)  # backward rows have no image field
        L_p = torch.zeros_like(L_u)
        if mask.any():
            L_p = L_p.index_put((mask.nonzero(as_tuple=True)[0],), perceptual(x_tilde[mask], x[mask]))
        total = total + cfg.perceptual_weight * adaptive_weight(L_p, cfg.adaptive_p, cfg.adaptive_eps)
        stats["loss_perc"] = L_p.mean().item()
    loss = total.mean()
    stats["loss"] = loss.item()
    return loss, stats


def pmf_loss(
    net: PixelMeanFlow,
    x: torch.Tensor,
    y: torch.Tensor | None,
    cfg: MeanFlowConfig,
    generator: torch.Generator,
    perceptual: PerceptualFn | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """pMF loss with the randomness drawn from ``generator`` (see ``pmf_loss_given``).

    Example:
        >>> net = build_model("pMF-T/4")
        >>> x, y = torch.rand(8, 1, 32, 32) * 2 - 1, torch.randint(0, 10, (8,))
        >>> loss, stats = pmf_loss(net, x, y, MeanFlowConfig(), torch.Generator().manual_seed(0))
        >>> loss.backward()
    """
    return pmf_loss_given(net, x, y, draw_batch(x, cfg, generator), cfg, perceptual)


@dataclass
class FlowMatchingBatch:
    """The random draws of one flow-matching step."""

    t: torch.Tensor  # (B,) time in (0, 1)
    drop: torch.Tensor  # (B,) bool: label replaced by the null class
    e: torch.Tensor  # (B, C, H, W) standard normal noise


def draw_fm_batch(x: torch.Tensor, cfg: FlowMatchingConfig, generator: torch.Generator) -> FlowMatchingBatch:
    """All random inputs of one flow-matching step for data ``x`` (B, C, H, W), drawn on the CPU
    from ``generator`` in the order t, drop, e, then moved to ``x.device``."""
    B = x.shape[0]
    t = logit_normal(B, cfg.P_mean, cfg.P_std, generator).to(x.device, x.dtype)
    drop = (torch.rand(B, generator=generator) < cfg.label_drop).to(x.device)
    e = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    return FlowMatchingBatch(t=t, drop=drop, e=e)


def draw_fm_rows(
    x: torch.Tensor, cfg: FlowMatchingConfig, seed: int, start: int, global_batch: int
) -> FlowMatchingBatch:
    """Rows ``[start, start + B)`` of a global flow-matching batch: the same for every split of
    it (see ``draw_rows``)."""
    B = x.shape[0]
    if not 0 <= start <= global_batch - B:
        raise ValueError(f"rows [{start}, {start + B}) are outside a global batch of {global_batch}")
    scalars = draw_fm_batch(x.new_empty(global_batch, 0), cfg, torch.Generator().manual_seed(seed))
    e = row_noise(tuple(x.shape[1:]), seed, range(start, start + B)).to(x.device, x.dtype)
    return FlowMatchingBatch(t=scalars.t[start : start + B], drop=scalars.drop[start : start + B], e=e)


def fm_loss_given(
    net: PixelMeanFlow,
    x: torch.Tensor,
    y: torch.Tensor | None,
    b: FlowMatchingBatch,
    grad_net: torch.nn.Module | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Flow-matching v-loss with x-prediction (JiT): r = t, h = 0, omega = 1, u-head only, for
    data ``x`` (B, C, H, W) in [-1, 1] and the draws ``b``; ``grad_net`` as in ``pmf_loss_given``.

    Guidance for this baseline is classic CFG at sampling time (two evaluations per step), so the
    label is dropped i.i.d. with ``cfg.label_drop`` on every row.
    """
    grad_net = net if grad_net is None else grad_net
    B = x.shape[0]
    t = b.t
    s = net.cfg.noise_scale
    z = (1 - _bcast(t)) * x + _bcast(t) * s * b.e
    v_t = (z - x) / _bcast(t.clamp(net.cfg.t_clip, 1.0))
    null = torch.full((B,), net.null_class, device=x.device, dtype=torch.long)
    y_in = null if y is None else torch.where(b.drop, null, y)
    v = grad_net(z, t, t, y_in, heads="u")
    per_sample = (v - v_t).pow(2).flatten(1).mean(1)  # (B,)
    loss = per_sample.mean()
    return loss, {"loss": loss.item()}


def fm_loss(
    net: PixelMeanFlow,
    x: torch.Tensor,
    y: torch.Tensor | None,
    cfg: FlowMatchingConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Flow-matching loss with the randomness drawn from ``generator`` (see ``fm_loss_given``).

    Example:
        >>> net = build_model("pMF-T/4", with_v_head=False)
        >>> x, y = torch.rand(8, 1, 32, 32) * 2 - 1, torch.randint(0, 10, (8,))
        >>> loss, stats = fm_loss(net, x, y, FlowMatchingConfig(), torch.Generator().manual_seed(0))
    """
    return fm_loss_given(net, x, y, draw_fm_batch(x, cfg, generator))


__all__ = [
    "MeanFlowConfig", "FlowMatchingConfig", "MeanFlowBatch", "logit_normal", "sample_t_r", "turn_around",
    "sample_omega", "draw_batch", "adaptive_weight", "pmf_loss_given", "pmf_loss", "fm_loss",
    "row_noise", "spread_rows", "draw_rows", "FlowMatchingBatch", "draw_fm_batch", "draw_fm_rows",
    "fm_loss_given",
]