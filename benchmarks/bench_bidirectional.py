"""One-step inversion with a network trained in both directions (issue: bidirectional pMF).

Measures, for a pMF model folder with a backward head (``pmf train --backward-ratio``):
  generation   FD-digits and class accuracy of 1-step samples (50 per class) against the 500
               held-out digits (as benchmarks/bench_generation.py)
  roundtrip    invert + regenerate PSNR ([0, 1] range) on digits of ``--split``: the backward field
               with 0, 1, 2 refinements (2, 4, 6 NFE in total) under the source class and
               omega = 1 / the model's default; the fixed-point solver with 1, 2, 3 and 7 (the
               default) updates (2, 3, 4, 8 NFE); the hybrid (solver on [0, switch], backward jumps
               to 1) at its default (2 updates, 1 jump: 4 NFE) and with 1 update (3 NFE); the seeded
               solver (one backward jump, then 1, 2, 3, 7 updates: 3, 4, 5, 9 NFE)
  hybrid       the hybrid's sweep at omega 1: switch x solver updates x backward jumps (the chain
               over a coarse grid), round trips of <= 4 NFE, next to the solver at equal NFE
  edits        class swap y -> (y + 1) % 10: the inversion editor ``edit`` (backward field,
               fixed-point solver, hybrid, seeded) and ``flow_edit`` over their strength, target accuracy and SSIM to the source; SSIM
               where each curve reaches 90% target accuracy (linear in between)

Defaults of the library are chosen with ``--split train`` (digits the reported numbers do not use);
numbers are reported with ``--split test`` (the 500 held-out digits, evenly subsampled).

    OMP_NUM_THREADS=1 python benchmarks/bench_bidirectional.py --model core/assets/pmf-mnist-bidir \
        --split test --out benchmarks/results/bidirectional.json

Prints one JSON line per measurement and the whole report at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.checkpoint import bundled_model_dir  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.eval.evaluation import evaluate_digits  # noqa: E402
from core.eval.metrics import psnr, ssim  # noqa: E402
from core.sampling import sample_pmf  # noqa: E402
from pmf_edit import editing  # noqa: E402
from pmf_edit import velocity as vf  # noqa: E402
from benchmarks.bench_editing import _at_accuracy  # noqa: E402


def digits(split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` digits evenly spread over ``split`` (sorted by class there), images in [0, 1]."""
    data = load_dataset("mnist", split=split)
    idx = torch.linspace(0, len(data) - 1, n).round().long()
    return ((data.images[idx] + 1) / 2).clamp(0, 1), data.labels[idx].long()


def generation(net, guidance: float, interval, seed: int) -> dict:
    labels = torch.arange(10).repeat_interleave(50)
    t0 = time.process_time()
    out = sample_pmf(net, labels.tolist(), num_steps=1, guidance_scale=guidance, guidance_interval=interval,
                     generator=torch.Generator().manual_seed(seed))
    cpu = time.process_time() - t0
    ev = evaluate_digits(out.images.clamp(-1, 1), labels)
    return {"steps": 1, "nfe": out.nfe, "guidance_scale": guidance, "fd_digits": round(ev["fd_digits"], 4),
            "class_accuracy": round(ev["class_accuracy"], 4), "cpu_ms_per_image": round(1000 * cpu / 500, 2)}


def roundtrip(net, x01, y, guidance: float, interval) -> list[dict]:
    rows = []

    def run(method: str, scale: float, **kw) -> None:
        t0 = time.process_time()
        rec = editing.reconstruct(net, x01, labels=y, guidance_scale=scale, guidance_interval=interval,
                                  method=method, **kw)
        cpu = time.process_time() - t0
        p = psnr(rec.images, x01, data_range=1.0)
        rows.append({"method": method, "guidance_scale": scale, **kw, "nfe": rec.nfe,
                     "psnr": round(float(p.mean()), 3), "psnr_min": round(float(p.min()), 3),
                     "cpu_ms_per_image": round(1000 * cpu / len(x01), 2)})
        print(json.dumps({"roundtrip": rows[-1]}), flush=True)

    for scale in sorted({1.0, guidance}):
        if vf.has_backward_field(net):
            for k in (0, 1, 2, 3):
                run("backward", scale, num_refinements=k)
            if not vf.backward_from_data_only(net):  # an inverse head is refused jumps from t > 0
                for J in (1, 2):  # 2: the library default (4 NFE round trip)
                    run("hybrid", scale, num_iterations=J)
            for J in (1, 2, 3, 7):  # the backward jump seeds the solver: 1 + J + 1 NFE round trip
                run("seeded", scale, num_iterations=J)
        for J in (1, 2, 3, 7):  # 7: the library default (8 NFE round trip)
            run("fixed-point", scale, num_iterations=J)
    return rows


