"""An oracle pMF network for tests: the exact average velocity of class-conditional Gaussian data.

x ~ N(mu_y, sigma^2 I), z_t = (1 - t) x + t e. Trajectories are z_t = (1 - t) mu + a_t xi with
a_t = sqrt((1 - t)^2 sigma^2 + t^2), so z_r = (1 - r) mu + (a_r / a_t)(z_t - (1 - t) mu) and
u(z_t, r, t) = (z_t - z_r) / (t - r) in BOTH directions (r < t toward data, r > t toward noise), with
the instantaneous velocity dz/dt in the limit r -> t. Smooth in (z, t, r), so forward-mode AD and
finite differences apply.
"""
from __future__ import annotations

import torch

from core.model import PixelMeanFlow, build_model


class GaussianMeanFlow(PixelMeanFlow):
    """pMF-T/4 shell whose forward is the exact Gaussian average velocity (heads "u", "v", "uv")."""

    sigma = 0.5

    def mean(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        B = z.shape[0]
        return (y.to(z.dtype) / self.cfg.num_classes - 0.5).view(B, 1, 1, 1) * torch.linspace(
            -1, 1, z.shape[-1], dtype=z.dtype)

    def forward(self, z, t, r, y=None, omega=None, t_min=None, t_max=None, heads="u", backend=None):
        B = z.shape[0]
        y = torch.full((B,), self.null_class, dtype=torch.long) if y is None else y
        mu = self.mean(y, z)
        t4, r4 = t.view(B, 1, 1, 1).to(z.dtype), r.view(B, 1, 1, 1).to(z.dtype)
        a = lambda s: torch.sqrt((1 - s) ** 2 * self.sigma**2 + s**2)  # noqa: E731
        da = lambda s: (-(1 - s) * self.sigma**2 + s) / a(s)  # noqa: E731
        xi = (z - (1 - t4) * mu) / a(t4)
        h = t4 - r4
        far = h.abs() > 1e-6
        safe = torch.where(far, h, torch.ones_like(h))
        avg = (z - ((1 - r4) * mu + a(r4) * xi)) / safe
        inst = -mu + da(t4) * xi  # dz/dt
        u = torch.where(far, avg, inst)
        if heads == "uv":
            return u, inst
        return inst if heads == "v" else u


def gaussian_flow(backward_head: bool = True) -> GaussianMeanFlow:
    cfg = build_model("pMF-T/4", with_v_head=False, backward_head=backward_head).cfg
    return GaussianMeanFlow(cfg, with_v_head=False).eval()
