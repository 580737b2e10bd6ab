"""RGB model quality: FD-MobileNet of one-step pMF samples vs the same network trained as flow
matching (FM) and sampled with 50 ODE steps, against the 650 held-out "photos" crops (32x32).

FD-MobileNet = Frechet distance of ImageNet MobileNetV2 pooled features (1280-d, 224 px), the
offline stand-in for FID (``core.eval.evaluation.evaluate_rgb``). It is biased upward at small N: every
row uses the same N (``--per-class`` x 13 samples vs the 650 test crops). The "real" row is N train
crops (never the test pixels) vs the test crops: the floor a perfect generator would reach.

    OMP_NUM_THREADS=1 python benchmarks/bench_rgb_model.py --out benchmarks/results/style_rgb_model.json

Prints one JSON line (also written to --out) and, with --grid, one PNG of samples per model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from core.checkpoint import bundled_model_dir, load_model
from core.data import load_dataset
from core.eval.evaluation import mobilenet_features
from core.images import make_grid, save_png
from core.eval.metrics import FeatureStats, frechet_distance
from benchmarks.report import write_report
from benchmarks.bench_generation import generate  # the same batched sampler as the MNIST benchmark


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pmf-model", default=None, help="pMF model folder (default: bundled photos)")
    ap.add_argument("--fm-model", default=None, help="FM model folder (default: bundled photos-fm)")
    ap.add_argument("--per-class", type=int, default=50, help="samples per class (13 classes)")
    ap.add_argument("--pmf-guidance", default="1,2,3", help="comma-separated omega for the pMF model")
    ap.add_argument("--fm-guidance", default="1,2", help="comma-separated CFG scales for the FM model")
    ap.add_argument("--fm-steps", type=int, default=50)
    ap.add_argument("--fm-method", choices=("euler", "heun"), default="euler")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=130)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reference-limit", type=int, default=0, help="use only the first N test crops (quick checks)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--grid", default=None, help="PNG prefix for sample grids (one per model)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    test = load_dataset("photos", split="test", resolution=32)
    train = load_dataset("photos", split="train", resolution=32)
    ref_images = test.images[: args.reference_limit] if args.reference_limit else test.images
    ref = FeatureStats.from_features(mobilenet_features(ref_images))
    k = test.num_classes
    labels = [c for c in range(k) for _ in range(args.per_class)]
    n = len(labels)
    g = torch.Generator().manual_seed(args.seed)
    real = train.images[torch.randperm(len(train), generator=g)[:n]]
    rows: dict[str, dict] = {"real-train-crops": {"fd_mobilenet": round(frechet_distance(mobilenet_features(real), ref), 3), "nfe": 0}}
    print("real-train-crops", rows["real-train-crops"], flush=True)

    models = [("pmf", args.pmf_model or bundled_model_dir("photos"), [float(v) for v in args.pmf_guidance.split(",")], 1),
              ("fm", args.fm_model or bundled_model_dir("photos-fm"), [float(v) for v in args.fm_guidance.split(",")], args.fm_steps)]
    for objective, path, scales, steps in models:
        net, meta = load_model(path)
        if meta.get("objective", "pmf") != objective:
            raise ValueError(f"{path} is a {meta.get('objective')!r} model, expected {objective!r}")
        interval = tuple(meta.get("sampling", {}).get("guidance_interval", (0.0, 1.0)))
        for scale in scales:
            images, nfe, sec = generate(net, objective, labels, steps, scale, interval, args.seed, args.batch,
                                        args.fm_method)
            ms = 1000.0 * sec / len(labels)
            fd = frechet_distance(mobilenet_features(images), ref)
            name = f"{objective}-{steps}step-w{scale:g}"
            rows[name] = {"fd_mobilenet": round(fd, 3), "nfe": nfe, "ms_per_image": round(ms, 3),
                          "guidance_scale": scale, "model": str(path), "train_steps": meta.get("train_steps")}
            print(name, rows[name], flush=True)
            if args.grid:
                pick = torch.cat([images[c * args.per_class : c * args.per_class + 8] for c in range(k)])
                save_png(f"{args.grid}_{name}.png", make_grid(pick, nrow=8))
    report = {"benchmark": "rgb_model", "n": n, "reference": "photos test split (650 held-out crops)",
              "feature": "MobileNetV2 pooled 1280-d at 224 px", "threads": args.threads, "rows": rows}
    return write_report(report, args.out)


if __name__ == "__main__":
    main()
