"""Streaming video frame interpolation: read, interpolate and write one frame pair at a time.

Memory stays constant whatever the length: only the current pair of source frames (and its flows) is
held. Video I/O goes through imageio-ffmpeg's bundled ffmpeg without colour conversion for planar YUV
sources (`pmf_edit.video.ffmpeg_io`: source frames reach the encoder bit-exact, colour tags are kept).
The output is written to a hidden temporary name in the destination folder and moved into place with
`os.replace` only once it is complete, so a failure never leaves a half-written file under the final name.
"""
from __future__ import annotations

import os
import re
import warnings
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from core import checks
from pmf_edit.video.interpolate import InterpolationConfig, PairInterpolator, premultiply, unpremultiply
from pmf_edit.video.sequences import (IMAGE_CODECS, check_apart, discard, is_frames_output, is_sequence,
                                      is_sequence_input, publish, sequence_frames, sequence_input_options, stage,
                                      staging_pattern)
from pmf_edit.video.ffmpeg_io import (ALPHA_CODECS, ALPHA_FRAMES, ANIMATED_IMAGES, RGB_OUTPUTS, VideoInfo,
                                      carry_streams, default_codec, frame_bytes, input_rate, keeps_alpha, open_writer,
                                      probe_text, probe_video, read_frames, yuv_to_rgb)

# What a folder run picks up: the common containers, camcorder AVCHD streams, old phones' 3GP and animated
# GIFs (taken at their own frame timing). Not ".ts": in a mixed folder that is more often TypeScript.
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".mts", ".m2ts",
                    ".3gp", ".ogv", ".gif")


