"""The pMF objective: time/guidance sampling, the JVP, both JVP strategies, the FM baseline."""
import math

import pytest
import torch

from core.meanflow import (
    FlowMatchingConfig, MeanFlowConfig, adaptive_weight, draw_batch, du_dt, fm_loss, pmf_loss,
    pmf_loss_given, sample_omega, sample_t_r,
)
from core.model import build_model


def _perturbed_tiny(dtype=torch.float32, seed=0):
    """pMF-T/4 with every weight moved off its zero init, so derivatives are non-trivial."""
    torch.manual_seed(seed)
    net = build_model("pMF-T/4").to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


def test_t_r_sampling_follows_the_recipe():
    g = torch.Generator().manual_seed(0)
    cfg = MeanFlowConfig()
    t, r = sample_t_r(10_000, cfg, g)
    assert (r <= t).all() and (t < 1).all() and (r > 0).all()
    n_fm = 5000
    assert (t[:n_fm] == r[:n_fm]).all()  # the first half is flow matching
    assert (t[n_fm:] > r[n_fm:]).float().mean() > 0.99
    # r = t rows keep a single logit-normal(0.8, 0.8) draw: its logit mean/std.
    logit = torch.log(t[:n_fm] / (1 - t[:n_fm]))
    assert abs(logit.mean().item() - 0.8) < 0.05 and abs(logit.std().item() - 0.8) < 0.05


def test_omega_distribution_is_log_uniform_for_beta_1_and_power_law_otherwise():
    g = torch.Generator().manual_seed(0)
    w = sample_omega(20_000, MeanFlowConfig(cfg_max=7.0), g)
    assert w.min() >= 1 and w.max() <= 8
    # log-uniform on [1, 8]: median = sqrt(8)
    assert abs(w.median().item() - math.sqrt(8)) < 0.05
    w2 = sample_omega(20_000, MeanFlowConfig(cfg_max=7.0, cfg_beta=2.0), g)
    # p ~ w^-2 on [1, 8]: CDF (1 - 1/w) / (1 - 1/8) -> median = 1 / (1 - 0.5 * 7/8) = 16/9
    assert abs(w2.median().item() - 16 / 9) < 0.03


def test_draw_batch_interval_and_label_drop():
    x = torch.zeros(4000, 1, 4, 4)
    b = draw_batch(x, MeanFlowConfig(), torch.Generator().manual_seed(1))
    fm = b.t == b.r
    assert (b.t_min[fm] == 0).all() and (b.t_max[fm] == 1).all()
    assert (b.t_min[~fm] <= 0.5).all() and (b.t_max[~fm] >= 0.5).all()
    assert not b.drop[~fm].any()  # null labels only on r = t rows
    assert abs(b.drop.float().mean().item() - 0.1) < 0.02  # 10% overall


def test_draws_are_a_function_of_the_generator():
    x = torch.zeros(8, 1, 32, 32)
    a = draw_batch(x, MeanFlowConfig(), torch.Generator().manual_seed(3))
    b = draw_batch(x, MeanFlowConfig(), torch.Generator().manual_seed(3))
    for k in ("e", "t", "r", "omega", "t_min", "t_max", "drop"):
        assert torch.equal(getattr(a, k), getattr(b, k))


def test_jvp_du_dt_matches_central_finite_difference_float64():
    net = _perturbed_tiny(torch.float64)
    g = torch.Generator().manual_seed(0)
    B = 3
    z = torch.randn(B, 1, 32, 32, generator=g, dtype=torch.float64)
    dz = torch.randn(B, 1, 32, 32, generator=g, dtype=torch.float64)
    t = torch.tensor([0.9, 0.5, 0.3], dtype=torch.float64)
    r = torch.tensor([0.1, 0.4, 0.0], dtype=torch.float64)
    y = torch.tensor([1, 2, 10])
    w = torch.tensor([1.0, 3.0, 6.0], dtype=torch.float64)
    lo = torch.tensor([0.1, 0.0, 0.2], dtype=torch.float64)
    hi = torch.tensor([0.7, 1.0, 0.9], dtype=torch.float64)
    jvp = du_dt(net, z, t, r, dz, y, w, lo, hi)

    def u(eps):
        with torch.no_grad():
            return net(z + eps * dz, t + eps, r, y, w, lo, hi)  # tangents (dz, 1, 0)

    eps = 1e-6
    fd = (u(eps) - u(-eps)) / (2 * eps)
    rel = ((jvp - fd).norm() / fd.norm()).item()
    assert rel < 1e-6, rel
    # The tangent on t matters (through h = t - r and 1/t): the z-direction alone differs.
    with torch.no_grad():
        fd_z_only = (net(z + eps * dz, t, r, y, w, lo, hi) - net(z - eps * dz, t, r, y, w, lo, hi)) / (2 * eps)
    assert (fd_z_only - jvp).norm() / jvp.norm() > 1e-3