def hybrid_sweep(net, x01, y, interval, switches: list[float]) -> list[dict]:
    """Round trips of <= 4 NFE at omega 1: the hybrid over switch, solver updates J and backward jumps
    K (the chain t_s -> 1 over K uniform segments), regenerated in one jump 1 -> 0 (nfe = J + K + 1),
    next to the solver alone at the same NFE."""
    rows = []

    def row(method: str, **kw) -> None:
        inv = editing.invert(net, x01, labels=y, guidance_interval=interval, method=method, **kw)
        x, n = vf.generate(net, inv.latents, 1.0, 1, y, 1.0, interval)  # one jump back: the round trip's +1
        p = psnr(((x + 1) / 2).clamp(0, 1), x01, data_range=1.0)
        rows.append({"method": method, **kw, "nfe": inv.nfe + n, "psnr": round(float(p.mean()), 3)})
        print(json.dumps({"hybrid_sweep": rows[-1]}), flush=True)

    for J in (1, 2, 3):
        row("fixed-point", num_iterations=J)
    for sw in switches:
        for J, K in ((1, 1), (2, 1), (1, 2)) if sw > 0 else ((1, 1), (1, 2), (1, 3)):  # J unused at switch 0
            row("hybrid", switch=sw, num_iterations=J, num_steps=K)
    return rows


def edits(net, x01, y, strengths: list[float], guidance: float, interval, seed: int,
          source_guidances: list[float], refinements: list[int], switches: list[float],
          iterations: list[int], editors_wanted: set[str] | None = None, change_gate=editing.DEFAULT_GATE,
          suffix: str = "") -> dict:
    """SSIM / target accuracy curves of each editor on class swaps y -> y + 1, every editor with
    ``change_gate`` (the library default, or None for the editors' plain output); names end in ``suffix``."""
    tgt = (y + 1) % 10
    x = x01 * 2 - 1
    # Every editor sees the same digits, classes, guidance and gate; only its own settings vary.
    common = dict(labels=tgt, source_labels=y, guidance_scale=guidance, guidance_interval=interval,
                  change_gate=change_gate)
    seeded = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    edit = lambda s, **kw: editing.edit(net, x01, strength=s, **common, **kw)  # noqa: E731
    editors = {}
    if vf.has_backward_field(net):
        for sg in source_guidances:
            for k in refinements:
                editors[f"edit_backward_w{sg:g}_k{k}"] = lambda s, sg=sg, k=k: edit(
                    s, source_guidance_scale=sg, method="backward", num_refinements=k)
            for J in iterations:
                editors[f"edit_seeded_w{sg:g}_j{J}"] = lambda s, sg=sg, J=J: edit(
                    s, source_guidance_scale=sg, method="seeded", num_iterations=J)
            for sw in switches if not vf.backward_from_data_only(net) else ():
                for J in iterations:
                    editors[f"edit_hybrid_w{sg:g}_s{sw:g}_j{J}"] = lambda s, sg=sg, sw=sw, J=J: edit(
                        s, source_guidance_scale=sg, method="hybrid", switch=sw, num_iterations=J, generator=seeded())
    for J in sorted({editing.EDIT_ITERATIONS, *iterations}):  # the default, and the hybrid's at equal NFE
        name = "edit_fixed_point" if J == editing.EDIT_ITERATIONS else f"edit_fixed_point_j{J}"
        editors[name] = lambda s, J=J: edit(s, method="fixed-point", num_iterations=J, generator=seeded())
    editors["flow_edit"] = lambda s: editing.flow_edit(net, x01, strength=s, **common, generator=seeded())
    if editors_wanted is not None:
        editors = {k: v for k, v in editors.items() if any(k.startswith(f"{w}") or k.startswith(f"edit_{w}")
                                                           for w in editors_wanted)}
    return {name + suffix: edit_curve(fn, strengths, x, tgt, name + suffix) for name, fn in editors.items()}