def _animated_webp(path: Path) -> bool:
    """True for an animated WebP: the extended header (VP8X) with its animation flag (0x02 of the flags
    byte, the WebP container specification); a still WebP has a plain VP8 / VP8L header or no flag."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(21)
    except OSError:
        return False
    return len(head) == 21 and head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and bool(head[20] & 0x02)


def is_video_file(path: Path) -> bool:
    """What a folder run (`interpolate_videos`) picks up: `VIDEO_EXTENSIONS` and the animated images
    (`ffmpeg_io.ANIMATED_IMAGES`), a WebP only when it is an animation (a folder of WebP photos is not a
    folder of videos: each would fail)."""
    ext = path.suffix.lower()
    if ext == ".webp":
        return _animated_webp(path)
    return ext in VIDEO_EXTENSIONS or ext in ANIMATED_IMAGES


@dataclass(frozen=True)
class VideoResult:
    """What `interpolate_video` wrote."""

    src: str  # input path
    dst: str  # output path (final name)
    frames_in: int  # source frames read
    frames_out: int  # frames written
    fps_in: float  # source frame rate
    fps_out: float  # output frame rate
    scene_cuts: int  # source frame pairs treated as cuts (never blended)
    audio: bool  # whether the source audio was carried over


@dataclass(frozen=True)
class BatchResult:
    """What `interpolate_videos` did with each file of a folder."""

    done: list[VideoResult] = field(default_factory=list)  # outputs that were written
    failed: dict[str, str] = field(default_factory=dict)  # input path -> one-line error
    skipped: list[str] = field(default_factory=list)  # inputs whose output already existed (skip_existing)


def has_audio(path: str) -> bool:
    """True when ffmpeg finds an audio stream in `path`."""
    return re.search(r"Stream #\S+.*: Audio:", probe_text(path)) is not None


def _check_src(path: str, input_fps: float | None = None) -> VideoInfo:
    """Validate `path` and read its stream description (size, pixel format, colour tags); an image
    sequence pattern is opened at `input_fps` (`sequences.sequence_input_options`)."""
    if is_sequence_input(path):
        return probe_video(path, sequence_input_options(path, input_fps))
    if input_fps is not None:
        raise ValueError(f"input_fps is the frame rate of an image sequence (frames/f_%04d.png); {path} is a "
                         "video, which has its own (to retime a video use fps= / --fps)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"video not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"expected a video file, got a folder: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"video file is empty (0 bytes): {path}")
    return probe_video(path)


def _thumb(frame, info: VideoInfo) -> np.ndarray:
    """(36, 64, 3) uint8 RGB thumbnail of a frame (an RGB(A) array or a (Y, UV) plane pair) for cut detection
    (an RGBA frame over black: the colour of a transparent pixel is not part of the picture)."""
    if not isinstance(frame, tuple):
        if frame.shape[-1] == 4:
            frame = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGBA2mRGBA), cv2.COLOR_RGBA2RGB)
        return cv2.resize(frame, (64, 36), interpolation=cv2.INTER_AREA)
    y, uv = (cv2.resize(p, (64, 36), interpolation=cv2.INTER_AREA).reshape(36, 64, -1) for p in frame)
    yuv = np.concatenate([y, uv], axis=-1)
    if yuv.dtype != np.uint8:  # 10-bit planes (float32 in [0, 1]): 8-bit levels are enough for a thumbnail
        yuv = (yuv * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    return yuv_to_rgb(yuv, info.matrix, info.full_range)


def cut_score(thumb0: np.ndarray, thumb1: np.ndarray) -> float:
    """Scene-cut evidence in [0, 1] between two (h, w, 3) uint8 thumbnails.

    Half the L1 distance between their colour histograms (motion moves pixels but keeps the colour
    distribution, a cut replaces it), gated by mean absolute difference so a flat fade is not a cut.
    """
    hist = [np.concatenate([np.bincount(t[..., c].ravel() // 8, minlength=32) for c in range(t.shape[-1])])
            / t[..., 0].size for t in (thumb0, thumb1)]
    dist = 0.5 * np.abs(hist[0] - hist[1]).sum() / thumb0.shape[-1]
    mad = np.abs(thumb0.astype(np.int16) - thumb1).mean() / 255.0
    return float(dist) if mad > 0.04 else 0.0


def _pair_flows(prev, cur, plan: list, cfg: InterpolationConfig) -> PairInterpolator | None:
    """The flows of one source pair (a `PairInterpolator`), or None if no time in `plan` needs them (a
    scene cut, or a pair the output clock skips). Frames are (H, W, 3) uint8 RGB arrays or (Y, UV)
    planar pairs (`ffmpeg_io`)."""
    if not any(isinstance(t, float) for t in plan):
        return None
    if isinstance(prev, tuple):  # luma at full size, chroma at its own (uint8 or, 10-bit, float32 in and out)
        return PairInterpolator(prev[0], cur[0], cfg, chroma0=prev[1], chroma1=cur[1])
    if prev.shape[-1] == 4:  # RGBA: warped and blended premultiplied, so a transparent pixel's colour never leaks
        return PairInterpolator(premultiply(prev), premultiply(cur), cfg)
    return PairInterpolator(prev, cur, cfg)


def _rgba8(x: np.ndarray) -> np.ndarray:
    """An interpolated premultiplied RGBA frame (float32) -> (H, W, 4) uint8 with straight alpha."""
    return (unpremultiply(x) * np.float32(255) + np.float32(0.5)).astype(np.uint8)


def _resolved(x):
    """A pair's flows from a `Future` (the thread pool) or as they are (serial: already computed)."""
    return x.result() if isinstance(x, Future) else x


def _render_pair(pair, plan: list, before=None, after=None) -> list:
    """The output frames of one source pair, in order: each entry of `plan` is a time t in (0, 1) to
    interpolate, or a frame to pass through (the source frame itself, or the nearer source frame
    inside a scene cut). `pair`, `before`, `after`: this pair's and its neighbours' flows
    (`_pair_flows`, or `Future`s of it; None where there are none); the neighbours bend the motion
    (`PairInterpolator.use_neighbours`). The output has the input frames' form."""
    pair, before, after = _resolved(pair), _resolved(before), _resolved(after)
    if pair is not None:
        pair.use_neighbours(before, after)
    out = []
    for t in plan:
        if not isinstance(t, float):
            out.append(t)
        else:
            img = pair.render_planes(t) if pair.planes[1:] else pair.render(t)
            out.append(_rgba8(img) if not isinstance(img, tuple) and img.shape[-1] == 4 else img)
    return out


