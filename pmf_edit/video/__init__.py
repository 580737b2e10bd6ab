"""Video frame interpolation: optical flow, in-between frames, whole video files.

    flow.py          DIS optical flow, backward warping, flow splatting (numpy / OpenCV)
    interpolate.py   ``interpolate_frames`` and ``PairInterpolator``: in-between frames of one pair
    refine.py        the optional small learned correction of the blended frame
    select.py        the optional learned choice between the two warped frames (preset flow-select)
    generative.py    the optional conditional pMF drawing where the warps disagree (preset flow-gen)
    generative_data.py  training crops for the learned stages (frame triplets, synthetic moving scenes)
    files.py         ``interpolate_video(s)``: stream, detect cuts, interpolate and encode video files
    ffmpeg_io.py     colour-exact decode / encode (planar YUV passthrough, tags kept) through imageio-ffmpeg
    distributed.py   ``interpolate_files_on_ray``: one Ray task per file (optional; imported only for ray=)

Example:
    >>> from pmf_edit.video import interpolate_video
    >>> res = interpolate_video("in.mp4", "out.mp4", factor=2)
"""
from __future__ import annotations

from pmf_edit.video import files
from pmf_edit.video.files import BatchResult, VideoResult, cut_score, has_audio, interpolate_video, interpolate_videos
from pmf_edit.video.interpolate import CONFIGS, InterpolationConfig, PairInterpolator, interpolate_frames

__all__ = [
    "interpolate_video", "interpolate_videos", "VideoResult", "BatchResult", "has_audio", "cut_score",
    "interpolate_frames", "InterpolationConfig", "PairInterpolator", "CONFIGS",
]


def __getattr__(name: str):
    # Every other name of the former flat module pmf_edit/video.py (now files.py) still resolves here.
    try:
        return getattr(files, name)
    except AttributeError:
        raise AttributeError(f"module 'pmf_edit.video' has no attribute {name!r}") from None
