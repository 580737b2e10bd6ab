"""The generative half of VFI: synthetic training scenes, crops, and the tile-wise correction."""
import numpy as np
import pytest
import torch

from core.checkpoint import bundled_model_dir, save_model
from core.model import PixelMeanFlow
from pmf_edit.video import generative as gv
from pmf_edit.video import generative_data as gd
from pmf_edit.video.interpolate import CONFIGS, InterpolationConfig, PairInterpolator


def _stills():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (80, 96, 3), dtype=np.uint8) for _ in range(3)]


def _tiny_net(tile=16):
    torch.manual_seed(0)
    return PixelMeanFlow(gv.model_config(tile=tile, width=32, depth=2, num_heads=2), with_v_head=False).eval()


def test_synthetic_triplet_is_seeded_and_moves():
    a = gd.synthetic_triplet(_stills(), 64, np.random.default_rng(3))
    b = gd.synthetic_triplet(_stills(), 64, np.random.default_rng(3))
    assert a.shape == (3, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a[0].astype(int) - a[2]).mean() > 1  # the scene moved between the outer frames


def test_triplet_crops_shapes_and_hard_half():
    f0, ft, f1 = gd.synthetic_triplet(_stills(), 64, np.random.default_rng(1))
    c = gd.triplet_crops(f0, ft, f1, 0.5, 16, 6, np.random.default_rng(0))
    assert {k: v.shape for k, v in c.items()} == {"a": (6, 16, 16, 3), "b": (6, 16, 16, 3), "m": (6, 16, 16, 1),
                                                   "gt": (6, 16, 16, 3)}
    assert all(v.dtype == np.uint8 for v in c.values())


def test_correct_is_the_plain_blend_where_no_tile_is_drawn():
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(2))
    wa, wb = np.full((40, 50), 0.5, np.float32), np.full((40, 50), 0.5, np.float32)
    out = gv.correct(a, b, wa, wb, net=_tiny_net(), config=gv.GenerativeConfig(threshold=255))
    blend = (a.astype(np.float32) + b) / 2
    assert out.shape == a.shape and out.dtype == np.uint8
    assert np.abs(out - blend).max() <= 0.5 + 1e-3


def test_correct_windows_sum_to_one_everywhere(monkeypatch):
    """A constant residual from every tile reaches every pixel (borders included) exactly once."""
    monkeypatch.setattr(gv, "one_step", lambda net, cond, z, r=0.0: torch.full_like(z, 0.2))  # 0.1 in [0, 1] units
    rng = np.random.default_rng(1)
    a, b = (rng.uniform(0.2, 0.7, (37, 45, 3)).astype(np.float32) for _ in range(2))
    wa, wb = np.full((37, 45), 3.0, np.float32), np.full((37, 45), 1.0, np.float32)
    out = gv.correct(a, b, wa, wb, net=_tiny_net(), config=gv.GenerativeConfig(threshold=0))
    np.testing.assert_allclose(out, 0.75 * a + 0.25 * b + 0.1, atol=1e-5)


@pytest.mark.parametrize("lattices", [1, 2])
def test_windows_sum_to_one_with_either_lattice_count(monkeypatch, lattices):
    monkeypatch.setattr(gv, "one_step", lambda net, cond, z, r=0.0: torch.full_like(z, 0.2))
    a, b = np.full((37, 45, 3), 0.3, np.float32), np.full((37, 45, 3), 0.32, np.float32)  # they disagree a little
    w = np.ones((37, 45), np.float32)
    out = gv.correct(a, b, w, w, net=_tiny_net(), config=gv.GenerativeConfig(threshold=0, lattices=lattices))
    np.testing.assert_allclose(out, 0.41, atol=1e-5)


def test_more_lattices_than_patch_pixels_is_refused():
    a = np.zeros((20, 20, 3), np.float32)
    w = np.ones((20, 20), np.float32)
    with pytest.raises(ValueError, match="lattices=8 exceeds the network's patch size 4"):
        gv.correct(a, a, w, w, net=_tiny_net(), config=gv.GenerativeConfig(lattices=8))
    with pytest.raises(ValueError, match="lattices"):
        gv.GenerativeConfig(lattices=0)


