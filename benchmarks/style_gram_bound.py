"""How far can the style's own pixels move the Gram reading? A bound for issue 14's texture target.

The target reads a method's Gram distance (mean over MobileNetV2 ``features.{3,6,13,18}``) at the content
distance of full Reinhard, against Gatys' curve there (``bench_style_curve.py``). This script asks what a
method that only rearranges or blends the style's own pixels (what a fast, non-optimising method can
put into a picture) could read, with no network in the loop: three families of cross-fades, each at
blend weights ``--betas``, averaged over the reported pairs (``bench_style_curve.PAIRS``, first ``--pairs``):

    content -> style    (1 - b) content + b style          the style image itself, centre crop at the content's size
    reinhard -> style   (1 - b) Reinhard + b style          the same on top of full Reinhard
    reinhard -> texture (1 - b) Reinhard + b texture        the texture image of pmf_edit.style.texture (the style's
                                                            full-resolution patches arranged after Reinhard's output)

For each family, its Gram distance at Gatys' content distances (read off its curve; null outside it)
is printed beside Gatys' own (reused from ``--gatys-from``, a ``bench_style_curve.py`` JSON of the
same pairs), so one sees whether any of these pixel compositions gets near Gatys at equal content cost.

    OMP_NUM_THREADS=1 python benchmarks/style_gram_bound.py --out benchmarks/results/style_gram_bound.json

Prints one JSON line; about 30 CPU s.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_style_curve import PAIRS, curve_at, skimage_rgb01  # noqa: E402
from core.eval.perceptual import MobileNetFeatures  # noqa: E402
from pmf_edit.style.baselines import content_distance, gram_distance, reinhard_transfer  # noqa: E402
from pmf_edit.style.texture import TextureConfig, cover_resize, noise_shape, synthesize_texture  # noqa: E402


def centre_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(1, C, H', W') -> (1, C, h, w), the centre (H' >= h, W' >= w)."""
    y0, x0 = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., y0:y0 + h, x0:x0 + w]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=3, help="first N pairs of bench_style_curve.PAIRS (3: the reported ones)")
    ap.add_argument("--betas", default="0,0.1,0.2,0.3,0.45,0.6,0.8,1", help="blend weights b")
    ap.add_argument("--gatys-from", default="benchmarks/results/style_curve_texture.json",
                    help="bench_style_curve.py JSON of the same pairs: Gatys' and Reinhard's rows")
    ap.add_argument("--seed", type=int, default=0, help="the texture's start noise")
    ap.add_argument("--out", default=None, help="JSON output path")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ref = json.loads(Path(args.gatys_from).read_text())
    pairs = PAIRS[: args.pairs]
    if ref["pairs"] != [list(p) for p in pairs]:
        raise SystemExit(f"{args.gatys_from} has pairs {ref['pairs']}, not {pairs}")
    gatys = sorted((r["content_distance"], r["gram_distance"], r["strength"]) for r in ref["rows"] if r["method"] == "gatys")
    reinhard_cd = ref["summary"]["reinhard_full"]["content_distance"]
    g0 = ref["summary"]["content_itself"]["gram_distance"]

    feats = MobileNetFeatures()
    betas = [float(b) for b in args.betas.split(",")]
    points: dict[str, dict[float, list[tuple[float, list[float]]]]] = {
        "content->style": {}, "reinhard->style": {}, "reinhard->texture": {}}
    with torch.no_grad():
        for cname, sname, _ in pairs:
            c, s = skimage_rgb01(cname), skimage_rgb01(sname)  # (1, 3, H, W) in [0, 1]
            H, W = c.shape[-2:]
            r = reinhard_transfer(c, s, strength=1.0)
            style = centre_crop(cover_resize(s, H, W), H, W)  # the style at the content's size
            cfg = TextureConfig()
            noise = torch.randn(noise_shape(H, W, cfg), generator=torch.Generator().manual_seed(args.seed))
            texture = synthesize_texture(r, cover_resize(s, H, W), cfg, noise=noise)  # (1, 3, H, W)
            for fam, (a, b_img) in {"content->style": (c, style), "reinhard->style": (r, style),
                                    "reinhard->texture": (r, texture)}.items():
                for b in betas:
                    out = (1 - b) * a + b * b_img
                    taps = gram_distance(out, s, feats, by_tap=True)[0]
                    points[fam].setdefault(b, []).append(
                        (float(content_distance(out, c, feats)), [float(t) for t in taps]))
    families = {}
    for fam, by_beta in points.items():
        rows = [{"beta": b, "content_distance": round(float(np.mean([p[0] for p in v])), 4),
                 "gram_distance": round(float(np.mean([np.mean(p[1]) for p in v])), 4),
                 "gram_taps": np.round(np.mean([p[1] for p in v], axis=0), 4).tolist()} for b, v in sorted(by_beta.items())]
        curve = [(r["content_distance"], r["gram_distance"]) for r in rows]
        if fam == "content->style":
            curve = [(0.0, g0)] + curve
        at = {f"at_gatys_{w:g}": {"content_distance": cd, "gatys": g,
                                  "this": None if (v := curve_at(curve, cd)) is None else round(v, 4)}
              for cd, g, w in gatys}
        at["at_reinhard_cd"] = {"content_distance": reinhard_cd,
                                "this": None if (v := curve_at(curve, reinhard_cd)) is None else round(v, 4)}
        families[fam] = {"rows": rows, **at}
    report = {"benchmark": "style_gram_bound", "pairs": [list(p) for p in pairs], "gatys_from": args.gatys_from,
              "reinhard_full": ref["summary"]["reinhard_full"],
              "gatys_gram_at_reinhard_cd": ref["summary"]["gatys_gram_at_reinhard_cd"], "families": families}
    line = json.dumps(report)
    print(line)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