class _PairPipeline:
    """Source pairs in, output frames out, in source order (the scheduling half of `interpolate_video`).

    Each pair's flows are computed once (`_pair_flows`); a pair is rendered once the next pair's flows are
    under way, so its motion can bend through both neighbours (`PairInterpolator.use_neighbours`) and each
    pair's flows serve up to three renders. With `workers` > 1 flows and renders are tasks of a small
    thread pool (OpenCV and most numpy work release the GIL); flows are always submitted before the render
    that waits for them, so a render never waits on a task that has not started (no deadlock), and at most
    2 * workers renders are in flight, so memory stays flat. `add` and `finish` return the frames that are
    ready to be written; `close` stops the pool (dropping queued work when `cancel`).
    """

    def __init__(self, cfg: InterpolationConfig, workers: int) -> None:
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="pmf-vfi") if workers > 1 else None
        # The pool already keeps the cores busy: a second DIS thread per pair only adds hand-offs.
        self.cfg = replace(cfg, parallel_flows=False) if self.pool is not None else cfg
        self.limit = 2 * workers
        # (flows, plan): the newest pair, not yet rendered, after its predecessor (its `before`)
        self.window: deque = deque(maxlen=2)
        self.pending: deque[Future] = deque()  # renders in flight, in output order

    def add(self, prev, cur, plan: list) -> list:
        """Schedule the pair (prev, cur) with its `plan` (`_render_pair`); the frames now ready, in order."""
        flows = (_pair_flows(prev, cur, plan, self.cfg) if self.pool is None
                 else self.pool.submit(_pair_flows, prev, cur, plan, self.cfg))
        ready = self._render_newest(flows) if self.window else []  # the previous pair, now that its successor exists
        self.window.append((flows, plan))  # (maxlen 2: the pair before the previous one drops out)
        return ready

    def finish(self) -> list:
        """Render the last pair (no successor) and wait for everything: the remaining frames, in order."""
        ready = self._render_newest(None) if self.window else []
        while self.pending:
            ready += self.pending.popleft().result()
        return ready

    def close(self, cancel: bool = False) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=cancel)

    def _render_newest(self, after) -> list:
        pair, plan = self.window[-1]
        before = self.window[0][0] if len(self.window) == 2 else None
        if self.pool is None:
            return _render_pair(pair, plan, before, after)
        self.pending.append(self.pool.submit(_render_pair, pair, plan, before, after))
        ready = []
        while len(self.pending) > self.limit:  # bounded look-ahead keeps memory flat
            ready += self.pending.popleft().result()
        return ready


