"""The texture stage of style transfer (pmf_edit.style.texture) and its use in style_transfer."""
from __future__ import annotations

import pytest
import torch

from core.model import build_model
from pmf_edit.style import style_transfer
from pmf_edit.style.texture import (TextureConfig, add_texture_detail, cover_resize, noise_shape,
                                    synthesize_texture)
from tests.tiny_nets import tiny_rgb_net


def _smooth_random(h: int, w: int, seed: int) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1]: random at a 4-px scale, so every 8x8 patch is distinct."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 4 + 1, w // 4 + 1, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def test_a_guide_equal_to_the_style_is_redrawn_as_itself():
    # At the working side (k = 1) each interior patch's nearest style patch is itself, so the paste
    # reproduces the style there (the border rows come from replicate-padded patches).
    s = _smooth_random(48, 64, 0)
    cfg = TextureConfig(work_side=64, stride=4, style_stride=1, pca_dims=48)
    out = synthesize_texture(s, s, cfg)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    torch.testing.assert_close(out[inner], s[inner], atol=1e-4, rtol=0)


def test_pixels_come_from_the_style_and_size_is_kept():
    # A two-colour style: every output pixel is a window-weighted mix of style pixels, so it lies in
    # the style's colour range, whatever the guide's colours are.
    style = torch.zeros(1, 3, 40, 40)
    style[..., ::8, :] = 1.0  # lines on black: red 1, green 0.5, blue 0
    style[:, 1] *= 0.5
    style[:, 2] = 0.0
    guide = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(1))
    cfg = TextureConfig(work_side=32)
    out = synthesize_texture(guide, style, cfg, torch.randn(noise_shape(37, 53, cfg)))
    assert out.shape == guide.shape
    assert float(out[:, 2].max()) == 0.0  # the style has no blue
    assert float((out[:, 1] - 0.5 * out[:, 0]).abs().max()) < 1e-5  # green is half of red, as in the style


def test_noise_is_explicit_and_checked():
    g, s = _smooth_random(40, 40, 2), _smooth_random(32, 32, 3)
    cfg = TextureConfig(work_side=32)
    n = torch.randn(noise_shape(40, 40, cfg), generator=torch.Generator().manual_seed(0))
    a, b = synthesize_texture(g, s, cfg, n), synthesize_texture(g, s, cfg, n)
    assert torch.equal(a, b)
    assert not torch.equal(a, synthesize_texture(g, s, cfg, torch.randn(noise_shape(40, 40, cfg))))
    with pytest.raises(ValueError, match="noise must have shape"):
        synthesize_texture(g, s, cfg, torch.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match="must be \\(1, C, H, W\\)"):
        synthesize_texture(g.expand(2, -1, -1, -1), s, cfg)


@pytest.mark.parametrize("kw, match", [({"work_side": 8}, "work_side"), ({"stride": 0}, "stride"),
                                       ({"fidelity": -1.0}, "fidelity"), ({"detail_sigma": 0.0}, "detail_sigma")])
def test_bad_config(kw, match):
    with pytest.raises(ValueError, match=match):
        TextureConfig(**kw)


def test_detail_keeps_colour_and_coarse_layout():
    img = _smooth_random(64, 64, 4) * 0.6 + 0.2
    tex = 0.5 + 0.1 * torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    assert torch.equal(add_texture_detail(img, tex, 0.0, 2.0), img)
    out = add_texture_detail(img, tex, 1.0, 2.0)
    d = out - img
    # A grey offset: the same change on R, G and B (no clipping at these values) ...
    torch.testing.assert_close(d[:, 0], d[:, 1], atol=1e-6, rtol=0)
    torch.testing.assert_close(d[:, 0], d[:, 2], atol=1e-6, rtol=0)
    assert float(d.abs().mean()) > 0.005
    # ... of fine detail only: blurred, the change nearly vanishes.
    assert float(torch.nn.functional.avg_pool2d(d, 16).abs().mean()) < 0.3 * float(d.abs().mean())


def test_cover_resize_keeps_aspect_and_covers():
    s = torch.rand(1, 3, 30, 60)
    assert cover_resize(s, 90, 90).shape[-2:] == (90, 180)
    assert cover_resize(s, 20, 200).shape[-2:] == (100, 200)


@pytest.fixture(scope="module")
def net():
    return tiny_rgb_net()


