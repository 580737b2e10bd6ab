"""Peak memory of `interpolate_video` on a short and a long synthetic 720p clip: it should not grow.

Synthesises 1280x720 clips (ffmpeg's moving `testsrc2` pattern, bundled ffmpeg) of each duration, then
interpolates each in a fresh subprocess and reports that process's peak RSS (the Python side) and the
largest peak RSS of its ffmpeg children (decoder / encoder), as one JSON line.

    python benchmarks/bench_vfi_memory.py --durations 10,60 --out /tmp/vfi_memory.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import imageio_ffmpeg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from pmf_edit.interpolate import CONFIGS
from pmf_edit.video import interpolate_video
t0 = time.perf_counter()
res = interpolate_video({src!r}, {dst!r}, factor=2, config=CONFIGS[{method!r}], progress=False,
                        workers={workers!r})
print(json.dumps({{
    "seconds": time.perf_counter() - t0, "cpu_s": time.process_time(),
    "frames_in": res.frames_in, "frames_out": res.frames_out,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "ffmpeg_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}}))
"""


def make_clip(path: str, seconds: float, fps: float, size: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
                    "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path], check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--durations", default="10,60", help="comma-separated clip lengths in seconds")
    p.add_argument("--fps", type=float, default=12.0, help="source frame rate of the synthetic clips")
    p.add_argument("--size", default="1280x720", help="clip size WxH")
    p.add_argument("--method", default="flow-fast", help="preset from pmf_edit.interpolate.CONFIGS")
    p.add_argument("--workers", type=int, default=None,
                   help="interpolate_video's thread pool size (default: the library default, min(4, CPU count))")
    p.add_argument("--workdir", default=None, help="where clips go (default: a temporary folder, removed)")
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        runs = {}
        for sec in [float(s) for s in args.durations.split(",")]:
            src = os.path.join(tmp, f"src_{sec:g}s.mp4")
            make_clip(src, sec, args.fps, args.size)
            code = WORKER.format(root=ROOT, src=src, dst=os.path.join(tmp, f"out_{sec:g}s.mp4"), method=args.method,
                                 workers=args.workers)
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            runs[f"{sec:g}s"] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"# {sec:g}s: {runs[f'{sec:g}s']} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    peaks = [r["peak_rss_mb"] for r in runs.values()]
    result = {"size": args.size, "fps": args.fps, "method": args.method, "runs": runs,
              "workers": args.workers or min(4, os.cpu_count() or 1), "loadavg_after": os.getloadavg(),
              "peak_rss_growth_mb": max(peaks) - min(peaks)}
    line = json.dumps(result)
    print(line)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
