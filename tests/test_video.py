"""Streaming video interpolation on tiny synthetic clips made with the bundled ffmpeg."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from apps.cli import main as cli_main
from pmf_edit import interpolate_video, interpolate_videos
from pmf_edit import video as video_mod
from pmf_edit.interpolate import InterpolationConfig
from pmf_edit.video import cut_score, has_audio

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def read_all(path: Path) -> tuple[dict, np.ndarray]:
    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    frames = np.stack([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen])
    return meta, frames


def write_clip(path: Path, frames: np.ndarray, fps: float = 10.0) -> None:
    """Near-lossless (crf 0) H.264 so decoded frames stay close to what was written."""
    h, w = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, quality=10, macro_block_size=1,
                                         pix_fmt_out="yuv444p", ffmpeg_log_level="error")
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f).tobytes())
    writer.close()


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "tone.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=0.8",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=0.8", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], check=True)
    return path


def cut_clip(path: Path) -> np.ndarray:
    rng = np.random.default_rng(0)
    a = (rng.random((48, 64, 3)) * 60 + 20).astype(np.uint8)  # dark scene
    b = (rng.random((48, 64, 3)) * 60 + 170).astype(np.uint8)  # bright scene
    frames = np.stack([a, a, a, b, b, b])
    write_clip(path, frames)
    return frames


def test_doubles_rate_keeps_audio(clip_with_audio: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    res = interpolate_video(clip_with_audio, out, factor=2, progress=False)
    n_in = res.frames_in
    assert res.audio and has_audio(str(out))
    assert res.frames_out == 2 * n_in - 1 and res.fps_out == 2 * res.fps_in
    meta, frames = read_all(out)
    assert len(frames) == res.frames_out and abs(meta["fps"] - 20) < 1e-6
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_variable_frame_rate_clip_keeps_audio_in_sync(tmp_path: Path) -> None:
    """A phone-style clip whose frames arrive unevenly (2 s at 30 fps, then 2 s at 15 fps: average 22.5,
    base rate 30) is decoded on an even 30-fps clock, so the output lasts as long as the input and its
    audio. Before, the average rate was taken as the clock while ffmpeg decoded at 30: the video ran
    1.2 s longer than the sound."""
    src, out = tmp_path / "vfr.mp4", tmp_path / "out.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30", "-f", "lavfi",
                    "-i", "sine=frequency=440", "-t", "4", "-vf",
                    "setpts='if(lt(N,60),N/(30*TB),2/TB+(N-60)/(15*TB))'", "-fps_mode", "vfr", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(src)], check=True)
    info = video_mod.ffmpeg_io.probe_video(str(src))
    assert info.base_fps == 30 and info.avg_fps < 25 and info.decode_rate == 30
    res = interpolate_video(src, out, factor=2, progress=False)
    assert res.fps_in == 30 and res.fps_out == 60 and res.audio
    _, seconds_in = imageio_ffmpeg.count_frames_and_secs(str(src))
    frames_out, seconds_out = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames_out == res.frames_out and abs(seconds_out - seconds_in) < 0.1
    # A constant-rate clip is decoded as before (no clock forced on it).
    assert video_mod.ffmpeg_io.probe_video(str(out)).decode_rate is None


def test_container_picks_the_default_encoder(clip_with_audio: Path, tmp_path: Path) -> None:
    """`pmf interpolate-video in.mp4 out.webm` (or out.gif) failed: libx264 and AAC were used whatever the
    container. A WebM now gets VP9 + Opus, a GIF one palette for the clip and no sound; MP4 stays H.264 + AAC."""
    for name, video, audio in (("o.webm", "Video: vp9", "Audio: opus"), ("o.gif", "Video: gif", None),
                               ("o.mp4", "Video: h264", "Audio: aac")):
        res = interpolate_video(clip_with_audio, tmp_path / name, factor=2, progress=False, workers=1)
        text = video_mod.ffmpeg_io.probe_text(str(tmp_path / name))
        assert video in text, (name, text)
        assert res.audio == (audio is not None) and (audio is None or audio in text), (name, text)
        assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / name))[0] == res.frames_out


def test_gif_in_and_out_keeps_its_duration(tmp_path: Path) -> None:
    """A GIF reports its 1/100-s time base as 100 fps: a 10-fps GIF was decoded as 100 fps with each frame
    repeated and came out 2x the frames at 200 fps, which a GIF cannot show (the output ran long). Now its
    frames are taken as they are, at frames / duration; a GIF output above 50 fps is retimed to 50."""
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frames = [Image.fromarray(np.roll(base, 2 * k, axis=1)) for k in range(8)]
    src = tmp_path / "in.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=100, loop=0)  # 10 fps, 0.8 s
    res = interpolate_video(src, tmp_path / "out.gif", factor=2, progress=False, workers=1)
    assert (res.fps_in, res.fps_out, res.frames_in, res.frames_out) == (10, 20, 8, 15)
    n, seconds = imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "out.gif"))
    assert n == 15 and abs(seconds - 0.75) < 0.06
    with pytest.warns(video_mod.files.GifRateWarning, match="at most 50 frames per second; writing 50 fps"):
        fast = interpolate_video(src, tmp_path / "fast.gif", factor=8, progress=False, workers=1)
    assert fast.fps_out == 50
    assert abs(imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "fast.gif"))[1] - 0.72) < 0.06


def test_unevenly_timed_gif_keeps_its_pauses(tmp_path: Path) -> None:
    """A GIF that pauses (a held last frame, a title card) was played at its average rate: every frame the
    same length, the pause gone and the motion slowed. Its frames now sit on an even clock at the shortest
    delay, a held frame repeated as long as it shows, so the output keeps the input's timing."""
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frames = [Image.fromarray(np.roll(base, 2 * k, axis=1)) for k in range(4)]
    src = tmp_path / "pause.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=[100, 100, 100, 1000], loop=0)
    assert video_mod.ffmpeg_io.gif_clock(str(src)) == 10.0
    res = interpolate_video(src, tmp_path / "out.mp4", factor=2, progress=False, workers=1)
    assert (res.fps_in, res.fps_out, res.frames_in, res.frames_out) == (10, 20, 13, 25)
    out = list(imageio_ffmpeg.read_frames(str(tmp_path / "out.mp4")))[1:]  # (the first item is the metadata)
    shown = [np.frombuffer(f, np.uint8).reshape(48, 64, 3).astype(float) for f in out]
    moving = [np.abs(shown[k + 1] - shown[k]).mean() for k in range(len(shown) - 1)]
    assert min(moving[:6]) > 40 and max(moving[6:]) < 5  # moves for 0.3 s, then holds still (encoder noise) for 1 s
    even = tmp_path / "even.gif"
    frames[0].save(even, save_all=True, append_images=frames[1:], duration=[100, 110, 100, 100], loop=0)
    assert video_mod.ffmpeg_io.gif_clock(str(even)) is None  # 1/100 s apart: taken as they are


