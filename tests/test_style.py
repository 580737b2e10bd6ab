"""Style transfer (pmf_edit.style) and its baselines/metrics (pmf_edit.style_baselines), tiny models."""
from __future__ import annotations

import json

import pytest
import torch

from pmf_edit.style import StyleResult, _inject, style_transfer
from tests.tiny_nets import tiny_rgb_net

NAMES = [f"c{i}" for i in range(5)]


@pytest.fixture(scope="module")
def net():
    return tiny_rgb_net()


def _images(n: int, h: int = 32, w: int = 32, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("method", ["kv", "kv_replace", "feat"])
def test_shapes_range_nfe_native(net, method):
    c, s = _images(2), _images(1, 40, 24, seed=1)
    out = style_transfer(net, c, s, method=method)
    assert isinstance(out, StyleResult)
    assert out.images.shape == c.shape and out.images.dtype == c.dtype
    assert 0.0 <= float(out.images.min()) and float(out.images.max()) <= 1.0
    # 1 (content inversion) + 1 (style inversion) + 1 (residual reconstruction) + 2 (content and
    # style branch of the jump)
    assert (out.nfe, out.size_mode, out.num_tiles) == (5, "native", 1)
    plain = style_transfer(net, c, s, method=method, residual=False)
    assert plain.nfe == 4 and not torch.allclose(plain.images, out.images)


def test_swap_with_class_name_and_float64(net):
    c = _images(2, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    out = style_transfer(net, c, "class:c3", method="swap", class_names=NAMES, generator=g)
    assert out.images.dtype == torch.float64 and out.images.shape == c.shape
    assert out.style_labels.tolist() == [3, 3]
    # class sample + two inversions + reconstruction + one jump
    assert out.nfe == 1 + 1 + 1 + 1 + 1  # at the model size the texture stage does not run


def test_sizes_fit_crop_tile(net):
    s = _images(1, seed=1)
    big = style_transfer(net, _images(1, 70, 50), s, size_mode="tile")
    assert big.images.shape == (1, 3, 70, 50) and big.size_mode == "tile" and big.num_tiles == 6
    assert big.nfe == 5 * big.num_tiles
    small = style_transfer(net, _images(2, 20, 45), s)  # default: fit
    assert small.images.shape == (2, 3, 20, 45) and small.size_mode == "fit" and small.nfe == 5
    crop = style_transfer(net, _images(1, 64, 96), s, size_mode="crop")
    assert crop.size_mode == "crop" and crop.images.shape == (1, 3, 64, 96) and crop.nfe == 5
    # Outside the centre square the content is kept bit-for-bit.
    c = _images(1, 64, 96)
    assert torch.equal(crop.images[..., :16], c[..., :16]) and torch.equal(crop.images[..., 80:], c[..., 80:])
    # The former names still work and mean fit.
    old = style_transfer(net, _images(1, 64, 64), s, size_mode="resize", generator=torch.Generator().manual_seed(0))
    new = style_transfer(net, _images(1, 64, 64), s, size_mode="fit", generator=torch.Generator().manual_seed(0))
    assert old.size_mode == "fit" and torch.equal(old.images, new.images)
    for r in (big, small, crop, old):
        assert 0.0 <= float(r.images.min()) and float(r.images.max()) <= 1.0


def test_every_size_mode_is_the_native_pass_at_the_model_size(net):
    c, s = _images(2), _images(1, seed=1)
    outs = [style_transfer(net, c, s, size_mode=m, generator=torch.Generator().manual_seed(0))
            for m in ("fit", "crop", "tile", "auto")]
    assert all(o.size_mode == "native" and o.num_tiles == 1 for o in outs)
    assert all(torch.equal(outs[0].images, o.images) for o in outs[1:])


def test_deterministic_for_a_generator(net):
    c, s = _images(2), _images(2, seed=1)
    kw = dict(inversion="noise", strength=0.7)
    a = style_transfer(net, c, s, generator=torch.Generator().manual_seed(5), **kw).images
    b = style_transfer(net, c, s, generator=torch.Generator().manual_seed(5), **kw).images
    d = style_transfer(net, c, s, generator=torch.Generator().manual_seed(6), **kw).images
    assert torch.equal(a, b) and not torch.allclose(a, d)
    # The fixed-point inversion with an image style and no texture does not draw noise at all.
    e = style_transfer(net, c, s, texture=0.0).images
    f = style_transfer(net, c, s, texture=0.0, generator=torch.Generator().manual_seed(9)).images
    assert torch.equal(e, f)
    # Batch-size invariance: image 0 alone gives the same result as in the batch.
    one = style_transfer(net, c[:1], s[:1], generator=torch.Generator().manual_seed(5), **kw).images
    torch.testing.assert_close(one, a[:1], atol=1e-5, rtol=0)


def test_strength_zero_returns_content_and_strength_orders_change(net):
    c, s = _images(2), _images(1, seed=1)
    out = style_transfer(net, c, s, strength=0.0)
    assert torch.equal(out.images, c) and out.nfe == 0
    near = style_transfer(net, c, s, strength=0.02, color_match=False, residual=False).images
    far = style_transfer(net, c, s, strength=0.9, color_match=False, residual=False).images
    assert (near - c).abs().mean() < (far - c).abs().mean()
    # With the residual (default) a small strength stays near the content even on a random network.
    assert (style_transfer(net, c, s, strength=0.02).images - c).abs().mean() < 0.05


def test_injection_changes_content_only_and_is_restored(net):
    z = torch.randn(4, 3, 32, 32)
    t, r = torch.full((4,), 0.6), torch.zeros(4)
    plain = net(z, t, r)
    for method in ("kv", "kv_replace", "feat"):
        with _inject(net, method, 0, 1.0):
            mixed = net(z, t, r)
        torch.testing.assert_close(mixed[2:], plain[2:], atol=1e-5, rtol=0)  # style half untouched
        assert not torch.allclose(mixed[:2], plain[:2], atol=1e-4)  # content half reads the style
    torch.testing.assert_close(net(z, t, r), plain, atol=0, rtol=0)  # hooks and patches removed
    assert all("forward" not in vars(b.attn) for b in list(net.shared_blocks) + list(net.u_blocks))


def test_injection_weight_and_temperature(net):
    z = torch.randn(4, 3, 32, 32)
    t, r = torch.full((4,), 0.6), torch.zeros(4)
    plain = net(z, t, r)
    with _inject(net, "kv", 0, 0.0):  # weight 0: the content keeps its own attention exactly
        off = net(z, t, r)
    torch.testing.assert_close(off, plain, atol=1e-5, rtol=0)
    with _inject(net, "kv", 0, 1.0):
        shared = net(z, t, r)
    with _inject(net, "kv", 0, 1.0, temperature=4.0):
        sharp = net(z, t, r)
    torch.testing.assert_close(sharp[2:], plain[2:], atol=1e-5, rtol=0)  # the style half never changes
    assert not torch.allclose(sharp[:2], shared[:2], atol=1e-4)  # temperature reaches the content half
    with _inject(net, "kv", 0, 0.5):
        half = net(z, t, r)
    # The blend is taken inside every block, so the output lies between, not at the average.
    d_half, d_full = (half[:2] - plain[:2]).abs().mean(), (shared[:2] - plain[:2]).abs().mean()
    assert 0 < d_half < d_full

    # Through the API: no injection and the residual leave only the colour move.
    from pmf_edit.style.transfer import _lab_color_match

    c, s = _images(2), _images(1, seed=1)
    out = style_transfer(net, c, s, strength=0.6, injection_weight=0.0, texture=0.0).images
    torch.testing.assert_close(out, _lab_color_match(c, s, 0.6), atol=1e-5, rtol=0)
    hot = style_transfer(net, c, s, strength=0.6, attention_temperature=4.0).images
    assert hot.shape == c.shape and not torch.allclose(hot, style_transfer(net, c, s, strength=0.6).images, atol=1e-4)


@pytest.mark.parametrize(
    "content, style, kwargs, match",
    [
        (torch.rand(1, 1, 32, 32), None, {}, r"\(B, 3, H, W\).*shape \(1, 1, 32, 32\)"),
        (torch.rand(1, 3, 32, 32) * 2, None, {}, r"\[0, 1\], got values in"),
        (torch.full((1, 3, 32, 32), float("nan")), None, {}, r"\[0, 1\]"),
        ((torch.rand(1, 3, 32, 32) * 255).to(torch.uint8), None, {}, r"float32 or float64.*uint8"),
        (torch.rand(1, 3, 32, 32), None, {"strength": 1.5}, r"strength must lie in \[0, 1\]"),
        (torch.rand(1, 3, 32, 32), None, {"method": "magic"}, r"method must be"),
        (torch.rand(1, 3, 32, 32), None, {"method": "swap"}, r"needs a style class"),
        (torch.rand(1, 3, 32, 32), "class:nope", {}, r"unknown style class 'nope'"),
        (torch.rand(1, 3, 32, 32), 9, {}, r"outside the model's classes 0..4"),
        (torch.rand(3, 3, 32, 32), torch.rand(2, 3, 32, 32), {}, r"style batch 2 must be 1 or match"),
        (torch.rand(1, 3, 40, 40), None, {"size_mode": "stretch"}, r"size_mode must be one of 'fit', 'crop', 'tile'"),
        (torch.rand(1, 3, 1, 1), None, {}, r"content is 1x1 .*at least 8 pixels"),
        (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 40000, 8), {}, r"style is 40000x8 .*at most 16384 pixels"),
        (torch.rand(1, 3, 32, 32), None, {"inject_from": 99}, r"inject_from must lie in"),
        (torch.rand(1, 3, 32, 32), None, {"num_steps": 0}, r"num_steps must be an integer >= 1"),
        (torch.rand(1, 3, 32, 32), None, {"color_weight": 1.5}, r"color_weight must lie in \[0, 1\]"),
        (torch.rand(1, 3, 32, 32), None, {"injection_weight": -0.1}, r"injection_weight must lie in \[0, 1\]"),
        (torch.rand(1, 3, 32, 32), None, {"attention_temperature": 0.0},
         r"attention_temperature must lie in \[0.25, 8\]"),
        (torch.rand(1, 3, 32, 32), None, {"style_scale": "huge"}, r"style_scale must be one of 'whole', 'content'"),
    ],
)
def test_bad_inputs(net, content, style, kwargs, match):
    style = torch.rand(1, 3, 32, 32) if style is None else style
    with pytest.raises(ValueError, match=match):
        style_transfer(net, content, style, class_names=NAMES, **kwargs)


def test_style_reference_at_the_content_scale():
    from pmf_edit.style.transfer import _style_reference

    # A 256 x 128 style for a content the network sees at 1/4 of its size: resized by 1/4 to 64 x 32,
    # then the centre 32 x 32 (rows 16..47 of the resized picture); "whole" squeezes all of it.
    style = torch.arange(256.0)[None, None, :, None].expand(1, 3, 256, 128) / 255  # brightness = row
    ref = _style_reference(style, 32, 0.25, "content")
    assert ref.shape == (1, 3, 32, 32)
    rows = ref[0, 0, :, 0] * 255
    assert 60 < float(rows[0]) < 70 and 186 < float(rows[-1]) < 196  # rows ~64..190 of the original
    whole = _style_reference(style, 32, 0.25, "whole")
    assert float(whole[0, 0, 0, 0]) * 255 < 8 and float(whole[0, 0, -1, 0]) * 255 > 248
    # Too small at that scale: enlarged to cover the model's side.
    assert _style_reference(style[:, :, :40, :40], 32, 0.25, "content").shape == (1, 3, 32, 32)


def test_content_scale_runs_end_to_end(net):
    # A style larger than the content at the network's scale: "content" crops it, "whole" squeezes it.
    c, s = _images(1, 48, 64), _images(1, 90, 120, seed=1)
    base = style_transfer(net, c, s)
    scaled = style_transfer(net, c, s, style_scale="content")
    assert scaled.nfe == base.nfe and scaled.images.shape == c.shape
    assert not torch.equal(scaled.images, base.images)


def test_color_weight_sets_the_lab_statistics_move(net):
    import kornia.color as kc

    # Mid-range images so that the Lab move does not clip.
    c = 0.3 + 0.4 * _images(2)
    s = 0.3 + 0.4 * _images(1, seed=1)
    lab_s = kc.rgb_to_lab(s)
    full = style_transfer(net, c, s, strength=0.3, color_weight=1.0, color_first=False).images
    lab = kc.rgb_to_lab(full)
    # After the velocity-field pass, weight 1 puts the output's Lab mean on the style's.
    torch.testing.assert_close(lab.mean((2, 3)), lab_s.mean((2, 3)).expand(2, -1), atol=0.5, rtol=0)
    default = style_transfer(net, c, s, strength=0.3, color_first=False).images  # weight = strength
    d_full = (lab.mean((2, 3)) - lab_s.mean((2, 3))).abs().sum()
    d_default = (kc.rgb_to_lab(default).mean((2, 3)) - lab_s.mean((2, 3))).abs().sum()
    assert d_full < d_default
    first = style_transfer(net, c, s, strength=0.3, color_weight=1.0).images  # colour first (default)
    assert first.shape == c.shape and not torch.allclose(first, full, atol=1e-4)
    # Strength 0 still returns the content, whatever the colour weight.
    torch.testing.assert_close(style_transfer(net, c, s, strength=0.0, color_weight=1.0).images, c)


def test_grey_images_get_the_colour_move_on_their_one_channel():
    """Grey content and style with the default color_match (it used to fail inside kornia's
    rgb_to_lab, asking for 3 channels): the move is the same statistics move on the one channel."""
    from core.model import build_model

    torch.manual_seed(0)
    grey = build_model("pMF-T/4", in_channels=1, num_classes=5, with_v_head=False).eval()
    c = 0.3 + 0.4 * torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(3))  # model size
    s = 0.1 + 0.1 * torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(4))  # dark, flat
    full = style_transfer(grey, c, s, strength=0.3, color_weight=1.0, color_first=False, texture=0.0).images
    assert full.shape == c.shape and 0 <= full.min() and full.max() <= 1
    # Weight 1 after the network (texture detail off: it is added after the move) puts the
    # output's mean on the style's, and its spread near the style's (about 4x below the content's).
    torch.testing.assert_close(full.mean(), s.mean(), atol=2e-3, rtol=0)
    assert abs(full.std() / s.std() - 1) < 0.2 and c.std() > 3 * s.std()
    off = style_transfer(grey, c, s, strength=0.3, color_match=False).images
    assert (off.mean() - s.mean()).abs() > 0.1  # without the move the output stays near the content
    # Any size, default settings (texture on): same size back, the mean moved toward the style's.
    big = 0.3 + 0.4 * torch.rand(1, 1, 40, 56, generator=torch.Generator().manual_seed(5))
    out = style_transfer(grey, big, s, strength=0.5).images
    assert out.shape == big.shape and (out.mean() - s.mean()).abs() < 0.5 * (big.mean() - s.mean()).abs()