@checks.checked
def interpolate_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    factor: int = 2,
    fps: float | None = None,
    slowmo: bool = False,
    config: InterpolationConfig | None = None,
    scene_threshold: float | None = 0.3,
    keep_audio: bool = True,
    codec: str | None = None,
    quality: float = 8.0,
    progress: bool = True,
    workers: int | None = None,
    encoder_options: Sequence[str] = (),
    planar: bool = True,
    input_fps: float | None = None,
) -> VideoResult:
    """Raise a video's frame rate (or make slow motion) by flow-based frame interpolation, streaming.

    Args:
        src: input video path (anything the bundled ffmpeg reads), or a numbered image sequence given
            as a printf pattern, ``frames/f_%04d.png`` (any first number, e.g. 1001; no gaps).
        dst: output path; its extension picks the container. Written to a temporary name in the same
            folder, then renamed, so a failed run leaves no partial file under `dst`. A pattern
            (``out/f_%04d.png``; .png, .tif, .jpg, .bmp) writes numbered frames from the input sequence's
            first number (or 1), 8-bit RGB, into a hidden folder first, moved into place when complete.
        factor: output frames per source frame (2 doubles the rate); ignored when `fps` is given.
        fps: target frame rate, e.g. 60 for 24 -> 60 fps; in-between times are arbitrary fractions.
        slowmo: keep the source frame rate so the video plays `factor` times slower (sound, subtitles and
            chapters are dropped: they would no longer match).
        config: interpolation method; `InterpolationConfig()` by default.
        scene_threshold: `cut_score` above which a frame pair is a scene cut; frames inside a cut are
            copied from the nearer source frame instead of blended. None turns detection off.
        keep_audio: carry every sound track of the source over (copied where the container takes its
            codec, else re-encoded: AAC, Opus in WebM). Subtitle tracks (copied, or converted to the
            container's text format) and chapters are carried over whatever this says; a track the
            container cannot hold (subtitles in AVI, picture subtitles in MP4) is named in a
            `StreamsLeftOutWarning` (a .mkv output holds every track).
        codec: ffmpeg video encoder; None picks one the output can take (`ffmpeg_io.default_codec`):
            libx264, libx265 (HEVC Main 10, tagged hvc1) for a 10-bit planar source so its 10 bits reach
            the output in a format players take, VP9 + Opus for .webm, a clip palette for .gif (no sound).
        quality: 1 (smallest) to 10 (best), imageio-ffmpeg's scale (libx264 crf = 51 * (1 - q/10)).
        progress: show a tqdm progress bar.
        workers: frame pairs interpolated at once by a thread pool (output order is kept, at most
            2 * workers pairs are held); default min(4, CPU count). 1 runs everything in this thread.
        encoder_options: extra ffmpeg output options, e.g. ("-preset", "veryfast") for a faster
            libx264 encode (it can cost as much CPU as the interpolation).
        planar: read and write 8-bit planar YUV sources (yuv420p, yuv422p, yuv444p) in their own pixel
            format with no colour conversion (source frames reach the encoder bit-exact; the output keeps
            the pixel format and colour tags). False: always go through rgb24 (explicit matrix and range,
            accurate rounding), as other formats and `refine=True` do; the output is then yuv420p.
        input_fps: frame rate of an image-sequence `src` (default 25, ffmpeg's); videos have their own.

    Returns:
        A `VideoResult` with frame counts, rates, scene cuts and whether audio was kept.

    Raises:
        FileNotFoundError: `src` does not exist.
        ValueError: `src` is not a video, is empty or has no frames; bad factor / fps / quality.
        ValueError: also when the encoder wrote nothing (a bad `codec` or `encoder_options`).

    Example:
        >>> interpolate_video("clip.mp4", "clip_50fps.mp4", factor=2)  # doctest: +SKIP
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if fps is None and (not isinstance(factor, int) or factor < 1):
        raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
    if fps is not None:
        checks.real(fps, "fps", lo=0.0, lo_open=True)
    if input_fps is not None:
        checks.real(input_fps, "input_fps", lo=0.0, lo_open=True)
    checks.real(quality, "quality", lo=1.0, hi=10.0)
    if scene_threshold is not None:
        checks.real(scene_threshold, "scene_threshold", lo=0.0)
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    cfg = checks.config(config, InterpolationConfig)
    _check_output_path(src, dst)
    info = _check_src(src, input_fps)
    frames_out = is_frames_output(dst)  # numbered image files: rgb frames, no sound
    ext = os.path.splitext(dst)[1].lower()
    if frames_out and is_sequence_input(src):
        check_apart(src, dst)
    # Planar YUV sources are read and written in their own pixel format (no colour conversion at all);
    # the learned refinement needs RGB, as do other formats (`pmf_edit.video.ffmpeg_io`).
    planar = planar and info.subsampling is not None and not (cfg.learned or frames_out
                                                               or ext in RGB_OUTPUTS)
    # A used alpha channel (a sticker GIF, RGBA frames) is interpolated with the colour where the output can
    # hold it (ffmpeg_io.keeps_alpha) and the method is the flow warp (the learned corrections take RGB).
    used_alpha = _ALPHA.match(info.pix_fmt) is not None and _transparent(src, info)
    alpha = used_alpha and keeps_alpha(dst) and not cfg.learned
    planar = planar and not alpha
    _warn_what_is_lost(info, planar, src, alpha_lost=used_alpha and not alpha)
    partial = _Partial(dst)  # checks and makes the output folder before any ffmpeg process starts
    tmp = partial.path
    meta, frames = read_frames(src, info, planar, alpha)
    clock, gif_out = input_rate(src, info), ext == ".gif"
    fps_in, fps_out, step = _output_clock(meta, factor, fps, slowmo, clock)
    if gif_out and fps_out > GIF_MAX_FPS + 1e-6 and not slowmo:
        # GIF delays are whole 1/100 s and browsers slow those under 2/100 s to 10/100 s: above 50 fps a GIF
        # plays too long or stutters, so the output is retimed to 50 fps (the frames are interpolated at
        # those times) rather than written at a rate no player shows.
        warnings.warn(f"{dst}: GIF players show at most {GIF_MAX_FPS} frames per second; writing {GIF_MAX_FPS} fps "
                      f"instead of {fps_out:g}", GifRateWarning, stacklevel=3)
        fps_in, fps_out, step = _output_clock(meta, factor, GIF_MAX_FPS, slowmo, clock)
    anim_out = ext in ANIMATED_IMAGES  # GIF, WebP, APNG: no sound or subtitles
    audio = keep_audio and not slowmo and info.has_audio and not (anim_out or frames_out)
    first = sequence_frames(src)[0][0] if is_sequence_input(src) else 1
    out = _Output(open_writer(tmp, info, planar, fps_out, codec, quality, encoder_options, start_number=first,
                              alpha=alpha),
                  f"{src} -> {dst} (codec {codec or default_codec(dst, info, planar, alpha)!r}, encoder options "
                  f"{list(encoder_options)})")
    pipeline = _PairPipeline(cfg, workers)  # flows and renders of the source pairs, in order
    cuts = _CutDetector(scene_threshold, info)
    bar = None
    try:
        from tqdm.auto import tqdm

        est = meta.get("duration") and int(float(meta["duration"]) * fps_in / step)
        bar = tqdm(total=est or None, unit="frame", desc=os.path.basename(src), disable=not progress)
        partial.prepare()
        out.start(bar)
        frames_in = _convert(frames, step, cuts, pipeline, out, src)
        out.finish(tmp)
        if not (slowmo or anim_out or frames_out):  # sound, subtitles and chapters run on the source's clock
            _carry(partial, src, info, audio)
    except BaseException:
        pipeline.close(cancel=True)
        out.abort()
        partial.discard()
        raise
    finally:
        pipeline.close()
        frames.close()
        if bar is not None:
            bar.close()
    partial.commit()
    _warn_if_truncated(meta, fps_in, frames_in, src, dst)
    return VideoResult(src=src, dst=dst, frames_in=frames_in, frames_out=out.count, fps_in=fps_in,
                       fps_out=fps_out, scene_cuts=cuts.count, audio=audio)


# ------------------------------------------------------------------------------------------------
# The steps of interpolate_video


class DetailLostWarning(UserWarning):
    """The input has something the interpolation does not carry: an alpha channel into an output that
    cannot hold it (or through the learned presets), more than 8 bits per sample on the rgb path (16-bit
    PNG frames, 12-bit or RGB 10-bit video)."""


# Pixel formats with an alpha channel; and the deep formats the 8-bit rgb path reduces (the 10-bit planar
# YUV formats keep their 10 bits on the planar path, ffmpeg_io.split_planes).
_ALPHA = re.compile(r"^(rgba|bgra|argb|abgr|ya|yuva|gbrap)")
_DEEP = re.compile(r"(48|64|16|p10|p12|p14|p16)(le|be)$")


def _warn_what_is_lost(info: VideoInfo, planar: bool, src: str, alpha_lost: bool) -> None:
    """Say (once, before the work) what of the source's pixels the output will not have (`alpha_lost`: the
    source's alpha is used and the output will be opaque)."""
    lost = []
    if alpha_lost:
        lost.append(f"the alpha channel (the output is opaque: {', '.join(ALPHA_CODECS)} and numbered "
                    f"{' / '.join(ALPHA_FRAMES)} frames keep it with the flow presets)")
    if _DEEP.search(info.pix_fmt) and not (planar and info.bit_depth > 8):
        lost.append(f"the bit depth ({info.pix_fmt} is read at 8 bits)")
    if lost:
        warnings.warn(f"{src}: not carried over: {'; '.join(lost)}", DetailLostWarning, stacklevel=4)