def test_interlaced_video_is_deinterlaced(tmp_path: Path) -> None:
    """Interlaced footage (camcorders, broadcast: two fields of two instants per frame) was interpolated with
    its combing in every frame; it is now deinterlaced on decoding (bwdif) and written progressive."""
    src, out = tmp_path / "interlaced.mp4", tmp_path / "out.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x128:rate=20:duration=1",
                    "-vf", "tinterlace=interleave_top,fieldorder=tff", "-flags", "+ildct+ilme", "-c:v", "libx264",
                    "-x264opts", "tff=1", "-pix_fmt", "yuv420p", str(src)], check=True)
    assert video_mod.ffmpeg_io.probe_video(str(src)).interlaced
    interpolate_video(src, out, factor=2, progress=False, workers=1)
    assert not video_mod.ffmpeg_io.probe_video(str(out)).interlaced

    def comb(path: Path) -> float:  # |2 row_i - row_i-1 - row_i+1| averaged: large where fields disagree
        _, frames = read_all(path)
        g = frames.astype(np.float64).mean(axis=-1)
        return float(np.abs(2 * g[:, 1:-1] - g[:, :-2] - g[:, 2:]).mean())

    assert comb(out) < 0.75 * comb(src)  # the bare source reads 1.0, deinterlaced about 0.6 (static edges stay)