def test_style_transfer_texture_weight(net):
    c, s = torch.rand(2, 3, 60, 90), _smooth_random(48, 48, 6)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    plain = style_transfer(net, c, s, texture=0.0, generator=gen())
    tex = style_transfer(net, c, s, generator=gen())
    assert tex.images.shape == c.shape and tex.nfe == plain.nfe
    assert 0.0 <= float(tex.images.min()) and float(tex.images.max()) <= 1.0
    d_default = (tex.images - plain.images).abs().mean()
    d_more = (style_transfer(net, c, s, texture=1.5, generator=gen()).images - plain.images).abs().mean()
    assert 0 < d_default < d_more
    # Per image: image 1 alone gives what it gives in the batch (its own noise draw).
    one = style_transfer(net, c[1:], s, generator=torch.Generator().manual_seed(3))
    two = style_transfer(net, c[:1], s, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(two.images, tex.images[:1], atol=1e-5, rtol=0)
    assert one.images.shape == (1, 3, 60, 90)
    with pytest.raises(ValueError, match="texture"):
        style_transfer(net, c, s, texture=-0.5)


def test_crop_mode_keeps_the_outside_with_texture(net):
    c, s = torch.rand(1, 3, 64, 96), _smooth_random(48, 48, 7)
    out = style_transfer(net, c, s, size_mode="crop", texture=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.images[..., :16], c[..., :16]) and torch.equal(out.images[..., 80:], c[..., 80:])
    assert not torch.equal(out.images[..., 16:80], c[..., 16:80])


def test_class_style_texture_from_a_mosaic_of_samples(net):
    from pmf_edit.style.transfer import CLASS_MOSAIC

    c = torch.rand(1, 3, 40, 50)
    a = style_transfer(net, c, 2, generator=torch.Generator().manual_seed(0))
    b = style_transfer(net, c, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.images, b.images)
    plain = style_transfer(net, c, 2, texture=0.0, generator=torch.Generator().manual_seed(0))
    assert a.nfe == plain.nfe + CLASS_MOSAIC**2 - 1
    # The network's part is the same draw: the class reference comes first in both.
    assert (a.images - plain.images).abs().mean() < 0.2


def test_no_texture_stage_at_the_model_size(net):
    c, s = torch.rand(1, 3, 32, 32), _smooth_random(48, 48, 8)
    a = style_transfer(net, c, s, generator=torch.Generator().manual_seed(0))
    b = style_transfer(net, c, s, texture=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.images, b.images) and a.nfe == b.nfe


def test_working_side_never_above_the_guide():
    # A 40-px guide with work_side 128: matched at 40 px, not blown up.
    assert noise_shape(40, 20, TextureConfig(work_side=128)) == (1, 3, 40 + 8, 20 + 8)


def test_paste_in_row_bands_changes_nothing(monkeypatch):
    import pmf_edit.style.texture as tex_mod

    g, s = _smooth_random(50, 70, 9), _smooth_random(60, 60, 10)
    cfg = TextureConfig(work_side=32)
    n = torch.randn(noise_shape(50, 70, cfg), generator=torch.Generator().manual_seed(1))
    whole = synthesize_texture(g, s, cfg, n)
    monkeypatch.setattr(tex_mod, "PASTE_PIXELS", 70 * 7)  # 7 rows per band, the last one shorter
    assert torch.equal(synthesize_texture(g, s, cfg, n), whole)


def test_wide_blur_of_the_detail_band_is_made_small():
    """The detail band's blur (sigma = 2 working pixels, 125 output px on a 48-MP photo: a 751-tap kernel,
    16 CPU s) is computed on a shrunk copy above SMOOTH_SIGMA; exact below it (every reported picture)."""
    import kornia.filters as kf

    from pmf_edit.style.texture import SMOOTH_SIGMA, _smooth

    y = _smooth_random(600, 900, 3)[:, :1]
    exact = lambda s: kf.gaussian_blur2d(y, (2 * round(3 * s) + 1,) * 2, (s, s), border_type="reflect")  # noqa: E731
    assert torch.equal(_smooth(y, SMOOTH_SIGMA - 1), exact(SMOOTH_SIGMA - 1))
    for sigma in (2.5 * SMOOTH_SIGMA, 4 * SMOOTH_SIGMA):  # (the detail's std here: ~0.1)
        err = (_smooth(y, sigma) - exact(sigma)).abs()
        assert float(err.mean()) < 2e-3 and float(err.max()) < 1e-2  # the most at the corners (reflections)
    assert _smooth(torch.rand(1, 1, 3, 900), 40.0).shape == (1, 1, 3, 900)  # a thin strip: the kernel fits


def test_gray_network_gets_gray_texture():
    torch.manual_seed(0)
    gray = build_model("pMF-T/4", in_channels=1, num_classes=3, with_v_head=False).eval()
    c, s = torch.rand(1, 1, 40, 60), _smooth_random(48, 48, 11)[:, :1]
    # (the Lab colour move needs RGB; the texture stage itself works on any channel count)
    out = style_transfer(gray, c, s, color_match=False, generator=torch.Generator().manual_seed(0))
    assert out.images.shape == c.shape
    plain = style_transfer(gray, c, s, color_match=False, texture=0.0, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(out.images, plain.images)
