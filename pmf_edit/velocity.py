"""Velocity-field primitives of a pMF network, in the MODEL range ([-1, 1] images, noise of scale s).

Time convention (core/meanflow.py): t = 1 is noise, t = 0 is data, z_t = (1 - t) x + t s e.
The network returns the average velocity u(z_t, r, t) over [r, t]; from it

    jump:         z_r = z_t - (t - r) u(z_t, r, t)                      (one network evaluation)
    image field:  x(z_t, r, t) = z_t - t u(z_t, r, t)                   (r = 0: the one-step sample)
    inversion:    z_t = z_r + (t - r) u(z_t, r, t)                      (implicit in z_t)

The inversion is solved per interval by the fixed-point iteration
    z_t^(j+1) = z_r + (t - r) u(z_t^(j), r, t),
seeded with the instantaneous velocity, z_t^(0) = z_r + (t - r) v(z_r, r), v(z, r) = u(z, r, r).
Every function returns the number of network evaluations (NFE) it spent, counted per sample: the
condition is a network input in pMF (guidance included), so one call is one evaluation.

Everything here runs under ``no_grad`` and takes float tensors (B, C, H, W); the public, [0, 1]
image API is in ``pmf_edit.editing`` and ``pmf_edit.style`` (which check arguments in ``pmf_edit.boundary``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from core import checks
from core.model import PixelMeanFlow
from core.precision import state_dtype
from pmf_edit.boundary import check_guidance, forward_noise, noise_of_state

Labels = torch.Tensor | Sequence[int] | int | None  # here the null class may also be given by its index K
# States and latents are kept in the network's state dtype (``core.precision.state_dtype``: its weights'
# float type, at least float32; a bf16 network casts its input and returns float32 u).
Init = Literal["velocity", "state", "carry", "noise"]  # the fixed-point solver's initial guess
Seed = Init  # the former name

# Chosen by round-trip PSNR vs NFE on held-out digits (benchmarks/bench_editing.py --sections sweep;
# docs/editing.md): one interval, seeded by the state itself, 7 Anderson-accelerated (m = 3)
# fixed-point updates = 7 NFE to invert, 8 for the round trip. The velocity seed is poor at r = 0:
# u(x, 0, 0) divides the x-prediction error by clip(t) = 0.05.
DEFAULT_INTERVALS = 1
DEFAULT_ITERATIONS = 7
DEFAULT_INIT: Init = "state"
DEFAULT_SEED = DEFAULT_INIT  # the former name
DEFAULT_ANDERSON = 3
# Divergence of the inversion: a state z_t = (1 - t) x + t s e of an image in [-1, 1] has an RMS of
# at most about max(1, s); trained models stay below that (measured 0.4-0.9 on the bundled ones).
# A latent RMS of DIVERGED_RMS times that bound means the fixed-point iteration is running away
# (a randomly initialised pMF-B/16 reached 8e4 in two Anderson updates).
DIVERGED_RMS = 10.0
# Networks trained in both directions (core/meanflow.py, ``backward_ratio``) invert with the backward
# field instead (method="backward"): one jump 0 -> t plus refinements of 2 NFE each. 1 refinement: the
# best round trip within 4 NFE on 100 TRAIN digits (benchmarks/bench_bidirectional.py --split train;
# 16.7 / 19.3 / 20.7 / 20.2 dB for 0-3 refinements): see docs/editing.md.
DEFAULT_REFINEMENTS = 1
# method="hybrid": the fixed-point solver on [0, t_s] (t_s = HYBRID_SWITCH * t_end), then backward jumps
# t_s -> t_end. Chosen on 100 TRAIN digits within a 4-NFE round trip (benchmarks/bench_bidirectional.py
# --split train --sections hybrid; docs/editing.md): 2 solver updates, switch 0.9 (37.6 dB; the round trip
# rises with the switch time from 33.1 dB at 0.5, i.e. toward the plain solver, which gets 38.4 dB at 4 NFE).
HYBRID_SWITCH = 0.9
HYBRID_ITERATIONS = 2
# method="seeded": the backward jump 0 -> t_end (1 NFE) seeds SEEDED_ITERATIONS fixed-point updates of the
# one interval [0, t_end]; 2 keeps a round trip within 4 NFE (see ``invert_seeded``).
SEEDED_ITERATIONS = 2


@dataclass
class Inversion:
    """Result of ``invert``: the state z_t (B, C, H, W) in model units at time ``t``, and the NFE."""

    latents: torch.Tensor
    t: float
    nfe: int
    residual: float  # mean |z^(J) - z^(J-1)| of the last fixed-point update (convergence check)
    diverged: bool = False  # the latents ran away (see DIVERGED_RMS); a RuntimeWarning was issued


def condition(
    net: PixelMeanFlow,
    n: int,
    labels: Labels,
    guidance_scale: float | torch.Tensor = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Per-sample condition inputs of the network (keyword arguments of ``net.forward``).

    Args:
        net: the pMF network.
        n: batch size B.
        labels: None (the null class), one int for every sample, or (B,) class indices in
            [0, num_classes] (num_classes = the null class).
        guidance_scale: omega >= 1 (1 = unguided), one float or a (B,) tensor (one per sample,
            e.g. a guided and an unguided branch batched together; its dtype is kept).
        guidance_interval: (t_min, t_max), 0 <= t_min <= t_max <= 1.
        device: where the tensors live.

    Returns:
        {"y": (B,) int64, "omega": (B,), "t_min": (B,), "t_max": (B,)}.

    Example:
        >>> cond = condition(net, 2, [3, 7], guidance_scale=2.0)
        >>> u = net(z, t, r, **cond)
    """
    check_guidance(guidance_scale, guidance_interval)
    lo, hi = (float(v) for v in guidance_interval)
    if labels is None:
        y = torch.full((n,), net.null_class, dtype=torch.long, device=device)
    else:
        y = torch.as_tensor(labels, dtype=torch.long, device=device).reshape(-1)
        if y.numel() == 1 and n != 1:
            y = y.expand(n)
        if y.shape != (n,):
            raise ValueError(f"labels must be one int or ({n},) for a batch of {n}, got shape {tuple(y.shape)}")
        if y.min() < 0 or y.max() > net.null_class:
            raise ValueError(
                f"labels must lie in [0, {net.cfg.num_classes - 1}] (or {net.null_class}, the null class); "
                f"got min {int(y.min())}, max {int(y.max())}"
            )
    full = lambda v: torch.full((n,), float(v), device=device)  # noqa: E731
    if isinstance(guidance_scale, torch.Tensor):
        omega = guidance_scale.to(device).reshape(-1)
        if omega.shape != (n,):
            raise ValueError(f"a per-sample guidance_scale must be ({n},), got shape {tuple(guidance_scale.shape)}")
    else:
        omega = full(guidance_scale)
    return {"y": y, "omega": omega, "t_min": full(lo), "t_max": full(hi)}