def test_the_files_own_tags_are_kept(clip_with_audio: Path, tmp_path: Path) -> None:
    """A phone clip's creation time, title and location (what photo libraries sort and map by) were dropped;
    the output now carries the source's tags, with or without its sound."""
    src = tmp_path / "tagged.mov"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(clip_with_audio), "-c", "copy", "-movflags", "use_metadata_tags",
                    "-metadata", "creation_time=2024-05-01T10:00:00Z", "-metadata", "title=Holiday",
                    "-metadata", "com.apple.quicktime.location.ISO6709=+48.8584+002.2945/", str(src)], check=True)
    tags = dict(video_mod.ffmpeg_io.probe_video(str(src)).metadata)
    assert tags["title"] == "Holiday" and "major_brand" not in tags
    for name, kw in (("with_sound.mov", {}), ("slow.mov", {"slowmo": True, "factor": 2})):
        interpolate_video(src, tmp_path / name, progress=False, workers=1, **kw)
        out = dict(video_mod.ffmpeg_io.probe_video(str(tmp_path / name)).metadata)
        assert out["title"] == "Holiday" and out["creation_time"].startswith("2024-05-01T10:00:00"), (name, out)
        assert out["com.apple.quicktime.location.ISO6709"] == "+48.8584+002.2945/", (name, out)


def test_every_sound_track_subtitle_and_chapter_is_kept(clip_with_audio: Path, tmp_path: Path) -> None:
    """A film with two languages, subtitles and chapters came out with the first sound track alone (re-encoded to
    AAC). Now every sound track (copied where the container takes its codec), the subtitles (copied, or converted
    to the container's text format) and the chapters are carried over, languages kept; a track the container
    cannot hold is named in a warning."""
    (tmp_path / "chapters.txt").write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=400\ntitle=One\n"
                                           "[CHAPTER]\nTIMEBASE=1/1000\nSTART=400\nEND=800\ntitle=Two\n")
    (tmp_path / "subs.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nHello\n")
    film = tmp_path / "film.mkv"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(clip_with_audio), "-f", "lavfi", "-i",
                    "sine=frequency=880:duration=0.8", "-i", str(tmp_path / "subs.srt"),
                    "-i", str(tmp_path / "chapters.txt"), "-map", "0:v", "-map", "0:a", "-map", "1:a", "-map", "2:s",
                    "-map_chapters", "3", "-c:v", "copy", "-c:a:0", "copy", "-c:a:1", "ac3", "-c:s", "srt",
                    "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", str(film)], check=True)
    assert video_mod.ffmpeg_io.probe_video(str(film)).audio_codecs == ("aac", "ac3")
    for name, subtitle in (("o.mkv", "subrip"), ("o.mp4", "mov_text"), ("o.webm", "webvtt")):
        res = interpolate_video(film, tmp_path / name, progress=False, workers=1)
        text = video_mod.ffmpeg_io.probe_text(str(tmp_path / name))
        info = video_mod.ffmpeg_io.probe_video(str(tmp_path / name))
        want = ("opus", "opus") if name == "o.webm" else ("aac", "ac3")  # WebM takes Opus / Vorbis only
        assert res.audio and info.audio_codecs == want, (name, text)
        assert info.subtitle_codecs == (subtitle,) and info.chapters == 2, (name, text)
        assert "(eng): Audio" in text and "(fra): Audio" in text, (name, text)
    with pytest.warns(video_mod.files.StreamsLeftOutWarning, match=r"\.avi cannot hold subtitle track 0 \(subrip\)"):
        interpolate_video(film, tmp_path / "o.avi", progress=False, workers=1)
    assert video_mod.ffmpeg_io.probe_video(str(tmp_path / "o.avi")).audio_codecs == ("aac", "ac3")
    # MP4's own subtitles (mov_text) are not Matroska's: they become SRT in an MKV (copying them failed).
    interpolate_video(tmp_path / "o.mp4", tmp_path / "back.mkv", progress=False, workers=1)
    assert video_mod.ffmpeg_io.probe_video(str(tmp_path / "back.mkv")).subtitle_codecs == ("subrip",)
    slow = interpolate_video(film, tmp_path / "slow.mkv", progress=False, workers=1, slowmo=True)
    info = video_mod.ffmpeg_io.probe_video(str(tmp_path / "slow.mkv"))  # slowed: nothing on the old clock is kept
    assert not slow.audio and (info.audio_codecs, info.subtitle_codecs, info.chapters) == ((), (), 0)


