"""Conditional pMF (PMFConfig.cond_channels): the condition enters the patch embedding only, the JVP
treats it as a constant, and the same objective trains it; used by the generative VFI model."""
import pytest
import torch

from core.meanflow import MeanFlowConfig, draw_rows, du_dt, pmf_loss_given
from core.model import PixelMeanFlow, PMFConfig


def _net(dtype=torch.float32, cond_channels=2, seed=0):
    torch.manual_seed(seed)
    cfg = PMFConfig(image_size=8, in_channels=3, cond_channels=cond_channels, patch_size=2, width=32, depth=3,
                    head_depth=1, num_heads=2, bottleneck=8, num_classes=0, class_tokens=0, omega_tokens=0,
                    interval_tokens=0, h_tokens=2)
    net = PixelMeanFlow(cfg).to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # off the zero init: non-trivial outputs and derivatives
    return net


def test_condition_changes_the_output_and_is_checked():
    net = _net()
    z, t = torch.randn(2, 3, 8, 8), torch.tensor([0.9, 0.4])
    c = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        a, b = net(z, t, t * 0, cond=c), net(z, t, t * 0, cond=c + 1)
    assert a.shape == (2, 3, 8, 8) and (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="conditional: pass cond"):
        net(z, t, t * 0)
    with pytest.raises(ValueError, match=r"cond must be \(2, 2, 8, 8\)"):
        net(z, t, t * 0, cond=torch.randn(2, 3, 8, 8))
    plain = _net(cond_channels=0)
    with pytest.raises(ValueError, match="no condition channels"):
        plain(z, t, t * 0, cond=c)


def test_conditional_jvp_matches_central_finite_difference_float64():
    net = _net(torch.float64)
    g = torch.Generator().manual_seed(0)
    z, dz = (torch.randn(3, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))
    c = torch.randn(3, 2, 8, 8, generator=g, dtype=torch.float64)
    t = torch.tensor([0.9, 0.5, 0.3], dtype=torch.float64)
    r = torch.tensor([0.1, 0.4, 0.0], dtype=torch.float64)
    ones, null = torch.ones_like(t), torch.zeros(3, dtype=torch.long)
    jvp = du_dt(net, z, t, r, dz, null, ones, ones * 0, ones, cond=c)

    def u(eps):  # tangents (dz, 1, 0); the condition is held fixed
        with torch.no_grad():
            return net(z + eps * dz, t + eps, r, cond=c)

    eps = 1e-6
    fd = (u(eps) - u(-eps)) / (2 * eps)
    assert ((jvp - fd).norm() / fd.norm()).item() < 1e-6


def test_conditional_loss_learns_a_condition_dependent_target():
    """The target is a copy of the condition: only a network that reads it can lower the loss."""
    net = _net(cond_channels=3)
    g = torch.Generator().manual_seed(1)
    c = torch.rand(16, 3, 8, 8, generator=g) * 2 - 1
    x = c.clone()
    cfg = MeanFlowConfig()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        loss, stats = pmf_loss_given(net, x, None, draw_rows(x, cfg, step % 4, 0, 16), cfg, cond=c)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(stats["loss_u"])
    assert sum(losses[-8:]) / 8 < 0.6 * sum(losses[:8]) / 8
    # One step from noise lands near the condition it was given (and not near another one).
    ones = torch.ones(16)
    with torch.no_grad():
        out = torch.zeros(16, 3, 8, 8) - net(torch.zeros(16, 3, 8, 8), ones, ones * 0, cond=c)
    assert (out - c).pow(2).mean() < 0.5 * (out - c.flip(0)).pow(2).mean()
