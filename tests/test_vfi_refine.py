"""The learned VFI refinement: bundled weights load, shapes, endpoints, identity at init, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pmf_edit import interpolate_frames
from pmf_edit.interpolate import CONFIGS, InterpolationConfig, PairInterpolator
from pmf_edit.vfi_refine import WEIGHTS, RefineConfig, RefineNet, load_refiner, refine, save_refiner


def textured(c: int = 3, h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)


def test_bundled_weights_load_and_are_small() -> None:
    net = load_refiner()
    assert isinstance(net, RefineNet) and not net.training
    assert sum(p.numel() for p in net.parameters()) < 100_000
    assert load_refiner() is net  # cached


def test_missing_weights_name_the_path(tmp_path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_refiner(str(missing))


def test_save_load_round_trip_keeps_config(tmp_path) -> None:
    net = RefineNet(RefineConfig(width=8, down=2, depth=2))
    torch.nn.init.normal_(net.body[-2].weight, std=0.1)
    path = str(tmp_path / "r.safetensors")
    save_refiner(net, path)
    back = load_refiner(path)
    assert back.cfg == net.cfg
    x = torch.rand(1, 3, 8, 10)
    m = torch.rand(1, 1, 8, 10)
    assert torch.allclose(back(x, x.flip(-1), m), net(x, x.flip(-1), m))


def test_untrained_net_is_the_plain_blend() -> None:
    # The last layer starts at zero, so refine() must reproduce render() of the unrefined method.
    rng = np.random.default_rng(0)
    f0 = (rng.random((21, 30, 3)) * 255).astype(np.uint8)
    f1 = np.roll(f0, 2, axis=1)
    pair = PairInterpolator(f0, f1, InterpolationConfig())
    out = refine(*pair.warps(0.3), net=RefineNet(RefineConfig(width=4, depth=2)), band_rows=8)
    assert out.shape == f0.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - pair.render(0.3)).max() <= 1  # rounding only


@pytest.mark.parametrize("shape", [(3, 33, 47), (2, 3, 20, 24), (1, 31, 40)])
def test_refine_option_shapes_endpoints_and_range(shape: tuple[int, ...]) -> None:
    f0, f1 = torch.rand(shape), torch.rand(shape)
    out = interpolate_frames(f0, f1, [0.0, 0.5, 1.0], config=CONFIGS["flow-refine"])
    assert out.shape == (3, *shape)
    assert torch.equal(out[0], f0) and torch.equal(out[2], f1)
    assert out.min() >= 0 and out.max() <= 1


def test_refine_keeps_a_translation() -> None:
    f0 = textured(w=96)
    f1 = torch.roll(f0, 4, dims=-1)
    mid = interpolate_frames(f0, f1, 0.5, config=CONFIGS["flow-refine"])
    err = (mid - torch.roll(f0, 2, dims=-1))[:, 8:-8, 12:-12].abs().mean().item()
    assert err < 1e-2


def test_refine_bad_input() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    w = np.ones((8, 8), np.float32)
    with pytest.raises(ValueError, match=r"\(8, 8, 1\)"):
        refine(a[..., :1], a[..., :1], w, w)
    with pytest.raises(ValueError, match=r"\(8, 7\)"):
        refine(a, a, w[:, :7], w[:, :7])


def test_weights_file_is_bundled() -> None:
    assert WEIGHTS.endswith("core/assets/vfi_refiner.safetensors")
