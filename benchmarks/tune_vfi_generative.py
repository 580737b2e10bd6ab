"""Choose the generative VFI settings (tile threshold, noise) on development frames only.

Development frames: the held-out last 20 % of Big Buck Bunny (never trained on; the training recipe
uses the first 80 %) at half size (640x360), and synthetic moving scenes drawn with a seed the training
set does not use. The benchmark clips (bikes, carphone) are not read here: they report the chosen
setting (`bench_vfi.py`), they do not choose it.

    OMP_NUM_THREADS=1 python benchmarks/tune_vfi_generative.py --model runs/vfi-pmf/model \
        --out benchmarks/results/vfi_gen_tune.json

Prints one JSON object: for each setting, mean PSNR of the rebuilt middle frames (flow blend vs. with the
correction), CPU seconds per frame of the correction, and the patch mesh: ``mesh_P`` = mean over frames of
the folded-gradient excess at the network's patch period P and at P / 2 (benchmarks/style_quality.py) of the output
relative to the true middle frame (1.00: no more periodic at P than the truth; the blend's own value is
``blend_*_mesh_P``). ``--lattices 1,2,4`` compares tile lattice counts (``GenerativeConfig.lattices``:
lattice k moved k P / n pixels, so the n patch grids interleave).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vfi import clip_dir, load_clip  # noqa: E402

from pmf_edit.video import generative_data as gd  # noqa: E402
from pmf_edit.video.generative import GenerativeConfig, correct, load_generative  # noqa: E402
from style_quality import folded_gradient_excess  # noqa: E402
from pmf_edit.video.interpolate import InterpolationConfig, PairInterpolator  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean((a.astype(np.float64) - b) ** 2), 1e-10)))


def dev_triplets(num_synthetic: int, bbb_stride: int) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    frames = load_clip(os.path.join(clip_dir(), "bigbuckbunny.mp4"), None)
    split = int(0.8 * len(frames))
    half = [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in frames[split:]]
    out = [("bbb", half[k], half[k + 1], half[k + 2]) for k in range(0, len(half) - 2, bbb_stride)]
    rng = np.random.default_rng(12345)  # not a training seed (the recipe uses seed and seed + 1)
    stills = gd.offline_stills()
    for _ in range(num_synthetic):
        f0, ft, f1 = gd.synthetic_triplet(stills, 256, rng)
        out.append(("synthetic", f0, ft, f1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="VFI model folder (default: the bundled one)")
    p.add_argument("--thresholds", default="0,2,4,6,10,16")
    p.add_argument("--noise", default="zero,mean,sample")
    p.add_argument("--synthetic", type=int, default=24)
    p.add_argument("--bbb-stride", type=int, default=2)
    p.add_argument("--lattices", default="1", help="comma-separated GenerativeConfig.lattices values")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    cv2.setNumThreads(1)
    import torch

    torch.set_num_threads(1)
    net = load_generative(args.model)
    items = dev_triplets(args.synthetic, args.bbb_stride)
    warps = []
    for src, f0, ft, f1 in items:
        a, b, wa, wb = PairInterpolator(f0, f1, InterpolationConfig()).warps(0.5)
        warps.append((src, ft, (a, b, wa, wb)))
    res: dict = {"frames": {s: sum(1 for w in warps if w[0] == s) for s in ("bbb", "synthetic")}, "settings": {}}
    P = net.cfg.patch_size
    to01 = lambda f: torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255  # noqa: E731  (1, 3, H, W)

    def mesh(out: np.ndarray, truth: np.ndarray, period: int = P) -> float:
        return float(folded_gradient_excess(to01(out), to01(truth), period))

    for src in ("bbb", "synthetic"):
        outs = [(correct(*w, net=net, config=GenerativeConfig(threshold=1e9)), ft) for s, ft, w in warps if s == src]
        res[f"blend_{src}"] = float(np.mean([psnr(o, ft) for o, ft in outs]))
        res[f"blend_{src}_mesh_{P}"] = float(np.mean([mesh(o, ft) for o, ft in outs]))
        res[f"blend_{src}_mesh_{P // 2}"] = float(np.mean([mesh(o, ft, P // 2) for o, ft in outs]))
    for lattices in map(int, args.lattices.split(",")):
        for noise in args.noise.split(","):
            for thr in map(float, args.thresholds.split(",")):
                cfg = GenerativeConfig(threshold=thr, noise=noise, lattices=lattices)
                row: dict = {}
                for src in ("bbb", "synthetic"):
                    t0 = time.thread_time()
                    outs = [(correct(*w, net=net, config=cfg), ft) for s, ft, w in warps if s == src]
                    cpu = time.thread_time() - t0
                    row[src] = float(np.mean([psnr(o, ft) for o, ft in outs]))
                    row[f"gain_{src}"] = row[src] - res[f"blend_{src}"]
                    row[f"mesh_{P}_{src}"] = float(np.mean([mesh(o, ft) for o, ft in outs]))
                    row[f"mesh_{P // 2}_{src}"] = float(np.mean([mesh(o, ft, P // 2) for o, ft in outs]))
                    row[f"cpu_s_per_frame_{src}"] = cpu / len(outs)
                name = f"{noise}@{thr:g}" + (f"x{lattices}" if lattices > 1 else "")
                res["settings"][name] = row
                print(f"# {name}: {json.dumps(row)}", file=sys.stderr, flush=True)
    res["load_average"] = os.getloadavg()
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
