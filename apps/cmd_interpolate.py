"""`pmf interpolate` (one frame pair -> in-between image) and `pmf interpolate-video` (files or folders)."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _config(args: argparse.Namespace):
    from pmf_edit.video import CONFIGS

    cfg = CONFIGS[args.method]
    if args.preset:
        cfg = replace(cfg, preset=args.preset)
    if args.flow_scale:
        cfg = replace(cfg, flow_scale=args.flow_scale)
    return cfg


def _add_method_flags(p: argparse.ArgumentParser) -> None:
    from pmf_edit.video import CONFIGS

    p.add_argument("--method", default="flow", choices=sorted(CONFIGS),
                   help="interpolation preset: 'flow' (default: half-size DIS FAST flow, splatting; in a video "
                        "each pixel moves on a parabola through the neighbouring frames), 'flow-linear' (the same "
                        "with straight-line motion), "
                        "'flow-medium' (full-size DIS MEDIUM: +0.15 dB on detailed video for 1.5x the time), "
                        "'flow-refine' (the default plus a small learned correction), 'flow-gen' (the default "
                        "plus the generative pMF correction where the two warped frames disagree), 'flow-select' (the default "
                        "with a small learned choice between the two warped frames where one is occluded), "
                        "'flow-fast' (no flow "
                        "splatting), 'plain-warp' (no occlusion handling), 'linear' (cross-fade)")
    p.add_argument("--preset", choices=["ultrafast", "fast", "medium"], default=None,
                   help="override the DIS optical-flow preset")
    p.add_argument("--flow-scale", type=float, default=None,
                   help="compute flow at this fraction of the frame size (e.g. 0.5 for speed on large videos)")


def _read_image(path: str):
    """An image file -> ``core.images.ImageFile`` whose pixels are float32 (C, H, W) in [0, 1] (C = 1 or 3),
    read as a viewer shows it (EXIF orientation, HEIC, CMYK, palettes, 16 bit; its alpha (1, 1, H, W) or None)."""
    from dataclasses import replace

    from core.images import open_image

    img = open_image(path)
    return replace(img, pixels=img.pixels[0])


def _with_alpha(img) -> torch.Tensor:
    """(4, H, W) RGBA of an ``_read_image`` result (grey as RGB; opaque where the file has no alpha)."""
    import torch

    rgb = img.pixels.expand(3, -1, -1)
    alpha = img.alpha[0] if img.alpha is not None else torch.ones_like(rgb[:1])
    return torch.cat([rgb, alpha])


def run_pair(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from core.images import check_image_output, write_image
    from pmf_edit.video import interpolate_frames

    file0, file1 = _read_image(args.frame0), _read_image(args.frame1)
    f0, f1 = file0.pixels, file1.pixels
    alpha = file0.alpha is not None or file1.alpha is not None  # a sticker, a cut-out: RGBA, premultiplied
    if alpha and f0.shape[1:] == f1.shape[1:]:
        f0, f1 = _with_alpha(file0), _with_alpha(file1)
    elif f0.shape[0] != f1.shape[0]:  # one grey, one colour: both as colour (a grey picture is its own RGB)
        f0, f1 = f0.expand(3, -1, -1).contiguous(), f1.expand(3, -1, -1).contiguous()
    if f0.shape != f1.shape:
        raise ValueError(f"frame sizes differ: {args.frame0} is {tuple(f0.shape)} (C, H, W), "
                         f"{args.frame1} is {tuple(f1.shape)}")
    if not os.path.splitext(args.output)[1]:
        raise ValueError(f"output {args.output} has no file extension; it picks the image format (e.g. .png)")
    check_image_output(args.output)
    if os.path.isdir(args.output):
        raise ValueError(f"output {args.output} is a folder; give an image file path, e.g. "
                         f"{os.path.join(args.output, 'middle.png')}")
    around = {}
    for name, path in (("before", args.before), ("after", args.after)):
        if path:
            img = _read_image(path)
            around[name] = _with_alpha(img) if f0.shape[0] == 4 else img.pixels.expand(f0.shape[0], -1, -1)
            if around[name].shape != f0.shape:
                raise ValueError(f"--{name} {path} is {tuple(around[name].shape)} (C, H, W), but the frames are "
                                 f"{tuple(f0.shape)}")
    times = args.t if args.t else [0.5]
    out = interpolate_frames(f0, f1, times, config=_config(args), **around)  # (T, C, H, W)
    stem, ext = os.path.splitext(args.output)
    # The frames' tags (camera, colour profile) on every middle; 16-bit frames give 16-bit middles (PNG, TIFF).
    like = replace(file0, bits=max(file0.bits, file1.bits))
    for i, (t, frame) in enumerate(zip(times, out)):
        path = args.output if len(times) == 1 else f"{stem}_{i:02d}{ext}"
        if frame.shape[0] == 4:  # the interpolated alpha, on outputs whose format has one (PNG, WebP, TIFF)
            frame, like = frame[:3], replace(like, alpha=frame[3:][None])
        write_image(path, frame, like=like)  # atomic; creates the folder like the other commands
        print(f"t={t:g} -> {path}")
    return 0


def run_video(args: argparse.Namespace) -> int:
    from pmf_edit.video import interpolate_video, interpolate_videos

    kw = dict(factor=args.factor, fps=args.fps, slowmo=args.slowmo, config=_config(args),
              scene_threshold=None if args.no_scene_detect else args.scene_threshold,
              keep_audio=not args.no_audio, codec=args.codec, quality=args.quality, progress=not args.quiet,
              workers=args.workers, encoder_options=shlex.split(args.encoder_options))
    if os.path.isdir(args.input):
        res = interpolate_videos(args.input, args.output, suffix=args.suffix, skip_existing=args.skip_existing,
                                 ray=False if args.ray is None else args.ray, **kw)
        for src in res.skipped:
            print(f"skip {src} (output exists)")
        for r in res.done:
            print(f"ok   {r.src} -> {r.dst} ({r.frames_in} -> {r.frames_out} frames, {r.fps_out:g} fps)")
        for src, err in res.failed.items():
            print(f"FAIL {src}: {err}", file=sys.stderr)
        return 1 if res.failed else 0
    if args.ray is not None or args.skip_existing:  # (--input-fps with a video: interpolate_video says why not)
        raise ValueError("--ray and --skip-existing apply to a folder INPUT (a batch of videos)")
    r = interpolate_video(args.input, args.output, input_fps=args.input_fps, **kw)
    print(f"{r.src} -> {r.dst}: {r.frames_in} -> {r.frames_out} frames, {r.fps_in:g} -> {r.fps_out:g} fps, "
          f"{r.scene_cuts} scene cuts, audio {'kept' if r.audio else 'none'}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("interpolate", help="make the frame between two images (optical flow)",
                              description="Interpolate between two frames along their optical flow.")
    p.add_argument("frame0", help="first frame (image file, the t=0 end)")
    p.add_argument("frame1", help="second frame (image file, the t=1 end), same size as frame0")
    p.add_argument("-o", "--output", required=True,
                   help="output image path; with several --t values, files are numbered OUT_00.png, OUT_01.png, ...")
    p.add_argument("--t", type=float, action="append", default=None,
                   help="time in [0, 1] of the wanted frame (default 0.5); repeat for several frames")
    p.add_argument("--before", default=None,
                   help="the frame just before frame0 (optional): with --after or alone, pixels move on a "
                        "parabola through the frames instead of a straight line")
    p.add_argument("--after", default=None, help="the frame just after frame1 (optional), see --before")
    _add_method_flags(p)
    p.set_defaults(func=run_pair)

    v = subparsers.add_parser("interpolate-video", help="raise a video's frame rate or make slow motion",
                              description="Frame-rate conversion by optical-flow interpolation, streaming "
                                          "(constant memory), with scene-cut detection and audio carried over.")
    v.add_argument("input", help="input video, a numbered image sequence as a pattern (frames/f_%%04d.png, any "
                   "first number), or a folder of videos")
    v.add_argument("output", help="output video path (its extension picks the container: .mp4, .mkv, .mov, .webm, "
                   ".gif, ...; missing folders are created), numbered frames (out/f_%%04d.png; .png .tif .jpg "
                   ".bmp), or an output folder when INPUT is a folder")
    v.add_argument("--input-fps", type=float, default=None,
                   help="frame rate of an image-sequence INPUT (default 25)")
    v.add_argument("--factor", type=int, default=2, help="output frames per input frame (default 2)")
    v.add_argument("--fps", type=float, default=None, help="target frame rate instead of --factor, e.g. 60")
    v.add_argument("--slowmo", action="store_true",
                   help="keep the input frame rate so the video plays FACTOR times slower (drops audio)")
    v.add_argument("--scene-threshold", type=float, default=0.3,
                   help="scene-cut score (colour-histogram distance in [0, 1]) above which frames are not blended")
    v.add_argument("--no-scene-detect", action="store_true", help="turn scene-cut detection off")
    v.add_argument("--no-audio", action="store_true", help="do not carry the source audio over")
    v.add_argument("--codec", default=None, help="ffmpeg video encoder (default: libx264; libx265 for 10-bit "
                   "sources; VP9 + Opus for .webm; a palette GIF for .gif)")
    v.add_argument("--quality", type=float, default=8.0, help="1 (smallest file) to 10 (best), default 8")
    v.add_argument("--encoder-options", default="",
                   help="extra ffmpeg output options, e.g. \"-preset veryfast\" (libx264) for faster encoding")
    v.add_argument("--suffix", default="", help="folder mode: appended to each output file's stem, e.g. _2x")
    v.add_argument("--skip-existing", action="store_true",
                   help="folder mode: skip videos whose output exists (outputs appear only when complete, "
                        "so re-running an interrupted batch with this resumes it)")
    v.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                   help="folder mode: one Ray task per video over a cluster (pip install 'pmf-edit[ray]'; "
                        "folders on a shared filesystem). No ADDRESS: RAY_ADDRESS or a new local Ray "
                        "instance; 'auto': the running cluster; 'ray://HOST:10001': Ray Client. "
                        "--workers is then the threads (and Ray CPUs) per video, default 1")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.add_argument("--workers", type=int, default=None,
                   help="frame pairs interpolated at once in threads (default: min(4, CPU count); 1 = no threads)")
    _add_method_flags(v)
    v.set_defaults(func=run_video)
    return p
