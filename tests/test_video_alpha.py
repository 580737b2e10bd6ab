"""Transparent videos (a sticker GIF, RGBA frames, a WebM or ProRes 4444 with alpha) keep their alpha through
`interpolate_video` where the output can hold it, interpolated premultiplied; elsewhere they are written opaque
with a warning that says which outputs would keep it."""
from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image, ImageSequence

from pmf_edit import interpolate_video
from pmf_edit.video.ffmpeg_io import keeps_alpha, probe_video
from pmf_edit.video.files import DetailLostWarning, _rgba8
from pmf_edit.video.interpolate import premultiply

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
RED = (220, 30, 30)
H, W = 48, 64


def _disc(k: int) -> np.ndarray:
    """Frame k of the sticker: an opaque red disc of radius 9 at x = 12 + 8 k on a transparent background."""
    a = np.zeros((H, W, 4), np.uint8)
    yy, xx = np.mgrid[:H, :W]
    a[(xx - (12 + 8 * k)) ** 2 + (yy - 24) ** 2 < 81] = (*RED, 255)
    return a


@pytest.fixture(scope="module")
def sticker(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sticker")
    frames = [Image.fromarray(_disc(k), "RGBA") for k in range(5)]
    frames[0].save(d / "sticker.gif", save_all=True, append_images=frames[1:], duration=100, loop=0, disposal=2)
    return d / "sticker.gif"


def _rgba(path: Path, decoder: tuple[str, ...] = ()) -> np.ndarray:
    """(N, H, W, 4) uint8 frames of a video decoded with its alpha."""
    raw = subprocess.run([FFMPEG, "-v", "error", *decoder, "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgba", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 4)


def _check_middle(frames: np.ndarray) -> None:
    """The in-between frame of source frames 0 and 1: the disc halfway (x = 16), the rest transparent, and
    no dark fringe (premultiplied blending: the transparent pixels' colour never leaks in)."""
    mid = frames[1]
    opaque = mid[..., 3] > 127
    ys, xs = np.nonzero(opaque)
    assert abs(xs.mean() - 16) < 0.6 and abs(ys.mean() - 24) < 0.6
    assert abs(int(opaque.sum()) - int((_disc(0)[..., 3] > 0).sum())) <= 12
    assert (mid[..., 3] < 10).mean() > 0.85
    assert np.abs(mid[opaque][:, :3].astype(int) - RED).mean() < 6


def test_a_sticker_gif_stays_transparent(sticker: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DetailLostWarning)
        res = interpolate_video(sticker, tmp_path / "2x.gif", progress=False, workers=1)
    assert (res.frames_in, res.frames_out) == (5, 9)
    frames = np.stack([np.array(f.convert("RGBA")) for f in ImageSequence.Iterator(Image.open(tmp_path / "2x.gif"))])
    assert len(frames) == 9  # a source frame: as it was (the GIF palette keeps this red exactly)
    src = _disc(0)
    assert np.array_equal(frames[0][..., 3], src[..., 3])
    assert np.array_equal(frames[0][src[..., 3] > 0], src[src[..., 3] > 0])
    _check_middle(frames)


@pytest.mark.parametrize("ext,decoder", [(".webm", ("-c:v", "libvpx-vp9")), (".mkv", ("-c:v", "libvpx-vp9")),
                                         (".mov", ())])
def test_webm_and_prores_keep_the_alpha_and_a_webm_is_read_with_it(sticker: Path, tmp_path: Path, ext, decoder):
    out = tmp_path / f"2x{ext}"
    interpolate_video(sticker, out, progress=False, workers=1)
    _check_middle(_rgba(out, decoder))
    if ext == ".webm":  # ffmpeg's own VP9 decoder drops WebM alpha; the probe switches to libvpx's
        info = probe_video(str(out))
        assert info.pix_fmt == "yuva420p" and info.input_options == ("-c:v", "libvpx-vp9")
        again = tmp_path / "again.gif"
        interpolate_video(out, again, progress=False, workers=1)
        frames = np.stack([np.array(f.convert("RGBA")) for f in ImageSequence.Iterator(Image.open(again))])
        assert (frames[2][..., 3] < 10).mean() > 0.85  # still transparent around the disc


def test_rgba_frames_in_and_out(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for k in range(3):
        Image.fromarray(_disc(k), "RGBA").save(tmp_path / "in" / f"f_{k}.png")
    interpolate_video(str(tmp_path / "in" / "f_%d.png"), str(tmp_path / "out_%02d.png"), progress=False, workers=1)
    frames = [Image.open(tmp_path / f"out_{k:02d}.png") for k in range(5)]  # numbered from the input's first
    assert all(f.mode == "RGBA" for f in frames)
    _check_middle(np.stack([np.array(f) for f in frames]))


def test_an_mp4_is_opaque_and_says_where_the_alpha_would_stay(sticker: Path, tmp_path: Path) -> None:
    with pytest.warns(DetailLostWarning, match=r"the alpha channel \(the output is opaque: \.gif, \.webp, \.apng"):
        interpolate_video(sticker, tmp_path / "2x.mp4", progress=False, workers=1)
    assert keeps_alpha("a.gif") and keeps_alpha("a.webm") and keeps_alpha("f_%03d.png")
    assert keeps_alpha("a.mkv") and not (keeps_alpha("a.mp4") or keeps_alpha("f_%03d.jpg") or keeps_alpha("a.avi"))


def test_premultiplied_round_trip_is_exact_where_visible() -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (32, 32, 4), dtype=np.uint8)
    rgba[:4, :, 3] = 0
    back = _rgba8(premultiply(rgba))
    visible = rgba[..., 3] > 0
    assert np.array_equal(back[visible], rgba[visible])
    assert not back[~visible].any()  # a fully transparent pixel has no colour


def test_interpolate_frames_takes_rgba_straight_alpha() -> None:
    import torch

    from pmf_edit.video import interpolate_frames

    f0, f1 = (torch.from_numpy(_disc(k)).permute(2, 0, 1).float() / 255 for k in (0, 1))  # (4, H, W)
    mid = interpolate_frames(f0, f1, 0.5)
    assert mid.shape == (4, H, W)
    _check_middle(np.stack([_disc(0), (mid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)]))
    assert torch.equal(interpolate_frames(f0, f1, [0.0])[0], f0)


def test_cli_pair_of_transparent_pngs_gives_a_transparent_middle(tmp_path: Path) -> None:
    from apps.cli import main

    for k in (0, 1):
        Image.fromarray(_disc(k), "RGBA").save(tmp_path / f"f{k}.png")
    assert main(["interpolate", str(tmp_path / "f0.png"), str(tmp_path / "f1.png"), "-o", str(tmp_path / "m.png")]) == 0
    mid = Image.open(tmp_path / "m.png")
    assert mid.mode == "RGBA"
    _check_middle(np.stack([_disc(0), np.array(mid)]))


@pytest.mark.parametrize("ext", [".webp", ".apng"])
def test_animated_webp_and_apng_outputs_loop_and_keep_alpha(sticker: Path, tmp_path: Path, ext) -> None:
    """Animated WebP / APNG outputs failed ('ffmpeg wrote no output': libx264 was picked for them)."""
    out = tmp_path / f"2x{ext}"
    assert interpolate_video(sticker, out, progress=False, workers=1).frames_out == 9
    im = Image.open(out)
    assert im.n_frames == 9 and im.info.get("loop") == 0  # loops forever, as the GIF did
    frames = np.stack([np.array(f.convert("RGBA")) for f in ImageSequence.Iterator(im)])
    _check_middle(frames)
    again = tmp_path / f"again{ext}"  # and read back: an animated WebP / APNG is an input too
    assert interpolate_video(out, again, progress=False, workers=1).frames_in == 9


def test_apng_of_a_video_is_its_rgb_exactly(tmp_path: Path) -> None:
    """A YUV video into APNG goes through the accurate RGB decode, not the encoder's own conversion."""
    src = tmp_path / "clip.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=0.5",
                    "-pix_fmt", "yuv420p", "-c:v", "libx264", "-qp", "0", str(src)], check=True)
    interpolate_video(src, tmp_path / "c.apng", progress=False, workers=1, scene_threshold=None)
    first = np.array(next(ImageSequence.Iterator(Image.open(tmp_path / "c.apng"))).convert("RGB"))
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(src), "-frames:v", "1", "-vf",
                          "scale=flags=accurate_rnd+full_chroma_int,format=rgb24", "-f", "rawvideo", "-"],
                         capture_output=True, check=True).stdout
    assert np.array_equal(first, np.frombuffer(raw, np.uint8).reshape(48, 64, 3))


