"""Editing benchmark: pMF editors (a handful of network evaluations) vs "diffusion editors" built on the
same network trained as flow matching (FM), on held-out MNIST digits (the 500-image test split).

Sections (``--sections``):
  sweep      inversion round-trip PSNR vs NFE over (intervals K, fixed-point iterations J, seed),
             the condition used while inverting, and the end time; picks the inversion grid.
  roundtrip  invert + regenerate, ours (default grid) vs 50-step Euler ODE round trip on the FM model.
  edits      class swap y -> (y + 1) % 10 for every editor over a strength curve: target-class
             accuracy (core/eval/classifier.py), SSIM and PSNR to the source, NFE, ms per edit.

    OMP_NUM_THREADS=1 python benchmarks/bench_editing.py --num-images 100 \
        --out benchmarks/results/editing.json --plot benchmarks/results/editing.png

Prints one JSON line (also written to --out). ms per edit = batched wall time / images, on this
machine's CPU with the threads it is given (one by default); compare within one run only.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

import torch

from core.checkpoint import bundled_model_dir
from core.data import load_dataset
from core.eval.evaluation import evaluate_digits
from core.eval.metrics import psnr, ssim
from core.sampling import velocity_cfg
from pmf_edit import editing
from pmf_edit import velocity as vf
from pmf_edit.bench import fm_editors as fme
from pmf_edit.bench.fm_editors import fm_generate, fm_invert

Editor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, int]]


# ------------------------------------------------------------------------------------------------
# Flow-matching baselines (pmf_edit.bench.fm_editors; instantaneous velocity v(z, t) = u(z, t, t), CFG
# costs 2 evaluations). The noise is drawn here from one generator for the batch, as before.


def fm_flowedit(net, x, y_src, y_tgt, t0: float, steps: int, scale: float, interval, gen) -> tuple[torch.Tensor, int]:
    """FlowEdit (Kulikov et al. 2024) on instantaneous velocities; fresh noise each step, shared by
    both branches; target with CFG, source unguided."""
    return fme.fm_flowedit(net, x, y_src, y_tgt, t0, steps, scale, interval, editing._noise(net, x.shape[0], steps, gen))


# ------------------------------------------------------------------------------------------------


def _timed(fn: Callable[[], tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, int, float]:
    t0 = time.perf_counter()
    out, nfe = fn()
    return out, nfe, time.perf_counter() - t0


def _m(x: torch.Tensor) -> torch.Tensor:  # [0, 1] -> model range
    return x * 2 - 1


def sweep(pmf, x01, y, guidance: float, interval) -> dict:
    """Round-trip PSNR (dB, [0, 1] range) of invert + regenerate along the same grid."""
    rows = []

    def rt(K, J, seed="velocity", labels=y, scale=1.0, t_end=1.0, regen=None):
        x = _m(x01)
        t0 = time.perf_counter()
        # seed: the solver's initial guess (vf.invert's `init`; the results files keep the old key)
        inv = vf.invert(pmf, x, t_end, labels, scale, interval, K, J, seed)
        rec, k = vf.generate(pmf, inv.latents, t_end, regen or K, labels, scale, interval)
        ms = 1000 * (time.perf_counter() - t0) / len(x)
        p = psnr(((rec + 1) / 2).clamp(0, 1), x01, data_range=1.0)
        rows.append({"intervals": K, "iterations": J, "seed": seed, "t_end": t_end,
                     "labels": "source" if labels is not None else "null", "guidance_scale": scale,
                     "regen_steps": regen or K, "nfe": inv.nfe + k, "nfe_invert": inv.nfe,
                     "psnr": round(float(p.mean()), 3), "psnr_min": round(float(p.min()), 3),
                     "residual": round(inv.residual, 5), "ms_per_image": round(ms, 2)})
        print(json.dumps(rows[-1]), flush=True)

    grid = [(1, 1), (1, 3), (1, 7), (2, 2), (2, 3), (4, 1)]
    for seed in ("velocity", "state", "carry"):
        for K, J in grid:
            rt(K, J, seed=seed)
    # Condition / end-time / regeneration variants for the two best grids within 8 NFE.
    within = sorted((r for r in rows if r["nfe"] <= 8), key=lambda r: -r["psnr"])[:2]
    for b in within:
        K, J, seed = b["intervals"], b["iterations"], b["seed"]
        rt(K, J, seed=seed, regen=1)
        rt(K, J, seed=seed, labels=None)
        rt(K, J, seed=seed, scale=guidance)
        rt(K, J, seed=seed, t_end=0.8)
        rt(K, J, seed=seed, t_end=0.6)
    best = max((r for r in rows if r["nfe"] <= 8), key=lambda r: r["psnr"])
    return {"best_within_8_nfe": best, "rows": rows}


def fm_roundtrip(fm, x01, y, steps: int, interval) -> dict:
    x = _m(x01)
    t0 = time.perf_counter()
    z, n1 = fm_invert(fm, x, y, 1.0, steps, 1.0, interval)
    rec, n2 = fm_generate(fm, z, y, 1.0, steps, 1.0, interval)
    ms = 1000 * (time.perf_counter() - t0) / len(x)
    p = psnr(((rec + 1) / 2).clamp(0, 1), x01, data_range=1.0)
    return {"steps": steps, "nfe": n1 + n2, "psnr": round(float(p.mean()), 3), "psnr_min": round(float(p.min()), 3),
            "ms_per_image": round(ms, 2)}


def edit_curves(pmf, fm, x01, y, strengths, fm_strengths, g_pmf, g_fm, i_pmf, i_fm, fm_steps, seed,
                only: list[str] | None = None) -> tuple[dict, dict]:
    """Class swap y -> (y + 1) % 10 for each editor and strength."""
    tgt = (y + 1) % 10
    x = _m(x01)
    gen = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    E = editing

    def ours(fn):
        return lambda s: (lambda r: (_m(r.images), r.nfe))(fn(s))

    editors: dict[str, Callable[[float], tuple[torch.Tensor, int]]] = {
        "pmf_invert_edit": ours(lambda s: E.edit(pmf, x01, labels=tgt, source_labels=y, strength=s,
                                                 guidance_scale=g_pmf, guidance_interval=i_pmf, generator=gen())),
        "pmf_flow_edit": ours(lambda s: E.flow_edit(pmf, x01, labels=tgt, source_labels=y, strength=s,
                                                    guidance_scale=g_pmf, guidance_interval=i_pmf, generator=gen())),
        "pmf_sdedit_1step": ours(lambda s: E.sdedit(pmf, x01, labels=tgt, strength=s, guidance_scale=g_pmf,
                                                    guidance_interval=i_pmf, generator=gen())),
        f"fm_ode_edit_{fm_steps}": lambda s: _fm_ode_edit(fm, x, y, tgt, s, fm_steps, g_fm, i_fm),
        f"fm_sdedit_{fm_steps}": lambda s: _fm_sdedit(fm, x, tgt, s, fm_steps, g_fm, i_fm, gen()),
        f"fm_flowedit_{fm_steps}": lambda s: fm_flowedit(fm, x, y, tgt, s, fm_steps, g_fm, i_fm, gen()),
    }
    results, examples = {}, {}
    if only:
        editors = {k: v for k, v in editors.items() if any(k.startswith(o) for o in only)}
    for name, fn in editors.items():
        rows = []
        for s in (fm_strengths if name.startswith("fm_") else strengths):
            out, nfe, sec = _timed(lambda: fn(s))
            out = out.clamp(-1, 1)
            acc = evaluate_digits(out, tgt)["class_accuracy"]
            rows.append({"strength": s, "target_accuracy": round(acc, 4),
                         "ssim": round(float(ssim(out, x).mean()), 4), "psnr": round(float(psnr(out, x).mean()), 3),
                         "nfe": nfe, "ms_per_edit": round(1000 * sec / len(x), 2)})
            examples[(name, s)] = out[:8]
            print(json.dumps({"editor": name, **rows[-1]}), flush=True)
        results[name] = {"curve": rows, "ssim_at_90": _at_accuracy(rows, 0.9)}
    return results, examples


def _fm_ode_edit(net, x, y, tgt, s, steps, g, i):
    return fme.fm_ode_edit(net, x, y, tgt, s, steps, g, i)  # invert under the source (unguided), regenerate (CFG)


def _fm_sdedit(net, x, tgt, s, steps, g, i, gen):
    return fme.fm_sdedit(net, x, tgt, s, steps, g, i, editing._noise(net, x.shape[0], 1, gen)[0])


def _at_accuracy(rows: list[dict], target: float) -> dict | None:
    """SSIM/PSNR/NFE where the strength curve first reaches ``target`` accuracy (linear in between)."""
    rows = sorted(rows, key=lambda r: r["strength"])
    prev = None
    for r in rows:
        if r["target_accuracy"] >= target:
            if prev is None or prev["target_accuracy"] >= target:
                return {"strength": r["strength"], "ssim": r["ssim"], "psnr": r["psnr"], "nfe": r["nfe"],
                        "interpolated": False}
            w = (target - prev["target_accuracy"]) / (r["target_accuracy"] - prev["target_accuracy"])
            lerp = lambda k: round(prev[k] + w * (r[k] - prev[k]), 4)  # noqa: E731
            return {"strength": lerp("strength"), "ssim": lerp("ssim"), "psnr": lerp("psnr"), "nfe": r["nfe"],
                    "interpolated": True}
        prev = r
    return None


def plot(path: Path, x01, examples, results, strength) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    n = min(6, x01.shape[0])
    fig = plt.figure(figsize=(2 + 1.3 * (len(names) + 1), 1.2 * n + 3.6))
    gs = fig.add_gridspec(n + 3, len(names) + 1)
    for i in range(n):
        ax = fig.add_subplot(gs[i, 0])
        ax.imshow(x01[i, 0].cpu(), cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
        if i == 0:
            ax.set_title("source", fontsize=7)
        for j, name in enumerate(names):
            ax = fig.add_subplot(gs[i, j + 1])
            ax.imshow(((examples[(name, strength)][i, 0] + 1) / 2).cpu(), cmap="gray", vmin=0, vmax=1)
            ax.axis("off")
            if i == 0:
                nfe = next(r["nfe"] for r in results[name]["curve"] if r["strength"] == strength)
                ax.set_title(f"{name}\n{nfe} NFE", fontsize=6)
    ax = fig.add_subplot(gs[n:, :])
    for name in names:
        c = results[name]["curve"]
        ax.plot([r["target_accuracy"] for r in c], [r["ssim"] for r in c], "o-", label=name, ms=3)
    ax.set_xlabel("target-class accuracy")
    ax.set_ylabel("SSIM to source")
    ax.axvline(0.9, color="gray", lw=0.5, ls="--")
    ax.legend(fontsize=6)
    fig.suptitle(f"class swap y -> y+1, examples at strength {strength}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pmf-model", default=None, help="pMF model folder (default: bundled MNIST pMF)")
    p.add_argument("--fm-model", default=None, help="flow-matching model folder (default: bundled MNIST FM)")
    p.add_argument("--num-images", type=int, default=100, help="held-out digits used (evenly over the 500)")
    p.add_argument("--sections", default="sweep,roundtrip,edits", help="comma-separated: sweep, roundtrip, edits")
    p.add_argument("--strengths", default="0.4,0.5,0.6,0.7,0.8,0.9,1.0", help="strength curve")
    p.add_argument("--fm-strengths", default=None, help="strength curve of the FM editors (default: --strengths)")
    p.add_argument("--editors", default=None, help="comma-separated editor-name prefixes to run (default: all)")
    p.add_argument("--merge", action="store_true", help="update the sections in an existing --out file")
    p.add_argument("--plot-strength", type=float, default=0.8, help="strength of the example edits in the figure")
    p.add_argument("--fm-steps", type=int, default=50, help="steps of the flow-matching editors (each way)")
    p.add_argument("--guidance-scale", type=float, default=None, help="pMF guidance of the edits (default: editing.EDIT_GUIDANCE)")
    p.add_argument("--fm-guidance-scale", type=float, default=None, help="FM CFG scale of the edits (default: editing.EDIT_GUIDANCE)")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default=None, help="JSON output file")
    p.add_argument("--plot", default=None, help="PNG figure with example edits and the accuracy/SSIM curve")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sections = set(args.sections.split(","))

    pmf_dir = Path(args.pmf_model) if args.pmf_model else bundled_model_dir("mnist")
    pmf, pcfg = editing.from_pretrained(pmf_dir)
    samp = pcfg.get("sampling", {})
    g_pmf = args.guidance_scale or editing.EDIT_GUIDANCE
    i_pmf = tuple(samp.get("guidance_interval", (0.0, 1.0)))
    test = load_dataset("mnist", split="test")
    idx = torch.linspace(0, len(test) - 1, args.num_images).round().long()
    x01 = ((test.images[idx] + 1) / 2).clamp(0, 1)
    y = test.labels[idx].long()
    report: dict = {"bench": "editing", "num_images": len(idx), "pmf_model": str(pmf_dir),
                    "pmf_guidance": [g_pmf, list(i_pmf)], "threads": args.threads,
                    "defaults": {"intervals": vf.DEFAULT_INTERVALS, "iterations": vf.DEFAULT_ITERATIONS}}
    if "sweep" in sections:
        report["inversion_sweep"] = sweep(pmf, x01, y, g_pmf, i_pmf)
    fm = None
    if sections & {"roundtrip", "edits"}:
        fm_dir = Path(args.fm_model) if args.fm_model else bundled_model_dir("mnist-fm")
        fm, fcfg = editing.from_pretrained(fm_dir)
        fsamp = fcfg.get("sampling", {})
        g_fm = args.fm_guidance_scale or editing.EDIT_GUIDANCE
        i_fm = tuple(fsamp.get("guidance_interval", (0.0, 1.0)))
        report.update(fm_model=str(fm_dir), fm_guidance=[g_fm, list(i_fm)])
    if "roundtrip" in sections:
        t0 = time.perf_counter()
        rec = editing.reconstruct(pmf, x01, labels=y)
        ms = 1000 * (time.perf_counter() - t0) / len(idx)
        report["roundtrip"] = {
            "pmf": {"nfe": rec.nfe, "psnr": round(float(psnr(rec.images, x01, data_range=1.0).mean()), 3),
                    "ms_per_image": round(ms, 2)},
            f"fm_ode_{args.fm_steps}": fm_roundtrip(fm, x01, y, args.fm_steps, i_fm),
        }
        print(json.dumps(report["roundtrip"]), flush=True)
    if "edits" in sections:
        strengths = [float(s) for s in args.strengths.split(",")]
        if args.plot_strength not in strengths:
            strengths.append(args.plot_strength)
        fm_strengths = [float(s) for s in (args.fm_strengths or args.strengths).split(",")]
        if args.plot_strength not in fm_strengths:
            fm_strengths.append(args.plot_strength)
        results, examples = edit_curves(pmf, fm, x01, y, sorted(strengths), sorted(fm_strengths), g_pmf, g_fm,
                                        i_pmf, i_fm, args.fm_steps, args.seed,
                                        args.editors.split(",") if args.editors else None)
        report["edits"] = results
        if args.plot:
            plot(Path(args.plot), x01, examples, results, args.plot_strength)
    if args.merge and args.out and Path(args.out).is_file():
        report = {**json.loads(Path(args.out).read_text()), **report}
    line = json.dumps(report)
    print(line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
