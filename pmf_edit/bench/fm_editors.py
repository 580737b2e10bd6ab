"""Baseline "diffusion editors" on a flow-matching network (the same architecture trained with the
flow-matching loss; instantaneous velocity v(z, t) = u(z, t, t), classic CFG at 2 evaluations per
guided step). Model range [-1, 1]; t = 1 noise, t = 0 data, z_t = (1 - t) x + t s e.

    fm_invert      DDIM-inversion style Euler forward in time: z_{t+dt} = z_t + dt v(z_t, t)
    fm_generate    Euler from t_start to 0 with CFG
    fm_ode_edit    invert under the source class (unguided), regenerate under the target (CFG)
    fm_sdedit      noise to t = strength, Euler back under the target (CFG)
    fm_flowedit    FlowEdit (Kulikov et al. 2024): fresh noise each step shared by both branches,
                   target with CFG, source unguided

Each returns (images in [-1, 1], network evaluations per image). Noise is passed in (``eps``), drawn
per item by ``per_item_noise`` so results do not depend on the batch.
"""
from __future__ import annotations

import torch

from core.model import PixelMeanFlow
from core.sampling import velocity_cfg
from pmf_edit.boundary import forward_noise

__all__ = ["per_item_noise", "fm_invert", "fm_generate", "fm_ode_edit", "fm_sdedit", "fm_flowedit"]

Interval = tuple[float, float]


def per_item_noise(net: PixelMeanFlow, draws: int, generators: list[torch.Generator]) -> torch.Tensor:
    """(draws, B, C, H, W) standard normal noise; item i's draws come from ``generators[i]`` alone.

    Example:
        >>> eps = per_item_noise(net, 4, [torch.Generator().manual_seed(s) for s in (0, 1)])
    """
    cfg = net.cfg
    p = next(net.parameters())
    eps = torch.stack([torch.randn((draws, cfg.in_channels, cfg.image_size, cfg.image_size), generator=g)
                       for g in generators])  # (B, draws, C, H, W)
    return eps.transpose(0, 1).to(device=p.device, dtype=p.dtype)


@torch.no_grad()
def fm_invert(net: PixelMeanFlow, x: torch.Tensor, y: torch.Tensor, t_end: float, steps: int, scale: float,
              interval: Interval) -> tuple[torch.Tensor, int]:
    """Euler forward in time on dz/dt = v from x (t = 0) to t_end; returns (z_{t_end}, NFE)."""
    ts = torch.linspace(0.0, t_end, steps + 1, dtype=torch.float64).tolist()
    z, nfe = x, 0
    for k in range(steps):
        v, c = velocity_cfg(net, z, ts[k], y, scale, interval)
        z, nfe = z + (ts[k + 1] - ts[k]) * v, nfe + c
    return z, nfe


@torch.no_grad()
def fm_generate(net: PixelMeanFlow, z: torch.Tensor, y: torch.Tensor, t_start: float, steps: int, scale: float,
                interval: Interval) -> tuple[torch.Tensor, int]:
    """Euler from t_start to 0 with CFG; returns (x, NFE)."""
    ts = torch.linspace(t_start, 0.0, steps + 1, dtype=torch.float64).tolist()
    nfe = 0
    for k in range(steps):
        v, c = velocity_cfg(net, z, ts[k], y, scale, interval)
        z, nfe = z - (ts[k] - ts[k + 1]) * v, nfe + c
    return z, nfe


def fm_ode_edit(net: PixelMeanFlow, x: torch.Tensor, y_src: torch.Tensor, y_tgt: torch.Tensor, strength: float,
                steps: int, scale: float, interval: Interval) -> tuple[torch.Tensor, int]:
    """ODE-inversion editor: invert under the source class (unguided) to t = strength, regenerate under
    the target with CFG."""
    z, n1 = fm_invert(net, x, y_src, strength, steps, 1.0, interval)
    out, n2 = fm_generate(net, z, y_tgt, strength, steps, scale, interval)
    return out, n1 + n2


def fm_sdedit(net: PixelMeanFlow, x: torch.Tensor, y_tgt: torch.Tensor, strength: float, steps: int, scale: float,
              interval: Interval, eps: torch.Tensor) -> tuple[torch.Tensor, int]:
    """SDEdit: z = (1 - t) x + t s e at t = strength, Euler to 0 under the target; eps (B, C, H, W)."""
    z = forward_noise(x, eps, strength, net.cfg.noise_scale)
    return fm_generate(net, z, y_tgt, strength, steps, scale, interval)


@torch.no_grad()
def fm_flowedit(net: PixelMeanFlow, x: torch.Tensor, y_src: torch.Tensor, y_tgt: torch.Tensor, t0: float,
                steps: int, scale: float, interval: Interval, eps: torch.Tensor) -> tuple[torch.Tensor, int]:
    """FlowEdit on instantaneous velocities from t0 to 0; eps (steps, B, C, H, W), one draw per step."""
    ts = torch.linspace(t0, 0.0, steps + 1, dtype=torch.float64).tolist()
    s = net.cfg.noise_scale
    x_edit, nfe = x.clone(), 0
    for k in range(steps):
        t, r = ts[k], ts[k + 1]
        z_src = forward_noise(x, eps[k], t, s)
        z_tgt = z_src + x_edit - x
        v_t, c1 = velocity_cfg(net, z_tgt, t, y_tgt, scale, interval)
        v_s, c2 = velocity_cfg(net, z_src, t, y_src, 1.0, interval)
        x_edit, nfe = x_edit - (t - r) * (v_t - v_s), nfe + c1 + c2
    return x_edit, nfe