def _times(t: float | torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    tt = torch.as_tensor(t, dtype=like.dtype, device=like.device).reshape(-1)
    return tt.expand(n) if tt.numel() == 1 else tt


@torch.no_grad()
def average_velocity(
    net: PixelMeanFlow,
    z_t: torch.Tensor,
    t: float | torch.Tensor,
    r: float | torch.Tensor,
    labels: Labels = None,
    guidance_scale: float | torch.Tensor = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """u(z_t, r, t), (B, C, H, W), in the network's state dtype: one network evaluation.

    Args:
        net: the pMF network.
        z_t: (B, C, H, W) state at time t (model units).
        t, r: times 0 <= r <= t <= 1, floats or (B,) tensors.
        labels, guidance_scale, guidance_interval: the condition (see ``condition``).

    Example:
        >>> v = average_velocity(net, z, 0.5, 0.5, labels=3)   # r = t: the instantaneous velocity
    """
    n = z_t.shape[0]
    p = next(net.parameters())
    z = z_t.to(device=p.device, dtype=state_dtype(net))
    cond = condition(net, n, labels, guidance_scale, guidance_interval, p.device)
    return net(z, _times(t, n, z), _times(r, n, z), **cond)


@torch.no_grad()
def jump(
    net: PixelMeanFlow,
    z_t: torch.Tensor,
    t: float | torch.Tensor,
    r: float | torch.Tensor,
    labels: Labels = None,
    guidance_scale: float | torch.Tensor = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """One jump z_r = z_t - (t - r) u(z_t, r, t) (one network evaluation).

    Args:
        net: the pMF network.
        z_t: (B, C, H, W) state at time t, model units.
        t, r: times in [0, 1] (floats or (B,) tensors). r = 0 generates an image in one step;
            r > t jumps toward noise (networks with a backward head only).
        labels, guidance_scale, guidance_interval: the condition (see ``condition``).

    Returns:
        z_r, (B, C, H, W), in the network's state dtype.

    Example:
        >>> x = jump(net, 1.0 * torch.randn(4, 1, 32, 32), 1.0, 0.0, labels=[0, 1, 2, 3])
    """
    u = average_velocity(net, z_t, t, r, labels, guidance_scale, guidance_interval)
    z = z_t.to(u)
    h = (_times(t, z.shape[0], z) - _times(r, z.shape[0], z)).view(-1, 1, 1, 1)
    return z - h * u


@torch.no_grad()
def image_field(
    net: PixelMeanFlow,
    z_t: torch.Tensor,
    t: float | torch.Tensor,
    r: float | torch.Tensor = 0.0,
    labels: Labels = None,
    guidance_scale: float | torch.Tensor = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """The image field x(z_t, r, t) = z_t - t u(z_t, r, t) (one network evaluation).

    For r = 0 it is the one-step sample from z_t; for r = t it is the denoiser E[x | z_t].

    Returns:
        (B, C, H, W) image in the model range (not clamped).

    Example:
        >>> x0 = image_field(net, z_half, 0.5, 0.0, labels=7)
    """
    u = average_velocity(net, z_t, t, r, labels, guidance_scale, guidance_interval)
    z = z_t.to(u)
    return z - _times(t, z.shape[0], z).view(-1, 1, 1, 1) * u


def inversion_grid(t_end: float, num_intervals: int) -> list[float]:
    """Times 0 = t_0 < t_1 < ... < t_K = t_end, uniform (K + 1 floats)."""
    if num_intervals < 1:
        raise ValueError(f"num_steps (inversion intervals) must be >= 1, got {num_intervals}")
    if not 0.0 < t_end <= 1.0:
        raise ValueError(f"the inversion end time (strength) must lie in (0, 1], got {t_end}")
    return torch.linspace(0.0, float(t_end), num_intervals + 1, dtype=torch.float64).tolist()


def _renamed_init(init: Init, seed: Init | None) -> Init:
    """``init`` was called ``seed`` (a misleading name: it picks the initial guess, not a random seed)."""
    if seed is None:
        return init
    warnings.warn("the inversion's seed= argument is now called init= (it picks the solver's initial guess)",
                  DeprecationWarning, stacklevel=4)  # here, invert, its no_grad wrapper, the caller
    return seed


@torch.no_grad()
def invert(
    net: PixelMeanFlow,
    x: torch.Tensor,
    t_end: float = 1.0,
    labels: Labels = None,
    guidance_scale: float | torch.Tensor = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    num_intervals: int = DEFAULT_INTERVALS,
    num_iterations: int = DEFAULT_ITERATIONS,
    init: Init = DEFAULT_INIT,
    anderson: int = DEFAULT_ANDERSON,
    noise: torch.Tensor | None = None,
    *,
    seed: Init | None = None,
) -> Inversion:
    """Image -> state z_{t_end}: invert the jumps z_r = z_t - (t - r) u(z_t, r, t) on a uniform grid.

    Each interval [r, t] solves the implicit equation z_t = z_r + (t - r) u(z_t, r, t) by
    ``num_iterations`` fixed-point updates (optionally Anderson-accelerated), seeded by the
    instantaneous velocity
    z_t^(0) = z_r + (t - r) u(z_r, r, r) (``init="velocity"``, one evaluation), by z_t^(0) = z_r
    (``init="state"``, free: its first update is then z_r + (t - r) u(z_r, r, t)), or by the velocity
    carried over from the previous interval's last update (``init="carry"``, free; on the first
    interval the exact data-end velocity v(x, 0) = E[s e] - x = -x, i.e. z_t^(0) = (1 - t) x).

    Args:
        net: the pMF network.
        x: (B, C, H, W) images in the model range [-1, 1].
        t_end: where the inversion stops, in (0, 1]; 1 gives the noise z_1 = s e.
        labels, guidance_scale, guidance_interval: the condition the jumps are inverted under
            (regenerate with the same one to reconstruct).
        num_intervals: K uniform intervals on [0, t_end].
        num_iterations: J >= 1 fixed-point updates per interval.
        init: "velocity", "state", "carry" (above) or "noise": z_t^(0) = (1 - t) z_r + t s e on the
            first interval, the forward noising with the given ``noise`` e (keeps the latent
            noise-like, which the class-swap edit needs; the "state" start finds a latent that looks
            like the image itself and regenerates it under any class).
        noise: (B, C, H, W) standard normal e for ``init="noise"``.
        seed: the former name of ``init`` (it never was a random seed); accepted with a DeprecationWarning.
        anderson: history length m of Anderson acceleration of the fixed-point updates (0 = plain
            updates). Free: it recombines the last m + 1 updates, no extra evaluation.

    Returns:
        ``Inversion`` with latents z_{t_end} (B, C, H, W) in the network's state dtype and
        nfe = K (J + [init == "velocity"]).

    Warns:
        RuntimeWarning: the iteration diverged (some sample's latent RMS above DIVERGED_RMS
            max(1, s)); ``Inversion.diverged`` is then True. The message names the remedies.

    Raises:
        FloatingPointError: the latents became NaN or infinite.

    Example:
        >>> inv = invert(net, x, 1.0, labels=y)
        >>> x_rec = jump(net, inv.latents, 1.0, 0.0, labels=y)   # or jumps back along the same grid
    """
    init = _renamed_init(init, seed)
    if num_iterations < 1:
        raise ValueError(f"num_iterations must be >= 1, got {num_iterations}")
    if init not in ("velocity", "state", "carry", "noise"):
        raise ValueError(f"init must be 'velocity', 'state', 'carry' or 'noise', got {init!r}")
    if init == "noise" and (noise is None or noise.shape != x.shape):
        raise ValueError(f"init='noise' needs noise of shape {tuple(x.shape)}, got "
                         f"{None if noise is None else tuple(noise.shape)}")
    ts = inversion_grid(t_end, num_intervals)
    z = x.to(state_dtype(net))
    nfe, residual, diverged = 0, 0.0, False
    bound = DIVERGED_RMS * max(1.0, float(net.cfg.noise_scale))
    u_prev = -z  # v(x, 0) = E[s e] - x: the exact velocity at the data end (init="carry")
    for k in range(num_intervals):
        r, t = ts[k], ts[k + 1]
        z_r = z
        if init == "velocity":
            z = z_r + (t - r) * average_velocity(net, z_r, r, r, labels, guidance_scale, guidance_interval)
            nfe += 1
        elif init == "carry":
            z = z_r + (t - r) * u_prev
        elif init == "noise" and k == 0:
            z = forward_noise(z_r, noise.to(z_r), t, net.cfg.noise_scale)  # z_t = (1 - t) x + t s e
        zs: list[torch.Tensor] = []
        fs: list[torch.Tensor] = []
        for _ in range(num_iterations):
            # Fixed point of z_t = z_r + (t - r) u(z_t, r, t): the jump's implicit backward form.
            u_prev = average_velocity(net, z, t, r, labels, guidance_scale, guidance_interval)
            f = z_r + (t - r) * u_prev - z  # fixed-point residual g(z) - z
            residual = float(f.abs().mean())
            zs, fs = (zs + [z])[-(anderson + 1):], (fs + [f])[-(anderson + 1):]
            z = _anderson_step(zs, fs) if anderson and len(fs) > 1 else z + f
            nfe += 1
            if not diverged:
                diverged = _check_divergence(z, bound, k, num_intervals, nfe, anderson, residual)
    return Inversion(latents=z, t=float(t_end), nfe=nfe, residual=residual, diverged=diverged)


def _check_divergence(z: torch.Tensor, bound: float, k: int, intervals: int, nfe: int, anderson: int,
                      residual: float) -> bool:
    """Warn (and return True) when a sample's latent RMS exceeds ``bound``; raise on NaN/inf."""
    rms = float(z.detach().flatten(1).pow(2).mean(1).sqrt().max())  # worst sample
    if not math.isfinite(rms):
        raise FloatingPointError(
            f"invert: the fixed-point iteration produced NaN/inf latents (interval {k + 1}/{intervals}, "
            f"network evaluation {nfe}). Check the checkpoint (a trained pMF model?) and the input range.")
    if rms <= bound:
        return False
    warnings.warn(
        f"invert: the fixed-point iteration diverged (interval {k + 1}/{intervals}, network evaluation "
        f"{nfe}): latent RMS {rms:.3g}, expected at most ~{bound / DIVERGED_RMS:.3g}; last update "
        f"{residual:.3g}. The result is not a usable latent. Likely a network whose jump has no fixed "
        "point here, e.g. an untrained or randomly initialised checkpoint (check --model / the "
        f"weights); otherwise {'turn off Anderson acceleration (anderson=0), ' if anderson else ''}"
        "use fewer num_iterations, more num_steps (shorter intervals) or a smaller strength.",
        RuntimeWarning, stacklevel=4)  # past this helper, invert and its no_grad wrapper
    return True


def has_backward_field(net: PixelMeanFlow) -> bool:
    """Whether ``net`` was built with a backward head (average velocity toward noise, r > t)."""
    return bool(getattr(net.cfg, "backward_head", False))


def backward_from_data_only(net: PixelMeanFlow) -> bool:
    """Whether ``net``'s backward head was trained from clean images only (``pmf train --objective
    invert``): its jumps are valid from t = 0, not from a noisy state."""
    return has_backward_field(net) and getattr(net.cfg, "backward_from", "any") == "data"


def _refuse_jumps_from_noise(net: PixelMeanFlow, what: str) -> None:
    if backward_from_data_only(net):
        raise ValueError(f"{what} jumps toward noise from t > 0, but this network's backward head was trained "
                         "from clean images only (backward_from='data', pmf train --objective invert); use "
                         "one jump from the image (method='backward' with num_steps=1, or 'seeded')")


@torch.no_grad()
def invert_backward(
    net: PixelMeanFlow,
    x: torch.Tensor,
    t_end: float = 1.0,
    labels: Labels = None,
    guidance_scale: float = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    num_steps: int = 1,
    num_refinements: int = DEFAULT_REFINEMENTS,
) -> Inversion:
    """Image -> state z_{t_end} with the backward field: ``num_steps`` jumps 0 -> t_end toward noise.

    A jump with r > t is explicit, z_r = z_t + (r - t) u(z_t, r, t), so inversion costs what
    generation costs (one evaluation for t_end = 1: z_1 = x + u(x, 1, 0)). Both directions are
    learned maps, so the round trip G(E(x)) misses x by the two networks' errors; each refinement
    corrects the image that is inverted by the round trip's miss, in image space:
        x'_0 = x,   x'_{k+1} = x'_k + (x - G(E(x'_k))),   latents = E(x'_K)
    (G: ``num_steps`` jumps t_end -> 0, E: the backward jumps) at 2 ``num_steps`` evaluations each.
    A sample whose refined latents stop being finite keeps its previous ones.

    Args:
        net: a pMF network with ``cfg.backward_head`` (see ``has_backward_field``).
        x: (B, C, H, W) images in the model range [-1, 1].
        t_end: where the inversion stops, in (0, 1].
        labels, guidance_scale, guidance_interval: the condition of both directions.
        num_steps: jumps each way (>= 1).
        num_refinements: image-space corrections (>= 0).

    Returns:
        ``Inversion``: latents (B, C, H, W) in the network's state dtype, nfe = num_steps (1 + 2 K),
        residual = mean |x - G(latents)| of the last round trip measured (NaN when K = 0).

    Example:
        >>> inv = invert_backward(net, x, 1.0, labels=y, guidance_scale=3.0)
        >>> x_rec, _ = generate(net, inv.latents, 1.0, labels=y, guidance_scale=3.0)
    """
    if not has_backward_field(net):
        raise ValueError("this network has no backward head (train with --backward-ratio > 0); "
                         "use the fixed-point inversion instead")
    num_refinements = checks.integer(num_refinements, "num_refinements", lo=0)
    cond = (labels, guidance_scale, guidance_interval)
    up = inversion_grid(t_end, num_steps)  # 0 = t_0 < ... < t_K = t_end, checks both arguments
    if num_steps > 1:
        _refuse_jumps_from_noise(net, f"invert_backward with num_steps={num_steps}")

    def encode(img: torch.Tensor) -> torch.Tensor:
        z = img
        for k in range(num_steps):
            z = jump(net, z, up[k], up[k + 1], *cond)  # r > t: a jump toward noise
        return z

    target = x.to(state_dtype(net))
    x_in = target
    z = encode(x_in)
    nfe, residual = num_steps, float("nan")
    for _ in range(num_refinements):
        x_rec, n = generate(net, z, t_end, num_steps, *cond)
        miss = target - x_rec  # (B, C, H, W): the round trip's error, to be cancelled
        residual = float(miss.abs().mean())
        z_new = encode(x_in + miss)
        nfe += n + num_steps
        finite = torch.isfinite(z_new).flatten(1).all(1).view(-1, 1, 1, 1)
        if not bool(finite.all()):  # a sample pushed off the data: keep its previous latents
            z = torch.where(finite, z_new, z)
            break
        x_in, z = x_in + miss, z_new
    return Inversion(latents=z, t=float(t_end), nfe=nfe, residual=residual)


@torch.no_grad()
def invert_seeded(
    net: PixelMeanFlow,
    x: torch.Tensor,
    t_end: float = 1.0,
    labels: Labels = None,
    guidance_scale: float = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    num_iterations: int = SEEDED_ITERATIONS,
    anderson: int = DEFAULT_ANDERSON,
) -> Inversion:
    """Image -> state z_{t_end}: one backward jump seeds the fixed-point solver of the forward jump.

    The backward jump z^(0) = x + t u(x, t, 0) (one evaluation) is an estimate of the latent; the
    solver's updates z <- x + t u(z, 0, t) then remove what is left of the round trip's miss (each is
    z + (x - G(z)) for the forward jump G, one evaluation). Written as the solver's "noise" seed,
    z^(0) = (1 - t) x + t s e with e = (z^(0) - (1 - t) x) / (t s). A network whose backward head was
    trained as the inverse of its generator (``pmf train --objective invert``) starts the solver
    near the answer instead of at the image.

    Args:
        net: a pMF network with ``cfg.backward_head`` (see ``has_backward_field``).
        x: (B, C, H, W) images in the model range [-1, 1].
        t_end: where the inversion stops, in (0, 1].
        labels, guidance_scale, guidance_interval: the condition of both directions.
        num_iterations: fixed-point updates after the jump (>= 1).
        anderson: Anderson history of the updates (see ``invert``).

    Returns:
        ``Inversion``: latents (B, C, H, W) in the network's state dtype, nfe = 1 + num_iterations,
        residual = the solver's last update.

    Example:
        >>> inv = invert_seeded(net, x, 1.0, labels=y)          # 1 jump + 2 updates = 3 NFE
        >>> x_rec, _ = generate(net, inv.latents, 1.0, labels=y)
    """
    if not has_backward_field(net):
        raise ValueError("method='seeded' needs a network with a backward head (pmf train --objective invert "
                         "or --backward-ratio > 0); use the fixed-point inversion instead")
    num_iterations = checks.integer(num_iterations, "num_iterations", lo=1)
    t = inversion_grid(t_end, 1)[-1]  # checks t_end
    x = x.to(state_dtype(net))
    z0 = jump(net, x, 0.0, t, labels, guidance_scale, guidance_interval)  # r > t: toward noise
    if not bool(torch.isfinite(z0).all()):
        raise FloatingPointError("invert_seeded: the backward jump produced NaN/inf latents; check the checkpoint")
    e = noise_of_state(z0, x, t, float(net.cfg.noise_scale))  # the seed as the solver's noise seed
    inv = invert(net, x, t, labels, guidance_scale, guidance_interval, 1, num_iterations, "noise", anderson, e)
    return Inversion(latents=inv.latents, t=inv.t, nfe=inv.nfe + 1, residual=inv.residual, diverged=inv.diverged)


@torch.no_grad()
def invert_hybrid(
    net: PixelMeanFlow,
    x: torch.Tensor,
    t_end: float = 1.0,
    labels: Labels = None,
    guidance_scale: float = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    switch: float = HYBRID_SWITCH,
    num_iterations: int = HYBRID_ITERATIONS,
    num_jumps: int = 1,
    init: Init = DEFAULT_INIT,
    noise: torch.Tensor | None = None,
    anderson: int = DEFAULT_ANDERSON,
    *,
    seed: Init | None = None,
) -> Inversion:
    """Image -> state z_{t_end}: the fixed-point solver on [0, t_s], then backward jumps t_s -> t_end.

    The backward field is accurate from noisy states (t >= 0.3 on the MNIST network) but not from
    clean data, where the fixed-point solver of the forward jump converges fastest (a short interval).
    So the first interval [0, t_s], t_s = ``switch`` * t_end, is inverted by ``invert`` (one interval,
    ``num_iterations`` updates), and the rest by ``num_jumps`` explicit backward jumps on a uniform grid
    t_s -> t_end, z_r = z_t + (r - t) u(z_t, r, t). ``switch = 0`` is ``invert_backward`` without
    refinements (jumps straight from the image); ``switch -> 1`` approaches the plain solver.
    Measured on MNIST (docs/editing.md): the round trip does not beat the plain solver at equal NFE
    (the jump is worth less than a solver update), but its noise-seeded form edits closer to the source.

    Args:
        net: a pMF network with ``cfg.backward_head`` (see ``has_backward_field``).
        x: (B, C, H, W) images in the model range [-1, 1].
        t_end: where the inversion stops, in (0, 1].
        labels, guidance_scale, guidance_interval: the condition of both parts.
        switch: share of [0, t_end] given to the solver, in [0, 1).
        num_iterations: fixed-point updates on [0, t_s] (>= 1; unused when ``switch = 0``).
        num_jumps: backward jumps t_s -> t_end (>= 1).
        init, noise, anderson: the solver's initial guess and acceleration (see ``invert``).
        seed: the former name of ``init``; accepted with a DeprecationWarning.

    Returns:
        ``Inversion``: latents (B, C, H, W) in the network's state dtype, nfe = num_iterations [switch > 0]
        + num_jumps, residual = the solver's last update (NaN when switch = 0).

    Example:
        >>> inv = invert_hybrid(net, x, 1.0, labels=y)          # 2 updates + 1 jump = 3 NFE
        >>> x_rec, _ = generate(net, inv.latents, 1.0, labels=y)
    """
    init = _renamed_init(init, seed)
    if not has_backward_field(net):
        raise ValueError("method='hybrid' needs a network with a backward head (train with --backward-ratio > 0); "
                         "use the fixed-point inversion instead")
    switch = checks.real(switch, "switch", lo=0.0, hi=1.0, hi_open=True)
    num_jumps = checks.integer(num_jumps, "num_jumps", lo=1)
    grid = inversion_grid(t_end, 1)  # checks t_end
    t_s = switch * grid[-1]
    if t_s > 0 or num_jumps > 1:
        _refuse_jumps_from_noise(net, "the hybrid inversion (switch > 0 or num_jumps > 1)")
    z, nfe, residual, diverged = x.to(state_dtype(net)), 0, float("nan"), False
    if t_s > 0.0:
        inv = invert(net, z, t_s, labels, guidance_scale, guidance_interval, 1, num_iterations, init, anderson, noise)
        z, nfe, residual, diverged = inv.latents, inv.nfe, inv.residual, inv.diverged
    up = torch.linspace(t_s, grid[-1], num_jumps + 1, dtype=torch.float64).tolist()
    for k in range(num_jumps):
        z = jump(net, z, up[k], up[k + 1], labels, guidance_scale, guidance_interval)  # r > t: toward noise
    if not bool(torch.isfinite(z).all()):
        raise FloatingPointError("invert_hybrid: the backward jumps produced NaN/inf latents; check the checkpoint")
    return Inversion(latents=z, t=float(t_end), nfe=nfe + num_jumps, residual=residual, diverged=diverged)


def _anderson_step(zs: list[torch.Tensor], fs: list[torch.Tensor], ridge: float = 1e-8) -> torch.Tensor:
    """Anderson acceleration (type II), per sample: z+ = z_k + f_k - (dZ + dF) gamma with
    gamma = argmin ||f_k - dF gamma||, dZ, dF the differences of the last iterates and residuals."""
    B = zs[-1].shape[0]
    Z = torch.stack([z.reshape(B, -1).double() for z in zs], dim=2)  # (B, D, m + 1)
    F = torch.stack([f.reshape(B, -1).double() for f in fs], dim=2)
    dZ, dF = Z[..., 1:] - Z[..., :-1], F[..., 1:] - F[..., :-1]  # (B, D, m)
    A = dF.transpose(1, 2) @ dF  # (B, m, m)
    A = A + ridge * A.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-30)[:, None, None] * torch.eye(A.shape[-1], dtype=A.dtype)
    gamma = torch.linalg.solve(A, dF.transpose(1, 2) @ F[..., -1:])  # (B, m, 1)
    z_new = Z[..., -1:] + F[..., -1:] - (dZ + dF) @ gamma
    return z_new.reshape(zs[-1].shape).to(zs[-1].dtype)


@torch.no_grad()
def generate(
    net: PixelMeanFlow,
    z_t: torch.Tensor,
    t_start: float = 1.0,
    num_steps: int = 1,
    labels: Labels = None,
    guidance_scale: float | torch.Tensor = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
) -> tuple[torch.Tensor, int]:
    """Jump from z_{t_start} to an image in ``num_steps`` uniform jumps: the jump loop of every task.

    ``guidance_scale`` may be a (B,) tensor, one scale per sample (see ``condition``).

    Returns:
        (images (B, C, H, W) in the model range, not clamped; NFE = num_steps).

    Example:
        >>> x, nfe = generate(net, inv.latents, inv.t, num_steps=2, labels=y)
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    ts = torch.linspace(float(t_start), 0.0, num_steps + 1, dtype=torch.float64).tolist()
    z = z_t
    for k in range(num_steps):
        z = jump(net, z, ts[k], ts[k + 1], labels, guidance_scale, guidance_interval)
    return z, num_steps
