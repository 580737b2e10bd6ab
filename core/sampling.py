"""Samplers. Plain functions under ``no_grad`` that take the caller's ``torch.Generator``.

pMF (average velocity u):   t_k = linspace(1, 0, K + 1),   z_{t_{k+1}} = z_{t_k} - (t_k - t_{k+1}) u
    K = 1 is the one-step generator x = z_1 - u(z_1, 0, 1) = x_u(z_1): one network evaluation.
Flow matching baseline (instantaneous v = u(z, t, t)): Euler or Heun on the same grid, with
    classic CFG v = v_u + w (v_c - v_u) inside the guidance interval (two evaluations per step, batched).

Noise is drawn sample by sample from the generator, so sample i is the same whatever the batch size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from core import checks
from core.model import PixelMeanFlow
from core.precision import autocast, state_dtype


@dataclass
class SampleResult:
    """Images in [-1, 1] (not clamped), (B, C, H, W), and the network evaluations spent."""

    images: torch.Tensor
    nfe: int


def draw_noise(
    n: int, shape: Sequence[int], generator: torch.Generator | None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(n, *shape) standard normal noise, drawn one sample at a time on the CPU so that the first
    k samples do not depend on n (nor on the device)."""
    eps = torch.stack([torch.randn(tuple(shape), generator=generator) for _ in range(n)])
    return eps.to(device)


def _labels(labels: torch.Tensor | Sequence[int] | None, n: int, net: PixelMeanFlow, device) -> torch.Tensor:
    """Checked labels (B,) int64: integer class indices in [0, num_classes] (the last is the null class);
    None: n null-class labels."""
    if labels is None:
        return torch.full((n,), net.null_class, dtype=torch.long, device=device)
    try:
        y = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"labels must be a sequence or tensor of class indices, got {type(labels).__name__}") from err
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype} (fractional labels are "
                         "not truncated)")
    if y.ndim != 1 or y.numel() == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence (B,) of class indices, got shape {tuple(y.shape)}")
    y = y.to(device=device, dtype=torch.long)
    if y.min() < 0 or y.max() > net.null_class:
        raise ValueError(
            f"labels must lie in [0, {net.cfg.num_classes - 1}] (or {net.null_class} for the null "
            f"class); got min {int(y.min())}, max {int(y.max())}"
        )
    return y


def _check_guidance(guidance_scale: float, guidance_interval: tuple[float, float]) -> None:
    checks.guidance_scale(guidance_scale)
    checks.guidance_interval(guidance_interval)


