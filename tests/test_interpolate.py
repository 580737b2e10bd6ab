"""Frame-pair interpolation: exactness on translations, endpoints, shapes, configs, bad input."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pmf_edit import interpolate_frames
from pmf_edit.flow import splat
from pmf_edit.interpolate import CONFIGS, InterpolationConfig, PairInterpolator


def textured(c: int = 3, h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth random texture (C, H, W) in [0, 1]: structure DIS can track, unlike white noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)


@pytest.mark.parametrize("name", ["flow", "flow-medium", "flow-fast", "plain-warp"])
def test_pure_translation_is_exact_away_from_borders(name: str) -> None:
    # A 4-pixel shift: the frame at t=0.5 is the 2-pixel shift, exactly (integer flow, no resampling blur).
    f0 = textured(w=96)
    f1 = torch.roll(f0, 4, dims=-1)
    mid = interpolate_frames(f0, f1, 0.5, config=CONFIGS[name])
    want = torch.roll(f0, 2, dims=-1)
    err = (mid - want)[:, 8:-8, 12:-12].abs().max().item()
    assert err < 2e-2, f"{name}: max error {err:.4f}"


def test_splat_matches_a_direct_bilinear_scatter() -> None:
    # Reference: every source pixel adds weight * bilinear kernel to the up-to-4 pixels around its
    # target; corners outside the picture are dropped (targets far outside included).
    rng = np.random.default_rng(0)
    h, w = 7, 9
    vals = rng.random((h, w, 2), dtype=np.float32)
    flow = (rng.standard_normal((h, w, 2)) * 3).astype(np.float32)
    flow[0, 0] = (-50.0, 2.0)
    flow[1, 1] = (0.0, 40.0)
    weight = rng.random((h, w), dtype=np.float32)
    num_ref, den_ref = np.zeros((h, w, 2)), np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            tx, ty = x + flow[y, x, 0], y + flow[y, x, 1]
            x0, y0 = int(np.floor(tx)), int(np.floor(ty))
            for xx, yy in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
                k = (1 - abs(tx - xx)) * (1 - abs(ty - yy)) * weight[y, x]
                if 0 <= xx < w and 0 <= yy < h:
                    num_ref[yy, xx] += k * vals[y, x]
                    den_ref[yy, xx] += k
    num, den = splat(vals, flow, weight)
    assert np.allclose(num, num_ref, atol=1e-5) and np.allclose(den, den_ref, atol=1e-5)


def test_translation_beats_linear_blend_at_quarter_time() -> None:
    f0 = textured(w=96, seed=1)
    f1 = torch.roll(f0, 4, dims=-1)
    out = interpolate_frames(f0, f1, [0.25, 0.75])
    for t, frame in zip((1, 3), out):
        want = torch.roll(f0, t, dims=-1)[:, 8:-8, 12:-12]
        flow_err = (frame[:, 8:-8, 12:-12] - want).abs().mean()
        blend = interpolate_frames(f0, f1, t / 4, config=CONFIGS["linear"])[:, 8:-8, 12:-12]
        assert flow_err < 0.25 * (blend - want).abs().mean()


def test_endpoints_are_exact() -> None:
    f0, f1 = textured(seed=2).double(), textured(seed=3).double()
    out = interpolate_frames(f0, f1, [0.0, 1.0])
    assert torch.equal(out[0], f0) and torch.equal(out[1], f1)
    assert out.dtype == torch.float64


@pytest.mark.parametrize("shape", [(3, 48, 64), (1, 3, 33, 47), (2, 1, 17, 23), (1, 31, 40)])
def test_shapes_odd_sizes_gray_and_batches(shape: tuple[int, ...]) -> None:
    f0 = torch.rand(shape)
    f1 = torch.rand(shape)
    single = interpolate_frames(f0, f1, 0.3)
    several = interpolate_frames(f0, f1, [0.2, 0.5, 0.9])
    assert single.shape == shape and several.shape == (3, *shape)
    assert single.min() >= 0 and single.max() <= 1


def test_flow_scale_and_bands_do_not_change_a_translation() -> None:
    f0 = textured(h=64, w=96, seed=4)
    f1 = torch.roll(f0, 4, dims=-1)
    a = interpolate_frames(f0, f1, 0.5, config=InterpolationConfig(band_rows=7))
    b = interpolate_frames(f0, f1, 0.5, config=InterpolationConfig(flow_scale=0.5))
    want = torch.roll(f0, 2, dims=-1)[:, 8:-8, 12:-12]
    assert (a[:, 8:-8, 12:-12] - want).abs().max() < 2e-2
    assert (b[:, 8:-8, 12:-12] - want).abs().mean() < 2e-2


def test_batch_items_are_independent() -> None:
    f0 = torch.stack([textured(seed=5), textured(seed=6)])
    f1 = torch.roll(f0, 3, dims=-1)
    both = interpolate_frames(f0, f1, 0.5)
    one = interpolate_frames(f0[1:], f1[1:], 0.5)
    assert torch.allclose(both[1:], one)


@pytest.mark.parametrize(
    "f0, f1, times, match",
    [
        (torch.rand(3, 8, 8), torch.rand(3, 8, 9), 0.5, r"same shape.*\(3, 8, 8\).*\(3, 8, 9\)"),
        (torch.rand(8, 8), torch.rand(8, 8), 0.5, r"got shape \(8, 8\)"),
        (torch.rand(2, 8, 8), torch.rand(2, 8, 8), 0.5, r"C in \{1, 3, 4\} \(grey, RGB, RGBA\)"),
        (torch.randint(0, 255, (3, 8, 8)), torch.randint(0, 255, (3, 8, 8)), 0.5, "dtype torch.int64"),
        (torch.rand(3, 8, 8) * 255, torch.rand(3, 8, 8), 0.5, r"must lie in \[0, 1\], got values in"),
        (torch.rand(3, 8, 8), torch.rand(3, 8, 8), 1.5, "got 1.5"),
        (torch.rand(3, 8, 8), torch.rand(3, 8, 8), [0.5, -0.1], "got -0.1"),
        (torch.rand(3, 8, 8), torch.rand(3, 8, 8), [], "empty"),
        (np.zeros((3, 8, 8), np.float32), torch.rand(3, 8, 8), 0.5, "torch.Tensor"),
    ],
)
def test_bad_input_errors(f0, f1, times, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):  # TypeError: not a tensor at all
        interpolate_frames(f0, f1, times)


def test_nan_input_is_rejected() -> None:
    f0 = torch.rand(3, 8, 8)
    f0[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="holds NaN"):
        interpolate_frames(f0, torch.rand(3, 8, 8), 0.5)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="preset"):
        InterpolationConfig(preset="slow")
    with pytest.raises(ValueError, match="flow_scale"):
        InterpolationConfig(flow_scale=0.0)
    with pytest.raises(ValueError, match="splat_scale"):
        InterpolationConfig(splat_scale=1.5)
    with pytest.raises(ValueError, match="finest_scale"):
        InterpolationConfig(finest_scale=-1)


def test_uint8_path_matches_float_path() -> None:
    # pmf_edit.video hands uint8 frames straight to PairInterpolator; it must agree with the float path.
    f0 = (textured(h=40, w=72, seed=7).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    f1 = np.roll(f0, 3, axis=1)
    for name in ("flow", "flow-fast", "linear"):
        u8 = PairInterpolator(f0, f1, CONFIGS[name])
        fl = PairInterpolator(f0.astype(np.float32) / 255, f1.astype(np.float32) / 255, CONFIGS[name])
        out = u8.render(0.4)
        assert out.dtype == np.uint8 and out.shape == f0.shape
        assert np.abs(out.astype(np.float32) - fl.render(0.4) * 255).mean() < 1.0, name
        assert np.array_equal(u8.render(0.0), f0) and np.array_equal(u8.render(1.0), f1)


def test_warps_blend_to_render() -> None:
    f0 = textured(h=40, w=72, seed=8).permute(1, 2, 0).numpy()
    f1 = np.ascontiguousarray(np.roll(f0, 3, axis=1))
    pair = PairInterpolator(f0, f1, InterpolationConfig())
    a, b, wa, wb = pair.warps(0.25)
    assert a.shape == b.shape == f0.shape and wa.shape == wb.shape == f0.shape[:2]
    assert (wa > 0).all() and (wb > 0).all()
    blend = (wa[..., None] * a + wb[..., None] * b) / (wa + wb)[..., None]
    assert np.abs(np.clip(blend, 0, 1) - pair.render(0.25)).max() < 1e-4


def test_pair_interpolator_rejects_mixed_inputs() -> None:
    with pytest.raises(ValueError, match="uint8"):
        PairInterpolator(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float32), InterpolationConfig())


def _shifted(shifts: list[float], seed: int = 3) -> list[np.ndarray]:
    """(64, 160, 3) float32 frames of one smooth texture moved right by each shift in pixels (sub-pixel
    shifts sampled from a wider canvas, so no border enters the middle of the picture)."""
    import cv2

    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 8, 32, generator=g)  # features about 8 px wide: DIS tracks them at half size
    tex = torch.nn.functional.interpolate(coarse, size=(64, 256), mode="bicubic", align_corners=False)[0]
    tex = tex.clamp(0, 1).permute(1, 2, 0).numpy()  # (64, 256, 3)
    return [cv2.warpAffine(tex, np.float32([[1, 0, 48 - s], [0, 1, 0]]), (160, 64),  # x samples x + 48 - s
                           flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
            for s in shifts]


def _accelerating(taus: list[float], v: float = 4.0, a: float = 4.0, seed: int = 3) -> list[np.ndarray]:
    """Frames of constant acceleration: shifted by v tau + a tau^2 / 2 pixels at each time tau."""
    return _shifted([v * tau + a * tau * tau / 2 for tau in taus], seed)


CROP = (slice(8, -8), slice(24, -24))


def _position(img: np.ndarray) -> float:
    """The shift (0.02 px grid, 0 to 10 px) whose frame is closest to `img` in the middle crop."""
    grid = np.arange(0, 10, 0.02)
    errs = [float(((img - ref)[CROP] ** 2).mean()) for ref in _shifted(list(grid))]
    return float(grid[int(np.argmin(errs))])


@pytest.mark.parametrize("t,name", [(0.25, "flow"), (0.5, "flow"), (0.75, "flow"), (0.5, "flow-fast-curved")])
def test_neighbours_bend_the_motion_to_the_true_parabola(t: float, name: str) -> None:
    # Constant acceleration: positions 4 tau + 2 tau^2 at tau = -1, 0, 1, 2 (-2, 0, 6, 16 px). The straight
    # line from frame 0 to frame 1 misses the true position at t by 2 (t - t^2) px (0.5 px at t = 0.5);
    # the parabola through the neighbours' flows lands on it.
    fm1, f0, f1, f2 = _accelerating([-1, 0, 1, 2])
    truth = _accelerating([t])[0]
    # flow: splatted flow reversal; flow-fast (straight by default) with acceleration: t-scaled opposite flows
    cfg = CONFIGS[name] if name in CONFIGS else replace(CONFIGS["flow-fast"], acceleration=True)
    pairs = [PairInterpolator(x, y, cfg) for x, y in ((fm1, f0), (f0, f1), (f1, f2))]
    linear = pairs[1].render(t)
    pairs[1].use_neighbours(pairs[0], pairs[2])
    curved = pairs[1].render(t)
    want = 4 * t + 2 * t * t
    err_lin, err_cur = abs(_position(linear) - want), abs(_position(curved) - want)
    assert err_lin > 0.8 * 2 * (t - t * t), err_lin  # the straight line really is off (by 2 (t - t^2) px)
    assert err_cur < 0.1, (err_cur, err_lin)
    mse = lambda x: float(((x - truth)[CROP] ** 2).mean())  # noqa: E731
    assert mse(curved) < 0.5 * mse(linear), (mse(curved), mse(linear))


def test_neighbours_on_one_side_only_and_switches() -> None:
    fm1, f0, f1, f2 = _accelerating([-1, 0, 1, 2])
    cfg = InterpolationConfig()
    before, pair, after = (PairInterpolator(x, y, cfg) for x, y in ((fm1, f0), (f0, f1), (f1, f2)))
    linear = pair.render(0.5)
    for b, a in ((before, None), (None, after)):
        pair.use_neighbours(b, a)
        one_side = pair.render(0.5)
        assert not np.array_equal(one_side, linear)  # one side's pixels bend, the other side's stay straight
    pair.use_neighbours(None, None)
    np.testing.assert_array_equal(pair.render(0.5), linear)  # no neighbours: the linear path, bit for bit
    off = PairInterpolator(f0, f1, InterpolationConfig(acceleration=False))
    off.use_neighbours(PairInterpolator(fm1, f0, InterpolationConfig(acceleration=False)), None)
    np.testing.assert_array_equal(off.render(0.5), linear)
    np.testing.assert_array_equal(pair.render(0.0), f0)  # endpoints stay exact
    small = PairInterpolator(f0[:32, :64], f1[:32, :64], cfg)
    with pytest.raises(ValueError, match="one video at one size"):
        pair.use_neighbours(small, None)
    with pytest.raises(ValueError, match="accel_rel"):
        InterpolationConfig(accel_rel=-1.0)


def test_unreliable_acceleration_is_limited() -> None:
    # A neighbour from another scene (a cut the detector missed): its flow is garbage, and the limits
    # (|a| <= accel_rel |f| + slack, damped by forward-backward inconsistency) keep the frame close to
    # the straight-line one instead of tearing it.
    fm1, f0, f1, f2 = _accelerating([-1, 0, 1, 2])
    other = _accelerating([0.0], seed=9)[0][:, ::-1].copy()  # another scene
    cfg = InterpolationConfig()
    pair = PairInterpolator(f0, f1, cfg)
    linear = pair.render(0.5)
    pair.use_neighbours(PairInterpolator(other, f0, cfg), None)
    limited = pair.render(0.5)
    loose = PairInterpolator(f0, f1, InterpolationConfig(accel_rel=1e6, accel_fb=0.0))
    loose.use_neighbours(PairInterpolator(other, f0, loose.cfg), None)
    truth = _accelerating([0.5])[0]
    err = lambda x: float(np.abs(x - truth)[CROP].mean())  # noqa: E731
    assert err(limited) < err(loose.render(0.5)), (err(limited), err(loose.render(0.5)))
    assert err(limited) < 1.5 * err(linear) + 0.01, (err(limited), err(linear))


def test_interpolate_frames_with_neighbouring_frames() -> None:
    # The tensor API takes the frames around the pair: a batch of two clips, the same parabola as above.
    fm1, f0, f1, f2 = (torch.from_numpy(x).permute(2, 0, 1) for x in _accelerating([-1, 0, 1, 2]))
    batch = lambda x: torch.stack([x, x])  # noqa: E731
    mid = interpolate_frames(batch(f0), batch(f1), 0.5, before=batch(fm1), after=batch(f2))
    straight = interpolate_frames(f0, f1, 0.5)
    got = [_position(m.permute(1, 2, 0).numpy()) for m in mid]
    assert all(abs(g - 2.5) < 0.1 for g in got), got  # 4 t + 2 t^2 at t = 1/2
    assert abs(_position(straight.permute(1, 2, 0).numpy()) - 2.5) > 0.4
    one_side = interpolate_frames(f0, f1, [0.5], after=f2)
    assert one_side.shape == (1, 3, 64, 160)
    with pytest.raises(ValueError, match="before must have frame0's shape"):
        interpolate_frames(f0, f1, 0.5, before=f0[:, :32])
    with pytest.raises(ValueError, match=r"after must lie in \[0, 1\]"):
        interpolate_frames(f0, f1, 0.5, after=f2 * 3)
