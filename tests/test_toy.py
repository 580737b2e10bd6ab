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
        for k in ("final_loss_u", "final_loss_v", "nn_dist", "chamfer", "sliced_w1", "off_plane"):
            assert math.isfinite(m[k]), (pred, k, m[k])