def _initial_state(
    net: PixelMeanFlow,
    labels: torch.Tensor | Sequence[int] | None,
    num_samples: int | None,
    noise: torch.Tensor | None,
    generator: torch.Generator | None,
    guidance_scale: float,
    guidance_interval: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked labels (B,) and the initial state z_1 = s * noise (B, C, H, W) on the net's device.

    B comes from ``labels``, else ``num_samples``, else the noise's batch, else 1; when several are
    given they must agree (a mismatch is an error, never silently ignored)."""
    _check_guidance(guidance_scale, guidance_interval)
    p = next(net.parameters())
    dev = p.device
    cfg = net.cfg
    shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
    if num_samples is not None:
        num_samples = checks.integer(num_samples, "num_samples", lo=1)
    if noise is not None and not isinstance(noise, torch.Tensor):
        raise TypeError(f"noise must be a torch.Tensor (B, {', '.join(map(str, shape))}), got "
                        f"{type(noise).__name__}; convert it with torch.from_numpy")
    if labels is not None:
        y = _labels(labels, 0, net, dev)
        n = y.shape[0]
        if num_samples is not None and num_samples != n:
            raise ValueError(f"num_samples={num_samples} disagrees with the {n} labels given; pass one of them")
    else:
        n = num_samples or (noise.shape[0] if noise is not None and noise.ndim == 4 else 1)
        y = _labels(None, n, net, dev)
    if noise is None:
        noise = draw_noise(n, shape, generator, dev)
    else:
        if tuple(noise.shape) != (n, *shape):
            raise ValueError(f"noise must be {(n, *shape)}, got {tuple(noise.shape)}")
        if not noise.is_floating_point():
            raise ValueError(f"noise must be a float tensor, got dtype {noise.dtype}")
        if not bool(torch.isfinite(noise).all()):
            raise ValueError("noise holds NaN or infinite values")
    return y, cfg.noise_scale * noise.to(device=dev, dtype=state_dtype(net))


def time_grid(num_steps: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """t_k = linspace(1, 0, K + 1), (K + 1,)."""
    num_steps = checks.integer(num_steps, "num_steps", lo=1)
    return torch.linspace(1.0, 0.0, num_steps + 1, device=device, dtype=dtype)


@checks.checked
@torch.no_grad()
def sample_pmf(
    net: PixelMeanFlow,
    labels: torch.Tensor | Sequence[int] | None = None,
    *,
    num_samples: int | None = None,
    num_steps: int = 1,
    guidance_scale: float = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    precision: str | None = None,
) -> SampleResult:
    """Generate with a pMF network in ``num_steps`` jumps (1 = one network evaluation).

    Args:
        net: a pMF network (the v-head is not needed).
        labels: (B,) class indices; None for the null class (then give ``num_samples``).
        num_samples: batch size when ``labels`` is None.
        num_steps: K jumps on the grid linspace(1, 0, K + 1).
        guidance_scale: omega >= 1, a network input (no extra evaluation).
        guidance_interval: (t_min, t_max) in which the guidance applies, a network input.
        generator: the caller's generator for the initial noise.
        noise: (B, C, H, W) standard normal z_1 / s to use instead of drawing it.
        precision: "fp32", "bf16" (autocast of the network's matmuls; the state z stays fp32), or
            None for ``core.precision``'s session default.

    Returns:
        ``SampleResult`` with images (B, C, H, W) in the model range [-1, 1] and nfe = K.

    Example:
        >>> net = build_model("pMF-T/4").eval()
        >>> out = sample_pmf(net, [3, 7], generator=torch.Generator().manual_seed(0))
        >>> out.images.shape, out.nfe
        (torch.Size([2, 1, 32, 32]), 1)
    """
    y, z = _initial_state(net, labels, num_samples, noise, generator, guidance_scale, guidance_interval)
    n, dev = z.shape[0], z.device
    ts = time_grid(num_steps, dev)
    full = lambda v: torch.full((n,), float(v), device=dev)  # noqa: E731
    with autocast(dev, precision):  # one region for all steps: each weight is cast once
        for k in range(num_steps):
            t, r = full(ts[k]), full(ts[k + 1])
            u = net(z, t, r, y, full(guidance_scale), full(guidance_interval[0]), full(guidance_interval[1]))
            z = z - (t - r).view(-1, 1, 1, 1) * u
    return SampleResult(images=z, nfe=num_steps)


@torch.no_grad()
def velocity_cfg(
    net: PixelMeanFlow,
    z: torch.Tensor,
    t: float,
    y: torch.Tensor,
    guidance_scale: float,
    guidance_interval: tuple[float, float],
) -> tuple[torch.Tensor, int]:
    """Instantaneous velocity v(z, t) = u(z, t, t) of a flow-matching network with classic CFG.

    Returns (v, network evaluations): 2 (one batched call) inside the interval with scale > 1, else 1.
    """
    n, dev = z.shape[0], z.device
    tt = torch.full((n,), float(t), device=dev)
    lo, hi = guidance_interval
    if guidance_scale == 1.0 or not lo <= t <= hi:
        return net(z, tt, tt, y), 1
    null = torch.full_like(y, net.null_class)
    v_c, v_u = net(torch.cat([z, z]), torch.cat([tt, tt]), torch.cat([tt, tt]), torch.cat([y, null])).chunk(2)
    return v_u + guidance_scale * (v_c - v_u), 2


@checks.checked
@torch.no_grad()
def sample_flow_matching(
    net: PixelMeanFlow,
    labels: torch.Tensor | Sequence[int] | None = None,
    *,
    num_samples: int | None = None,
    num_steps: int = 50,
    method: Literal["euler", "heun"] = "euler",
    guidance_scale: float = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    precision: str | None = None,
) -> SampleResult:
    """Generate with a flow-matching network by integrating dz/dt = v from t = 1 to 0.

    Heun (EDM's second-order step) corrects every step except the last, which ends at t = 0.
    ``nfe`` counts network evaluations per sample, CFG's conditional + unconditional pair as 2.
    ``precision`` as in ``sample_pmf``.

    Example:
        >>> out = sample_flow_matching(net, [1, 2], num_steps=8, method="heun",
        ...                            generator=torch.Generator().manual_seed(0))
    """
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    y, z = _initial_state(net, labels, num_samples, noise, generator, guidance_scale, guidance_interval)
    ts = time_grid(num_steps).tolist()
    nfe = 0
    with autocast(z.device, precision):
        for k in range(num_steps):
            t, r = ts[k], ts[k + 1]
            v, c = velocity_cfg(net, z, t, y, guidance_scale, guidance_interval)
            nfe += c
            z_next = z - (t - r) * v
            if method == "heun" and r > 0:
                v2, c = velocity_cfg(net, z_next, r, y, guidance_scale, guidance_interval)
                nfe += c
                z_next = z - (t - r) * 0.5 * (v + v2)
            z = z_next
    return SampleResult(images=z, nfe=nfe)
