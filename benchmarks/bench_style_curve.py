"""Style transfer on full-size photos: content distance against Gram distance over strength, for pMF,
Reinhard and Gatys, plus the picture checks (periodic artefacts, contrast) and CPU time.

Why a curve: a single combined score rewards doing nothing (an unchanged content is close to the
content and not far from a similar-looking style). Each method is run at several strengths; each
point is (content distance, Gram distance) averaged over the pairs:

    content_distance   LPIPS-style MobileNetV2 distance of the output to the content (core.eval.perceptual)
    gram_distance      mean over features.{3,6,13,18} of ||G(out) - G(style)||_F / ||G(style)||_F
                       (224 px, pmf_edit.style_baselines)

The issue's target (issue 14): at the content distance of full Reinhard, pMF's Gram distance (read off
its curve by linear interpolation) at least 40% of the way from Reinhard's to Gatys' (Gatys' curve read
at the same content distance), at >= 50x less CPU time than Gatys. ``progress`` in the summary is that
fraction; it is null when a curve does not reach Reinhard's content distance (no extrapolation).

Picture checks per method (benchmarks/style_quality.py), at the strengths run:
    fge_P              folded-gradient excess at period P (the patch period p, 4 for the bundled model,
                       the tile stride 24, the patch period carried to full size by fit, p x max(H, W) / S,
                       and the texture stage's patch stride and side at full size); 1.00 = none, target <= 1.02
    gram_tapN          the Gram distance at one tap (features.N) alone: which layers a method moves
    lightness_std      Lab lightness std of the output over the content's, target >= 0.6 unless the
                       style is flat (Reinhard's ratio shows what the style's own contrast allows)

Pairs: skimage photos at their own sizes (300x451 to 512x512; the style image at its own size). The
bundled photos model was trained on crops of these very images (there are no other offline colour
photos), so the pairs are not held out at the image level; the classes used are the style's own.

    OMP_NUM_THREADS=1 python benchmarks/bench_style_curve.py --out benchmarks/results/style_curve.json \
        --plot benchmarks/results/style_curve.png

Prints one JSON line. Gatys runs once per pair and style weight (about 11 CPU s each at 100 steps):
keep --gatys-weights short. CPU time is process time; the machine is shared (see ``uptime``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.style_quality import folded_gradient_excess, lightness_std_ratio, texture_periods
from core.checkpoint import bundled_model_dir
from core.eval.perceptual import MobileNetFeatures
from pmf_edit.style.baselines import GatysConfig, content_distance, gatys_transfer, gram_distance, reinhard_transfer

# (content, style image, pMF style: None = the style image, or a class of the photos model)
PAIRS: list[tuple[str, str, str | None]] = [
    ("astronaut", "brick", None),
    ("astronaut", "coffee", None),
    ("chelsea", "brick", "class:brick"),
    ("coffee", "gravel", None),
    ("rocket", "grass", None),
]


def skimage_rgb01(name: str) -> torch.Tensor:
    """A skimage.data image -> (1, 3, H, W) float32 in [0, 1] (gray repeated to RGB)."""
    import skimage.data as sd

    arr = np.asarray(getattr(sd, name)())
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return torch.from_numpy(arr[..., :3].astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def multiscale_style(net, content: torch.Tensor, style: torch.Tensor, pmf_style: str | None, strength: float,
                     scale: int, class_names, seed: int, **options) -> torch.Tensor:
    """A design tried for texture (not in the library): stylise the content at ``scale`` x the model's
    side in model-size tiles, each tile reading a crop of the style taken at the same relative scale
    (kv_replace, no residual, full colour move, unless ``options`` (style_transfer keywords) say
    otherwise), and carry the change up with the guided upsampler.

    content (1, 3, H, W), style (1, 3, H', W') in [0, 1] -> (1, 3, H, W).
    """
    from pmf_edit.images import guided_upsample, plan_size, to_network, from_network
    from pmf_edit.style import style_transfer

    S = net.cfg.image_size

    def at_scale(x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        k = scale * S / max(H, W)
        size = (max(S, round(H * k)), max(S, round(W * k)))
        return torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True,
                                               align_corners=False).clamp(0, 1)

    work = at_scale(content)
    plan = plan_size(*work.shape[-2:], S, "tile")
    tiles = to_network(plan, work)  # (T, 3, S, S)
    if pmf_style is None:
        small = at_scale(style)
        refs = to_network(plan_size(*small.shape[-2:], S, "tile"), small)
        ref = refs[torch.arange(tiles.shape[0]) % refs.shape[0]]  # style crops, cycled over the tiles
    else:
        ref = pmf_style
    kw = {"method": "kv_replace", "residual": False, "color_weight": 1.0, **options}
    out = style_transfer(net, tiles, ref, strength=strength, class_names=class_names,
                         generator=torch.Generator().manual_seed(seed), **kw).images
    changed = from_network(plan, work, tiles, out)
    return (content + guided_upsample(changed - work, work, content)).clamp(0, 1)


def curve_at(points: list[tuple[float, float]], cd: float) -> float | None:
    """Gram distance of a curve [(content distance, Gram distance)] at content distance ``cd``, by
    linear interpolation between its points sorted by content distance; None outside its range."""
    pts = sorted(points)
    for (c0, g0), (c1, g1) in zip(pts, pts[1:]):
        if c0 <= cd <= c1:
            return g0 if c1 == c0 else g0 + (g1 - g0) * (cd - c0) / (c1 - c0)
    if len(pts) == 1 and pts[0][0] == cd:
        return pts[0][1]
    return None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="pMF model folder (default: the bundled photos model)")
    ap.add_argument("--pairs", type=int, default=len(PAIRS), help=f"first N of the {len(PAIRS)} pairs")
    ap.add_argument("--strengths", default="0.3,0.5,0.7,0.85,1.0", help="pMF strengths")
    ap.add_argument("--size-modes", default="fit", help="pMF size modes (comma-separated: fit, crop, tile)")
    ap.add_argument("--variants", default="",
                    help="also run these style_transfer settings (names of tune_style_inject.CONFIGS, comma-separated) "
                    "in the first size mode, as families pmf-MODE-NAME (multi-scale ones: pmf-NAME)")
    ap.add_argument("--multiscale", type=int, default=0,
                    help="also run the multi-scale tile design (multiscale_style) at this scale (x the model's side)")
    ap.add_argument("--reinhard-strengths", default="0.25,0.5,0.75,1.0")
    ap.add_argument("--gatys-weights", default="0.02,0.1,1.0", help="Gatys style weights (one run per pair each)")
    ap.add_argument("--gatys-steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reuse-baselines", default=None,
                    help="a previous --out JSON of the same pairs: take its Reinhard and Gatys rows instead of "
                    "rerunning them (they do not depend on the pMF model or its settings)")
    ap.add_argument("--out", default=None, help="JSON output path")
    ap.add_argument("--plot", default=None, help="PNG plot of the curves (needs matplotlib)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from pmf_edit.editing import from_pretrained
    from pmf_edit.style import style_transfer

    model_dir = Path(args.model) if args.model else bundled_model_dir("photos")
    net, meta = from_pretrained(model_dir)
    names = meta.get("class_names")
    S = net.cfg.image_size
    feats = MobileNetFeatures()
    pairs = PAIRS[: args.pairs]
    images = {n: skimage_rgb01(n) for p in pairs for n in p[:2]}

    Fn = Callable[[torch.Tensor, torch.Tensor, str | None], torch.Tensor]
    methods: dict[str, list[tuple[float, Fn]]] = {}  # family -> [(strength, fn)]
    methods["reinhard"] = [(w, lambda c, s, k, w=w: reinhard_transfer(c, s, strength=w))
                           for w in map(float, args.reinhard_strengths.split(","))]
    for mode in args.size_modes.split(","):
        methods[f"pmf-{mode}"] = [
            (st, lambda c, s, k, st=st, mode=mode: style_transfer(
                net, c, s if k is None else k, strength=st, class_names=names, size_mode=mode,
                generator=torch.Generator().manual_seed(args.seed)).images)
            for st in map(float, args.strengths.split(","))]
    if args.variants:
        from benchmarks.tune_style_inject import CONFIGS, run_config

        mode = args.size_modes.split(",")[0]
        for name in args.variants.split(","):
            kw = {**CONFIGS[name], **({} if "multiscale" in CONFIGS[name] else {"size_mode": mode})}
            family = f"pmf-{name}" if "multiscale" in CONFIGS[name] else f"pmf-{mode}-{name}"
            methods[family] = [
                (st, lambda c, s, k, st=st, kw=kw: run_config(net, c, s, k, st, kw, names, args.seed))
                for st in map(float, args.strengths.split(","))]
    if args.multiscale:
        methods[f"pmf-multiscale{args.multiscale}"] = [
            (st, lambda c, s, k, st=st: multiscale_style(net, c, s, k, st, args.multiscale, names, args.seed))
            for st in map(float, args.strengths.split(","))]
    gcfgs = [GatysConfig(num_steps=args.gatys_steps, style_weight=float(w)) for w in args.gatys_weights.split(",") if w]
    methods["gatys"] = [(g.style_weight, lambda c, s, k, g=g: gatys_transfer(c, s, feats, g)) for g in gcfgs]

    rows: list[dict] = []
    if args.reuse_baselines:
        old = json.loads(Path(args.reuse_baselines).read_text())
        if old["pairs"] != [list(p) for p in pairs] or old["gatys_steps"] != args.gatys_steps:
            raise ValueError(f"--reuse-baselines {args.reuse_baselines} has other pairs or Gatys steps")
        rows = [r for r in old["rows"] if r["method"] in ("reinhard", "gatys")]
        done = {r["strength"] for r in rows if r["method"] == "gatys"}
        # Gatys weights the old run did not have are still run.
        methods["gatys"] = [(w, fn) for w, fn in methods["gatys"] if w not in done]
        methods["reinhard"] = []
    for family, runs in methods.items():
        for strength, fn in runs:
            per = []
            for cname, sname, pmf_style in pairs:
                c, s = images[cname], images[sname]
                c0 = time.process_time()
                out = fn(c, s, pmf_style)
                cpu = time.process_time() - c0
                H, W = c.shape[-2:]
                taps = gram_distance(out, s, feats, by_tap=True)[0]  # (taps,); their mean is the Gram distance
                q = {"cpu_s": cpu,
                     "content_distance": float(content_distance(out, c, feats)),
                     "gram_distance": float(taps.mean()),
                     **{f"gram_tap{t}": float(v) for t, v in zip(feats.layers, taps)},
                     "lightness_std": float(lightness_std_ratio(out, c))}
                pp = net.cfg.patch_size  # the patch period on the model's input, and carried to full size
                for P in sorted({pp, 24, round(pp * max(H, W) / S)}):
                    q[f"fge_{P if P in (pp, 24) else 'patch_full'}"] = float(folded_gradient_excess(out, c, P))
                for name, P in zip(("fge_texture_stride", "fge_texture_patch"), texture_periods(H, W)):
                    q[name] = float(folded_gradient_excess(out, c, P))
                per.append(q)
            row = {"method": family, "strength": strength,
                   **{k: round(float(np.mean([p[k] for p in per])), 4) for k in per[0]},
                   "max_fge": round(max(max(v for k, v in p.items() if k.startswith("fge")) for p in per), 4),
                   "min_lightness_std": round(min(p["lightness_std"] for p in per), 4)}
            rows.append(row)
            print(json.dumps(row), flush=True)

    # Every method at strength 0 returns the content: the curves all start at (0, Gram(content)).
    g0 = float(np.mean([float(gram_distance(images[c], images[s], feats)) for c, s, _ in pairs]))

    def curve(family: str) -> list[tuple[float, float]]:
        return [(0.0, g0)] + [(r["content_distance"], r["gram_distance"]) for r in rows if r["method"] == family]

    full_r = next(r for r in rows if r["method"] == "reinhard" and r["strength"] == 1.0) if any(
        r["method"] == "reinhard" and r["strength"] == 1.0 for r in rows) else None
    summary: dict = {}
    if full_r is not None:
        cd = full_r["content_distance"]
        g_r = full_r["gram_distance"]
        g_g = curve_at(curve("gatys"), cd)
        g_rows = [r["cpu_s"] for r in rows if r["method"] == "gatys"]
        gatys_cpu = float(np.mean(g_rows)) if g_rows else None
        summary["content_itself"] = {"content_distance": 0.0, "gram_distance": round(g0, 4)}
        summary["reinhard_full"] = {"content_distance": cd, "gram_distance": g_r}
        summary["gatys_gram_at_reinhard_cd"] = None if g_g is None else round(g_g, 4)
        for fam in [f for f in methods if f.startswith("pmf")]:
            g_p = curve_at(curve(fam), cd)
            cpu = float(np.mean([r["cpu_s"] for r in rows if r["method"] == fam]))
            prog = None if g_p is None or g_g is None or g_r == g_g else (g_r - g_p) / (g_r - g_g)
            summary[fam] = {
                "gram_at_reinhard_cd": None if g_p is None else round(g_p, 4),
                "progress_reinhard_to_gatys": None if prog is None else round(prog, 4),
                "cpu_s_mean": round(cpu, 4),
                "cpu_ratio_gatys_over_pmf": None if gatys_cpu is None else round(gatys_cpu / cpu, 1),
                "target_met": bool(prog is not None and prog >= 0.4 and gatys_cpu is not None
                                   and gatys_cpu >= 50 * cpu),
            }
    report = {"benchmark": "style_curve", "model": str(model_dir), "pairs": [list(p) for p in pairs],
              "threads": args.threads, "gatys_steps": args.gatys_steps, "baselines_reused_from": args.reuse_baselines,
              "rows": rows, "summary": summary}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4.5))
        for fam in methods:
            pts = sorted(curve(fam))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=fam)
        if full_r is not None:
            ax.axvline(full_r["content_distance"], color="gray", ls=":", lw=1, label="full Reinhard's content distance")
        ax.set_xlabel("content distance (MobileNetV2, lower = more content)")
        ax.set_ylabel("Gram distance to the style (lower = more style)")
        ax.set_title(f"style transfer over strength, {len(pairs)} photo pairs")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