def edit_curve(fn, strengths: list[float], x: torch.Tensor, tgt: torch.Tensor, name: str, echo: bool = True) -> dict:
    """One editor over the strengths: target accuracy, SSIM / PSNR to the source x (in [-1, 1]), NFE and
    CPU per edit at each; "at_90" interpolates them where the accuracy crosses 90%. ``fn(strength)``
    returns an ``EditResult``; with ``echo`` each row is also printed as a JSON line tagged ``name``."""
    rows = []
    for s in strengths:
        t0 = time.process_time()
        res = fn(s)
        cpu = time.process_time() - t0
        out = res.images * 2 - 1
        acc = evaluate_digits(out, tgt)["class_accuracy"]
        rows.append({"strength": s, "target_accuracy": round(acc, 4), "ssim": round(float(ssim(out, x).mean()), 4),
                     "psnr": round(float(psnr(out, x).mean()), 3), "nfe": res.nfe,
                     "cpu_ms_per_edit": round(1000 * cpu / len(x), 2)})
        if echo:
            print(json.dumps({"editor": name, **rows[-1]}), flush=True)
    return {"curve": rows, "at_90": _at_accuracy(rows, 0.9)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="pMF model folder (default: the bundled MNIST pMF)")
    p.add_argument("--split", choices=("train", "test"), default="test",
                   help="digits of the round trip and edits: train (to choose defaults) or test (to report)")
    p.add_argument("--num-images", type=int, default=100, help="digits, evenly over the split")
    p.add_argument("--sections", default="generation,roundtrip,edits",
                   help="comma-separated sections: generation, roundtrip, hybrid (the sweep), edits")
    p.add_argument("--switches", default="0,0.1,0.2,0.3,0.5,0.7,0.8,0.9,0.95",
                   help="switch times of the hybrid sweep")
    p.add_argument("--strengths", default="0.5,0.6,0.7,0.8,0.9,1.0", help="edit strengths")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="omega of generation, regeneration and edits (default: the model's)")
    p.add_argument("--edit-guidance-scale", type=float, default=None,
                   help="omega of the target class in edits (default: editing.EDIT_GUIDANCE)")
    p.add_argument("--source-guidances", default="1", help="omegas the edit inverts under (comma-separated)")
    p.add_argument("--refinements", default="0,1", help="backward refinements tried in edits")
    p.add_argument("--edit-switches", default=str(vf.HYBRID_SWITCH), help="hybrid switch times tried in edits")
    p.add_argument("--edit-iterations", default=str(editing.EDIT_ITERATIONS),
                   help="solver updates of the hybrid (and fixed-point) editor tried (comma-separated)")
    p.add_argument("--editors", default=None,
                   help="only these editor families (comma-separated of backward, hybrid, fixed_point, flow_edit)")
    p.add_argument("--gates", default="default",
                   help="change gates the edits are run with (comma-separated of default, none: the editors' "
                   "plain output, named *_nogate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model_dir = Path(args.model) if args.model else bundled_model_dir("mnist")
    net, cfg = editing.from_pretrained(model_dir)
    samp = cfg.get("sampling", {})
    guidance = args.guidance_scale or float(samp.get("guidance_scale", 1.0))
    interval = tuple(samp.get("guidance_interval", (0.0, 1.0)))
    report: dict = {"bench": "bidirectional", "model": str(model_dir), "split": args.split,
                    "num_images": args.num_images, "guidance_scale": guidance, "threads": args.threads,
                    "backward_head": vf.has_backward_field(net), "train_steps": cfg.get("train_steps")}
    sections = set(args.sections.split(","))
    if "generation" in sections:
        report["generation"] = generation(net, guidance, interval, args.seed)
        print(json.dumps({"generation": report["generation"]}), flush=True)
    x01, y = digits(args.split, args.num_images)
    if "roundtrip" in sections:
        report["roundtrip"] = roundtrip(net, x01, y, guidance, interval)
    if "hybrid" in sections:
        report["hybrid_sweep"] = hybrid_sweep(net, x01, y, interval, [float(s) for s in args.switches.split(",")])
    gates = {"default": ("", editing.DEFAULT_GATE), "none": ("_nogate", None)}
    for suffix, gate in (gates[g] for g in args.gates.split(",") if "edits" in sections):
        report.setdefault("edits", {}).update(edits(net, x01, y, [float(s) for s in args.strengths.split(",")],
                                args.edit_guidance_scale or editing.EDIT_GUIDANCE, interval, args.seed,
                                [float(s) for s in args.source_guidances.split(",")],
                                [int(k) for k in args.refinements.split(",")],
                                [float(s) for s in args.edit_switches.split(",")],
                                [int(j) for j in args.edit_iterations.split(",")],
                                set(args.editors.split(",")) if args.editors else None, gate, suffix))
    print(json.dumps(report))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
