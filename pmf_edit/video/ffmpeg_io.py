"""Colour-exact video decode and encode through imageio-ffmpeg's bundled ffmpeg.

ffmpeg's default yuv <-> rgb conversion truncates (about -1 of 255 levels per pass) and guesses the
colour matrix, so a decode -> rgb24 -> encode round trip darkens every frame and can shift its colours.
Two paths avoid that:

- planar (8-bit planar YUV sources: yuv420p, yuv422p, yuv444p and their full-range yuvj twins, i.e.
  nearly every H.264 / HEVC / VP9 file): frames are read in the source's own pixel format and written
  back in it, so no colour conversion happens anywhere. Untouched source frames reach the encoder
  bit-exact, range and matrix cannot be confused, and the interpolation works on the luma plane at
  full size and the chroma planes at their own size (`PairInterpolator(..., chroma0=, chroma1=)`).
- rgb (everything else: 10-bit or RGB or grey sources, subsampled chroma with an odd frame size, and
  the learned refinement, which works on RGB): decode to rgb24 and encode back with the matrix and
  range named explicitly and `accurate_rnd+full_chroma_int` rounding.

Colour tags (range, matrix, primaries, transfer) found on the input are written on the output; an
untagged planar input stays untagged (its values are unchanged, so a player shows it as before).

Display rotation (the matrix phones write instead of turning the pixels of a portrait clip): frames
are decoded as stored (`-noautorotate`: ffmpeg would otherwise turn them while we read them at the
stored size, which scrambles the rows) and the output carries the same rotation, so a player shows
it upright as it shows the input. A mirror flag in the matrix is not carried (ffmpeg reports only the
angle).
"""
from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace

import cv2
import imageio_ffmpeg
import numpy as np

from pmf_edit.video.sequences import IMAGE_CODECS, is_frames_output

# Planar YUV formats handled without conversion -> chroma subsampling (x, y): 8-bit, and the 10-bit ones
# of HDR phone footage (iPhone HEVC), which keep their 10 bits end to end.
PLANAR_FORMATS: dict[str, tuple[int, int]] = {
    "yuv420p": (2, 2), "yuvj420p": (2, 2), "yuv422p": (2, 1), "yuvj422p": (2, 1),
    "yuv444p": (1, 1), "yuvj444p": (1, 1),
    "yuv420p10le": (2, 2), "yuv422p10le": (2, 1), "yuv444p10le": (1, 1),
}
ROTATION_CONTAINERS = (".mp4", ".mov", ".m4v", ".mkv", ".webm")  # outputs that store a display rotation
TEN_BIT_MAX = 1023  # a 10-bit sample's largest value; 10-bit planes are float32 in [0, 1] in Python
# The encoder for 10-bit planar sources when none is given: HEVC (what the phones wrote; H.264 High 10 plays on
# few devices), crf matched to libx264's for the same quality setting, tagged hvc1 in MP4 / MOV for Apple players.
TEN_BIT_CODEC = "libx265"

# Colour-space tag (ffmpeg's name) -> the scale filter's matrix name and (Kr, Kb) luma weights.
_MATRICES: dict[str, tuple[str, float, float]] = {
    "bt709": ("bt709", 0.2126, 0.0722),
    "bt470bg": ("bt601", 0.299, 0.114),
    "smpte170m": ("bt601", 0.299, 0.114),
    "fcc": ("fcc", 0.30, 0.11),
    "smpte240m": ("smpte240m", 0.212, 0.087),
    "bt2020nc": ("bt2020", 0.2627, 0.0593),
    "bt2020c": ("bt2020", 0.2627, 0.0593),
}
_MATRIX_TAG = {"bt709": "bt709", "bt601": "smpte170m"}  # tag written for a guessed matrix (rgb path)

