"""Tuning sweep for the style-injection options of ``style_transfer`` (method, attention
temperature, injection weight, state AdaIN, residual, colour weight) on pairs that
benchmarks/bench_style_curve.py does NOT report (its PAIRS are held out for reporting).

Each configuration is run over ``--strengths``; its (content distance, Gram distance) curve is read
at the content distance of full Reinhard on the same pairs (``curve_at``, no extrapolation):
``gram_at_reinhard_cd`` (lower = more of the style's texture statistics) and ``gain_over_reinhard``
(Reinhard's Gram minus it). Picture checks as in bench_style_curve (max folded-gradient excess,
min lightness-std ratio). Gatys is not run here (tuning only ranks pMF settings).

    OMP_NUM_THREADS=1 python benchmarks/tune_style_inject.py --out benchmarks/results/style_inject_tuning.json

Prints one JSON line per configuration, then the whole report.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.bench_style_curve import PAIRS, curve_at, multiscale_style, skimage_rgb01
from benchmarks.style_quality import folded_gradient_excess, lightness_std_ratio, texture_periods
from core.checkpoint import bundled_model_dir
from core.eval.perceptual import MobileNetFeatures
from pmf_edit.style.baselines import content_distance, gram_distance, reinhard_transfer

# (content, style image, pMF style): none of these is in bench_style_curve.PAIRS.
TUNING_PAIRS: list[tuple[str, str, str | None]] = [
    ("coffee", "brick", None),
    ("rocket", "gravel", None),
    ("chelsea", "grass", "class:grass"),
]
assert not set(TUNING_PAIRS) & set(PAIRS), "tuning pairs must differ from the reported pairs"

# name -> style_transfer keyword arguments (fit mode, the default otherwise)
CONFIGS: dict[str, dict] = {
    "kv": {},
    "kv_T2": {"attention_temperature": 2.0},
    "kv_T4": {"attention_temperature": 4.0},
    "kv_replace": {"method": "kv_replace"},
    "kv_replace_T2": {"method": "kv_replace", "attention_temperature": 2.0},
    "kv_replace_T4": {"method": "kv_replace", "attention_temperature": 4.0},
    "feat": {"method": "feat"},
    "kv_adain": {"state_adain": True},
    "kv_replace_T2_adain": {"method": "kv_replace", "attention_temperature": 2.0, "state_adain": True},
    "kv_replace_T2_nores": {"method": "kv_replace", "attention_temperature": 2.0, "residual": False},
    "kv_replace_T2_cw1": {"method": "kv_replace", "attention_temperature": 2.0, "color_weight": 1.0},
    "kv_cw1": {"color_weight": 1.0},
    # second round, after the first showed T4 best at strength 1
    "kv_T8": {"attention_temperature": 8.0},
    "kv_T4_w05": {"attention_temperature": 4.0, "injection_weight": 0.5},
    "kv_T4_adain": {"attention_temperature": 4.0, "state_adain": True},
    "kv_T4_from2": {"attention_temperature": 4.0, "inject_from": 2},
    "kv_T4_2steps": {"attention_temperature": 4.0, "num_steps": 2},
    "kv_T4_noise": {"attention_temperature": 4.0, "inversion": "noise"},
    # third round: the same injection in model-size tiles of the content at 2x / 4x the model's side
    # (bench_style_curve.multiscale_style with the library's residual and colour defaults)
    "ms2_kv_T4": {"multiscale": 2, "method": "kv", "residual": True, "color_weight": None,
                  "attention_temperature": 4.0},
    "ms4_kv_T4": {"multiscale": 4, "method": "kv", "residual": True, "color_weight": None,
                  "attention_temperature": 4.0},
    "ms2_kv": {"multiscale": 2, "method": "kv", "residual": True, "color_weight": None},
    # fourth round: token-feature AdaIN in fewer blocks / at half weight
    "feat_w05": {"method": "feat", "injection_weight": 0.5},
    "feat_from3": {"method": "feat", "inject_from": 3},
    "feat_from5": {"method": "feat", "inject_from": 5},
    "feat_w05_from3": {"method": "feat", "inject_from": 3, "injection_weight": 0.5},
    # fifth round (with the 64x64 model): the style at the content's scale
    "kv_content": {"style_scale": "content"},
    "kv_T4_content": {"style_scale": "content", "attention_temperature": 4.0},
    "kv_replace_T2_content": {"method": "kv_replace", "attention_temperature": 2.0, "style_scale": "content"},
    "kv_content_cw1": {"style_scale": "content", "color_weight": 1.0},
    # sixth round: the style's own texture placed by correspondence (pmf_edit.style.texture), by weight
    "tex0": {"texture": 0.0},
    "tex0.4": {"texture": 0.4},
    "tex0.5": {"texture": 0.5},
    "tex0.8": {"texture": 0.8},
    "tex1.2": {"texture": 1.2},
    "tex1.6": {"texture": 1.6},
    # seventh round (tenth session): a wider band of the texture's detail (TextureConfig.detail_sigma in
    # working pixels; 2 = the default): coarser texture structure survives the metric's 224-px resize
    "tex0.5_ds4": {"texture": 0.5, "texture_config": {"detail_sigma": 4.0}},
    "tex0.5_ds8": {"texture": 0.5, "texture_config": {"detail_sigma": 8.0}},
    "tex1.0_ds4": {"texture": 1.0, "texture_config": {"detail_sigma": 4.0}},
    "tex1.0_ds8": {"texture": 1.0, "texture_config": {"detail_sigma": 8.0}},
}


def run_config(net, content, style, pmf_style, strength: float, kw: dict, class_names, seed: int):
    """One style_transfer call of a CONFIGS entry (a "multiscale" key: bench_style_curve.multiscale_style)."""
    from pmf_edit.style import style_transfer

    kw = dict(kw)
    if isinstance(kw.get("texture_config"), dict):  # JSON-friendly in CONFIGS, the dataclass here
        from pmf_edit.style.texture import TextureConfig

        kw["texture_config"] = TextureConfig(**kw["texture_config"])
    scale = kw.pop("multiscale", 0)
    if scale:
        return multiscale_style(net, content, style, pmf_style, strength, scale, class_names, seed, **kw)
    return style_transfer(net, content, style if pmf_style is None else pmf_style, strength=strength,
                          class_names=class_names, generator=torch.Generator().manual_seed(seed), **kw).images


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names of CONFIGS")
    ap.add_argument("--strengths", default="0.5,0.7,0.85,1.0")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--model", default=None, help="pMF model folder (default: the bundled photos model)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from pmf_edit.editing import from_pretrained

    net, meta = from_pretrained(args.model or bundled_model_dir("photos"))
    names = meta.get("class_names")
    feats = MobileNetFeatures()
    imgs = {n: skimage_rgb01(n) for p in TUNING_PAIRS for n in p[:2]}
    S = net.cfg.image_size

    def score(fn) -> dict:
        per = []
        for c_name, s_name, k in TUNING_PAIRS:
            c, s = imgs[c_name], imgs[s_name]
            t0 = time.process_time()
            out = fn(c, s, k)
            cpu = time.process_time() - t0
            p = net.cfg.patch_size  # its period, on the model's input and carried to full size
            fge = max(float(folded_gradient_excess(out, c, P)) for P in {p, 24, round(p * max(c.shape[-2:]) / S),
                                                                          *texture_periods(*c.shape[-2:])})
            per.append({"cpu_s": cpu, "content_distance": float(content_distance(out, c, feats)),
                        "gram_distance": float(gram_distance(out, s, feats)), "max_fge": fge,
                        "lightness_std": float(lightness_std_ratio(out, c))})
        return {"cpu_s": round(float(np.mean([p["cpu_s"] for p in per])), 4),
                "content_distance": round(float(np.mean([p["content_distance"] for p in per])), 4),
                "gram_distance": round(float(np.mean([p["gram_distance"] for p in per])), 4),
                "max_fge": round(max(p["max_fge"] for p in per), 4),
                "min_lightness_std": round(min(p["lightness_std"] for p in per), 4)}

    g0 = float(np.mean([float(gram_distance(imgs[c], imgs[s], feats)) for c, s, _ in TUNING_PAIRS]))
    reinhard = score(lambda c, s, k: reinhard_transfer(c, s, strength=1.0))
    cd_r, g_r = reinhard["content_distance"], reinhard["gram_distance"]
    print(json.dumps({"reinhard_full": reinhard, "content_gram": round(g0, 4)}), flush=True)
    results = {}
    for name in args.configs.split(","):
        kw = CONFIGS[name]
        rows = {}
        for st in map(float, args.strengths.split(",")):
            rows[st] = score(lambda c, s, k, st=st: run_config(net, c, s, k, st, kw, names, args.seed))
        pts = [(0.0, g0)] + [(r["content_distance"], r["gram_distance"]) for r in rows.values()]
        g = curve_at(pts, cd_r)
        results[name] = {"kwargs": kw, "rows": rows, "gram_at_reinhard_cd": None if g is None else round(g, 4),
                         "gain_over_reinhard": None if g is None else round(g_r - g, 4)}
        print(json.dumps({name: results[name]}), flush=True)
    report = {"benchmark": "style_inject_tuning", "model": args.model or "bundled photos", "pairs": [list(p) for p in TUNING_PAIRS], "seed": args.seed,
              "reinhard_full": reinhard, "content_gram": round(g0, 4), "configs": results}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