def test_jvp_strategies_give_identical_loss_and_gradients_float64():
    net = _perturbed_tiny(torch.float64)
    x = torch.rand(8, 1, 32, 32, dtype=torch.float64) * 2 - 1
    y = torch.randint(0, 10, (8,))
    results = []
    for mode in ("nograd", "fused"):
        net.zero_grad()
        loss, _ = pmf_loss(net, x, y, MeanFlowConfig(jvp=mode), torch.Generator().manual_seed(1))
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in net.parameters()])
        results.append((loss.detach(), grads))
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-12)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-9, atol=1e-12)
    assert results[0][1].abs().max() > 0


def test_compound_target_and_stop_gradients():
    """V = u + (t - r) sg(du/dt): with du/dt replaced by the FD derivative the loss matches, and the
    v-head gets gradient only from L_v (its guidance calls are no-grad)."""
    net = _perturbed_tiny(torch.float64)
    x = torch.rand(6, 1, 32, 32, dtype=torch.float64) * 2 - 1
    y = torch.randint(0, 10, (6,))
    cfg = MeanFlowConfig(adaptive_p=0.0)  # plain sums so the check is direct
    b = draw_batch(x, cfg, torch.Generator().manual_seed(5))
    loss, stats = pmf_loss_given(net, x, y, b, cfg)
    assert math.isclose(loss.item(), stats["loss_u"] + stats["loss_v"], rel_tol=1e-9)
    loss.backward()
    assert all(p.grad is not None for p in net.v_blocks.parameters())


def test_adaptive_weight_is_log_like():
    L = torch.tensor([0.5, 5.0, 50.0], requires_grad=True)
    adaptive_weight(L, 1.0, 0.01).sum().backward()
    assert torch.allclose(L.grad, 1 / (L.detach() + 0.01))