# Rounding flags for every yuv <-> rgb conversion we ask ffmpeg for; the default truncates.
SWS_FLAGS = "accurate_rnd+full_chroma_int+full_chroma_inp"


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` reads from ffmpeg's description of a file's first video stream."""

    width: int  # frame width in pixels
    height: int  # frame height in pixels
    pix_fmt: str  # the decoder's pixel format, e.g. "yuv420p"
    color_range: str | None  # "tv" (limited, 16-235) or "pc" (full, 0-255); None when untagged
    color_space: str | None  # matrix tag, e.g. "bt709", "smpte170m"; None when untagged
    color_primaries: str | None  # primaries tag; None when untagged
    color_trc: str | None  # transfer-characteristic tag; None when untagged
    has_audio: bool  # the file has an audio stream
    rotation: float = 0.0  # display rotation, degrees counter-clockwise (ffmpeg's "Display Matrix"); 0: none
    avg_fps: float | None = None  # frames / duration ("fps" in ffmpeg's description); None when not given
    base_fps: float | None = None  # the stream's base rate ("tbr"); equal to avg_fps for constant-rate video
    sar: tuple[int, int] | None = None  # sample (pixel) aspect ratio when not square (anamorphic video)
    codec: str = ""  # the stream's codec ("h264", "hevc", "gif", ...)
    interlaced: bool = False  # fields of two instants in each frame ("top first" / "bottom first")
    metadata: tuple[tuple[str, str], ...] = ()  # the file's own tags (creation_time, title, location, ...)
    audio_codecs: tuple[str, ...] = ()  # every sound track's codec, in the file's order ("aac", "ac3", ...)
    subtitle_codecs: tuple[str, ...] = ()  # every subtitle track's codec ("subrip", "mov_text", "hdmv_pgs_subtitle")
    attachments: int = 0  # attached files (a Matroska file's fonts for its styled subtitles)
    chapters: int = 0  # chapter marks
    input_options: tuple[str, ...] = ()  # ffmpeg options that open this input (an image sequence's rate, start)
    hdr10: str | None = None  # x265 parameters repeating a PQ (HDR10) source's mastering display and light levels

    @property
    def decode_rate(self) -> float | None:
        """The constant rate to decode a variable-frame-rate stream at (phone clips: frames arrive
        unevenly, average and base rate differ), or None for a constant-rate stream (decoded as is).

        The base rate when it is at most twice the average (no real frame is dropped; gaps repeat the
        frame a player would show), else the average (a base rate of 90000 or a 240-fps burst would
        multiply the frames). Frames then sit on an even clock, so the output keeps the audio in sync
        wherever the frames were uneven (taking the average rate as the clock drifted by up to the
        uneven stretch's length: 1.2 s on a 4-s test clip)."""
        a, b = self.avg_fps, self.base_fps
        if not a or not b or abs(a - b) <= 0.005 * b:
            return None
        return b if b <= 2 * a else a

    @property
    def subsampling(self) -> tuple[int, int] | None:
        """Chroma subsampling (x, y) when the planar path can carry this stream unconverted, else None."""
        sub = PLANAR_FORMATS.get(self.pix_fmt)
        if sub is None or self.width % sub[0] or self.height % sub[1]:
            return None  # odd sizes would need ceil-sized chroma planes; the rgb path handles them
        return sub

    @property
    def bit_depth(self) -> int:
        """Bits per sample the planar path carries: 10 for the 10-bit formats, else 8."""
        return 10 if self.pix_fmt.endswith("p10le") else 8

    @property
    def rgb_coded(self) -> bool:
        """True for RGB-coded video (gbrp, rgb24, libx264rgb output: no YCbCr matrix). Its colour-space
        and range tags describe RGB; the yuv420p output of the rgb path is tagged with its own."""
        return self.color_space in ("gbr", "rgb") or self.pix_fmt.startswith(("gbr", "rgb", "bgr", "argb", "abgr"))

    @property
    def full_range(self) -> bool:
        """True for full-range (0-255) video: a "pc" tag or a yuvj pixel format."""
        return self.color_range == "pc" or self.pix_fmt.startswith("yuvj")

    @property
    def matrix(self) -> str:
        """The scale filter's matrix name: from the tag, else the common player guess by size."""
        if self.color_space in _MATRICES:
            return _MATRICES[self.color_space][0]
        return "bt709" if self.width >= 1280 or self.height >= 720 else "bt601"


def probe_text(path: str, input_options: Sequence[str] = ()) -> str:
    """ffmpeg's stream description of `path` (stderr of `ffmpeg [input_options] -i path`)."""
    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", *input_options, "-i", path],
                          capture_output=True, text=True, errors="replace")
    return proc.stderr


def _split_top(text: str) -> list[str]:
    """Split at ", " outside parentheses: 'h264 (High), yuv420p(tv, bt709), 64x48' -> 3 parts."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return parts + [cur.strip()]


_ALPHA_DECODERS = {"vp8": "libvpx", "vp9": "libvpx-vp9"}


def probe_video(path: str, input_options: Sequence[str] = ()) -> VideoInfo:
    """Size, pixel format and colour tags of the first video stream of `path`.

    Args:
        path: a video file ffmpeg can read (or an image sequence pattern, with its `input_options`).
        input_options: ffmpeg options that open `path` (kept on the result: every later open uses them).

    Returns:
        A `VideoInfo`; tags ffmpeg reports as absent or "unknown" are None.

    Raises:
        ValueError: ffmpeg finds no video stream in `path`.

    Example:
        >>> probe_video("clip.mp4").pix_fmt  # doctest: +SKIP
        'yuv420p'
    """
    text = probe_text(path, input_options)
    line = re.search(r"Stream #\S+.*?: Video: (.*)", text)
    if line is None:
        raise ValueError(f"not a readable video (ffmpeg finds no video stream): {path}")
    parts = _split_top(line.group(1))
    size = next((re.match(r"(\d+)x(\d+)", p) for p in parts[1:] if re.match(r"\d+x\d+", p)), None)
    fmt = re.match(r"([\w]+)(?:\((.*)\))?$", parts[1]) if len(parts) > 1 else None
    if size is None or fmt is None:
        raise ValueError(f"could not parse ffmpeg's description of the video stream of {path}: {line.group(0)}")
    rng = space = prim = trc = None
    interlaced = False
    for item in (fmt.group(2) or "").split(", "):
        if item in ("top first", "bottom first", "top coded first (swapped)", "bottom coded first (swapped)"):
            interlaced = True
        elif item in ("tv", "pc"):
            rng = item
        elif "/" in item:  # "matrix/primaries/transfer" when they differ
            space, prim, trc = item.split("/")[:3]
        elif item in _MATRICES or item in ("rgb", "ycgco", "unknown"):
            space = prim = trc = item  # one name when all three agree
    known = lambda v: None if v in (None, "unknown", "reserved", "unspecified") else v  # noqa: E731
    # Side data of this stream: the lines after its "Stream #" line, up to the next stream.
    after = text[line.end():]
    side = after[:m.start()] if (m := re.search(r"\n\s*Stream #", after)) else after
    rot = re.search(r"Display Matrix: rotation of (-?[\d.]+) degrees", side)
    rate = lambda unit: next((float(m.group(1)) for q in parts[2:]  # noqa: E731
                              if (m := re.fullmatch(r"(\d+(?:\.\d+)?)(k?) " + unit, q)) and not m.group(2)), None)
    codec = parts[0].split()[0] if parts[0] else ""
    if codec in _ALPHA_DECODERS and re.search(r"alpha_mode\s*:\s*1", side) and "-c:v" not in input_options:
        # A WebM's VP8 / VP9 alpha is stored beside the picture, and ffmpeg's own decoders drop it: libvpx's
        # keep it (yuva420p), so every later open of this input decodes with them.
        return probe_video(path, (*input_options, "-c:v", _ALPHA_DECODERS[codec]))
    return VideoInfo(width=int(size.group(1)), height=int(size.group(2)), pix_fmt=fmt.group(1),
                     color_range=rng, color_space=known(space), color_primaries=known(prim),
                     color_trc=known(trc), has_audio=re.search(r"Stream #\S+.*: Audio:", text) is not None,
                     rotation=float(rot.group(1)) if rot else 0.0, avg_fps=rate("fps"), base_fps=rate("tbr"),
                     sar=_sar(parts), codec=codec, interlaced=interlaced,
                     metadata=_file_metadata(text), audio_codecs=_codecs(text, "Audio"),
                     subtitle_codecs=_codecs(text, "Subtitle"), attachments=len(_codecs(text, "Attachment")),
                     chapters=len(re.findall(r"^\s*Chapter #", text, re.M)), input_options=tuple(input_options),
                     hdr10=_hdr10_params(path, input_options) if known(trc) == "smpte2084" else None)


def _hdr10_params(path: str, input_options: Sequence[str] = ()) -> str | None:
    """x265 parameters (``hdr10=1:master-display=...:max-cll=...``) repeating the HDR10 static metadata of a
    PQ source, read from its first decoded frame (the mastering display's primaries and luminance, the
    content light levels: players tone-map PQ video by them), or None when it has none."""
    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", *input_options, "-i", path,
                           "-frames:v", "1", "-f", "null", "-"], capture_output=True, text=True, errors="replace")
    params = []
    md = re.search(r"Mastering display metadata:.*", proc.stderr)
    if md:
        xy = {k: re.search(k + r"\(([\d.]+)[, ]+([\d.]+)\)", md.group(0)) for k in ("r", "g", "b", "wp")}
        lum = re.search(r"min_luminance=([\d.]+), max_luminance=([\d.]+)", md.group(0))
        if all(xy.values()) and lum:  # x265 units: chromaticity 1/50000, luminance 1/10000 cd/m^2
            c = {k: f"({round(float(m.group(1)) * 50000)},{round(float(m.group(2)) * 50000)})" for k, m in xy.items()}
            params.append(f"master-display=G{c['g']}B{c['b']}R{c['r']}WP{c['wp']}"
                          f"L({round(float(lum.group(2)) * 10000)},{round(float(lum.group(1)) * 10000)})")
    cll = re.search(r"Content light level metadata: MaxCLL=(\d+), MaxFALL=(\d+)", proc.stderr)
    if cll:
        params.append(f"max-cll={cll.group(1)},{cll.group(2)}")
    return ":".join(["hdr10=1", *params]) if params else None


def _codecs(text: str, kind: str) -> tuple[str, ...]:
    """The codecs of the first input's streams of one kind ("Audio", "Subtitle", "Attachment"), in order."""
    return tuple(re.findall(r"^\s*Stream #0:\d+\S*: " + kind + r": (\w+)", text, re.M))


# Container tags the muxer writes itself (copying them would describe the source file, not ours).
_OWN_TAGS = ("major_brand", "minor_version", "compatible_brands", "encoder", "duration")


def _file_metadata(text: str) -> tuple[tuple[str, str], ...]:
    """The input file's global tags from ffmpeg's description (the "Metadata:" block of "Input #0",
    before its streams): creation time, title, a phone's location and make; multi-line values joined."""
    m = re.search(r"^Input #0.*?\n  Metadata:\n(.*?)(?=^  \S)", text, re.S | re.M)
    if m is None:
        return ()
    tags: list[tuple[str, str]] = []
    for line in m.group(1).splitlines():
        kv = re.match(r"^    (\S[^:]*?)\s*: ?(.*)$", line)
        if kv and kv.group(1) not in _OWN_TAGS:
            tags.append((kv.group(1), kv.group(2)))
        elif not kv and tags and line.strip().startswith(":"):  # continuation of a multi-line value
            tags[-1] = (tags[-1][0], tags[-1][1] + "\n" + line.strip()[1:].strip())
    return tuple(tags)


def _sar(parts: list[str]) -> tuple[int, int] | None:
    """The non-square sample aspect ratio in a stream description ('720x480 [SAR 8:9 DAR 4:3]'), else None."""
    m = next((m for p in parts if (m := re.search(r"\[SAR (\d+):(\d+) DAR", p))), None)
    if m is None or m.group(1) == m.group(2) or "0" in (m.group(1), m.group(2)):
        return None
    return int(m.group(1)), int(m.group(2))


def tag_options(info: VideoInfo) -> list[str]:
    """ffmpeg options repeating the input's colour tags (only those it has)."""
    opts = []
    for flag, value in (("-color_range", info.color_range), ("-colorspace", info.color_space),
                        ("-color_primaries", info.color_primaries), ("-color_trc", info.color_trc)):
        if value is not None:
            opts += [flag, value]
    return opts


def decode_options(info: VideoInfo, planar: bool, alpha: bool = False) -> tuple[str, int, list[str]]:
    """(pixel format, bits per pixel, extra output options) for reading frames of `info`'s stream
    (`alpha`: rgba frames, straight alpha, on the rgb path).
    Interlaced video is deinterlaced first (bwdif, one frame per frame): flow cannot follow a frame whose
    two fields show two instants, and a player deinterlaces it anyway."""
    deinterlace = ["bwdif=mode=send_frame"] if info.interlaced else []
    if planar:
        sx, sy = info.subsampling
        bpp = (8 + 16 // (sx * sy)) * (2 if info.bit_depth > 8 else 1)
        return info.pix_fmt, bpp, (["-vf", deinterlace[0]] if deinterlace else [])
    rng = "pc" if info.full_range else "tv"
    fmt = "rgba" if alpha else "rgb24"
    scale = f"scale=in_color_matrix={info.matrix}:in_range={rng}:flags={SWS_FLAGS},format={fmt}"
    return fmt, 32 if alpha else 24, ["-vf", ",".join([*deinterlace, scale])]


def encode_options(info: VideoInfo, planar: bool, pad: bool, alpha_format: str | None = None
                   ) -> tuple[str, str, list[str], list[str]]:
    """(input pixel format, output pixel format, input options, output options) to encode frames
    read with `decode_options` so the output keeps the input's matrix, range and tags.

    `pad`: pad odd sizes to even (yuv420p output needs even sizes; rgb path only). `alpha_format`: rgba frames
    in, encoded in this pixel format with alpha (e.g. yuva420p) instead of yuv420p."""
    if planar:
        tags = tag_options(info)
        return info.pix_fmt, info.pix_fmt, tags, list(tags)  # same format in and out: no conversion
    pix_out = alpha_format or "yuv420p"
    rng = "pc" if info.full_range and not info.rgb_coded else "tv"  # RGB in: standard limited-range YUV out
    vf = ("pad=ceil(iw/2)*2:ceil(ih/2)*2," if pad else "") + (
        f"scale=out_color_matrix={info.matrix}:out_range={rng}:flags={SWS_FLAGS},format={pix_out}")
    tags = tag_options(replace(info, color_space=None, color_range=None) if info.rgb_coded else info)
    if info.color_space is None or info.rgb_coded:  # the rgb path writes in a known matrix: say which
        tags += ["-colorspace", _MATRIX_TAG.get(info.matrix, info.matrix)]
    if info.color_range is None or info.rgb_coded:
        tags += ["-color_range", rng]
    return "rgba" if alpha_format else "rgb24", pix_out, [], ["-vf", vf] + tags


def split_planes(buf: bytes, info: VideoInfo) -> tuple[np.ndarray, np.ndarray]:
    """One raw planar frame -> (Y (H, W, 1), UV (H / sy, W / sx, 2)) (the chroma interleaved): uint8 for
    8-bit formats, float32 in [0, 1] (sample / 1023) for 10-bit ones (`join_planes` restores the samples)."""
    sx, sy = info.subsampling
    h, w = info.height, info.width
    ch, cw = h // sy, w // sx
    a = np.frombuffer(buf, "<u2" if info.bit_depth > 8 else np.uint8)
    y = a[:h * w].reshape(h, w, 1)
    u = a[h * w:h * w + ch * cw].reshape(ch, cw)
    v = a[h * w + ch * cw:].reshape(ch, cw)
    if info.bit_depth > 8:  # the interpolator works on uint8 or float32 planes
        scale = np.float32(1 / TEN_BIT_MAX)
        return y.astype(np.float32) * scale, np.stack([u, v], axis=-1).astype(np.float32) * scale
    return y, cv2.merge([u, v])  # (ch, cw, 2)


def join_planes(y: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Inverse of `split_planes`: (H, W, 1) and (ch, cw, 2) planes -> the raw planar frame as flat bytes
    (uint8 planes: 8-bit samples; float32 planes: 10-bit samples round(1023 v), little-endian)."""
    if y.dtype == np.float32:
        n, m = y.size, uv.shape[0] * uv.shape[1]
        out16 = np.empty(n + 2 * m, "<u2")
        for dst, plane in ((out16[:n], y.reshape(n)), (out16[n:n + m], uv[..., 0].reshape(m)),
                           (out16[n + m:], uv[..., 1].reshape(m))):
            dst[:] = np.clip(np.rint(plane * np.float32(TEN_BIT_MAX)), 0, TEN_BIT_MAX)
        return out16.view(np.uint8)
    n, m = y.size, uv.shape[0] * uv.shape[1]
    out = np.empty(n + 2 * m, np.uint8)
    out[:n] = y.reshape(n)
    u, v = cv2.split(uv)
    out[n:n + m] = u.reshape(m)
    out[n + m:] = v.reshape(m)
    return out


def yuv_to_rgb(yuv: np.ndarray, matrix: str, full_range: bool) -> np.ndarray:
    """Small (h, w, 3) uint8 YCbCr image -> (h, w, 3) uint8 RGB with the named matrix ("bt601", "bt709", ...).

    For scene-cut thumbnails (their histograms must not depend on the colour path); frames themselves
    are never converted in Python.
    """
    kr, kb = next(((r, b) for m, r, b in _MATRICES.values() if m == matrix), (0.299, 0.114))
    kg = 1.0 - kr - kb
    ys, cs, y0 = (1.0, 1.0, 0.0) if full_range else (255 / 219, 255 / 224, 16.0)
    # rows: R, G, B; columns: Y, Cb, Cr, offset (Cb, Cr centred on 128)
    m = np.array([[ys, 0.0, 2 * (1 - kr) * cs],
                  [ys, -2 * kb * (1 - kb) / kg * cs, -2 * kr * (1 - kr) / kg * cs],
                  [ys, 2 * (1 - kb) * cs, 0.0]], np.float64)
    off = -m @ np.array([y0, 128.0, 128.0])
    rgb = cv2.transform(yuv.astype(np.float32), np.hstack([m, off[:, None]]).astype(np.float32))
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def read_frames(path: str, info: VideoInfo, planar: bool, alpha: bool = False) -> tuple[dict, Generator]:
    """Start decoding `path`; returns (imageio-ffmpeg's metadata: fps, duration, size; frame generator).

    The generator yields (Y (H, W, 1), UV (H / sy, W / sx, 2)) uint8 plane pairs (`split_planes`) on the
    planar path, (H, W, 3) uint8 RGB frames otherwise, (H, W, 4) RGBA (straight alpha) with `alpha`;
    closing it stops ffmpeg.

    Raises:
        ValueError: ffmpeg cannot start decoding `path`.

    Example:
        >>> info = probe_video("clip.mp4")  # doctest: +SKIP
        >>> meta, frames = read_frames("clip.mp4", info, planar=info.subsampling is not None)  # doctest: +SKIP
    """
    pix_fmt, bpp, out_opts = decode_options(info, planar, alpha)
    clock = gif_clock(path) if info.codec == "gif" else None
    if info.codec == "gif" and clock is None:  # evenly timed GIF frames as they are (its 1/100-s time base
        out_opts = [*out_opts, "-fps_mode", "passthrough"]  # is no frame rate to fill)
    elif clock is not None:  # unevenly timed: on an even clock, a held frame repeated for as long as it shows
        out_opts = [*out_opts, "-fps_mode", "cfr", "-r", f"{clock:g}"]
    elif info.decode_rate is not None:  # variable frame rate: frames on an even clock (see VideoInfo.decode_rate)
        out_opts = [*out_opts, "-fps_mode", "cfr", "-r", f"{info.decode_rate:g}"]
    # As stored: autorotation would turn a rotated clip's frames while they are read at the stored size.
    gen = imageio_ffmpeg.read_frames(path, pix_fmt=pix_fmt, bits_per_pixel=bpp,
                                     input_params=["-noautorotate", *info.input_options], output_params=out_opts)
    try:
        meta = next(gen)
    except (OSError, RuntimeError, StopIteration) as err:
        raise ValueError(f"could not read video {path}: {str(err).splitlines()[0] if str(err) else err!r}") from err

    def frames() -> Iterator:
        try:
            for buf in gen:
                if planar:
                    yield split_planes(buf, info)
                else:
                    yield np.frombuffer(buf, np.uint8).reshape(info.height, info.width, bpp // 8)  # (H, W, 3 or 4)
        finally:
            gen.close()

    return meta, frames()


def gif_delays(path: str) -> tuple[int, ...]:
    """A GIF's frame delays in 1/100 s as ffmpeg's demuxer (and browsers) play them: below 2, 10. (Pillow
    decodes every frame to find them: one reading per file version, cached.)"""
    st = os.stat(path)
    return _gif_delays(os.path.abspath(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _gif_delays(path: str, mtime_ns: int, size: int) -> tuple[int, ...]:
    from PIL import Image

    delays = []
    with Image.open(path) as im:
        for k in range(getattr(im, "n_frames", 1)):
            im.seek(k)
            d = round(im.info.get("duration", 100) / 10)
            delays.append(d if d >= 2 else 10)
    return tuple(delays)


def gif_clock(path: str) -> float | None:
    """The even clock (frames per second) an unevenly timed GIF is decoded at: one tick per shortest delay,
    so a frame held for a second (a pause on the last frame, a title card) is repeated as long as it
    shows; None for a GIF whose delays differ by at most 1/100 s (its frames are taken as they are)."""
    delays = gif_delays(path)
    return None if max(delays) - min(delays) <= 1 else 100.0 / min(delays)


def input_rate(path: str, info: VideoInfo) -> float | None:
    """The frame rate the frames of `read_frames` follow where it is not the stream's reported one, else
    None: a GIF's (frames / duration when its frames are evenly timed, its even clock `gif_clock` otherwise;
    its stream reports its 1/100-s time base as 100 fps), or the even clock a variable-frame-rate stream is
    decoded at (`decode_rate`)."""
    if info.codec == "gif":
        delays = gif_delays(path)
        return gif_clock(path) or 100.0 * len(delays) / sum(delays)
    return info.decode_rate


# The encoder a container gets when none is given (libx264, or libx265 for 10-bit sources, elsewhere), and the
# ones for frames with alpha: a GIF's transparent palette entry (alpha thresholded at 128 by paletteuse), VP9's
# alpha in WebM, ProRes 4444 in MOV (what video editors import with transparency), animated WebP and APNG.
CONTAINER_CODECS = {".gif": "gif", ".webp": "libwebp_anim", ".apng": "apng", ".webm": "libvpx-vp9"}
ALPHA_CODECS = {**CONTAINER_CODECS, ".mov": "prores_ks", ".mkv": "libvpx-vp9"}  # Matroska holds VP9's alpha too
# ... and the pixel format each of those writes the alpha in (RGBA PNG / TIFF for numbered frames).
ALPHA_FORMATS = {"gif": "pal8", "libvpx-vp9": "yuva420p", "prores_ks": "yuva444p10le", "libwebp_anim": "bgra",
                 "apng": "rgba"}
ALPHA_FRAMES = {".png": "rgba", ".tif": "rgba", ".tiff": "rgba"}
# Animated-image outputs: no sound, subtitles or file tags, and they loop (as a GIF does, and stickers are made to).
ANIMATED_IMAGES = (".gif", ".webp", ".apng")
# Outputs whose encoders take RGB: their frames come from the accurate RGB decode, not the planar path (APNG
# stores RGB; libwebp makes the YUV a WebP decoder expects, WebP having no colour tags).
RGB_OUTPUTS = (".apng", ".webp")


def keeps_alpha(dst: str) -> bool:
    """Whether `open_writer(dst, ..., alpha=True)` writes the frames' alpha: .gif, .webp, .apng, .webm, .mkv and
    .mov files and numbered .png / .tif frames (other containers and formats are written opaque)."""
    ext = os.path.splitext(dst)[1].lower()
    return ext in ALPHA_FRAMES if is_frames_output(dst) else ext in ALPHA_CODECS


def default_codec(dst: str, info: VideoInfo, planar: bool, alpha: bool = False) -> str:
    """The encoder ``open_writer`` uses when none is given: the image encoder of a numbered-frames output
    (png, tiff, mjpeg, bmp), "gif" for .gif, animated WebP / APNG for .webp / .apng, VP9 for .webm (and an .mkv
    with alpha), ProRes 4444 for a .mov with alpha, libx265 for a 10-bit planar source, libx264 otherwise."""
    ext = os.path.splitext(dst)[1].lower()
    if is_frames_output(dst):
        return IMAGE_CODECS[ext][0]
    codecs = ALPHA_CODECS if alpha else CONTAINER_CODECS
    if ext in codecs:
        return codecs[ext]
    return TEN_BIT_CODEC if planar and info.bit_depth > 8 else "libx264"


def open_writer(dst: str, info: VideoInfo, planar: bool, fps: float, codec: str | None, quality: float,
                encoder_options: Sequence[str] = (), start_number: int = 1, alpha: bool = False) -> Generator:
    """An imageio-ffmpeg writer for frames shaped like `read_frames`' output: `send(None)` starts ffmpeg,
    then `send(frame_bytes(frame))` per frame, `close()` finishes. Same pixel format and colour tags as
    the input on the planar path; yuv420p with explicit matrix / range on the rgb path.

    Args:
        dst: output path (its extension picks the container).
        info, planar: the input's `VideoInfo` and the path `read_frames` used.
        fps: output frame rate. codec: ffmpeg encoder; None picks one the container takes: libx264 (MP4, MKV,
            MOV, AVI), libx265 Main 10 for a 10-bit planar source, VP9 + Opus for .webm, a clip palette for .gif,
            animated WebP (lossy) and APNG (lossless RGB) looping like a GIF.
        quality: imageio's 1-10 scale (mapped to the chosen encoder's crf).
        encoder_options: extra ffmpeg output options.
        start_number: the first file's number when `dst` is an image sequence (`sequences.is_frames_output`:
            rgb frames written as they are in the format of its extension, `sequences.IMAGE_CODECS`).
        alpha: the frames are (H, W, 4) RGBA (straight alpha); written with their alpha where `keeps_alpha`
            (`ALPHA_CODECS`, `ALPHA_FRAMES`; codec None picks the encoder that carries it), else opaque.

    The file has the video alone; `carry_streams` adds the source's sound, subtitles and chapters.
    """
    if is_frames_output(dst):
        return _sequence_writer(dst, info, planar, fps, codec, encoder_options, start_number, alpha)
    pad = not planar and (info.width % 2 or info.height % 2)
    ext = os.path.splitext(dst)[1].lower()
    # rgba frames in, out in the alpha format of the encoder (yuv420p where it has none: opaque)
    alpha_format = ALPHA_FORMATS.get(codec or default_codec(dst, info, planar, alpha)) if alpha else None
    pix_in, pix_out, in_opts, out_opts = encode_options(info, planar, bool(pad), alpha_format)
    if alpha and alpha_format is None:
        pix_in = "rgba"
    if codec is None:  # a default the container and the source's bit depth can take
        codec = default_codec(dst, info, planar, alpha)
        level = 1 - quality / 10.0  # imageio's libx264 mapping (crf = level * 51), rescaled to each encoder's range
        crf = lambda top: str(int(level * top))  # noqa: E731
        if codec == "gif":  # one palette for the clip (ffmpeg's fixed default palette bands), no sound
            pix_out, quality = "pal8", None
            out_opts = ["-vf", "split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=sierra2_4a"]
        elif codec == "libvpx-vp9":  # WebM takes VP8 / VP9 / AV1 video only
            quality = None
            out_opts = [*out_opts, "-crf", crf(63), "-b:v", "0", "-row-mt", "1", "-deadline", "good", "-cpu-used", "4"]
        elif codec == "libwebp_anim":  # lossy animated WebP, looping (quality 8: libwebp's 80); RGB in: libwebp
            pix_out, quality = "bgra", None  # makes the YUV a WebP decoder expects (no colour tags in WebP)
            out_opts = ["-quality", str(round(100 * (1 - level))), "-loop", "0"]
        elif codec == "apng":  # lossless RGB(A) frames, looping: no YUV step at all
            pix_out, quality = ("rgba" if alpha else "rgb24"), None
            out_opts = ["-plays", "0"]
        elif codec == "prores_ks":  # 4444: the ProRes profile with alpha
            quality = None
            out_opts = [*out_opts, "-profile:v", "4444"]
        elif codec == TEN_BIT_CODEC:  # keep the 10 bits in a format players take
            quality = None  # (imageio would pass -qscale:v, which libx265 ignores)
            out_opts = [*out_opts, "-crf", crf(51)]
            if ext in (".mp4", ".mov", ".m4v"):
                out_opts += ["-tag:v", "hvc1"]
    if codec == "libx265":  # quiet, and an HDR10 source's mastering display / light levels written again
        out_opts = [*out_opts, "-x265-params", ":".join(["log-level=error", *([info.hdr10] if info.hdr10 else [])])]
    if info.rotation:  # the frames are as stored: the output shows them turned as the input did
        # MP4 / MOV / Matroska carry the rotation as metadata (no pixel is touched); GIF, AVI and the like
        # cannot, so ffmpeg turns the frames themselves on the way in.
        keep = ext in ROTATION_CONTAINERS
        in_opts = [*in_opts, "-display_rotation", f"{info.rotation:g}", *(["-noautorotate"] if keep else [])]
    out_opts = [*out_opts, *_file_tag_options(info, ext)]
    if info.sar is not None:  # anamorphic: the output's pixels have the input's shape (display aspect kept)
        out_opts = [*out_opts, "-aspect", f"{info.width * info.sar[0]}:{info.height * info.sar[1]}"]
    # palettegen warns "Duped color" for every repeated entry of a palette with few colours (a sticker), and
    # libwebp that it converts RGB to YUV itself (which is why it is given RGB).
    log = "error" if codec in ("gif", "libwebp_anim") else "warning"
    return imageio_ffmpeg.write_frames(dst, (info.width, info.height), fps=fps, codec=codec, quality=quality,
                                       macro_block_size=1, pix_fmt_in=pix_in, pix_fmt_out=pix_out,
                                       input_params=in_opts, output_params=out_opts + list(encoder_options),
                                       ffmpeg_log_level=log)


def _sequence_writer(dst: str, info: VideoInfo, planar: bool, fps: float, codec: str | None,
                     encoder_options: Sequence[str], start_number: int, alpha: bool = False) -> Generator:
    """`open_writer` for numbered image files: rgb24 (or rgba) frames in, the extension's image encoder out."""
    if planar:
        raise ValueError("an image sequence is written from rgb frames (planar=False)")
    codec = codec or default_codec(dst, info, planar)
    ext = os.path.splitext(dst)[1].lower()
    pix_out = ALPHA_FRAMES[ext] if alpha and ext in ALPHA_FRAMES else IMAGE_CODECS[ext][1]
    # Image files store no rotation: a rotated source's frames are turned by ffmpeg on the way in.
    in_opts = ["-display_rotation", f"{info.rotation:g}"] if info.rotation else []
    jpeg = ["-q:v", "2", "-color_range", "pc"]  # full-range YCbCr, as JPEG files are
    out_opts = ["-start_number", str(start_number), *(jpeg if codec == "mjpeg" else [])]
    return imageio_ffmpeg.write_frames(dst, (info.width, info.height), fps=fps, codec=codec, quality=None,
                                       macro_block_size=1, pix_fmt_in="rgba" if alpha else "rgb24",
                                       pix_fmt_out=pix_out,
                                       input_params=in_opts, output_params=out_opts + list(encoder_options))


def _file_tag_options(info: VideoInfo, ext: str) -> list[str]:
    """ffmpeg output options writing the source's own tags (creation time, title, location...: photo libraries
    sort by them) on an output of extension `ext`, with the flag an MP4 / MOV needs for keys beyond the
    standard ones (com.apple.quicktime...); none for a GIF."""
    if not info.metadata or ext in ANIMATED_IMAGES:
        return []
    opts = [arg for key, value in info.metadata for arg in ("-metadata", f"{key}={value}")]
    if ext in (".mp4", ".mov", ".m4v") and any("." in k or k == "location" for k, _ in info.metadata):
        opts += ["-movflags", "use_metadata_tags"]
    return opts


# Sound codecs each container takes as they are: copied (no second lossy generation), the others re-encoded
# (AAC; Opus for WebM, which takes Opus / Vorbis only). None: any codec (Matroska).
_MP4_SOUND = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
_SOUND_AS_IS: dict[str, set[str] | None] = {
    ".mkv": None, ".mp4": _MP4_SOUND, ".m4v": _MP4_SOUND,
    ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le"},  # (FLAC and Opus: MP4 only)
    ".webm": {"opus", "vorbis"}, ".avi": {"mp3", "ac3", "pcm_s16le"},
}
# Subtitles per container: (the codecs it takes as they are, the text format other text subtitles become).
# Matroska takes text and picture (DVD, Blu-ray, DVB) subtitles but not MP4's mov_text; MP4 / MOV take
# mov_text only, WebM WebVTT only; picture subtitles fit Matroska alone, and other containers take none
# (such tracks are reported).
_SUBTITLES: dict[str, tuple[set[str], str]] = {
    ".mkv": ({"subrip", "ass", "ssa", "webvtt", "text", "dvd_subtitle", "hdmv_pgs_subtitle", "dvb_subtitle"}, "srt"),
    ".mp4": ({"mov_text"}, "mov_text"), ".m4v": ({"mov_text"}, "mov_text"), ".mov": ({"mov_text"}, "mov_text"),
    ".webm": ({"webvtt"}, "webvtt"),
}
_TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}


def carry_streams(video: str, src: str, dst: str, info: VideoInfo, sound: bool = True) -> list[str] | None:
    """Write `dst`: the video stream of `video` (copied, untouched) with the streams of the source `src`
    that follow its clock: every sound track (with `sound`), every subtitle track, attachments (a Matroska
    file's fonts) and the chapters, in the source's order, with their language, title and default flags.
    Sound is copied where the container takes its codec (`_SOUND_AS_IS`), else re-encoded; subtitles are
    copied or converted to the container's text format (`_SUBTITLES`).

    Returns:
        None when `src` has nothing to carry (nothing is written: `video` is the output as it is), else
        the tracks the container could not take (e.g. "subtitle track 0 (hdmv_pgs_subtitle)"), maybe [].

    Raises:
        ValueError: ffmpeg failed, also with the sound re-encoded (its message included).
    """
    sounds = info.audio_codecs if sound else ()
    if not (sounds or info.subtitle_codecs or info.chapters):
        return None
    dropped, error = _carry_pass(video, src, dst, info, sounds, copy_sound=True)
    if dropped is None:  # a container that refuses a sound codec it was thought to take: re-encode the sound
        dropped, error = _carry_pass(video, src, dst, info, sounds, copy_sound=False)
    if dropped is None:
        raise ValueError(f"ffmpeg could not add the sound / subtitles of {src} to {dst}: {error}")
    return dropped


def _carry_pass(video: str, src: str, dst: str, info: VideoInfo, sounds: Sequence[str], copy_sound: bool
                ) -> tuple[list[str] | None, str]:
    """One try of `carry_streams`: (the tracks the container could not take, "") or (None, ffmpeg's error)."""
    ext = os.path.splitext(dst)[1].lower()
    as_is = _SOUND_AS_IS.get(ext, set()) if copy_sound else set()
    subs_as_is, subs_to = _SUBTITLES.get(ext, (set(), None))
    opts, dropped = ["-map", "0:v:0", "-c:v", "copy"], []
    for k, codec in enumerate(sounds):
        keep = as_is is None or codec in as_is
        opts += ["-map", f"1:a:{k}", f"-c:a:{k}", "copy" if keep else ("libopus" if ext == ".webm" else "aac")]
    n = 0
    for k, codec in enumerate(info.subtitle_codecs):
        if codec in subs_as_is or (subs_to is not None and codec in _TEXT_SUBTITLES):
            opts += ["-map", f"1:s:{k}", f"-c:s:{n}", "copy" if codec in subs_as_is else subs_to]
            n += 1
        else:
            dropped.append(f"subtitle track {k} ({codec})")
    if info.attachments and ext == ".mkv":
        opts += ["-map", "1:t", "-c:t", "copy"]
    opts += ["-map_chapters", "1" if info.chapters else "-1", *_file_tag_options(info, ext)]
    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", video, *info.input_options,
                           "-i", src, *opts, dst],
                          capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        return None, proc.stderr.strip()[-400:]
    return dropped, ""


def frame_bytes(frame) -> np.ndarray:
    """The raw frame for the writer of `open_writer` from a (Y, UV) pair or an (H, W, 3) RGB frame: a
    contiguous uint8 array (the writer takes any buffer, so no extra bytes copy per frame)."""
    if isinstance(frame, tuple):
        return join_planes(*frame)
    return np.ascontiguousarray(frame)