def test_a_still_webp_is_refused_cleanly(tmp_path: Path, capfd) -> None:
    """A still image is refused by name, and no encoder was started to be stopped (libwebp printed 'Cannot
    allocate memory' when stopped without frames)."""
    Image.fromarray(_disc(0)).save(tmp_path / "still.webp")
    with pytest.raises(ValueError, match="has only 1 frame"):
        interpolate_video(tmp_path / "still.webp", tmp_path / "out.webp", progress=False, workers=1)
    assert "Cannot allocate memory" not in capfd.readouterr().err
    assert not (tmp_path / "out.webp").exists()


def test_folder_runs_take_animated_webp_and_apng_not_still_webp(sticker: Path, tmp_path: Path) -> None:
    """A folder run picked up neither (left alone in the fourteenth session): now every APNG and the WebPs
    that are animations; a still WebP photo in the same folder is not a video and is left out."""
    from pmf_edit.video.files import interpolate_videos, is_video_file

    src = tmp_path / "in"
    src.mkdir()
    frames = [Image.fromarray(_disc(k), "RGBA") for k in range(3)]
    frames[0].save(src / "anim.webp", save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    frames[0].save(src / "anim.apng", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(src / "still.webp")
    assert is_video_file(src / "anim.webp") and is_video_file(src / "anim.apng")
    assert not is_video_file(src / "still.webp")
    res = interpolate_videos(src, tmp_path / "out", progress=False, workers=1)
    assert sorted(Path(r.dst).name for r in res.done) == ["anim.apng", "anim.webp"] and not res.failed
    assert Image.open(tmp_path / "out" / "anim.webp").n_frames == 5
