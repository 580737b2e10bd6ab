"""The learned choice between the two warped frames (`flow-select`): weights, identity at init, bands,
evidence maps, config checks, the video path, and that the shipped weights beat the plain blend where
a sprite hides the background."""
from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from pmf_edit import interpolate_frames
from pmf_edit.video import generative_data as gd
from pmf_edit.video.files import interpolate_video
from pmf_edit.video.interpolate import CONFIGS, InterpolationConfig, PairInterpolator
from pmf_edit.video.select import NUM_MAPS, SelectConfig, SelectNet, load_selector, save_selector, select


def random_pair(h: int = 45, w: int = 62, shift: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    small = (rng.random((h // 4 + 1, w // 4 + 1, 3)) * 255).astype(np.uint8)
    f0 = np.ascontiguousarray(np.kron(small, np.ones((4, 4, 1), np.uint8))[:h, :w])
    return f0, np.roll(f0, shift, axis=1)


def random_net(seed: int = 0) -> SelectNet:
    torch.manual_seed(seed)
    net = SelectNet(SelectConfig(width=6, dilations="1,2,4,8,1"))
    torch.nn.init.normal_(net.body[-1].weight, std=20.0)  # the last layer starts at zero: make it do something
    return net.eval()


def test_bundled_weights_load_and_are_small() -> None:
    net = load_selector()
    assert isinstance(net, SelectNet) and not net.training
    assert sum(p.numel() for p in net.parameters()) < 100_000
    assert load_selector() is net  # cached


def test_missing_weights_name_the_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_selector(str(tmp_path / "nope.safetensors"))


def test_save_load_round_trip_keeps_config(tmp_path) -> None:
    net = random_net()
    path = str(tmp_path / "s.safetensors")
    save_selector(net, path)
    back = load_selector(path)
    assert back.cfg == net.cfg
    a, b, m, maps = torch.rand(1, 3, 10, 14), torch.rand(1, 3, 10, 14), torch.rand(1, 1, 10, 14), torch.rand(1, 6, 5, 7)
    assert torch.allclose(back(a, b, m, maps), net(a, b, m, maps))


def test_untrained_net_is_the_plain_blend() -> None:
    f0, f1 = random_pair()
    pair = PairInterpolator(f0, f1, InterpolationConfig())
    out = select(*pair.warps(0.3), pair.evidence(0.3), net=SelectNet(SelectConfig(width=4)).eval())
    assert out.shape == f0.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - pair.render(0.3)).max() <= 1  # rounding only


def test_bands_give_the_whole_frame_result() -> None:
    # Each band is run with MARGIN rows of context, more than the network reaches: bands change nothing.
    f0, _ = random_pair(h=77)
    f1 = (np.random.default_rng(1).random(f0.shape) * 255).astype(np.uint8)  # unrelated: the warps differ
    pair = PairInterpolator(f0.astype(np.float32) / 255, f1.astype(np.float32) / 255, InterpolationConfig())
    args = (*pair.warps(0.5), pair.evidence(0.5))
    whole = select(*args, net=random_net(), band_rows=512)
    banded = select(*args, net=random_net(), band_rows=10)
    assert np.abs(whole - pair.render(0.5)).max() > 1e-2  # the random net does move the shares
    assert np.abs(whole - banded).max() < 1e-5


def test_evidence_maps_of_a_static_pair() -> None:
    # Identical frames: every pixel lands once from each frame, the flows agree, the matches are exact.
    f0, _ = random_pair()
    pair = PairInterpolator(f0, f0.copy(), InterpolationConfig())
    maps = pair.evidence(0.5)
    assert maps.shape == (pair.h, pair.w, NUM_MAPS) and maps.dtype == np.float32
    inner = maps[2:-2, 2:-2]
    assert np.abs(inner[..., :2]).max() < 0.05  # forward-backward inconsistency ~ 0
    assert np.abs(inner[..., 2:4]).max() < 0.05  # log confidence ~ 0
    assert np.abs(inner[..., 4:] - 1).max() < 0.05  # one pixel of each frame per pixel


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="reverse_flow"):
        InterpolationConfig(select=True, reverse_flow=False)
    with pytest.raises(ValueError, match="choose one"):
        InterpolationConfig(select=True, refine=True)
    f0, f1 = random_pair()
    with pytest.raises(ValueError, match="RGB"):
        PairInterpolator(f0[..., :1], f1[..., :1], CONFIGS["flow-select"], chroma0=f0[::2, ::2, :2],
                         chroma1=f1[::2, ::2, :2])
    with pytest.raises(ValueError, match="evidence maps"):
        pair = PairInterpolator(f0, f1, InterpolationConfig())
        select(*pair.warps(0.5), np.zeros((4, 4, 3), np.float32))


def test_preset_through_the_tensor_api_keeps_endpoints() -> None:
    f0, f1 = torch.rand(3, 33, 47), torch.rand(3, 33, 47)
    out = interpolate_frames(f0, f1, [0.0, 0.5, 1.0], config=CONFIGS["flow-select"])
    assert out.shape == (3, 3, 33, 47)
    assert torch.equal(out[0], f0) and torch.equal(out[2], f1)
    assert out.min() >= 0 and out.max() <= 1


def test_preset_on_the_video_path(tmp_path) -> None:
    src = tmp_path / "clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=64x48:rate=10:duration=0.5", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)],
                   check=True)
    res = interpolate_video(src, tmp_path / "out.mp4", factor=2, progress=False, workers=1, config=CONFIGS["flow-select"])
    assert res.frames_out == 2 * res.frames_in - 1


def test_shipped_selector_beats_the_blend_where_sprites_occlude() -> None:
    # Synthetic scenes of the training kind (moving background, sprites that hide and uncover it), drawn
    # with a seed the training never used: the shipped network must lower the error of the plain blend.
    rng = np.random.default_rng(12345)
    stills = gd.offline_stills()
    err_blend = err_select = 0.0
    for _ in range(12):
        f0, ft, f1 = gd.synthetic_triplet(stills, 128, rng)
        pair = PairInterpolator(f0, f1, InterpolationConfig())
        err_blend += float(np.mean((pair.render(0.5).astype(np.float64) - ft) ** 2))
        err_select += float(np.mean((select(*pair.warps(0.5), pair.evidence(0.5)).astype(np.float64) - ft) ** 2))
    assert err_select < 0.97 * err_blend