def _transparent(src: str, info: VideoInfo) -> bool:
    """Whether an input whose pixel format has alpha uses it: ffmpeg decodes every GIF as bgra and many tools
    save opaque PNGs as RGBA, so a GIF's transparency flag and a sequence's first frame are looked at."""
    from PIL import Image

    if is_sequence_input(src):
        with Image.open(sequence_frames(src)[0][1]) as im:
            return "A" in im.getbands() and im.getchannel("A").getextrema() != (255, 255)
    if info.codec == "gif":
        with Image.open(src) as im:
            return "transparency" in im.info
    return True


def _carry(partial: _Partial, src: str, info: VideoInfo, sound: bool) -> None:
    """Give the encoded video the source's sound tracks (with `sound`), subtitles and chapters
    (`ffmpeg_io.carry_streams`, through a second partial file); warn about tracks the container cannot take."""
    dst = partial.dst
    dropped = carry_streams(partial.path, src, partial.streams_path, info, sound)
    if dropped is None:
        return
    os.replace(partial.streams_path, partial.path)
    if dropped:
        warnings.warn(f"{dst}: {os.path.splitext(dst)[1] or 'this container'} cannot hold "
                      f"{', '.join(dropped)} of {src}; left out (a .mkv output keeps every track)",
                      StreamsLeftOutWarning, stacklevel=3)


