"""Does the 64x64 photos pMF (the bundled 32x32 one carried up by ``core.upscale`` and trained at 64)
generate as well as the 32x32 model, and better at 64? One-step samples of both, scored by
FD-MobileNet (``core.eval.evaluation.mobilenet_features``, 224 px) against the held-out "photos" crops at
both sizes:

    fd_at_32   samples at 32x32 (the 64 model's downsampled, antialiased) vs the 650 test crops at 32
    fd_at_64   samples at 64x64 (the 32 model's upsampled bicubic: what a user gets without the 64
               model) vs the same 650 test crops cut at 64

The "real" rows are train crops (never the test pixels) at each size: the floor. N = 13 x --per-class
for every row (FD is biased upward at small N: compare rows, not with other tables).

    OMP_NUM_THREADS=1 python benchmarks/bench_photos_resolution.py --model64 runs/pmf-photos64/model \
        --out benchmarks/results/photos_resolution.json --grid benchmarks/results/photos64

Prints one JSON line (also written to --out).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.report import write_report
from benchmarks.bench_generation import generate
from core.checkpoint import bundled_model_dir, load_model
from core.data import load_dataset
from core.eval.evaluation import mobilenet_features
from core.images import make_grid, save_png
from core.eval.metrics import FeatureStats, frechet_distance


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    if x.shape[-1] == side:
        return x
    down = side < x.shape[-1]
    return F.interpolate(x, size=(side, side), mode="bicubic", antialias=down, align_corners=False).clamp(-1, 1)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model32", default=None, help="32x32 pMF folder (default: the bundled photos model)")
    ap.add_argument("--model64", required=True, help="64x64 pMF folder")
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--guidance", default="1,2", help="comma-separated omega")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=130)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--grid", default=None, help="PNG prefix for 8-per-class sample grids at 64x64")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    refs, rows = {}, {}
    g = torch.Generator().manual_seed(args.seed)
    labels = None
    for side in (32, 64):
        test = load_dataset("photos", split="test", resolution=side)
        train = load_dataset("photos", split="train", resolution=side)
        refs[side] = FeatureStats.from_features(mobilenet_features(test.images))
        labels = [c for c in range(test.num_classes) for _ in range(args.per_class)]
        real = train.images[torch.randperm(len(train), generator=g)[: len(labels)]]
        rows[f"real-train-crops-{side}"] = {f"fd_at_{side}": round(frechet_distance(mobilenet_features(real), refs[side]), 3)}
    print(json.dumps(rows), flush=True)
    for name, path in (("pmf32", args.model32 or bundled_model_dir("photos")), ("pmf64", args.model64)):
        net, meta = load_model(path)
        interval = tuple(meta.get("sampling", {}).get("guidance_interval", (0.0, 1.0)))
        for w in map(float, args.guidance.split(",")):
            images, nfe, sec = generate(net, "pmf", labels, 1, w, interval, args.seed, args.batch)
            row = {"model": str(path), "image_size": net.cfg.image_size, "guidance_scale": w, "nfe": nfe,
                   "ms_per_image": round(1000 * sec / len(labels), 2), "train_steps": meta.get("train_steps")}
            for side in (32, 64):
                row[f"fd_at_{side}"] = round(frechet_distance(mobilenet_features(_resize(images, side)), refs[side]), 3)
            rows[f"{name}-w{w:g}"] = row
            print(json.dumps({f"{name}-w{w:g}": row}), flush=True)
            if args.grid:
                k = len(labels) // args.per_class
                pick = torch.cat([_resize(images, 64)[c * args.per_class: c * args.per_class + 8] for c in range(k)])
                save_png(f"{args.grid}_{name}_w{w:g}.png", make_grid(pick, nrow=8))
    report = {"benchmark": "photos_resolution", "n": len(labels), "threads": args.threads, "rows": rows}
    return write_report(report, args.out)


if __name__ == "__main__":
    main()
