"""Full-size style-transfer gallery for docs/style.md: content | style | pMF | Reinhard | Gatys | pMF
without the texture stage (``texture=0``, the network's change only), per pair.

One PNG per pair at the content's own size (the style shown resized to the content's height), plus
one JSON line with each panel's picture checks (folded-gradient excess at the patch period 4, the tile
stride 24, the patch period carried to full size and the texture stage's stride and patch side at full
size; Lab lightness std ratio) and CPU seconds.

    OMP_NUM_THREADS=1 python benchmarks/style_gallery.py --out-dir docs/images

Gatys (100 Adam steps on MobileNetV2 features) costs about 11 CPU s per pair at 512 px.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.bench_style_curve import PAIRS, skimage_rgb01
from benchmarks.style_quality import folded_gradient_excess, lightness_std_ratio, texture_periods
from core.checkpoint import bundled_model_dir
from core.images import save_png
from core.eval.perceptual import MobileNetFeatures


def _u8(x01: torch.Tensor) -> np.ndarray:
    return (x01[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=3, help="first N pairs of bench_style_curve.PAIRS")
    ap.add_argument("--strength", type=float, default=None, help="pMF strength (default: style_transfer's)")
    ap.add_argument("--size-mode", default="fit")
    ap.add_argument("--gatys-steps", type=int, default=100)
    ap.add_argument("--out-dir", default="docs/images")
    ap.add_argument("--model", default=None, help="pMF model folder (default: the bundled photos model)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from pmf_edit.editing import from_pretrained
    from pmf_edit.style import DEFAULT_STRENGTH, style_transfer
    from pmf_edit.style.baselines import GatysConfig, gatys_transfer, reinhard_transfer

    net, meta = from_pretrained(args.model or bundled_model_dir("photos"))
    S = net.cfg.image_size
    feats = MobileNetFeatures()
    strength = DEFAULT_STRENGTH if args.strength is None else args.strength
    report: dict = {"benchmark": "style_gallery", "strength": strength, "size_mode": args.size_mode, "pairs": []}
    for cname, sname, pmf_style in PAIRS[: args.pairs]:
        c, s = skimage_rgb01(cname), skimage_rgb01(sname)
        H, W = c.shape[-2:]
        panels: dict[str, tuple[torch.Tensor, float]] = {}
        for name, fn in (
            ("pmf", lambda: style_transfer(net, c, s if pmf_style is None else pmf_style, strength=strength,
                                           class_names=meta.get("class_names"), size_mode=args.size_mode,
                                           generator=torch.Generator().manual_seed(0)).images),
            ("reinhard", lambda: reinhard_transfer(c, s)),
            ("gatys", lambda: gatys_transfer(c, s, feats, GatysConfig(num_steps=args.gatys_steps))),
            ("pmf_no_texture", lambda: style_transfer(
                net, c, s if pmf_style is None else pmf_style, strength=strength, texture=0.0,
                class_names=meta.get("class_names"), size_mode=args.size_mode,
                generator=torch.Generator().manual_seed(0)).images),
        ):
            c0 = time.process_time()
            out = fn()
            panels[name] = (out, time.process_time() - c0)
        checks = {}
        for name, (out, cpu) in panels.items():
            q = {"cpu_s": round(cpu, 3), "lightness_std": round(float(lightness_std_ratio(out, c)), 3)}
            pp = net.cfg.patch_size  # the patch period, on the model's input and carried up by fit
            for P in sorted({pp, 24, round(pp * max(H, c.shape[-1]) / S), *texture_periods(H, W)}):
                q[f"fge_{P}"] = round(float(folded_gradient_excess(out, c, P)), 4)
            checks[name] = q
        style_shown = F.interpolate(s, size=(H, round(s.shape[-1] * H / s.shape[-2])), mode="bilinear",
                                    antialias=True, align_corners=False)
        gap = np.full((H, 8, 3), 255, np.uint8)
        row = [_u8(c), _u8(style_shown)] + [_u8(panels[k][0]) for k in ("pmf", "reinhard", "gatys", "pmf_no_texture")]
        picture = np.concatenate([p for r in row for p in (r, gap)][:-1], axis=1)
        label = f"{cname}+{sname if pmf_style is None else pmf_style.replace(':', '_')}"
        path = save_png(Path(args.out_dir) / f"style_gallery_{label}.png", picture)
        entry = {"pair": label, "size": [H, W], "png": str(path), "pmf_style": pmf_style or sname, **checks}
        report["pairs"].append(entry)
        print(json.dumps(entry), flush=True)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
