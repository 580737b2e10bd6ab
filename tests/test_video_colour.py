"""Colour exactness of the video path: decode -> interpolate -> encode must not shift levels or retag.

The clips are encoded losslessly (x264 crf 0), so any difference is ours: a 1-level shift (ffmpeg's
default truncating yuv -> rgb conversion gives about -1 level) fails these tests.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from pmf_edit import interpolate_video
from pmf_edit.video import files as video_files
from pmf_edit.video import ffmpeg_io as video_io
from pmf_edit.video.interpolate import CONFIGS
from pmf_edit.video.ffmpeg_io import probe_video, yuv_to_rgb

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
W, H = 64, 48


def raw_frames(path: Path, pix_fmt: str, vf: str | None = None) -> np.ndarray:
    """Every frame of `path` as raw bytes in `pix_fmt`, (F, bytes per frame) uint8."""
    cmd = [FFMPEG, "-v", "error", "-i", str(path)] + (["-vf", vf] if vf else []) + [
        "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]
    data = np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, np.uint8)
    n = {"yuv420p": W * H * 3 // 2, "yuvj420p": W * H * 3 // 2, "rgb24": W * H * 3}[pix_fmt]
    return data.reshape(-1, n)


def make_clip(path: Path, pix_fmt: str, tags: list[str], frames: int = 6) -> None:
    """A lossless clip whose frames all show the same picture: a gradient over three flat colour stripes.

    The frames are identical, so every in-between frame must equal them too (the flow is zero)."""
    x = np.linspace(0, 1, W, dtype=np.float32)
    img = np.empty((H, W, 3), np.uint8)
    img[:] = (np.stack([x, 1 - x, 0.5 + 0 * x], -1) * 220 + 16).astype(np.uint8)  # horizontal gradient
    img[24:, :21] = (200, 40, 40)  # flat red
    img[24:, 21:42] = (30, 160, 90)  # flat green
    img[24:, 42:] = (120, 120, 230)  # flat blue
    # rgb -> YCbCr (bt709, accurate rounding) first, then encode the raw planes: only `tags` tag the clip.
    yuv = subprocess.run([FFMPEG, "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-i", "-",
                          "-vf", f"scale=out_color_matrix=bt709:flags=accurate_rnd,format={pix_fmt}",
                          "-f", "rawvideo", "-"], input=img.tobytes(), capture_output=True, check=True).stdout
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{W}x{H}",
                    "-r", "10", "-i", "-", "-c:v", "libx264", "-crf", "0", *tags, str(path)],
                   input=yuv * frames, check=True)


@pytest.mark.parametrize("pix_fmt,tags,expect", [
    ("yuv420p", ["-colorspace", "bt709", "-color_range", "tv"], ("tv", "bt709")),
    ("yuv420p", [], (None, None)),  # untagged stays untagged
    ("yuvj420p", ["-colorspace", "smpte170m", "-color_range", "pc"], ("pc", "smpte170m")),
])
def test_planar_path_is_bit_exact_and_keeps_tags(tmp_path: Path, pix_fmt: str, tags: list[str], expect) -> None:
    src, out = tmp_path / "src.mp4", tmp_path / "out.mp4"
    make_clip(src, pix_fmt, tags)
    info = probe_video(str(src))
    assert (info.color_range, info.color_space) == expect and info.pix_fmt == pix_fmt
    res = interpolate_video(src, out, factor=2, quality=10, progress=False, workers=1)  # quality 10: crf 0
    assert res.frames_out == 2 * res.frames_in - 1
    got, ref = raw_frames(out, pix_fmt), raw_frames(src, pix_fmt)
    assert got.shape[0] == res.frames_out
    np.testing.assert_array_equal(got[0::2], ref)  # untouched source frames: the very same YUV values
    np.testing.assert_array_equal(got[1::2], ref[:-1])  # still picture: in-between frames equal it too
    out_info = probe_video(str(out))
    assert (out_info.color_range, out_info.color_space, out_info.pix_fmt) == (*expect, pix_fmt)


def rgb_round_trip(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(output frames, source frames) as rgb24 bytes, (F, H * W * 3) float64, after `interpolate_video`
    on the rgb path (the learned refinement takes it)."""
    src, out = tmp_path / "src.mp4", tmp_path / "out.mp4"
    make_clip(src, "yuv420p", ["-colorspace", "bt709", "-color_range", "tv"])
    interpolate_video(src, out, factor=2, quality=10, progress=False, workers=1, config=CONFIGS["flow-refine"])
    assert probe_video(str(out)).color_space == "bt709"
    vf = "scale=in_color_matrix=bt709:in_range=tv:flags=accurate_rnd+full_chroma_int,format=rgb24"
    return raw_frames(out, "rgb24", vf).astype(np.float64), raw_frames(src, "rgb24", vf).astype(np.float64)


