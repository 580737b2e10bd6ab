"""core.upscale: the converted network is exactly the nearest-upsampled small one."""

import pytest
import torch
import torch.nn.functional as F

from core.model import build_model
from core.upscale import upscale_patches


def _random_heads(net):
    # Final layers start at zero; give them weights so the test compares something.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "final.linear" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net


@pytest.mark.parametrize("factor", [2, 3])
def test_upscaled_network_is_nearest_upsampled_original(factor):
    torch.manual_seed(0)
    small = _random_heads(build_model("pMF-T/4", in_channels=3, num_classes=5, backward_head=True)).double().eval()
    big = upscale_patches(small, factor).eval()
    assert big.cfg.image_size == 32 * factor and big.cfg.patch_size == 4 * factor
    assert big.cfg.noise_scale == small.cfg.noise_scale * factor
    B = 3
    z = torch.randn(B, 3, 32, 32, dtype=torch.float64)
    h = torch.tensor([0.3, 0.0, -0.4], dtype=torch.float64)  # last row: backward head
    y = torch.tensor([0, 2, 5])
    omega = torch.ones(B, dtype=torch.float64)
    t_min, t_max = torch.zeros(B, dtype=torch.float64), torch.ones(B, dtype=torch.float64)
    x_small, v_small = small.predict_images(z, h, y, omega, t_min, t_max, heads="uv")
    z_big = F.interpolate(z, scale_factor=factor, mode="nearest")
    x_big, v_big = big.predict_images(z_big, h, y, omega, t_min, t_max, heads="uv")
    up = lambda x: F.interpolate(x, scale_factor=factor, mode="nearest")  # noqa: E731
    assert x_small.abs().max() > 0.1  # the heads write something
    torch.testing.assert_close(x_big, up(x_small), rtol=0, atol=1e-10)
    torch.testing.assert_close(v_big, up(v_small), rtol=0, atol=1e-10)


def test_upscale_keeps_the_original_and_rejects_bad_factor():
    small = build_model("pMF-T/4", in_channels=1)
    before = {k: v.clone() for k, v in small.state_dict().items()}
    upscale_patches(small, 2, noise_scale=1.5)
    assert all(torch.equal(before[k], v) for k, v in small.state_dict().items())
    assert upscale_patches(small, 2, noise_scale=1.5).cfg.noise_scale == 1.5
    with pytest.raises(ValueError, match="factor"):
        upscale_patches(small, 0)