def test_pmf_loss_trains_a_tiny_model_on_one_batch():
    torch.manual_seed(0)
    net = build_model("pMF-T/4")
    x = torch.rand(16, 1, 32, 32) * 2 - 1
    y = torch.randint(0, 10, (16,))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    cfg = MeanFlowConfig()
    first = last = None
    for step in range(40):
        loss, stats = pmf_loss(net, x, y, cfg, torch.Generator().manual_seed(step % 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step < 2:
            first = stats["loss_u"] if first is None else (first + stats["loss_u"]) / 2
        last = stats["loss_u"]
    assert last < 0.7 * first, (first, last)


def test_perceptual_term_is_masked_and_needs_a_network():
    net = _perturbed_tiny()
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    y = torch.randint(0, 10, (8,))
    with pytest.raises(ValueError, match="perceptual"):
        pmf_loss(net, x, y, MeanFlowConfig(perceptual_weight=0.1), torch.Generator().manual_seed(0))
    seen = []

    def dist(a, b):
        seen.append(a.shape[0])
        return (a - b).pow(2).flatten(1).mean(1)

    cfg = MeanFlowConfig(perceptual_weight=0.5, perceptual_max_t=0.6)
    b = draw_batch(x, cfg, torch.Generator().manual_seed(0))
    loss, stats = pmf_loss_given(net, x, y, b, cfg, perceptual=dist)
    assert seen == [int((b.t < 0.6).sum())] and "loss_perc" in stats
    loss.backward()


def test_flow_matching_loss_runs_and_has_gradient():
    net_fm = build_model("pMF-T/4", with_v_head=False)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    loss, _ = fm_loss(net_fm, x, torch.tensor([0, 1, 2, 3]), FlowMatchingConfig(), torch.Generator().manual_seed(0))
    loss.backward()
    assert net_fm.u_final.linear.weight.grad.abs().sum() > 0



# ------------------------------------------------------------------------------------------------
# Bidirectional training: r > t rows through the backward head


def test_turn_around_makes_backward_rows_and_inversion_pairs():
    cfg = MeanFlowConfig(backward_ratio=0.5, backward_endpoint_prob=0.25)
    b = draw_batch(torch.zeros(20_000, 1, 4, 4), cfg, torch.Generator().manual_seed(0))
    fm, bwd = b.t == b.r, b.r > b.t
    assert abs(fm.float().mean().item() - 0.5) < 0.01  # flow-matching rows untouched
    assert abs(bwd.float().mean().item() - 0.25) < 0.02  # half of the r < t rows turned
    end = bwd & (b.r == 1)
    assert abs(end.float().sum().item() / bwd.float().sum().item() - 0.25) < 0.03
    assert abs(b.t[end].mean().item() - 0.5) < 0.03 and b.t[end].min() < 0.01  # t ~ U(0, 1)
    assert not b.drop[bwd].any()
    # Forward-only configs keep their random streams exactly (no extra draws).
    a0 = draw_batch(torch.zeros(64, 1, 4, 4), MeanFlowConfig(), torch.Generator().manual_seed(1))
    a1 = draw_batch(torch.zeros(64, 1, 4, 4), MeanFlowConfig(backward_endpoint_prob=0.9),
                    torch.Generator().manual_seed(1))
    assert torch.equal(a0.t, a1.t) and torch.equal(a0.e, a1.e)


def test_backward_head_routes_rows_by_direction_and_is_batch_invariant():
    torch.manual_seed(0)
    net = build_model("pMF-T/4", backward_head=True).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    z = torch.randn(4, 1, 32, 32, dtype=torch.float64)
    t = torch.tensor([0.5, 0.2, 0.0, 0.9], dtype=torch.float64)
    r = torch.tensor([0.1, 0.7, 1.0, 0.9], dtype=torch.float64)
    with torch.no_grad():
        mixed = net(z, t, r)
        single = torch.cat([net(z[i : i + 1], t[i : i + 1], r[i : i + 1]) for i in range(4)])
        assert torch.allclose(mixed, single, atol=1e-12)
        # The "noise" parameterisation: a jump from t = 0 to r = 1 lands on s * e_b, the head's output.
        one = torch.ones(1, dtype=z.dtype)
        e_b, _ = net.predict_images(z[2:3], t[2:3] - r[2:3], torch.full((1,), 10), one, 0 * one, one)
        z1 = z[2:3] + (r[2:3] - t[2:3]).view(1, 1, 1, 1) * mixed[2:3]
        assert torch.allclose(z1, net.cfg.noise_scale * e_b, atol=1e-12)
    with pytest.raises(ValueError, match="backward head"):
        build_model("pMF-T/4")(z.float(), t.float(), r.float())


def test_backward_jvp_matches_central_finite_difference_float64():
    torch.manual_seed(1)
    net = build_model("pMF-T/4", backward_head=True).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 1, 32, 32, generator=g, dtype=torch.float64)
    dz = torch.randn(3, 1, 32, 32, generator=g, dtype=torch.float64)
    # Two backward rows (near the inversion pair; not at t = 0 exactly, where clip(1 - t) has a kink
    # that a central difference straddles) and a forward row mixed in.
    t = torch.tensor([0.001, 0.3, 0.6], dtype=torch.float64)
    r = torch.tensor([1.0, 0.8, 0.2], dtype=torch.float64)
    y = torch.tensor([1, 2, 10])
    w = torch.tensor([1.0, 3.0, 6.0], dtype=torch.float64)
    lo = torch.tensor([0.0, 0.1, 0.2], dtype=torch.float64)
    hi = torch.tensor([1.0, 0.7, 0.9], dtype=torch.float64)
    jvp = du_dt(net, z, t, r, dz, y, w, lo, hi)
    eps = 1e-6

    def u(e):
        with torch.no_grad():
            return net(z + e * dz, t + e, r, y, w, lo, hi)

    fd = (u(eps) - u(-eps)) / (2 * eps)
    for i in range(3):
        rel = ((jvp[i] - fd[i]).norm() / fd[i].norm()).item()
        assert rel < 1e-6, (i, rel)


def test_meanflow_identity_holds_backward_on_exact_gaussian_flow_float64():
    """u = v - (t - r) du/dt with du/dt from the project's JVP: exact for r > t as for r < t."""
    from tests.gaussian_flow import gaussian_flow

    net = gaussian_flow().double()
    g = torch.Generator().manual_seed(0)
    B = 6
    z = torch.randn(B, 1, 32, 32, generator=g, dtype=torch.float64)
    t = torch.tensor([0.0, 0.1, 0.4, 0.7, 0.9, 0.5], dtype=torch.float64)
    r = torch.tensor([1.0, 0.6, 0.9, 0.95, 0.2, 0.0], dtype=torch.float64)
    y = torch.arange(B)
    with torch.no_grad():
        v = net(z, t, t, y, heads="v")
        u = net(z, t, r, y)
    dudt = du_dt(net, z, t, r, v, y, torch.ones(B, dtype=z.dtype), torch.zeros(B, dtype=z.dtype),
                 torch.ones(B, dtype=z.dtype))
    V = u + (t - r).view(B, 1, 1, 1) * dudt
    assert (V - v).abs().max().item() < 1e-9


def test_bidirectional_loss_trains_the_backward_head_on_one_batch():
    torch.manual_seed(0)
    net = build_model("pMF-T/4", backward_head=True)
    x = torch.rand(16, 1, 32, 32) * 2 - 1
    y = torch.randint(0, 10, (16,))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    cfg = MeanFlowConfig(backward_ratio=1.0, fm_ratio=0.25)
    first = last = None
    for step in range(40):
        loss, stats = pmf_loss(net, x, y, cfg, torch.Generator().manual_seed(step % 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:
            first = stats["loss_u"]
        last = stats["loss_u"]
    assert last < 0.7 * first, (first, last)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.b_blocks.parameters())