def check_levels(got: np.ndarray, ref: np.ndarray) -> None:
    """Source and in-between frames of `got` match `ref` level for level away from colour edges (where
    4:2:0 chroma is resampled on its way through RGB). A truncating conversion shifts about -1 level."""
    mask = np.zeros((H, W), bool)
    mask[:18] = mask[30:, :15] = mask[30:, 27:36] = mask[30:, 48:] = True
    mask = np.repeat(mask.reshape(-1), 3)  # per rgb24 byte
    for frames in (got[0::2], got[1::2]):  # source frames, in-between frames
        diff = (frames - ref[:len(frames)])[:, mask]
        assert abs(diff.mean()) < 0.25, f"mean level shift {diff.mean():.3f}"
        assert np.abs(diff).mean() < 0.5, f"mean abs difference {np.abs(diff).mean():.3f}"


def test_rgb_path_has_no_level_shift(tmp_path: Path) -> None:
    check_levels(*rgb_round_trip(tmp_path))


def test_level_check_catches_a_one_level_shift(tmp_path: Path, monkeypatch) -> None:
    # The same run with every decoded level raised by 1 must fail `check_levels`.
    orig = video_io.read_frames

    def shifted(*args, **kwargs):
        meta, frames = orig(*args, **kwargs)
        return meta, (cv2.add(f, 1) for f in frames)

    monkeypatch.setattr(video_files, "read_frames", shifted)
    with pytest.raises(AssertionError, match="mean level shift"):
        check_levels(*rgb_round_trip(tmp_path))


def test_yuv_to_rgb_thumbnail_matches_ffmpeg() -> None:
    # Scene-cut thumbnails are converted in Python; they must agree with ffmpeg's accurate conversion.
    rng = np.random.default_rng(0)
    yuv = np.stack([rng.integers(16, 236, (8, 8)), rng.integers(16, 241, (8, 8)), rng.integers(16, 241, (8, 8))],
                   -1).astype(np.uint8)  # (8, 8, 3) limited-range Y, Cb, Cr
    planar = np.concatenate([yuv[..., c].ravel() for c in range(3)]).tobytes()
    ref = subprocess.run([FFMPEG, "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv444p", "-s", "8x8", "-i", "-",
                          "-vf", "scale=in_color_matrix=bt709:in_range=tv:flags=accurate_rnd+full_chroma_int,"
                          "format=rgb24", "-f", "rawvideo", "-"], input=planar, capture_output=True, check=True).stdout
    ref = np.frombuffer(ref, np.uint8).reshape(8, 8, 3).astype(int)
    assert np.abs(yuv_to_rgb(yuv, "bt709", full_range=False).astype(int) - ref).max() <= 1


@pytest.mark.parametrize("path_name", ["planar", "rgb"])
@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_phone_clip_comes_out_turned_like_the_input(tmp_path: Path, path_name: str, rotation: int) -> None:
    """A clip with a display rotation (a portrait phone video) is processed as stored and written with the
    same rotation: a player shows the output upright, frame for frame as the input. Before, ffmpeg turned
    the frames while they were read at the stored size, which scrambled their rows."""
    plain, src, out = tmp_path / "plain.mp4", tmp_path / "src.mp4", tmp_path / "out.mp4"
    make_clip(plain, "yuv420p", ["-colorspace", "bt709", "-color_range", "tv"])
    subprocess.run([FFMPEG, "-v", "error", "-y", "-display_rotation", str(rotation), "-i", str(plain), "-c", "copy",
                    str(src)], check=True)
    info = probe_video(str(src))
    assert info.rotation == pytest.approx(rotation) or info.rotation == pytest.approx(rotation - 360)
    config = CONFIGS["flow-refine"] if path_name == "rgb" else None  # the refinement takes the rgb path
    res = interpolate_video(src, out, factor=2, quality=10, progress=False, workers=1, config=config)
    assert probe_video(str(out)).rotation == info.rotation and probe_video(str(out)).width == W

    def shown(path: Path) -> np.ndarray:  # what a player shows: ffmpeg's autorotated decode, (F, h, w, 3)
        data = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-vf", "scale=in_color_matrix=bt709:"
                               "in_range=tv:flags=accurate_rnd+full_chroma_int,format=rgb24", "-f", "rawvideo",
                               "-"], capture_output=True, check=True).stdout
        h, w = (W, H) if abs(rotation) == 90 else (H, W)
        return np.frombuffer(data, np.uint8).reshape(-1, h, w, 3).astype(np.float64)

    got, ref = shown(out), shown(src)
    assert got.shape[0] == res.frames_out
    assert np.abs(got - ref[:1]).mean() < 1.0  # every frame (the still picture) shown as the input shows it