def test_second_lattice_cancels_the_patch_mesh(monkeypatch):
    """A network whose residual has lines on its patch boundaries (every 4th column, as a poorly trained
    patch decoder draws): with two lattices half a patch apart the lines' amplitude halves and the
    period-4 pattern becomes a period-2 one."""
    def mesh_net(net, cond, z, r=0.0):
        line = (torch.arange(z.shape[-1]) % 4 == 0).float()  # (S,) patch boundaries of the tile
        return (0.4 * line).expand_as(z).clone()  # 0.2 in [0, 1] units on the lines

    monkeypatch.setattr(gv, "one_step", mesh_net)
    a, b = np.full((64, 64, 3), 0.49, np.float32), np.full((64, 64, 3), 0.51, np.float32)  # blend 0.5
    w = np.ones((64, 64), np.float32)
    one, two = (gv.correct(a, b, w, w, net=_tiny_net(), config=gv.GenerativeConfig(threshold=0, lattices=k)) - 0.5
                for k in (1, 2))
    inner = (slice(8, 56), slice(8, 56))  # away from the reflected borders
    assert np.isclose(one[inner].max(), 0.2, atol=1e-5) and np.isclose(two[inner].max(), 0.1, atol=1e-5)

    def period4_energy(x):  # squared horizontal gradient folded at period 4: max phase over mean
        g = np.diff(x[inner].mean(-1), axis=1) ** 2
        folded = np.array([g[:, k::4].mean() for k in range(4)])
        return folded.max() / folded.mean()

    assert period4_energy(two) < period4_energy(one)
    assert np.isclose(period4_energy(two), 1.0, atol=1e-6)  # lines every 2 px: flat at period 4


def test_correct_only_draws_where_the_candidates_disagree(monkeypatch):
    monkeypatch.setattr(gv, "one_step", lambda net, cond, z, r=0.0: torch.full_like(z, 0.2))
    a = np.full((64, 64, 3), 0.5, np.float32)
    b = a.copy()
    b[:16, :16] = 0.9  # one corner disagrees by 100 levels
    w = np.ones((64, 64), np.float32)
    out = gv.correct(a, b, w, w, net=_tiny_net(), config=gv.GenerativeConfig(threshold=20))
    blend = (a + b) / 2
    assert np.abs(out - blend)[40:, 40:].max() == 0  # far from the disagreement: the blend, untouched
    assert np.abs(out - blend)[:8, :8].min() > 0.05


def test_correct_checks_its_inputs():
    a = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="expected"):
        gv.correct(a, a[..., :1], np.ones((8, 8), np.float32), np.ones((8, 8), np.float32), net=_tiny_net())
    with pytest.raises(ValueError, match="noise"):
        gv.GenerativeConfig(noise="hot")


def test_load_generative_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no generative VFI model"):
        gv.load_generative(tmp_path / "none")
    with pytest.raises(ValueError, match="not a VFI model"):
        gv.load_generative(bundled_model_dir("mnist"))
    net = _tiny_net()
    save_model(tmp_path / "vfi", net)
    back = gv.load_generative(tmp_path / "vfi")
    assert back.cfg == net.cfg


def test_flow_gen_preset_runs_on_frames(monkeypatch, tmp_path):
    net = _tiny_net(tile=32)
    monkeypatch.setattr(gv, "cached_generative", lambda directory=None: net)
    rng = np.random.default_rng(2)
    f0 = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    f1 = np.roll(f0, 3, axis=1)
    mid = PairInterpolator(f0, f1, CONFIGS["flow-gen"]).render(0.5)
    assert mid.shape == f0.shape and mid.dtype == np.uint8
    with pytest.raises(ValueError, match="choose one"):
        InterpolationConfig(refine=True, generative=True)


def test_noise_modes_pick_the_jump_or_the_instantaneous_field(monkeypatch):
    seen = []

    def fake(net, cond, z, r=0.0):
        seen.append((r, float(z.abs().max())))
        return torch.zeros_like(z)

    monkeypatch.setattr(gv, "one_step", fake)
    a = np.random.default_rng(0).uniform(0, 1, (32, 32, 3)).astype(np.float32)
    w = np.ones((32, 32), np.float32)
    for mode in ("zero", "mean", "sample"):
        gv.correct(a, 1 - a, w, w, net=_tiny_net(), config=gv.GenerativeConfig(threshold=0, noise=mode))
    rs = {r for r, _ in seen[: len(seen) // 3]}, {r for r, _ in seen[len(seen) // 3: 2 * len(seen) // 3]}
    assert rs == ({0.0}, {1.0})  # zero: the jump r = 0; mean: r = t = 1
    assert seen[0][1] == 0 and seen[-1][1] > 0  # zero / mean start from z = 0, sample from noise


def test_bundled_model_loads_and_corrects_a_frame():
    net = gv.load_generative()
    assert net.cfg.cond_channels == 7 and sum(p.numel() for p in net.parameters()) < 2_000_000
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    w = np.ones((40, 40), np.float32)
    out = gv.correct(a, a[::-1].copy(), w, w, net=net, config=gv.GenerativeConfig(threshold=0))
    assert out.shape == a.shape and out.dtype == np.uint8
