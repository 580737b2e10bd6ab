"""Speed paths of frame interpolation that must not change what is computed: the small-frame DIS setting
and the stacked (one-pass) splat."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pmf_edit.flow import splat
from pmf_edit.interpolate import InterpolationConfig, PairInterpolator
from pmf_edit.video.interpolate import CONFIGS


def textured_u8(h: int, w: int, seed: int) -> np.ndarray:
    """(h, w, 3) uint8 smooth random texture (structure DIS can track)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 8, w // 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)
    return (x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def test_stacked_splat_is_the_sum_of_single_splats() -> None:
    rng = np.random.default_rng(1)
    s, h, w, c = 2, 9, 11, 2
    vals = rng.standard_normal((s, h, w, c)).astype(np.float32)
    flow = (rng.standard_normal((s, h, w, 2)) * 3).astype(np.float32)
    weight = rng.random((s, h, w), dtype=np.float32)
    num, den = splat(vals, flow, weight)
    parts = [splat(vals[i], flow[i], weight[i]) for i in range(s)]
    assert num.shape == (h, w, c) and den.shape == (h, w)
    assert np.allclose(num, sum(p[0] for p in parts), atol=1e-5)
    assert np.allclose(den, sum(p[1] for p in parts), atol=1e-5)
    assert den.sum() > 1.0  # something landed: the comparison above is not between two empty canvases


def test_variational_iters_at_picks_by_flow_pixels() -> None:
    cfg = InterpolationConfig(small_flow_pixels=100, small_variational_iters=1, variational_iters=3)
    assert cfg.variational_iters_at(10, 10) == 1  # at the threshold: small
    assert cfg.variational_iters_at(10, 11) == 3
    assert InterpolationConfig(small_variational_iters=None, variational_iters=2).variational_iters_at(4, 4) == 2
    assert InterpolationConfig().variational_iters_at(136, 320) == 2  # bikes' flow image: two passes
    assert CONFIGS["plain-warp"].variational_iters_at(136, 320) is None  # the baseline keeps the preset's


def test_bad_small_frame_settings() -> None:
    with pytest.raises(ValueError, match="small_variational_iters"):
        InterpolationConfig(small_variational_iters=-1)
    with pytest.raises(ValueError, match="small_flow_pixels"):
        InterpolationConfig(small_flow_pixels=-5)


@pytest.mark.parametrize("h, w, small", [(64, 96, True), (288, 256, False)])
def test_default_uses_the_small_frame_setting_only_on_small_frames(h: int, w: int, small: bool) -> None:
    # Flow image (h/2, w/2): 48x32 = 1536 pixels (small) or 144x128 = 18432 (> 16384, large).
    f0 = textured_u8(h, w, seed=3)
    f1 = np.ascontiguousarray(np.roll(f0, (2, 5), axis=(0, 1)))
    default = PairInterpolator(f0, f1, InterpolationConfig())
    none = PairInterpolator(f0, f1, InterpolationConfig(variational_iters=0, small_variational_iters=None))
    large = PairInterpolator(f0, f1, InterpolationConfig(small_variational_iters=None))  # two passes everywhere
    same, other = (none, large) if small else (large, none)
    assert np.array_equal(default.f01, same.f01) and np.array_equal(default.f10, same.f10)
    assert not np.array_equal(default.f01, other.f01)  # the two settings differ, so the check can fail
    assert np.array_equal(default.render(0.5), same.render(0.5))


def test_chroma_pair_warp_matches_per_channel_warps() -> None:
    # The interleaved (h, w, 2) chroma is warped channel by channel (speed): same values, same order.
    y0, y1 = textured_u8(32, 48, seed=5)[..., :1], textured_u8(32, 48, seed=6)[..., :1]
    uv0, uv1 = textured_u8(16, 24, seed=7)[..., :2], textured_u8(16, 24, seed=8)[..., :2]
    pair = PairInterpolator(np.ascontiguousarray(y0), np.ascontiguousarray(y1), InterpolationConfig(),
                            chroma0=np.ascontiguousarray(uv0), chroma1=np.ascontiguousarray(uv1))
    flow = np.random.default_rng(2).standard_normal((16, 24, 2)).astype(np.float32) * 2
    both, wt = pair._warp(np.ascontiguousarray(uv0), flow, 0.5, None, 0, 16)
    for c in range(2):
        one, wt1 = pair._warp(np.ascontiguousarray(uv0[..., c:c + 1]), flow, 0.5, None, 0, 16)
        assert np.array_equal(both[..., c:c + 1], one) and np.array_equal(wt, wt1)


def test_second_pair_builds_no_new_pixel_grids() -> None:
    # Luma, chroma, flow and splat grids plus a last band: all must stay cached from pair to pair.
    from pmf_edit.video.flow import pixel_grid

    cfg = InterpolationConfig(band_rows=16)  # six grid shapes: luma bands 16, 8; chroma 16, 4; flow; splat
    frames = [textured_u8(40, 64, seed=s) for s in (1, 2, 3)]
    planes = [(np.ascontiguousarray(f[..., :1]), np.ascontiguousarray(f[::2, ::2, 1:])) for f in frames]

    def render(a, b) -> None:
        PairInterpolator(a[0], b[0], cfg, chroma0=a[1], chroma1=b[1]).render_planes(0.5)

    render(planes[0], planes[1])
    misses = pixel_grid.cache_info().misses
    render(planes[1], planes[2])
    assert pixel_grid.cache_info().misses == misses