def test_rgb_coded_source_and_anamorphic_pixels(tmp_path: Path) -> None:
    """An RGB-coded clip (libx264rgb: gbrp, colour space "gbr") goes through the rgb path to yuv420p tagged
    with the matrix it was written in (it was refused by the encoder: "-colorspace gbr" on a YUV output);
    non-square pixels (SAR 32:27, an anamorphic DVD frame) keep their shape, so the picture keeps its 16:9."""
    rgb, ana = tmp_path / "rgb.mp4", tmp_path / "ana.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=0.5",
                    "-pix_fmt", "gbrp", "-c:v", "libx264rgb", str(rgb)], check=True)
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=72x48:rate=10:duration=0.5",
                    "-vf", "setsar=32/27", "-pix_fmt", "yuv420p", "-c:v", "libx264", str(ana)], check=True)
    assert probe_video(str(rgb)).rgb_coded and probe_video(str(ana)).sar == (32, 27)
    for src in (rgb, ana):
        out = tmp_path / f"{src.stem}_2x.mp4"
        res = interpolate_video(src, out, factor=2, progress=False, workers=1)
        assert res.frames_out == 2 * res.frames_in - 1
        info = probe_video(str(out))
        if src == rgb:
            assert (info.pix_fmt, info.color_space, info.color_range) == ("yuv420p", "smpte170m", "tv")
            got, ref = raw_frames(out, "rgb24"), raw_frames(src, "rgb24")
            assert np.abs(got[0].astype(float) - ref[0]).mean() < 6  # the same picture (4:2:0 chroma aside)
        else:
            assert info.sar == (32, 27) and (info.width, info.height) == (72, 48)


def test_ten_bit_planar_path_keeps_ten_bits(tmp_path: Path) -> None:
    """10-bit sources (HDR phone footage: yuv420p10le) went through the 8-bit rgb path; they now stay planar
    at 10 bits: source frames come back sample for sample (a lossless encode), in-between frames of a still
    picture equal it, and by default the output is HEVC Main 10 tagged hvc1 (H.264 High 10 plays on few
    devices)."""
    src, out, dflt = tmp_path / "src10.mp4", tmp_path / "out10.mp4", tmp_path / "default10.mp4"
    n = W * H * 3 // 2
    rng = np.random.default_rng(0)
    y = np.tile(np.linspace(64, 940, W), (H, 1)).astype(np.uint16) + rng.integers(0, 3, (H, W)).astype(np.uint16)
    uv = np.full(2 * (H // 2) * (W // 2), 513, np.uint16)  # an odd 10-bit level: not an 8-bit level times 4
    frame = np.concatenate([y.ravel(), uv]).astype("<u2").tobytes()
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{W}x{H}", "-r", "10",
                    "-i", "-", "-c:v", "libx264", "-qp", "0", str(src)], input=frame * 6, check=True)
    info = probe_video(str(src))
    assert info.pix_fmt == "yuv420p10le" and info.bit_depth == 10 and info.subsampling == (2, 2)
    res = interpolate_video(src, out, factor=2, progress=False, workers=1, codec="libx264",
                            encoder_options=("-x264-params", "qp=0"))  # lossless 10-bit (crf 0 is not)
    assert res.frames_out == 2 * res.frames_in - 1 and probe_video(str(out)).pix_fmt == "yuv420p10le"
    got = np.frombuffer(subprocess.run([FFMPEG, "-v", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt",
                                        "yuv420p10le", "-"], capture_output=True, check=True).stdout, "<u2")
    got = got.reshape(res.frames_out, n)
    ref = np.frombuffer(frame, "<u2")
    assert all(np.array_equal(g, ref) for g in got)  # source and in-between frames: the 10-bit samples themselves
    interpolate_video(src, dflt, factor=2, progress=False, workers=1)
    text = video_io.probe_text(str(dflt))
    assert "hevc (Main 10)" in text and "hvc1" in text and probe_video(str(dflt)).pix_fmt == "yuv420p10le"


@pytest.mark.parametrize("ext", [".avi", ".gif"])
def test_rotated_clip_into_a_container_without_rotation_is_turned(tmp_path: Path, ext: str) -> None:
    """AVI and GIF cannot store a display rotation: the frames themselves are turned (they came out sideways)."""
    plain, src, out = tmp_path / "plain.mp4", tmp_path / "src.mp4", tmp_path / f"out{ext}"
    make_clip(plain, "yuv420p", ["-colorspace", "bt709", "-color_range", "tv"])
    subprocess.run([FFMPEG, "-v", "error", "-y", "-display_rotation", "90", "-i", str(plain), "-c", "copy", str(src)],
                   check=True)
    interpolate_video(src, out, factor=2, progress=False, workers=1)
    info = probe_video(str(out))
    assert (info.width, info.height, info.rotation) == (H, W, 0.0)  # portrait pixels, no rotation left to apply


def test_hdr10_mastering_metadata_is_written_again(tmp_path: Path) -> None:
    """A PQ (HDR10) clip's mastering-display primaries / luminance and content light levels, by which players
    tone-map it, were dropped by the re-encode; they are read from the source and given to x265 again."""
    master = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
    src = tmp_path / "pq.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-t", "0.5",
                    "-pix_fmt", "yuv420p10le", "-c:v", "libx265", "-x265-params",
                    "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:hdr10=1:"
                    f"master-display={master}:max-cll=1000,400", str(src)], check=True)
    want = f"hdr10=1:master-display={master}:max-cll=1000,400"
    assert probe_video(str(src)).hdr10 == want
    interpolate_video(src, tmp_path / "out.mp4", progress=False, workers=1)
    out = probe_video(str(tmp_path / "out.mp4"))
    assert out.hdr10 == want and out.color_trc == "smpte2084" and out.bit_depth == 10