def test_sound_a_container_refuses_is_re_encoded(clip_with_audio: Path, tmp_path: Path, monkeypatch) -> None:
    """Sound is copied where the container takes its codec; when the container refuses it after all (FLAC in
    MOV: MP4 only), the sound pass runs again with the sound re-encoded instead of failing the conversion."""
    src = tmp_path / "flac.mkv"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(clip_with_audio), "-c:v", "copy", "-c:a", "flac", str(src)],
                   check=True)
    monkeypatch.setitem(video_mod.ffmpeg_io._SOUND_AS_IS, ".mov", {"flac"})  # as if MOV took FLAC
    res = interpolate_video(src, tmp_path / "o.mov", progress=False, workers=1)
    assert res.audio and video_mod.ffmpeg_io.probe_video(str(tmp_path / "o.mov")).audio_codecs == ("aac",)
    interpolate_video(src, tmp_path / "o.mp4", progress=False, workers=1)  # MP4 takes FLAC: copied
    assert video_mod.ffmpeg_io.probe_video(str(tmp_path / "o.mp4")).audio_codecs == ("flac",)


def test_numbered_image_sequences_in_and_out(tmp_path: Path) -> None:
    """VFX and animation footage is numbered frames (often from 1001). A pattern is read at --input-fps and
    written as numbered frames (from the input's first number), source frames bit-exact through PNG, staged in
    a hidden folder until complete; gaps, one-image outputs and a video given an input rate are refused."""
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    (tmp_path / "shot").mkdir()
    frames = [np.roll(base, 2 * k, axis=1) for k in range(5)]
    for k, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / "shot" / f"f_{1001 + k:04d}.png")
    src, dst = str(tmp_path / "shot" / "f_%04d.png"), str(tmp_path / "out" / "m_%04d.png")
    res = interpolate_video(src, dst, input_fps=12, progress=False, workers=1)
    assert (res.frames_in, res.frames_out, res.fps_in, res.fps_out, res.audio) == (5, 9, 12, 24, False)
    written = sorted(os.listdir(tmp_path / "out"))
    assert written == [f"m_{1001 + k:04d}.png" for k in range(9)]  # numbered from the input's first; no leftovers
    for k, f in enumerate(frames):  # every other output frame is a source frame, as it was
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"m_{1001 + 2 * k:04d}.png")), f)
    with pytest.raises(ValueError, match=r"would overwrite input frame .*f_1001\.png"):  # %d names 1001 as %04d does
        interpolate_video(src, str(tmp_path / "shot" / "f_%d.png"), progress=False)
    with pytest.warns(UserWarning, match=r"6 older frames numbered after this run's last \(1003\)"):
        interpolate_video(src, dst, fps=6, input_fps=12, progress=False, workers=1)  # half the rate: 3 frames
    clip = interpolate_video(src, tmp_path / "seq.mp4", progress=False, workers=1)  # default 25 fps
    assert (clip.fps_in, clip.frames_out) == (25, 9)
    (tmp_path / "shot" / "f_1003.png").unlink()
    with pytest.raises(ValueError, match=r"has a gap: frame 1003 is missing"):
        interpolate_video(src, tmp_path / "gap.mp4", progress=False)
    with pytest.raises(ValueError, match=r"is one image; for numbered frames .*m_%04d\.png"):
        interpolate_video(tmp_path / "seq.mp4", tmp_path / "m.png", progress=False)
    with pytest.raises(ValueError, match=r"input_fps is the frame rate of an image sequence"):
        interpolate_video(tmp_path / "seq.mp4", tmp_path / "again.mp4", input_fps=30, progress=False)
    with pytest.raises(FileNotFoundError, match="no image files match"):
        interpolate_video(str(tmp_path / "none_%03d.png"), tmp_path / "x.mp4", progress=False)
    with pytest.raises(ValueError, match="no_such_codec"):  # a failed encoder: no frame, no staging folder left
        interpolate_video(tmp_path / "seq.mp4", str(tmp_path / "bad" / "b_%04d.png"), codec="no_such_codec",
                          progress=False, workers=1)
    assert not list((tmp_path / "bad").iterdir())
    deep = tmp_path / "deep"  # 16-bit RGBA frames (an animation's sprites): said what is not carried over
    deep.mkdir()
    for k in range(2):
        cv2.imwrite(str(deep / f"d_{k}.png"), rng.integers(0, 65536, (24, 32, 4), dtype=np.uint16))
    with pytest.warns(video_mod.files.DetailLostWarning, match=r"alpha channel .*; the bit depth \(rgba64"):
        interpolate_video(str(deep / "d_%d.png"), tmp_path / "deep.mp4", progress=False, workers=1)
    (tmp_path / "50%done.mp4").write_bytes((tmp_path / "seq.mp4").read_bytes())  # a percent sign, not a counter
    assert interpolate_video(tmp_path / "50%done.mp4", tmp_path / "50%done_2x.mp4", progress=False).frames_in == 9


