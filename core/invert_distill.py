"""Train the backward head as the inverse of the network's own one-step generator (issue 9, second design).

The bidirectional MeanFlow objective (core/meanflow.py, ``backward_ratio``) ties u(z_t, r, t) for r > t
to its derivative along t only; the value u(x, 1, 0) that inversion needs has to travel along the
whole segment r = 1 from the boundary u(z, 1, 1) = v, and on MNIST it never got there (round trip
17-20 dB from clean data, docs/editing.md). This objective supervises that value directly, with the
generator frozen, so generation is exactly the warm start's:

    generated rows:  e ~ N(0, I),  z_1 = s e,  x = z_1 - u(z_1, 0, 1),  z*_r = z_1 - (1 - r) u(z_1, r, 1)
                     (the image the network makes from e, and the state at time r on the way)
    data rows:       x from the data set (no known latent)
    encoder:         z_r = x + r u(x, r, 0)                       backward head (h = -r < 0)
    decoder:         x_rec = z_r - r u(z_r, 0, r)                 the frozen forward head
    L_lat = mean ((z_r - z*_r) / (r s))^2     generated rows: the latent the generator used (noise units)
    L_rt  = mean (x_rec - x)^2                all rows: the round trip, gradient through the decoder
    loss  = mean_B [ w_lat w(L_lat) + w_rt w(L_rt) ],   w(L) = L / sg((L + eps)^p)

L_lat keeps the latents those of the generator (noise-like: what the class-swap edit regenerates
from); L_rt is the metric itself (a latent that the generator maps back onto x) and is the only term
on real images, whose latents are unknown. With p = 1 the adaptive weight makes each term's gradient
that of its log, so it keeps pushing once the error is small (PSNR is a log scale too).

Only the backward head (``b_blocks``, ``b_final``) trains (``trainable_parameters``); the frozen trunk
and u-head both make the targets and decode, so they cannot drift toward an easy inverse.
Everything random comes from ``draw_invert_rows``; ``invert_distill_loss_given`` is a pure function.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.meanflow import MeanFlowConfig, adaptive_weight, row_noise, sample_omega
from core.model import PixelMeanFlow


@dataclass(frozen=True)
class InvertDistillConfig:
    """Settings of the inversion-distillation objective (``pmf train --objective invert``)."""

    generated_share: float = 0.5  # share of rows whose image is the network's own sample of known noise
    endpoint_prob: float = 0.5  # share of rows inverting to the noise end r = 1 (the rest r ~ U(r_min, 1))
    r_min: float = 0.2  # lowest end time of the other rows (edits invert to t = strength, 0.5-1 in practice)
    latent_weight: float = 1.0  # w_lat (generated rows)
    roundtrip_weight: float = 1.0  # w_rt (all rows)
    label_drop: float = 0.1  # share of rows under the null class (inversion without a label)
    cfg_max: float = 7.0  # guidance omega in [1, 1 + cfg_max] with density ~ omega^-cfg_beta, as training
    cfg_beta: float = 1.0
    adaptive_p: float = 1.0
    adaptive_eps: float = 1e-4  # per-pixel mean squared errors: 1e-4 is 40 dB on [-1, 1] images

    def __post_init__(self) -> None:
        for name in ("generated_share", "endpoint_prob", "label_drop"):
            if not 0.0 <= getattr(self, name) <= 1.0:  # also refuses NaN
                raise ValueError(f"InvertDistillConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.r_min <= 1.0:
            raise ValueError(f"InvertDistillConfig.r_min must be in (0, 1], got {self.r_min}")
        for name in ("latent_weight", "roundtrip_weight", "cfg_max", "adaptive_p", "adaptive_eps"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"InvertDistillConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.latent_weight + self.roundtrip_weight <= 0:
            raise ValueError("InvertDistillConfig: latent_weight and roundtrip_weight are both 0")


@dataclass
class InvertDistillBatch:
    """The random draws of one step (all (B,) unless noted)."""

    e: torch.Tensor  # (B, C, H, W) standard normal noise of the generated rows
    generated: torch.Tensor  # bool: the row's image is generated from e (else the data row's image)
    r: torch.Tensor  # end time of the inversion, in [r_min, 1]
    omega: torch.Tensor  # guidance scale >= 1 (both directions)
    y_gen: torch.Tensor  # long: the class a generated row is generated under
    drop: torch.Tensor  # bool: the row uses the null class


def draw_invert_rows(x: torch.Tensor, cfg: InvertDistillConfig, num_classes: int, seed: int, start: int,
                     global_batch: int) -> InvertDistillBatch:
    """The draws of rows ``[start, start + B)`` of a global batch of ``global_batch`` rows for data
    ``x`` (B, C, H, W): per-row scalars drawn for the whole batch from ``Generator(seed)`` and sliced,
    noise per row (``row_noise``), so any split of the batch sees the same draws (as ``draw_rows``).

    Example:
        >>> d = draw_invert_rows(torch.zeros(4, 1, 8, 8), InvertDistillConfig(), 10, seed=0, start=0, global_batch=4)
        >>> d.e.shape, bool(((d.r >= 0.2) & (d.r <= 1)).all())
        (torch.Size([4, 1, 8, 8]), True)
    """
    B = x.shape[0]
    if not 0 <= start <= global_batch - B:
        raise ValueError(f"rows [{start}, {start + B}) are outside a global batch of {global_batch}")
    g = torch.Generator().manual_seed(seed)
    n = global_batch
    generated = torch.rand(n, generator=g) < cfg.generated_share
    end = torch.rand(n, generator=g) < cfg.endpoint_prob
    r = torch.where(end, torch.ones(n), cfg.r_min + (1.0 - cfg.r_min) * torch.rand(n, generator=g))
    omega = sample_omega(n, MeanFlowConfig(cfg_max=cfg.cfg_max, cfg_beta=cfg.cfg_beta), g)
    y_gen = torch.randint(0, max(num_classes, 1), (n,), generator=g)
    drop = torch.rand(n, generator=g) < cfg.label_drop
    rows = slice(start, start + B)
    e = row_noise(tuple(x.shape[1:]), seed, range(start, start + B))
    dev, dt = x.device, x.dtype
    return InvertDistillBatch(e=e.to(dev, dt), generated=generated[rows].to(dev), r=r[rows].to(dev, dt),
                              omega=omega[rows].to(dev, dt), y_gen=y_gen[rows].to(dev), drop=drop[rows].to(dev))


def trainable_parameters(net: PixelMeanFlow) -> list[str]:
    """Names of the parameters this objective trains: the backward head's. Raises without one."""
    if not getattr(net.cfg, "backward_head", False):
        raise ValueError("the inversion objective trains the backward head: build the network with "
                         "backward_head=True (pmf train --objective invert does)")
    return [k for k, _ in net.named_parameters() if k.startswith(("b_blocks.", "b_final."))]


