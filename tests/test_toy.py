"""Smoke test of benchmarks/toy_swissroll.py: the toy net satisfies pmf_loss's interface, training
runs and the metrics come out finite (a few seconds on one CPU thread)."""
import math

import torch

from benchmarks.toy_swissroll import ToyConfig, ToyMeanFlow, random_projection, run_cell


def test_projection_is_column_orthonormal():
    P = random_projection(16, torch.Generator().manual_seed(0))
    assert P.shape == (16, 2)
    torch.testing.assert_close(P.T @ P, torch.eye(2), atol=1e-5, rtol=0)


def test_x_prediction_converts_at_t_one():
    # Same weights: the u-pred net's raw head output is x_hat, and at t = 1 the x-pred net's
    # u is z - x_hat, so a one-step sample z - u is x_hat itself.
    net_x = ToyMeanFlow(ToyConfig(dim=8, prediction="x", width=32, layers=3))
    net_raw = ToyMeanFlow(ToyConfig(dim=8, prediction="u", width=32, layers=3))
    net_raw.load_state_dict(net_x.state_dict())
    z, t, r = torch.randn(4, 8, 1, 1), torch.ones(4), torch.zeros(4)
    u, v = net_x(z, t, r, heads="uv")
    assert u.shape == v.shape == z.shape
    torch.testing.assert_close(z - u, net_raw(z, t, r, heads="u"))


def test_smoke_run_finite():
    for pred in ("x", "u"):
        m = run_cell(8, pred, steps=30, batch_size=64, lr=1e-3, seed=0, n_eval=256, width=64,
                     layers=4)["metrics"]
        assert m["finite"]
        for k in ("final_loss_u", "final_loss_v", "nn_dist", "chamfer", "sliced_w1", "off_plane",
                  "outer_frac"):
            assert math.isfinite(m[k]), (pred, k, m[k])


def test_time_features_smooth_at_init():
    # The MeanFlow target uses du/dt along (v, 1, 0); high-frequency time features (the old
    # sin/cos(2^k pi t), k < 8) made du/dt|_z ~10x u itself at init and ~15x after training.
    torch.manual_seed(0)
    net = ToyMeanFlow(ToyConfig(dim=2, prediction="u"))
    g = torch.Generator().manual_seed(0)
    z = torch.randn(256, 2, 1, 1, generator=g)
    t = 0.1 + 0.9 * torch.rand(256, generator=g)
    r = t * torch.rand(256, generator=g)
    with torch.no_grad():
        u, dudt = torch.func.jvp(lambda t_: net(z, t_, r), (t,), (torch.ones_like(t),))
    assert dudt.pow(2).mean().sqrt() < 0.2 * u.pow(2).mean().sqrt()


def test_meanflow_correction_stays_small():
    # With a smooth time input the compound V = u + (t - r) sg(du/dt) fits about as well as the
    # v-head: L_u ~= L_v (1.73 vs 1.70 here). The old Fourier features (freqs=8) gave L_u = 2168
    # vs L_v = 3.0 with these settings.
    m = run_cell(2, "x", steps=300, batch_size=128, lr=1e-3, seed=0, n_eval=256, width=64,
                 layers=4)["metrics"]
    assert m["final_loss_u"] < 1.5 * m["final_loss_v"], m
    assert 0.0 <= m["outer_frac"] <= 1.0