def test_folder_run_picks_up_gifs_and_camcorder_files(clip_with_audio: Path, tmp_path: Path) -> None:
    """A folder of animated GIFs and AVCHD .mts clips was skipped ('no video files')."""
    from PIL import Image

    src_dir = tmp_path / "in"
    src_dir.mkdir()
    frames = [Image.fromarray(np.full((24, 32, 3), 40 * k, np.uint8)) for k in range(4)]
    frames[0].save(src_dir / "loop.gif", save_all=True, append_images=frames[1:], duration=100)
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(clip_with_audio), "-c", "copy", str(src_dir / "cam.mts")],
                   check=True)
    batch = interpolate_videos(src_dir, tmp_path / "out", progress=False)
    assert not batch.failed and sorted(Path(r.dst).name for r in batch.done) == ["cam.mts", "loop.gif"]


def test_fps_target_and_slowmo(clip_with_audio: Path, tmp_path: Path) -> None:
    res = interpolate_video(clip_with_audio, tmp_path / "24.mp4", fps=24, progress=False)
    assert res.fps_out == 24 and res.frames_out == int((res.frames_in - 1) * 2.4) + 1
    slow = interpolate_video(clip_with_audio, tmp_path / "slow.mp4", factor=4, slowmo=True, progress=False)
    assert slow.fps_out == slow.fps_in and slow.frames_out == 4 * (slow.frames_in - 1) + 1
    assert not slow.audio and not has_audio(str(tmp_path / "slow.mp4"))


def test_worker_threads_keep_order_and_output(tmp_path: Path) -> None:
    # Pairs rendered by a thread pool must come out in order and match the one-thread run.
    rng = np.random.default_rng(2)
    tex = np.kron(rng.random((12, 24, 3)) * 255, np.ones((4, 4, 1))).astype(np.uint8)  # (48, 96, 3) blocks
    src = tmp_path / "moving.mp4"
    write_clip(src, np.stack([np.roll(tex, 3 * k, axis=1) for k in range(8)]))
    one = interpolate_video(src, tmp_path / "one.mp4", fps=24, progress=False, workers=1, quality=10)
    many = interpolate_video(src, tmp_path / "many.mp4", fps=24, progress=False, workers=3, quality=10)
    assert one.frames_out == many.frames_out == 17
    _, a = read_all(tmp_path / "one.mp4")
    _, b = read_all(tmp_path / "many.mp4")
    # A tolerance because a run on a busy machine once differed in a few low bits (not reproduced in
    # isolation); neighbouring output frames of this clip differ by far more, so order is checked.
    diff = np.abs(a.astype(np.int16) - b).mean(axis=(1, 2, 3))
    step = np.abs(a[1:].astype(np.int16) - a[:-1]).mean(axis=(1, 2, 3))
    assert a.shape == b.shape and diff.max() < 1.0 and step.min() > 5 * max(diff.max(), 1.0), (diff, step)
    with pytest.raises(ValueError, match="workers"):
        interpolate_video(src, tmp_path / "x.mp4", workers=0, progress=False)