class StreamsLeftOutWarning(UserWarning):
    """A source's subtitle track that the output container cannot hold was left out."""


def _output_clock(meta: dict, factor: int, fps: float | None, slowmo: bool,
                  decode_rate: float | None = None) -> tuple[float, float, float]:
    """(input fps, output fps, source frames advanced per output frame); 25 fps if the file has no rate.
    `decode_rate`: the rate the decoded frames follow where it is not the reported one (`ffmpeg_io.input_rate`)."""
    fps_in = decode_rate or float(meta.get("fps") or 0) or 25.0
    if fps is not None:
        return fps_in, float(fps), fps_in / float(fps)
    return fps_in, fps_in if slowmo else fps_in * factor, 1.0 / factor


GIF_MAX_FPS = 50  # 2/100 s per frame: the shortest GIF delay browsers honour


class _Partial:
    """Where an output is written until it is complete: a hidden ``.STEM.partial-PID.EXT`` file beside
    ``dst`` (numbered frames: a hidden folder, ``sequences.staging_pattern``). ``commit`` moves it into
    place; ``discard`` removes every trace of a failed or interrupted run. A missing output folder is
    created, as the image commands and ``interpolate_videos`` do (``_check_output_path`` has refused a
    file in its place)."""

    def __init__(self, dst: str) -> None:
        self.dst, self.frames = dst, is_frames_output(dst)
        dst_dir = os.path.dirname(os.path.abspath(dst))
        os.makedirs(dst_dir, exist_ok=True)
        stem, ext = os.path.splitext(os.path.basename(dst))
        hidden = os.path.join(dst_dir, f".{stem}.partial-{os.getpid()}{ext}")
        self.path = staging_pattern(dst) if self.frames else hidden
        self.streams_path = f"{self.path}.streams{ext}"  # the video with the source's sound (`_carry`)

    def prepare(self) -> None:
        """Make the staging folder of numbered frames (a file needs nothing)."""
        if self.frames:
            stage(self.path)

    def commit(self) -> None:
        if self.frames:
            publish(self.path, self.dst)
        else:
            os.replace(self.path, self.dst)

    def discard(self) -> None:
        if self.frames:
            discard(self.path)
            return
        for path in (self.path, self.streams_path):
            if os.path.exists(path):
                os.remove(path)


class _CutDetector:
    """Scene cuts between consecutive source frames (`cut_score` of small thumbnails above `threshold`;
    None: never a cut); each frame's thumbnail is made once."""

    def __init__(self, threshold: float | None, info: VideoInfo) -> None:
        self.threshold, self.info = threshold, info
        self.count = 0
        self._prev_thumb: np.ndarray | None = None

    def __call__(self, prev, cur) -> bool:
        if self.threshold is None:
            return False
        prev_thumb = _thumb(prev, self.info) if self._prev_thumb is None else self._prev_thumb
        cur_thumb = _thumb(cur, self.info)
        self._prev_thumb = cur_thumb
        cut = cut_score(prev_thumb, cur_thumb) > self.threshold
        self.count += cut
        return cut


