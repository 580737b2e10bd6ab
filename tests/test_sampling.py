"""Samplers: one-step and K-step pMF, Euler/Heun flow matching, generators, batch-size independence."""
import pytest
import torch

from core.model import build_model
from core.sampling import draw_noise, sample_flow_matching, sample_pmf, time_grid


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    n = build_model("pMF-T/4", with_v_head=False).eval()
    with torch.no_grad():
        for p in n.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # leave the zero init so outputs depend on inputs
    return n


def test_one_step_is_the_x_prediction_of_the_noise(net):
    g = torch.Generator().manual_seed(0)
    out = sample_pmf(net, [1, 2, 3], guidance_scale=3.0, guidance_interval=(0.1, 0.7), generator=g)
    assert out.images.shape == (3, 1, 32, 32) and out.nfe == 1
    z1 = draw_noise(3, (1, 32, 32), torch.Generator().manual_seed(0))
    with torch.no_grad():
        B = 3
        x_u, _ = net.predict_images(z1, torch.ones(B), torch.tensor([1, 2, 3]), torch.full((B,), 3.0),
                                    torch.full((B,), 0.1), torch.full((B,), 0.7))
    assert torch.allclose(out.images, x_u, atol=1e-5)  # x = z_1 - u(z_1, 0, 1) = x_u(z_1)


def test_k_step_follows_the_jump_rule(net):
    noise = draw_noise(2, (1, 32, 32), torch.Generator().manual_seed(1))
    out = sample_pmf(net, [4, 5], num_steps=2, noise=noise)
    with torch.no_grad():
        z, y = noise.clone(), torch.tensor([4, 5])
        for t, r in ((1.0, 0.5), (0.5, 0.0)):
            tt, rr = torch.full((2,), t), torch.full((2,), r)
            z = z - (t - r) * net(z, tt, rr, y)
    assert out.nfe == 2 and torch.allclose(out.images, z, atol=1e-5)


def test_results_do_not_depend_on_batch_size_and_follow_the_generator(net):
    big = sample_pmf(net, [0, 1, 2, 3], generator=torch.Generator().manual_seed(7)).images
    small = sample_pmf(net, [0, 1], generator=torch.Generator().manual_seed(7)).images
    again = sample_pmf(net, [0, 1, 2, 3], generator=torch.Generator().manual_seed(7)).images
    other = sample_pmf(net, [0, 1, 2, 3], generator=torch.Generator().manual_seed(8)).images
    assert torch.allclose(big[:2], small, atol=1e-5)
    assert torch.equal(big, again)
    assert not torch.allclose(big, other)
    fm_big = sample_flow_matching(net, [0, 1, 2], num_steps=3, generator=torch.Generator().manual_seed(7)).images
    fm_small = sample_flow_matching(net, [0], num_steps=3, generator=torch.Generator().manual_seed(7)).images
    assert torch.allclose(fm_big[:1], fm_small, atol=1e-5)


def test_flow_matching_nfe_counts_cfg_pairs_and_heun_corrections(net):
    g = torch.Generator().manual_seed(0)
    assert sample_flow_matching(net, [1], num_steps=4, generator=g).nfe == 4
    assert sample_flow_matching(net, [1], num_steps=4, method="heun", generator=g).nfe == 7  # no correction at t=0
    assert sample_flow_matching(net, [1], num_steps=4, guidance_scale=2.0, generator=g).nfe == 8
    # Guidance only inside [0.4, 1]: grid 1, .75, .5, .25 -> three guided steps.
    assert sample_flow_matching(net, [1], num_steps=4, guidance_scale=2.0, guidance_interval=(0.4, 1.0),
                                generator=g).nfe == 7


def test_euler_with_one_step_equals_pmf_at_h_zero_free_model(net):
    """Euler from t=1 with v = u(z, 1, 1) is one network call, like one pMF step with h = 0."""
    noise = draw_noise(1, (1, 32, 32), torch.Generator().manual_seed(3))
    fm = sample_flow_matching(net, [2], num_steps=1, noise=noise)
    with torch.no_grad():
        v = net(noise, torch.ones(1), torch.ones(1), torch.tensor([2]))
    assert torch.allclose(fm.images, noise - v, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(labels=[10 + 1]), "labels must lie in"),
    (dict(labels=[1], guidance_scale=0.5), "guidance_scale must be >= 1"),
    (dict(labels=[1], guidance_interval=(0.8, 0.2)), "guidance_interval"),
    (dict(labels=[1], num_steps=0), "num_steps must be an integer >= 1"),
    (dict(labels=[1], noise=torch.zeros(1, 3, 32, 32)), "noise must be"),
])
def test_bad_sampler_inputs(net, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_pmf(net, **kwargs)


def test_time_grid():
    assert torch.allclose(time_grid(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
