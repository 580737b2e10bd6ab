"""Numbered image sequences (``frames/f_%04d.png``) as the input or the output of ``interpolate_video``.

VFX, animation and game-capture work keeps footage as numbered frames; ffmpeg reads and writes them with
its image2 demuxer / muxer when the file name holds a printf integer field. This module finds the frames
of such a pattern (the first number, gaps), gives the options ffmpeg needs to open it at a frame rate,
and writes an output sequence atomically: into a hidden folder next to it, moved into place when complete.
"""
from __future__ import annotations

import os
import re
import shutil
import warnings

# A printf integer field in a file name: "%d" or zero-padded "%04d" (ffmpeg's image2 numbering).
_FIELD = re.compile(r"%(0?)(\d*)d")

DEFAULT_SEQUENCE_FPS = 25.0  # ffmpeg's image2 default when the caller names no rate

# Image formats an output sequence can be written in: extension -> (ffmpeg encoder, its pixel format).
# PNG / TIFF / BMP take the interpolated RGB as it is; JPEG at full chroma and quality 2 (of 31).
IMAGE_CODECS = {
    ".png": ("png", "rgb24"), ".tif": ("tiff", "rgb24"), ".tiff": ("tiff", "rgb24"),
    ".bmp": ("bmp", "bgr24"), ".jpg": ("mjpeg", "yuv444p"), ".jpeg": ("mjpeg", "yuv444p"),
}


def is_sequence(path: str | os.PathLike) -> bool:
    """True when the file name of ``path`` holds one printf integer field (``f_%04d.png``)."""
    return len(_FIELD.findall(os.path.basename(os.fspath(path)))) == 1


def is_sequence_input(path: str | os.PathLike) -> bool:
    """True when an input path is a pattern of numbered frames rather than a file (``50%done.mp4`` that exists
    is a video with a percent sign in its name)."""
    return is_sequence(path) and not os.path.exists(path)


def is_frames_output(path: str | os.PathLike) -> bool:
    """True when an output path names numbered image files: a counter and an extension of ``IMAGE_CODECS``
    (``50%done.mp4`` is a video file with a percent sign in its name)."""
    return is_sequence(path) and os.path.splitext(os.fspath(path))[1].lower() in IMAGE_CODECS


def sequence_frames(pattern: str) -> list[tuple[int, str]]:
    """The (number, path) of every existing file that ``pattern`` names, in order.

    Example:
        >>> sequence_frames("shot/f_%04d.png")[:2]          # doctest: +SKIP
        [(1001, 'shot/f_1001.png'), (1002, 'shot/f_1002.png')]
    """
    folder, name = os.path.split(pattern)
    m = _FIELD.search(name)
    digits = rf"(\d{{{int(m.group(2))},}})" if m.group(2) else r"(\d+)"  # %04d: 0001 ... 9999, 10000 ...
    rx = re.compile(re.escape(name[:m.start()]) + digits + re.escape(name[m.end():]) + r"\Z")
    try:
        names = os.listdir(folder or ".")
    except FileNotFoundError:
        return []
    return sorted((int(k.group(1)), os.path.join(folder, n)) for n in names if (k := rx.match(n)))


def sequence_input_options(pattern: str, fps: float | None) -> list[str]:
    """ffmpeg input options that open the image sequence ``pattern`` at ``fps`` frames per second
    (``DEFAULT_SEQUENCE_FPS`` when None) from its first frame (VFX sequences often start at 1001, which
    ffmpeg does not find by itself).

    Raises:
        FileNotFoundError: no file matches ``pattern``.
        ValueError: the numbers have a gap (ffmpeg would stop there, silently dropping the rest).
    """
    frames = sequence_frames(pattern)
    if not frames:
        raise FileNotFoundError(f"no image files match the sequence {pattern}")
    numbers = [k for k, _ in frames]
    missing = next((k + 1 for k, nxt in zip(numbers, numbers[1:]) if nxt != k + 1), None)
    if missing is not None:
        raise ValueError(f"image sequence {pattern} has a gap: frame {missing} is missing (found "
                         f"{numbers[0]}..{numbers[-1]}, {len(numbers)} files); renumber or fill it")
    rate = DEFAULT_SEQUENCE_FPS if fps is None else float(fps)
    return ["-framerate", f"{rate:g}", "-start_number", str(numbers[0])]


def staging_pattern(dst: str) -> str:
    """Where an output sequence is written first: a hidden folder beside it (``stage`` makes it), same names."""
    folder, name = os.path.split(os.path.abspath(dst))
    return os.path.join(folder, f".{_FIELD.sub('N', name)}.partial-{os.getpid()}", name)


def stage(staged: str) -> None:
    """Create the staging folder of ``staged`` (``staging_pattern``) and its parents."""
    os.makedirs(os.path.dirname(staged), exist_ok=True)


def check_apart(src: str, dst: str) -> None:
    """Refuse an output pattern that names an input frame under the same number (``f_%04d.png`` into
    ``f_%d.png`` in the same folder: from 1000 on the names are the same). The output is numbered from the
    input's first frame and is at least as long unless the rate is lowered, so such a name would be written."""
    clash = next((path for k, path in sequence_frames(src) if os.path.abspath(dst % k) == os.path.abspath(path)),
                 None)
    if clash is not None:
        raise ValueError(f"output {dst} would overwrite input frame {clash}; write the frames elsewhere or under "
                         "another name")


def publish(staged: str, dst: str) -> int:
    """Move the finished frames of ``staged`` (``staging_pattern``) to ``dst``'s folder; returns how many.
    Older files of the same pattern beyond them (a longer earlier run) are left, with a warning."""
    frames = sequence_frames(staged)
    folder = os.path.dirname(os.path.abspath(dst))
    for _, path in frames:
        os.replace(path, os.path.join(folder, os.path.basename(path)))
    discard(staged)
    if frames:
        last = frames[-1][0]
        stale = [k for k, _ in sequence_frames(dst) if k > last]
        if stale:
            warnings.warn(f"{dst}: {len(stale)} older frames numbered after this run's last ({last}) are still "
                          f"there ({dst % stale[0]} ...), from an earlier, longer run", stacklevel=4)
    return len(frames)


def discard(staged: str) -> None:
    """Remove a staging folder and whatever it holds (a failed or interrupted run)."""
    shutil.rmtree(os.path.dirname(staged), ignore_errors=True)