class _Output:
    """The encoder end: frames in order to an imageio-ffmpeg writer, counted, with errors that name the job."""

    def __init__(self, writer, job: str) -> None:
        self.writer, self.job = writer, job
        self.count = 0
        self.bar = None
        self.started = False

    def failed(self, what: str) -> ValueError:
        return ValueError(f"ffmpeg {what} {self.job}: see its messages above")

    def start(self, bar) -> None:
        self.bar = bar

    def send(self, img) -> None:
        try:
            if not self.started:  # ffmpeg starts with the first frame: an input that fails before it (a still
                self.writer.send(None)  # image) leaves no encoder to stop (libwebp then reports ENOMEM)
                self.started = True
            self.writer.send(frame_bytes(img))
        except OSError as e:  # ffmpeg exited (e.g. an encoder that failed to open): a broken pipe
            raise self.failed("stopped accepting frames for") from e
        self.count += 1
        self.bar.update(1)

    def finish(self, path: str) -> None:
        """Close the encoder and check it wrote something to `path` (a file, or an image sequence's frames)."""
        try:
            self.writer.close()  # (never started: nothing written, said below)
        except OSError as e:
            raise self.failed("failed while finishing") from e
        # imageio-ffmpeg does not check ffmpeg's exit status: an encoder that failed to open (a bad
        # codec or encoder option) leaves no or an empty file, and a short clip never fills the pipe.
        wrote = sequence_frames(path) if is_frames_output(path) else os.path.exists(path) and os.path.getsize(path) > 0
        if not wrote:
            raise self.failed("wrote no output for")

    def abort(self) -> None:
        _abort(self.writer)


def _pair_plan(prev, cur, i: int, j: int, step: float, cut: bool) -> tuple[list, int]:
    """What source pair (i, i + 1) contributes to the output: for each output frame j, j + 1, ... whose
    source time j * step falls in [i, i + 1), a time t in (0, 1) to interpolate or a frame to pass
    through (the source frame itself at t = 0; the nearer one across a cut). Returns (plan, next j)."""
    plan: list = []
    while j * step < i + 1 - 1e-6:
        t = j * step - i
        if t < 1e-6:
            plan.append(prev)
        elif cut:
            plan.append(prev if t < 0.5 else cur)  # never blend across a cut
        else:
            plan.append(t)
        j += 1
    return plan, j


def _convert(frames, step: float, cuts: _CutDetector, pipeline: _PairPipeline, out: _Output, src: str) -> int:
    """Stream every source pair through the pipeline to the output; returns the source frames read."""
    prev = next(frames, None)
    if prev is None:
        raise ValueError(f"video has no frames (zero-length): {src}")
    frames_in = 1
    j = 0  # output frame counter; output j shows source time s = j * step (in source frames)
    for cur in frames:
        frames_in += 1
        plan, j = _pair_plan(prev, cur, frames_in - 2, j, step, cuts(prev, cur))  # pair of source frames i, i + 1
        for img in pipeline.add(prev, cur, plan):
            out.send(img)
        prev = cur
    for img in pipeline.finish():
        out.send(img)
    if frames_in < 2:
        raise ValueError(f"{src} has only 1 frame (a still image?); interpolation needs at least 2")
    if abs(j * step - (frames_in - 1)) < 1e-6:  # the last source frame, if the output clock lands on it
        out.send(prev)
    return frames_in


def _warn_if_truncated(meta: dict, fps_in: float, frames_in: int, src: str, dst: str) -> None:
    expected = int(float(meta.get("duration") or 0) * fps_in)
    if expected and frames_in < 0.9 * expected - 1:  # the container promised more than could be decoded
        warnings.warn(f"{src}: decoded only {frames_in} of the ~{expected} frames its header announces "
                      f"(truncated or damaged file?); {dst} covers those {frames_in} frames", TruncatedVideoWarning,
                      stacklevel=4)  # here, interpolate_video, its checks wrapper, the caller


class GifRateWarning(UserWarning):
    """A GIF output asked for more frames per second than GIF players show (50): it is written at 50."""


