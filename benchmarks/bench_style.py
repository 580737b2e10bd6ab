"""Style-transfer benchmark: pMF velocity-field style transfer vs Reinhard colour transfer and Gatys
optimisation on MobileNetV2 features, on content/style pairs of held-out "photos" crops (32x32).

Pairs: ``--pairs`` contents drawn from the 650 held-out test crops, each with a style crop of a
different source (class), both chosen by ``--seed``.

Metrics per pair (``pmf_edit.style_baselines``), averaged over the pairs:
    ssim                SSIM(output, content)                                  (higher = more content)
    content_distance    LPIPS-style MobileNetV2 distance(output, content)      (lower = more content)
    gram_distance       mean over features.{3,6,13,18} of ||G(out) - G(style)||_F / ||G(style)||_F
    histogram_distance  total variation of joint 8^3-bin RGB histograms (output vs style), in [0, 1]
    combined            (1 + content_distance) x (1 + gram_distance)           (ArtFID-like; lower is better)
    ms_per_image        batched wall time / pairs, this machine's CPU, ``--threads`` threads
    cpu_ms_per_image    the same in process CPU time (the speed comparison uses it: the machine is shared)
    nfe                 pMF network evaluations per image (model-size passes)

    OMP_NUM_THREADS=1 python benchmarks/bench_style.py --pairs 24 \
        --out benchmarks/results/style.json --grid benchmarks/results/style_grid.png

Prints one JSON line (also written to --out). Gatys optimises the very Gram matrices the metric
reads (the most favourable setting for it); compare times within one run only.

The ``combined`` score is kept to reproduce the tables of docs/style.md, but it rewards doing
nothing (an unchanged content scores well); full-size results are judged by the curve of content
distance against Gram distance over strength instead: ``benchmarks/bench_style_curve.py``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch

from core.checkpoint import bundled_model_dir
from core.data import load_dataset
from core.images import make_grid, save_png
from core.eval.perceptual import MobileNetFeatures
from pmf_edit.style import DEFAULT_STRENGTH, style_transfer
from pmf_edit.style_baselines import GatysConfig, gatys_transfer, reinhard_transfer, style_scores

Method = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, int]]

# Our variants: name -> style_transfer keyword arguments (strength is swept separately).
# The first default (state AdaIN on, Lab colour move on the output): the rows of docs/style.md's
# first tables; spelled out so that their commands keep reproducing them.
_V1: dict[str, Any] = dict(state_adain=True, color_first=False)
# Colour first: the content takes the style's Lab statistics before the velocity-field pass.
_CF: dict[str, Any] = dict(state_adain=False, color_first=True)
PMF_VARIANTS: dict[str, dict[str, Any]] = {
    "pmf-default": dict(),  # whatever style_transfer's defaults are (today: pmf-kv-colorfirst-coupled)
    "pmf-kv-colorfirst-coupled": dict(method="kv", **_CF),  # colour weight = strength (the default)
    "pmf-kv-colorfirst": dict(method="kv", color_weight=1.0, **_CF),  # full colour move at any strength
    "pmf-kv-class-colorfirst": dict(method="kv", use_style_class=True, color_weight=1.0, **_CF),
    "pmf-kvr-colorfirst": dict(method="kv_replace", color_weight=1.0, **_CF),
    "pmf-kvr-class-colorfirst": dict(method="kv_replace", use_style_class=True, color_weight=1.0, **_CF),
    "pmf-feat-colorfirst": dict(method="feat", color_weight=1.0, **_CF),
    "pmf-swap-class-colorfirst": dict(method="swap", use_style_class=True, color_weight=1.0, **_CF),
    "pmf-kv": dict(method="kv", **_V1),  # style image only (null class), attention K/V sharing
    "pmf-kv-class": dict(method="kv", use_style_class=True, **_V1),  # + the style crop's class
    "pmf-kvr": dict(method="kv_replace", **_V1),
    "pmf-kvr-class": dict(method="kv_replace", use_style_class=True, **_V1),
    "pmf-feat": dict(method="feat", **_V1),
    "pmf-feat-class": dict(method="feat", use_style_class=True, **_V1),
    "pmf-swap-class": dict(method="swap", use_style_class=True, **_V1),  # condition swap, partial inversion
    "pmf-swap-class-w2": dict(method="swap", use_style_class=True, guidance_scale=2.0, **_V1),
    "pmf-kv-class-w2": dict(method="kv", use_style_class=True, guidance_scale=2.0, **_V1),
    "pmf-kv-late": dict(method="kv", inject_from=3, **_V1),  # only the last blocks read the style
    "pmf-kv-noise": dict(method="kv", inversion="noise", **_V1),
    "pmf-kv-nocolor": dict(method="kv", color_match=False, **_V1),
    "pmf-kv-nores": dict(method="kv", residual=False, **_V1),  # regenerate the content instead of adding the change
    "pmf-kv-class-nores": dict(method="kv", use_style_class=True, residual=False, **_V1),
    "pmf-kv-noadain": dict(method="kv", state_adain=False, color_first=False),
    "pmf-kv-inv2x2": dict(method="kv", num_inversion_steps=2, num_iterations=2, **_V1),
    "pmf-kv-color1": dict(method="kv", color_weight=1.0, **_V1),  # full Lab colour move on the output
    "pmf-kv-class-color1": dict(method="kv", use_style_class=True, color_weight=1.0, **_V1),
    "pmf-swap-class-color1": dict(method="swap", use_style_class=True, color_weight=1.0, **_V1),
    "pmf-kv-noadain-color1": dict(method="kv", state_adain=False, color_first=False, color_weight=1.0),
    "pmf-swap-class-noadain-color1": dict(method="swap", use_style_class=True, state_adain=False,
                                          color_first=False, color_weight=1.0),
}


def make_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(content (n,3,32,32), style, content labels, style labels) from held-out crops, [0, 1]."""
    test = load_dataset("photos", split="test", resolution=32)
    g = torch.Generator().manual_seed(seed)
    ci = torch.randperm(len(test), generator=g)[:n]
    si = []
    for i in ci.tolist():
        while True:
            j = int(torch.randint(len(test), (1,), generator=g))
            if test.labels[j] != test.labels[i]:
                si.append(j)
                break
    si_t = torch.tensor(si)
    to01 = lambda x: ((x + 1) / 2).clamp(0, 1)  # noqa: E731
    return to01(test.images[ci]), to01(test.images[si_t]), test.labels[ci], test.labels[si_t]