def test_encoder_options_and_refine_config(clip_with_audio: Path, tmp_path: Path) -> None:
    # Extra ffmpeg output options reach the encoder; the learned refinement runs on the video path (uint8).
    from pmf_edit.interpolate import CONFIGS

    fast = interpolate_video(clip_with_audio, tmp_path / "fast.mp4", factor=2, progress=False, keep_audio=False,
                             encoder_options=("-preset", "ultrafast"), config=CONFIGS["flow-refine"])
    meta, frames = read_all(tmp_path / "fast.mp4")
    assert len(frames) == fast.frames_out == 2 * fast.frames_in - 1
    with pytest.raises(ValueError, match="no-such-preset"):
        interpolate_video(clip_with_audio, tmp_path / "bad.mp4", progress=False,
                          encoder_options=("-preset", "no-such-preset"))
    assert not (tmp_path / "bad.mp4").exists()
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_encoder_dying_mid_stream_is_a_clear_error(clip_with_audio: Path, tmp_path: Path, monkeypatch) -> None:
    # When ffmpeg exits while frames are still being written (how a bad encoder option shows on a
    # long clip), the pipe breaks: that must surface as a ValueError naming the file, not an OSError.
    def broken_writer(path, *args, **kwargs):
        yield  # started
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(imageio_ffmpeg, "write_frames", broken_writer)
    with pytest.raises(ValueError, match="ffmpeg stopped accepting frames"):
        interpolate_video(clip_with_audio, tmp_path / "out.mp4", progress=False, workers=1)
    assert not (tmp_path / "out.mp4").exists()
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_scene_cut_is_not_blended(tmp_path: Path) -> None:
    src = tmp_path / "cut.mp4"
    frames = cut_clip(src)
    _, decoded = read_all(src)
    res = interpolate_video(src, tmp_path / "out.mp4", factor=2, progress=False, quality=10)
    assert res.scene_cuts == 1
    _, out = read_all(tmp_path / "out.mp4")
    mid = out[5].astype(float)  # output 5 sits halfway between source frames 2 (dark) and 3 (bright)
    err_copy = min(np.abs(mid - decoded[2]).mean(), np.abs(mid - decoded[3]).mean())  # the nearer frame
    err_blend = np.abs(mid - (decoded[2].astype(float) + decoded[3]) / 2).mean()
    assert err_copy < 20 and err_blend > 50  # codec noise on a noise texture is ~10; a blend is ~75 off
    # With detection off the same frame is a blend of the two scenes.
    interpolate_video(src, tmp_path / "blend.mp4", factor=2, progress=False, quality=10, scene_threshold=None)
    _, blended = read_all(tmp_path / "blend.mp4")
    assert np.abs(blended[5].astype(float) - decoded[2]).mean() > 30
    assert frames.shape[0] == 6


def test_cut_score_motion_vs_cut() -> None:
    rng = np.random.default_rng(1)
    a = (rng.random((36, 64, 3)) * 255).astype(np.uint8)
    assert cut_score(a, np.roll(a, 5, axis=1)) < 0.1
    assert cut_score(a, (a * 0.3).astype(np.uint8)) > 0.5