def test_not_a_tensor(net):
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        style_transfer(net, [[0.5]], torch.rand(1, 3, 32, 32))


# ------------------------------------------------------------------------------------------------
# Baselines and metrics


def test_reinhard_matches_lab_statistics():
    import kornia.color as kc

    from pmf_edit.style_baselines import reinhard_transfer

    c, s = _images(2) * 0.5 + 0.25, _images(1, 48, 48, seed=3) * 0.5 + 0.25
    out = reinhard_transfer(c, s)
    assert out.shape == c.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    mu_out, mu_s = kc.rgb_to_lab(out).mean((2, 3)), kc.rgb_to_lab(s).mean((2, 3))
    torch.testing.assert_close(mu_out, mu_s.expand_as(mu_out), atol=1.0, rtol=0)  # Lab units
    torch.testing.assert_close(reinhard_transfer(c, s, strength=0.0), c, atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        reinhard_transfer(torch.rand(1, 1, 8, 8), s)


def test_metrics_and_gatys():
    from core.eval.perceptual import MobileNetFeatures
    from pmf_edit.style_baselines import GatysConfig, gatys_transfer, histogram_distance, style_scores

    feats = MobileNetFeatures(size=64)  # small input keeps the test fast
    c, s = _images(1), _images(1, seed=4)
    same = style_scores(c, c, c, feats)
    assert float(same["gram_distance"]) < 1e-5 and float(same["histogram_distance"]) == 0.0
    assert abs(float(same["combined"]) - 1.0) < 1e-4 and float(same["ssim"]) > 0.999
    assert 0.0 < float(histogram_distance(c, s)) <= 1.0
    out = gatys_transfer(c, s, feats, GatysConfig(num_steps=3))
    assert out.shape == c.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    after = style_scores(out, c, s, feats)["gram_distance"]
    assert float(after) < float(style_scores(c, c, s, feats)["gram_distance"])  # it moves towards the style


# ------------------------------------------------------------------------------------------------
# Command line


def test_cli_stylize(net, tmp_path, capsys):
    import imageio.v3 as iio
    import numpy as np

    from apps.cli import main
    from core.checkpoint import save_model

    model = save_model(tmp_path / "model", net, class_names=NAMES, objective="pmf")
    rng = np.random.default_rng(0)
    iio.imwrite(tmp_path / "c.png", rng.integers(0, 255, (40, 36, 3), dtype=np.uint8))
    iio.imwrite(tmp_path / "s.png", rng.integers(0, 255, (32, 32), dtype=np.uint8))  # gray style
    out = tmp_path / "o.png"
    assert main(["stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(out), "--model", str(model)]) == 0
    assert iio.imread(out).shape == (40, 36, 3)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["size_mode"] == "fit" and line["nfe"] == 5 and line["tiles"] == 1
    assert main(["stylize", str(tmp_path / "c.png"), "class:c2", "-o", str(out), "--model", str(model)]) == 0
    # The injection knobs reach the API: weight 0 with the residual leaves the colour move only.
    first = iio.imread(out)
    assert main(["stylize", str(tmp_path / "c.png"), "class:c2", "-o", str(out), "--model", str(model),
                 "--attention-temperature", "4", "--injection-weight", "0"]) == 0
    assert iio.imread(out).shape == first.shape and not np.array_equal(iio.imread(out), first)
    assert main(["stylize", str(tmp_path / "c.png"), "class:c2", "-o", str(out), "--model", str(model),
                 "--attention-temperature", "100"]) == 2
    assert "attention_temperature must lie in [0.25, 8]" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(out), "--model", str(model),
                 "--style-scale", "content"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["nfe"] == 5
    # Bad input: clear one-line errors, exit code 2.
    assert main(["stylize", str(tmp_path / "c.png"), "class:zebra", "-o", str(out), "--model", str(model)]) == 2
    assert "unknown style class 'zebra'" in capsys.readouterr().err
    assert main(["stylize", str(tmp_path / "missing.png"), "class:c1", "-o", str(out), "--model", str(model)]) == 2
    assert "no such image file" in capsys.readouterr().err
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert main(["stylize", str(tmp_path / "c.png"), str(tmp_path / "bad.png"), "-o", str(out), "--model", str(model)]) == 2
    assert "cannot read image file" in capsys.readouterr().err
