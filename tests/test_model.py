"""core/model.py: paper sizes, shapes, init, heads, the exact JVP, batch invariance, bf16 autocast."""

import math

import pytest
import torch

from core.model import PRESETS, PixelMeanFlow, build_model


def perturb(net: PixelMeanFlow, seed: int = 0, scale: float = 0.3) -> PixelMeanFlow:
    """Move zero-initialised gates / final layers / biases and unit norm scales off their init, so
    every path of the network contributes (at init x_u = 0 and most derivatives vanish)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
            if not p.any():
                p.copy_(noise * (scale / math.sqrt(p.shape[-1]) if p.ndim == 2 else scale))
            elif "norm" in name:
                p.mul_(1 + 0.2 * noise)
    return net


def inputs(B: int, C: int = 1, S: int = 32, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, C, S, S, generator=g, dtype=torch.float64).to(dtype)
    t = (0.2 + 0.8 * torch.rand(B, generator=g, dtype=torch.float64)).to(dtype)
    r = t * torch.rand(B, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randint(0, 11, (B,), generator=g)  # includes the null class 10
    omega = (1 + 5 * torch.rand(B, generator=g, dtype=torch.float64)).to(dtype)
    t_min = (0.3 * torch.rand(B, generator=g, dtype=torch.float64)).to(dtype)
    return z, t, r, y, omega, t_min, t_min + 0.5


# ---- sizes -----------------------------------------------------------------------------------------

# Paper Tab. 5-7 (v-head excluded): B/16 118-119M, L/16 410-411M, H/16 956M, B/32 120M, ...
PAPER_PARAMS = {"pMF-B/16": 118.6e6, "pMF-L/16": 410.5e6, "pMF-H/16": 956e6,
                "pMF-B/32": 120e6, "pMF-L/32": 413e6, "pMF-H/32": 959e6}


@pytest.mark.parametrize("preset", sorted(PAPER_PARAMS))
def test_paper_param_counts_on_meta(preset):
    with torch.device("meta"):  # shapes only: no memory, no init cost
        net = build_model(preset, with_v_head=True)
    n = net.num_params()  # the paper's count excludes the v-head
    assert abs(n / PAPER_PARAMS[preset] - 1) < 0.02, (preset, n)
    assert net.num_params(include_v_head=True) > n
    assert net.cfg.num_patches + net.cfg.num_prefix == 276  # 16x16 grid + 20 prefix tokens


# ---- shapes, heads, init ---------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_heads(channels):
    torch.manual_seed(0)
    net = build_model("pMF-T/4", in_channels=channels)
    z, t, r, y, omega, t_min, t_max = inputs(2, channels)
    u = net(z, t, r, y, omega, t_min, t_max)
    v = net(z, t, r, y, omega, t_min, t_max, heads="v")
    u2, v2 = net(z, t, r, y, omega, t_min, t_max, heads="uv")
    assert u.shape == v.shape == z.shape == (2, channels, 32, 32)
    assert torch.equal(u, u2) and torch.equal(v, v2)
    assert net(z, t, r).shape == z.shape  # defaults: null class, omega 1, interval [0, 1]


def test_init_is_identity_xu_zero():
    torch.manual_seed(0)
    net = build_model("pMF-T/4", in_channels=3)
    z, t, r, y, omega, t_min, t_max = inputs(3, 3)
    t = torch.tensor([1.0, 0.3, 0.01])  # the last one is clipped to t_clip = 0.05
    u, v = net(z, t, r.clamp(max=0.01), y, omega, t_min, t_max, heads="uv")
    expected = z / t.clamp(0.05, 1).view(-1, 1, 1, 1)
    assert torch.equal(u, expected) and torch.equal(v, expected)  # zero-init final layers: x = 0


def test_inference_network_has_no_v_head():
    net = build_model("pMF-T/4", with_v_head=False)
    assert not any(k.startswith(("v_blocks", "v_final")) for k in net.state_dict())
    z, t, r, *_ = inputs(1)
    with pytest.raises(RuntimeError, match="without the v-head"):
        net(z, t, r, heads="v")
    with pytest.raises(RuntimeError, match="without the v-head"):
        net(z, t, r, heads="uv")


def test_unknown_preset_and_bad_config():
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("pMF-X/1")
    with pytest.raises(ValueError, match="head dim"):
        build_model("pMF-T/4", num_heads=3)  # 64 / 3 is not an integer
    assert set(PAPER_PARAMS) <= set(PRESETS)


# ---- JVP (the MeanFlow compound function) ------------------------------------------------------------


def test_jvp_matches_central_finite_difference_fp64():
    torch.manual_seed(0)
    net = perturb(build_model("pMF-T/4")).double()
    z, t, r, y, omega, t_min, t_max = inputs(2, dtype=torch.float64)
    t = torch.tensor([0.6, 0.35], dtype=torch.float64)  # inside (t_clip, 1): 1/t is smooth
    r = torch.tensor([0.2, 0.1], dtype=torch.float64)
    tangent = torch.randn_like(z)

    def U(z_, t_, r_):
        return net(z_, t_, r_, y, omega, t_min, t_max)

    u, du_dt = torch.func.jvp(U, (z, t, r), (tangent, torch.ones_like(t), torch.zeros_like(r)))
    eps = 1e-6
    with torch.no_grad():
        fd = (U(z + eps * tangent, t + eps, r) - U(z - eps * tangent, t - eps, r)) / (2 * eps)
        torch.testing.assert_close(u, U(z, t, r), rtol=1e-12, atol=1e-12)  # JVP primal = forward
    rel = (du_dt - fd).abs().max() / fd.abs().max()
    assert rel < 1e-6, rel.item()
    assert fd.abs().max() > 1e-2  # non-trivial: the perturbed network depends on z and h


def test_jvp_with_sdpa_requested_routes_to_math():
    torch.manual_seed(0)
    net = perturb(build_model("pMF-T/4"))
    z, t, r, y, omega, t_min, t_max = inputs(2)
    tangents = (torch.randn_like(z), torch.ones_like(t), torch.zeros_like(r))

    def run(backend):
        return torch.func.jvp(lambda a, b, c: net(a, b, c, y, omega, t_min, t_max, backend=backend),
                              (z, t, r), tangents)

    u_sdpa, du_sdpa = run("sdpa")  # the default CPU SDPA kernel has no forward-AD rule
    u_math, du_math = run("math")
    torch.testing.assert_close(u_sdpa, u_math, rtol=0, atol=0)
    torch.testing.assert_close(du_sdpa, du_math, rtol=0, atol=0)


# ---- invariances and precision -----------------------------------------------------------------------


def test_batch_size_independence():
    torch.manual_seed(0)
    net = perturb(build_model("pMF-T/4", in_channels=3)).eval()
    z, t, r, y, omega, t_min, t_max = inputs(4, 3)
    with torch.no_grad():
        full = net(z, t, r, y, omega, t_min, t_max, heads="uv")
        one = net(z[:1], t[:1], r[:1], y[:1], omega[:1], t_min[:1], t_max[:1], heads="uv")
    for a, b in zip(full, one):
        torch.testing.assert_close(a[:1], b, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_cpu_close_to_fp32():
    torch.manual_seed(0)
    net = perturb(build_model("pMF-T/4", in_channels=3)).eval()
    z, t, r, y, omega, t_min, t_max = inputs(2, 3)
    with torch.no_grad():
        ref = net(z, t, r, y, omega, t_min, t_max)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(z, t, r, y, omega, t_min, t_max)
    assert torch.isfinite(low).all()
    rel = (low.float() - ref).norm() / ref.norm()
    assert rel < 3e-2, rel.item()