def test_failure_leaves_no_output(clip_with_audio: Path, tmp_path: Path, monkeypatch) -> None:
    def boom(self, t):
        raise RuntimeError("disk full")

    monkeypatch.setattr(video_mod.PairInterpolator, "render", boom)  # the rgb path
    monkeypatch.setattr(video_mod.PairInterpolator, "render_planes", boom)  # the planar (yuv) path
    out = tmp_path / "out.mp4"
    for workers in (1, 2):  # an error inside a worker thread reaches the caller too
        with pytest.raises(RuntimeError, match="disk full"):
            interpolate_video(clip_with_audio, out, progress=False, workers=workers)
        assert os.listdir(tmp_path) == []


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        interpolate_video(tmp_path / "missing.mp4", tmp_path / "o.mp4", progress=False)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.*empty.mp4"):
        interpolate_video(empty, tmp_path / "o.mp4", progress=False)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(ValueError, match="not a readable video.*notes.mp4"):
        interpolate_video(text, tmp_path / "o.mp4", progress=False)
    with pytest.raises(ValueError, match="factor"):
        interpolate_video(text, tmp_path / "o.mp4", factor=0)
    with pytest.raises(ValueError, match="fps"):
        interpolate_video(text, tmp_path / "o.mp4", fps=-1)
    assert not (tmp_path / "o.mp4").exists()


def test_zero_frame_video(tmp_path: Path) -> None:
    # An audio-only file has no video stream: refused by name.
    src = tmp_path / "audio_only.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "aac",
                    str(src)], check=True)
    with pytest.raises(ValueError, match="audio_only.mp4"):
        interpolate_video(src, tmp_path / "o.mp4", progress=False)


def test_folder_reports_failures_and_keeps_successes(clip_with_audio: Path, tmp_path: Path) -> None:
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    (src_dir / "good.mp4").write_bytes(clip_with_audio.read_bytes())
    (src_dir / "bad.mp4").write_text("garbage")
    res = interpolate_videos(src_dir, tmp_path / "out", suffix="_2x", progress=False)
    assert [Path(r.dst).name for r in res.done] == ["good_2x.mp4"]
    assert list(res.failed) == [str(src_dir / "bad.mp4")] and "ValueError" in res.failed[str(src_dir / "bad.mp4")]
    assert sorted(os.listdir(tmp_path / "out")) == ["good_2x.mp4"]


def test_cli(clip_with_audio: Path, tmp_path: Path, capsys) -> None:
    import imageio.v3 as iio

    rng = np.random.default_rng(2)
    a = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "a.png", a)
    iio.imwrite(tmp_path / "b.png", np.roll(a, 2, axis=1))
    iio.imwrite(tmp_path / "small.png", a[:20])
    assert cli_main(["interpolate", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o",
                     str(tmp_path / "m.png"), "--t", "0.5"]) == 0
    assert iio.imread(tmp_path / "m.png").shape == (24, 32, 3)
    # A missing output folder is created (as the other commands do); the format follows the extension,
    # and no temporary file is left beside the outputs.
    assert cli_main(["interpolate", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o",
                     str(tmp_path / "new" / "m.jpg"), "--t", "0.25", "--t", "0.75"]) == 0
    assert sorted(os.listdir(tmp_path / "new")) == ["m_00.jpg", "m_01.jpg"]
    assert (tmp_path / "new" / "m_00.jpg").read_bytes()[:2] == b"\xff\xd8"  # JPEG, not PNG bytes
    assert cli_main(["interpolate", str(tmp_path / "a.png"), str(tmp_path / "small.png"), "-o",
                     str(tmp_path / "x.png")]) == 2
    assert "frame sizes differ" in capsys.readouterr().err
    assert cli_main(["interpolate", str(tmp_path / "a.png"), str(tmp_path / "nope.png"), "-o",
                     str(tmp_path / "x.png")]) == 2
    assert "nope.png" in capsys.readouterr().err
    assert cli_main(["interpolate-video", str(clip_with_audio), str(tmp_path / "v.mp4"), "--quiet",
                     "--method", "flow-fast", "--encoder-options", "-preset ultrafast"]) == 0
    assert (tmp_path / "v.mp4").stat().st_size > 0
    # A bad encoder option reaches ffmpeg and fails clearly instead of leaving no file silently.
    assert cli_main(["interpolate-video", str(clip_with_audio), str(tmp_path / "v3.mp4"), "--quiet",
                     "--encoder-options", "-preset no-such-preset"]) == 2
    assert "encoder" in capsys.readouterr().err and not (tmp_path / "v3.mp4").exists()
    assert cli_main(["interpolate-video", str(tmp_path / "none.mp4"), str(tmp_path / "v2.mp4")]) == 2
    assert "none.mp4" in capsys.readouterr().err


