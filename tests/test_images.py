"""The size policy (pmf_edit.images): shapes at any aspect ratio, exact identity, inpaint bit-identity,
no halo at edges, refusal of sizes out of range."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pmf_edit.images import (
    MAX_SIDE, SIZE_MODES, SizeConfig, check_image_size, from_network, guided_upsample, mask_to_network,
    plan_size, repeat_per_tile, through_network, to_network,
)

SIZES = [(300, 451), (451, 300), (8, 700), (700, 8), (20, 45), (31, 33), (64, 64), (96, 40)]


def _rand(h: int, w: int, b: int = 2, c: int = 3, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("mode", SIZE_MODES)
@pytest.mark.parametrize("hw", SIZES)
def test_shapes_any_aspect_ratio(mode, hw):
    x = _rand(*hw)
    plan = plan_size(*hw, 32, mode)
    x_in = to_network(plan, x)
    assert x_in.shape == (2 * plan.num_tiles, 3, 32, 32)
    assert 0.0 <= float(x_in.min()) and float(x_in.max()) <= 1.0  # resizing stays in range
    out = from_network(plan, x, x_in, 1.0 - x_in)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert not torch.equal(out, x)


@pytest.mark.parametrize("mode", SIZE_MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hw", [(300, 451), (8, 700), (20, 45)])
def test_identity_when_the_network_changes_nothing(mode, dtype, hw):
    x = _rand(*hw, dtype=dtype)
    plan = plan_size(*hw, 32, mode)
    x_in = to_network(plan, x)
    assert torch.equal(from_network(plan, x, x_in, x_in.clone()), x)


def test_native_size_is_the_identity():
    x = _rand(32, 32)
    for mode in SIZE_MODES:
        plan = plan_size(32, 32, 32, mode)
        assert plan.native and plan.num_tiles == 1
        assert to_network(plan, x) is x
        y = torch.rand_like(x)
        assert torch.equal(from_network(plan, x, x, y), y)  # the network's own output, untouched


def test_fit_keeps_the_aspect_ratio_and_reflects():
    plan = plan_size(300, 600, 32, "fit")
    assert plan.inner == (8, 0, 16, 32) and plan.canvas == (32, 32)
    x = _rand(300, 600, b=1)
    x_in = to_network(plan, x)
    # Reflection (edge row not repeated): the padding mirrors the resized image's rows.
    assert torch.equal(x_in[0, :, 7], x_in[0, :, 9]) and torch.equal(x_in[0, :, 24], x_in[0, :, 22])


def test_tile_plan_covers_evenly():
    plan = plan_size(100, 70, 32, "tile")
    for starts, n in ((plan.starts_y, 100), (plan.starts_x, 70)):
        assert starts[0] == 0 and starts[-1] == n - 32
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert max(gaps) <= 24 and max(gaps) - min(gaps) <= 1  # stride <= S (1 - overlap), even seams


def test_tile_constant_change_is_seamless():
    # Blending: a change every tile agrees on comes out exactly that change everywhere (no seam).
    x = _rand(100, 70, dtype=torch.float64) * 0.5
    plan = plan_size(100, 70, 32, "tile")
    x_in = to_network(plan, x)
    out = from_network(plan, x, x_in, x_in + 0.25)
    assert torch.allclose(out, x + 0.25, atol=1e-12)


def test_crop_leaves_outside_the_box_bit_identical_and_feathers():
    x = _rand(64, 200, b=1)
    plan = plan_size(64, 200, 32, "crop")
    top, left, h, w = plan.box
    assert (top, h, w) == (0, 64, 64) and left == 68
    x_in = to_network(plan, x)
    out = from_network(plan, x, x_in, (x_in + 0.3).clamp(0, 1))
    outside = torch.ones(64, 200, dtype=torch.bool)
    outside[:, left:left + w] = False
    assert torch.equal(out[..., outside], x[..., outside])
    change = (out - x)[0].mean(0)  # (H, W)
    # Faded towards the inner (left/right) borders, full in the middle.
    assert float(change[:, left + w // 2].mean()) > 0.2
    assert float(change[:, left].abs().mean()) < 0.25 * float(change[:, left + w // 2].mean())
    # Centred on a point: the box moves there (clamped inside the image).
    assert plan_size(64, 200, 32, "crop", center=(10, 190)).box == (0, 136, 64, 64)


@pytest.mark.parametrize("mode", SIZE_MODES)
def test_inpaint_unmasked_pixels_bit_identical(mode):
    x = _rand(90, 140)
    mask = torch.zeros(1, 1, 90, 140, dtype=torch.bool)
    mask[..., 30:61, 50:97] = True
    plan = plan_size(90, 140, 32, mode, center=(45, 73) if mode == "crop" else None)
    x_in = to_network(plan, x)
    m_in = mask_to_network(plan, mask.expand(2, -1, -1, -1))
    assert m_in.dtype == torch.bool and m_in.shape == (2 * plan.num_tiles, 1, 32, 32)
    fill = torch.where(m_in, 1.0 - x_in, x_in)  # the "network" inverts the hole
    out = from_network(plan, x, x_in, fill, mask=mask)
    keep = ~mask.expand_as(x)
    assert torch.equal(out[keep], x[keep])
    assert float((out[~keep] - x[~keep]).abs().mean()) > 0.2  # the hole really was refilled


def test_mask_dilates_so_no_hole_pixel_is_left():
    # A 1-pixel hole at full resolution still marks a network pixel.
    mask = torch.zeros(1, 1, 500, 300, dtype=torch.bool)
    mask[..., 123, 77] = True
    m_in = mask_to_network(plan_size(500, 300, 32, "fit"), mask)
    assert int(m_in.sum()) >= 1


def test_no_halo_at_a_step_edge():
    """The network brightens the bright half of a step image; the carried change must stay on it.

    Measured: the largest change on the dark side next to the edge (the halo), guided vs bilinear."""
    H = W = 512
    x = torch.full((1, 3, H, W), 0.2)
    x[..., 257:] = 0.8  # a vertical step edge not on the network's pixel grid
    plan = plan_size(H, W, 32, "fit")
    x_in = to_network(plan, x)
    out_lo = x_in + 0.15 * (x_in - 0.2) / 0.6  # +0.15 on the bright side, 0 on the dark side
    guided = from_network(plan, x, x_in, out_lo) - x
    bilinear = F.interpolate(out_lo - x_in, size=(H, W), mode="bilinear", align_corners=False)
    halo_guided = float(guided[..., :257].abs().max())
    halo_bilinear = float(bilinear[..., :257].abs().max())
    # Measured 0.0097 against 0.049 (SizeConfig.guide_eps's comment); 0.0014 at eps 1e-4.
    assert halo_guided < 0.015 and halo_guided < 0.25 * halo_bilinear, (halo_guided, halo_bilinear)
    assert float(guided[..., 257:].min()) > 0.13  # and the bright side got (almost) the whole change
    sharp = plan_size(H, W, 32, "fit", config=SizeConfig(guide_eps=1e-4))
    halo_sharp = float((from_network(sharp, x, x_in, out_lo) - x)[..., :257].abs().max())
    assert halo_sharp < 0.003


@pytest.mark.parametrize("mode", ["fit", "crop"])
def test_carry_in_row_bands_is_the_one_piece_carry(mode, monkeypatch):
    """from_network applies the guided upsampler a band of rows at a time (a 48-megapixel photo: 3.2 s and
    ~2.4 GB of temporaries in one piece, 0.9 s and a few tens of MB in bands); the result is the same."""
    import pmf_edit.images as images

    x = _rand(300, 451)
    plan = plan_size(300, 451, 32, mode)
    x_in = to_network(plan, x)
    noise = torch.randn(x_in.shape, generator=torch.Generator().manual_seed(1))
    out_lo = (0.7 * x_in + 0.2 + 0.05 * noise).clamp(0, 1)
    one_piece = from_network(plan, x, x_in, out_lo)  # CARRY_ROWS (256) >= the crop's side, < fit's 300 rows
    monkeypatch.setattr(images, "CARRY_ROWS", 7)  # bands that do not divide the height
    banded = from_network(plan, x, x_in, out_lo)
    top, left, h, w = plan.inner
    bt, bl, bh, bw = plan.box
    delta = images._merge(plan, out_lo - x_in)[:, :, top:top + h, left:left + w]
    guide = images._merge(plan, x_in)[:, :, top:top + h, left:left + w]
    change = guided_upsample(delta, guide, x[:, :, bt:bt + bh, bl:bl + bw], radius=plan.config.guide_radius,
                             eps=plan.config.guide_eps)
    if mode == "crop":
        change = change * images._feather(plan, change)
    ref = x.clone()
    ref[:, :, bt:bt + bh, bl:bl + bw] = (x[:, :, bt:bt + bh, bl:bl + bw] + change).clamp(0, 1)
    assert float((banded - ref).abs().max()) < 1e-6 and float((one_piece - ref).abs().max()) < 1e-6
    assert float((banded - x).abs().max()) > 0.05  # (a real change was carried)


def test_guided_upsample_zero_change_is_exactly_zero():
    lo, hi = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 100, 60)
    assert torch.equal(guided_upsample(torch.zeros_like(lo), lo, hi), torch.zeros_like(hi))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: plan_size(1, 1, 32, "fit"), r"the image is 1x1.*at least 8 pixels"),
        (lambda: plan_size(40000, 300, 32, "tile"), rf"the image is 40000x300.*at most {MAX_SIDE}"),
        (lambda: check_image_size(torch.rand(1, 3, 1, 1), "content"), r"content is 1x1 \(shape \(1, 3, 1, 1\)\)"),
        (lambda: check_image_size((2, 3, 300, 40000), "style"), r"style is 300x40000"),
        (lambda: plan_size(64, 64, 32, "resize"), r"size_mode must be one of 'fit', 'crop', 'tile'"),
        (lambda: plan_size(64, 64, 32, "fit", center=(1, 1)), r"center applies to size_mode='crop' only"),
        (lambda: SizeConfig(tile_overlap=1.0), r"tile_overlap must lie in \[0, 1\)"),
        (lambda: SizeConfig(guide_eps=0.0), r"guide_eps must be > 0"),
        (lambda: to_network(plan_size(64, 64, 32, "fit"), torch.rand(1, 3, 64, 65)), r"images must be \(B, C, 64, 64\)"),
    ],
)
def test_bad_sizes_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_through_network_crop_centres_on_the_mask_and_refuses_a_mask_outside():
    x = _rand(40, 200, b=1)
    mask = torch.zeros(1, 1, 40, 200, dtype=torch.bool)
    mask[..., 10:20, 170:190] = True
    seen = {}

    def fn(x_in, plan):
        seen["box"] = plan.box
        return 1.0 - x_in

    out = through_network(x, 32, fn, size_mode="crop", mask=mask)
    assert seen["box"] == (0, 160, 40, 40)  # the square around the hole, clamped to the image
    assert torch.equal(out[~mask.expand_as(x)], x[~mask.expand_as(x)])
    wide = mask.clone()
    wide[..., 5, 10] = True
    with pytest.raises(ValueError, match=r"mask reaches outside the 40x40 square.*use size_mode='fit' or 'tile'"):
        through_network(x, 32, fn, size_mode="crop", mask=wide)


def test_repeat_per_tile():
    plan = plan_size(32, 80, 32, "tile")
    assert plan.num_tiles == 3
    assert repeat_per_tile(torch.tensor([4, 7]), plan).tolist() == [4, 4, 4, 7, 7, 7]
    assert repeat_per_tile(None, plan) is None
    one = torch.tensor([4, 7])
    assert repeat_per_tile(one, plan_size(32, 32, 32, "tile")) is one