def timed(fn: Callable[[], tuple[torch.Tensor, int]], n: int, repeats: int) -> tuple[torch.Tensor, int, float, float]:
    """Run fn once as burn-in (skipped when repeats == 0), then max(repeats, 1) times.

    Returns (output, nfe, wall ms per image, CPU ms per image), the best run of each. CPU time
    (``time.process_time``) is what the speed comparison uses: on a shared machine the wall time of a
    one-thread run includes the time other processes held the cores.
    """
    if repeats > 0:
        out, nfe = fn()
    best_wall = best_cpu = float("inf")
    for _ in range(max(repeats, 1)):
        t0, c0 = time.perf_counter(), time.process_time()
        out, nfe = fn()
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return out, nfe, 1000.0 * best_wall / n, 1000.0 * best_cpu / n


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="pMF model folder (default: the bundled photos model)")
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="pmf-default,pmf-kv,pmf-swap-class-colorfirst",
                    help=f"comma-separated pMF variants from {sorted(PMF_VARIANTS)}")
    ap.add_argument("--strengths", default="0.5,0.7,0.9", help="comma-separated strengths for every pMF variant")
    ap.add_argument("--inject-from", type=int, default=None, help="override style_transfer's inject_from")
    ap.add_argument("--reinhard-strengths", default="0.5,0.7,0.9",
                    help="extra rows: Reinhard with the Lab statistics moved only part way (comma-separated, in (0, 1))")
    ap.add_argument("--gatys-steps", type=int, default=100)
    ap.add_argument("--gatys-style-weight", type=float, default=1.0)
    ap.add_argument("--gatys-lr", type=float, default=0.01)
    ap.add_argument("--no-gatys", action="store_true")
    ap.add_argument("--baseline-cache", default=None,
                    help="folder to store/reuse the baselines' outputs and times (they do not depend on the model)")
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats (best kept) for the fast methods")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid-rows", type=int, default=8)
    ap.add_argument("--out", default=None, help="JSON output path")
    ap.add_argument("--grid", default=None, help="PNG grid path (rows: pairs; columns: content, style, methods)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from pmf_edit.editing import from_pretrained

    model_dir = Path(args.model) if args.model else bundled_model_dir("photos")
    net, meta = from_pretrained(model_dir)
    content, style, yc, ys = make_pairs(args.pairs, args.seed)
    n = content.shape[0]
    feats = MobileNetFeatures()

    methods: dict[str, tuple[Method, int]] = {}  # name -> (fn, repeats)
    # Reference rows that bracket the metric: the content itself and the style itself as the output.
    methods["copy-content"] = (lambda c, s, a, b: (c.clone(), 0), 1)
    methods["copy-style"] = (lambda c, s, a, b: (s.clone(), 0), 1)
    methods["reinhard"] = (lambda c, s, a, b: (reinhard_transfer(c, s), 0), args.repeats)
    for w in [float(v) for v in args.reinhard_strengths.split(",") if v]:
        methods[f"reinhard@{w:g}"] = (lambda c, s, a, b, w=w: (reinhard_transfer(c, s, strength=w), 0), args.repeats)
    if not args.no_gatys:
        gcfg = GatysConfig(num_steps=args.gatys_steps, style_weight=args.gatys_style_weight, lr=args.gatys_lr)
        methods[f"gatys-{args.gatys_steps}"] = (lambda c, s, a, b: (gatys_transfer(c, s, feats, gcfg), 0), 0)
    for name in [v for v in args.variants.split(",") if v]:
        if name not in PMF_VARIANTS:
            raise ValueError(f"unknown variant {name!r}; choose from {sorted(PMF_VARIANTS)}")
        kw = dict(PMF_VARIANTS[name])
        use_class = kw.pop("use_style_class", False)
        if args.inject_from is not None:
            kw["inject_from"] = args.inject_from
        for st in [float(v) for v in args.strengths.split(",")]:

            def fn(c, s, a, b, kw=kw, st=st, use_class=use_class):
                r = style_transfer(net, c, s, strength=st, style_labels=b if use_class else None,
                                   generator=torch.Generator().manual_seed(args.seed), **kw)
                return r.images, r.nfe

            methods[f"{name}@{st:g}"] = (fn, args.repeats)

    results: dict[str, dict] = {}
    outputs: dict[str, torch.Tensor] = {}
    for name, (fn, reps) in methods.items():
        cache = None
        if args.baseline_cache and name.startswith(("reinhard", "gatys")):
            key = f"{name}_n{n}_seed{args.seed}_t{args.threads}_lr{args.gatys_lr:g}_sw{args.gatys_style_weight:g}"
            cache = Path(args.baseline_cache) / f"{key}.pt"
        if cache is not None and cache.is_file():
            saved = torch.load(cache, weights_only=True)
            out, nfe, ms, cpu_ms = saved["images"], int(saved["nfe"]), float(saved["ms"]), float(saved["cpu_ms"])
        else:  # slow methods (reps == 0): one timed run, no burn-in
            out, nfe, ms, cpu_ms = timed(lambda: fn(content, style, yc, ys), n, reps)
        if cache is not None and not cache.is_file():
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"images": out, "nfe": nfe, "ms": ms, "cpu_ms": cpu_ms}, cache)
        sc = style_scores(out, content, style, feats)
        results[name] = {k: round(float(v.mean()), 5) for k, v in sc.items()}
        results[name].update(ms_per_image=round(ms, 3), cpu_ms_per_image=round(cpu_ms, 3), nfe=nfe)
        outputs[name] = out
        print(name, json.dumps(results[name]), flush=True)

    # Targets: better combined than Reinhard; within 20% of Gatys's combined at >= 50x less time.
    # "best" is the library default at its default strength when it ran (chosen on other pairs),
    # else the best pMF row of this run (a choice made on these pairs: say so).
    pmf_names = [k for k in results if k.startswith("pmf")]
    summary: dict[str, Any] = {}
    if pmf_names:
        default = f"pmf-default@{DEFAULT_STRENGTH:g}"
        best = default if default in results else min(pmf_names, key=lambda k: results[k]["combined"])
        r_best = results[best]
        reinhard_rows = [k for k in results if k.startswith("reinhard")]
        summary = {"best_pmf": best, "chosen_on_these_pairs": best != default,
                   "beats_reinhard": r_best["combined"] < results["reinhard"]["combined"],
                   # Rows that do less (partial Reinhard, copying the content) can score better:
                   # list every reference row with a lower combined score, and the Reinhard rows that
                   # are better on BOTH terms (the pMF row is then dominated).
                   "reference_rows_scoring_better": sorted(
                       k for k in results if not k.startswith("pmf") and results[k]["combined"] < r_best["combined"]),
                   "reinhard_rows_dominating": sorted(
                       k for k in reinhard_rows if results[k]["content_distance"] <= r_best["content_distance"]
                       and results[k]["gram_distance"] <= r_best["gram_distance"]),
                   "reinhard_min_gram_distance": min(results[k]["gram_distance"] for k in reinhard_rows)}
        gname = next((k for k in results if k.startswith("gatys")), None)
        if gname:
            g = results[gname]
            summary.update(
                combined_vs_gatys=round(results[best]["combined"] / g["combined"], 4),
                within_20pct_of_gatys=results[best]["combined"] <= 1.2 * g["combined"],
                gatys_target_met=bool(results[best]["combined"] <= 1.2 * g["combined"]
                                      and g["cpu_ms_per_image"] >= 50 * results[best]["cpu_ms_per_image"]),
                speedup_vs_gatys_cpu=round(g["cpu_ms_per_image"] / results[best]["cpu_ms_per_image"], 1),
                speedup_vs_gatys_wall=round(g["ms_per_image"] / results[best]["ms_per_image"], 1),
            )
    report = {
        "benchmark": "style", "model": str(model_dir), "pairs": n, "seed": args.seed, "threads": args.threads,
        "combined_definition": "(1 + content_distance) * (1 + gram_distance); content_distance = LPIPS-style "
        "MobileNetV2 distance to the content (core.eval.perceptual), gram_distance = mean over features.{3,6,13,18} "
        "of ||G(out)-G(style)||_F / ||G(style)||_F at 224 px",
        "gatys": {"num_steps": args.gatys_steps, "lr": args.gatys_lr, "style_weight": args.gatys_style_weight,
                  "content_layer": GatysConfig().content_layer},
        "methods": results, "summary": summary,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if args.grid:
        k = min(args.grid_rows, n)
        shown = [m for m in methods if not m.startswith("copy")]
        cols = [content[:k], style[:k]] + [outputs[m][:k].float() for m in shown]
        grid = torch.stack(cols, 1).flatten(0, 1)  # (k * (2 + M), 3, 32, 32), row = one pair
        save_png(args.grid, make_grid(grid * 2 - 1, nrow=len(cols)))
        report["grid_columns"] = ["content", "style"] + shown
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