class TruncatedVideoWarning(UserWarning):
    """The source decoded to clearly fewer frames than its header announces (a cut-off download)."""


def _same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when two spellings name one file or folder (symlinks, "./x", case-insensitive systems)."""
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _check_output_path(src: str, dst: str) -> None:
    """Refuse outputs that would overwrite the input or cannot be a file."""
    stem, ext = os.path.splitext(dst)
    if not ext:
        raise ValueError(f"output {dst} has no file extension; ffmpeg picks the container by it (e.g. .mp4)")
    if ext.lower() in IMAGE_CODECS and not is_sequence(dst):
        raise ValueError(f"output {dst} is one image; for numbered frames name them with a counter, e.g. "
                         f"{stem}_%04d{ext}")
    if _same_path(src, dst):
        raise ValueError(f"output {dst} is the input {src}; writing it would destroy the input, choose another path")
    if os.path.isdir(dst):
        raise ValueError(f"output {dst} is an existing folder; give a file path, e.g. "
                         f"{os.path.join(dst, os.path.basename(src))}")
    dst_dir = os.path.dirname(os.path.abspath(dst))
    if os.path.exists(dst_dir) and not os.path.isdir(dst_dir):
        raise ValueError(f"output folder {dst_dir} is a file")


def _abort(writer) -> None:
    """Stop an imageio-ffmpeg writer without letting its own error hide the original one."""
    try:
        writer.close()
    except Exception:
        pass


@checks.checked
def interpolate_videos(
    src_dir: str | os.PathLike,
    dst_dir: str | os.PathLike,
    suffix: str = "",
    skip_existing: bool = False,
    ray: bool | str = False,
    **kwargs,
) -> BatchResult:
    """Interpolate every video in a folder; a failing file is reported and the others still run.

    Args:
        src_dir: folder of input videos (files with a known video extension, not recursive).
        dst_dir: output folder (created if missing); outputs keep their input names plus `suffix`.
        suffix: appended to each output's stem, e.g. "_2x".
        skip_existing: skip inputs whose output exists. Outputs appear only once complete (atomic
            rename), so re-running an interrupted batch with this resumes it.
        ray: False (default): convert here, one file after another. True or a cluster address
            ("auto", "ray://head:10001"): one Ray task per file over a cluster, see
            `pmf_edit.video.distributed.interpolate_files_on_ray` (needs the optional `ray` package and the
            folders on a shared filesystem).
        **kwargs: passed to `interpolate_video` (factor, fps, config, quality, ...).

    Returns:
        A `BatchResult`: `done` lists the written outputs, `failed` maps each failed input to its error,
        `skipped` lists the inputs whose outputs already existed.

    Raises:
        FileNotFoundError: `src_dir` does not exist.
        ValueError: `src_dir` holds no video files.

    Example:
        >>> res = interpolate_videos("clips/", "clips_2x/", factor=2)  # doctest: +SKIP
        >>> sorted(res.failed)  # doctest: +SKIP
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"input folder not found: {src_dir}")
    files = sorted(p for p in src_dir.iterdir() if p.is_file() and is_video_file(p))
    if not files:
        raise ValueError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}, .apng, animated .webp) in {src_dir}")
    if dst_dir.exists() and not dst_dir.is_dir():
        raise ValueError(f"output folder {dst_dir} is a file; give a folder path")
    if _same_path(src_dir, dst_dir) and not suffix:
        raise ValueError(f"output folder {dst_dir} is the input folder and suffix is empty: every input would be "
                         "overwritten; choose another folder or a suffix such as _2x")
    dst_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(path, dst_dir / f"{path.stem}{suffix}{path.suffix}") for path in files]
    if ray is not False:
        from pmf_edit.video.distributed import interpolate_files_on_ray  # Ray is imported only on this path

        return interpolate_files_on_ray(jobs, address=ray, skip_existing=skip_existing, **kwargs)
    result = BatchResult()
    for path, out in jobs:
        if skip_existing and out.exists():
            result.skipped.append(str(path))
            continue
        try:
            result.done.append(interpolate_video(path, out, **kwargs))
        except (OSError, ValueError, RuntimeError) as err:
            result.failed[str(path)] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return result
