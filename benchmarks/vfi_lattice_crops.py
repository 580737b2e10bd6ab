"""Picture check of the patch mesh: one rebuilt frame's worst 96-px window, enlarged 3x (nearest),
as truth | flow-gen with 1, 2 and 4 tile lattices (``GenerativeConfig.lattices``).

    OMP_NUM_THREADS=1 python benchmarks/vfi_lattice_crops.py --clip bikes.mp4 --frame 29 \
        --out docs/images/vfi_lattices_bikes_0029.png

Prints the whole frame's PSNR per lattice count. The window is where the one-lattice output is worst.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import cv2
import imageio.v3 as iio
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vfi import clip_dir, load_clip  # noqa: E402
from vfi_worst_frames import worst_window, zoom_strip  # noqa: E402

from pmf_edit.video.generative import GenerativeConfig, correct, load_generative  # noqa: E402
from pmf_edit.video.interpolate import InterpolationConfig, PairInterpolator  # noqa: E402

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", default="bikes.mp4")
    p.add_argument("--frame", type=int, default=29, help="odd frame rebuilt from its two neighbours")
    p.add_argument("--lattices", default="1,2,4")
    p.add_argument("--out", default="docs/images/vfi_lattices_bikes_0029.png")
    args = p.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    frames = load_clip(os.path.join(clip_dir(), args.clip), None)
    f0, ft, f1 = frames[args.frame - 1], frames[args.frame], frames[args.frame + 1]
    warps = PairInterpolator(f0, f1, InterpolationConfig()).warps(0.5)
    net = load_generative()
    counts = [int(v) for v in args.lattices.split(",")]
    outs = {k: correct(*warps, net=net, config=GenerativeConfig(lattices=k)) for k in counts}
    y, x = worst_window(outs[counts[0]], ft)
    iio.imwrite(args.out, zoom_strip([ft] + [outs[k] for k in counts], y, x))
    psnr = {k: round(float(10 * np.log10(255.0**2 / np.mean((o.astype(np.float64) - ft) ** 2))), 3) for k, o in outs.items()}
    print(json.dumps({"clip": args.clip, "frame": args.frame, "window_yx": [int(y), int(x)], "psnr": psnr}))


if __name__ == "__main__":
    main()