def _v(a: torch.Tensor) -> torch.Tensor:
    return a.view(-1, 1, 1, 1)


def invert_distill_loss_given(net: PixelMeanFlow, x: torch.Tensor, y: torch.Tensor | None,
                              draws: InvertDistillBatch, cfg: InvertDistillConfig,
                              grad_net: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss (module docstring) for data ``x`` (B, C, H, W) in [-1, 1] with labels ``y`` (B,) (None:
    unconditional) and the step's ``draws``; ``grad_net``: a wrapper of ``net`` (e.g. DDP) that the calls
    with gradients go through. Returns (scalar loss, float stats).

    Example:
        >>> draws = draw_invert_rows(x, InvertDistillConfig(), 10, seed=step, start=0, global_batch=len(x))
        >>> loss, stats = invert_distill_loss_given(net, x, y, draws, InvertDistillConfig())
        >>> loss.backward()        # gradients reach the backward head only
    """
    B, s = x.shape[0], float(net.cfg.noise_scale)
    null = torch.full((B,), net.null_class, device=x.device, dtype=torch.long)
    y_data = null if y is None else y
    labels = torch.where(draws.drop, null, torch.where(draws.generated, draws.y_gen, y_data))
    ones, zeros, r = torch.ones_like(draws.r), torch.zeros_like(draws.r), draws.r
    kw = dict(y=labels, omega=draws.omega)
    with torch.no_grad():
        z1 = s * draws.e
        # One batched call for both jumps from the noise: (2B, ...) = [to 0 | to r].
        u = net(torch.cat([z1, z1]), torch.cat([ones, ones]), torch.cat([zeros, r]),
                y=torch.cat([labels, labels]), omega=torch.cat([draws.omega, draws.omega]))
        x_gen = z1 - u[:B]  # (B, C, H, W): the generator's image of e
        z_star = z1 - _v(1.0 - r) * u[B:]  # (B, C, H, W): its state at time r
        gen = _v(draws.generated)
        x_in = torch.where(gen, x_gen, x)
    call = grad_net or net
    z = x_in + _v(r) * call(x_in, zeros, r, **kw)  # encoder: backward head, h = -r
    x_rec = z - _v(r) * call(z, r, zeros, **kw)  # decoder: the frozen forward jump r -> 0
    L_rt = (x_rec - x_in).pow(2).flatten(1).mean(1)  # (B,)
    L_lat = ((z - z_star) / (_v(r) * s)).pow(2).flatten(1).mean(1) * draws.generated.to(z.dtype)  # (B,)
    w = lambda L: adaptive_weight(L, cfg.adaptive_p, cfg.adaptive_eps)  # noqa: E731
    loss = (cfg.latent_weight * w(L_lat) + cfg.roundtrip_weight * w(L_rt)).mean()
    n_gen = max(int(draws.generated.sum()), 1)
    data = ~draws.generated
    stats = {
        "loss": float(loss.detach()),
        "loss_latent": float(L_lat.detach().sum()) / n_gen,
        "loss_roundtrip": float(L_rt.detach().mean()),
        "roundtrip_data": float(L_rt.detach()[data].mean()) if bool(data.any()) else float("nan"),
    }
    return loss, stats


__all__ = [
    "InvertDistillConfig", "InvertDistillBatch", "draw_invert_rows", "trainable_parameters",
    "invert_distill_loss_given",
]