def test_video_path_bends_motion_through_neighbouring_pairs(tmp_path: Path) -> None:
    # An accelerating texture (shift k^2 / 4 px at output frame k): the rebuilt frames follow the parabola
    # through the neighbouring pairs' flows, with one worker or a pool (same frames), and closer to the truth
    # than straight-line motion (acceleration=False) everywhere but at the clip's ends.
    from tests.test_interpolate import _shifted

    truth = (np.clip(np.stack(_shifted([k * k / 4 for k in range(0, 11)])), 0, 1) * 255 + 0.5).astype(np.uint8)
    src_frames = truth[::2]  # 6 source frames; the straight line misses the odd ones by 0.25 px
    src = tmp_path / "accel.mp4"
    write_clip(src, src_frames)
    runs = {}
    for name, cfg, workers in (("curved", None, 1), ("pool", None, 2),
                               ("straight", InterpolationConfig(acceleration=False), 1)):
        interpolate_video(src, tmp_path / f"{name}.mp4", factor=2, config=cfg, workers=workers, progress=False,
                          quality=10)
        runs[name] = read_all(tmp_path / f"{name}.mp4")[1].astype(np.float32)
    assert runs["curved"].shape == runs["straight"].shape == (11, 64, 160, 3)
    assert np.abs(runs["curved"] - runs["pool"]).max() <= 1.0
    err = {k: ((v - truth)[1::2, 8:-8, 24:-24] ** 2).mean(axis=(1, 2, 3)) for k, v in runs.items()}  # rebuilt frames
    assert (err["curved"][1:-1] < 0.5 * err["straight"][1:-1]).all(), err  # inner pairs have both neighbours


def test_cli_pair_with_neighbouring_frames(tmp_path: Path, capsys) -> None:
    import imageio.v3 as iio

    from tests.test_interpolate import _shifted

    truth = (np.clip(np.stack(_shifted([k * k / 4 for k in range(0, 7)])), 0, 1) * 255 + 0.5).astype(np.uint8)
    for name, k in (("prev", 0), ("a", 2), ("b", 4), ("next", 6)):
        iio.imwrite(tmp_path / f"{name}.png", truth[k])
    pair = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert cli_main(["interpolate", *pair, "-o", str(tmp_path / "straight.png")]) == 0
    assert cli_main(["interpolate", *pair, "-o", str(tmp_path / "curved.png"), "--before", str(tmp_path / "prev.png"),
                     "--after", str(tmp_path / "next.png")]) == 0
    err = {n: float(((iio.imread(tmp_path / f"{n}.png").astype(np.float32) - truth[3])[8:-8, 24:-24] ** 2).mean())
           for n in ("straight", "curved")}
    assert err["curved"] < 0.5 * err["straight"], err
    iio.imwrite(tmp_path / "small.png", truth[0][:32])
    assert cli_main(["interpolate", *pair, "-o", str(tmp_path / "x.png"), "--before", str(tmp_path / "small.png")]) == 2
    assert "--before" in capsys.readouterr().err


def test_missing_output_folder_is_created_and_a_file_in_its_place_refused(clip_with_audio: Path, tmp_path: Path) -> None:
    # Like the image commands and interpolate_videos (it was refused: "output folder does not exist").
    res = interpolate_video(clip_with_audio, tmp_path / "new" / "deeper" / "o.mp4", progress=False)
    assert (tmp_path / "new" / "deeper" / "o.mp4").is_file() and res.frames_out > 0
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="output folder .*afile is a file"):
        interpolate_video(clip_with_audio, tmp_path / "afile" / "o.mp4", progress=False)
