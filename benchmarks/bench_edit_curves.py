"""Accuracy-vs-preservation curves of every editor on MNIST class swaps, with defaults chosen on a
split the reported numbers do not use (docs/bench_edit.md).

1. Tune: our pMF editors (flow_edit, sdedit, edit) over a fine strength grid on ``mnist_tune_swap100``
   (100 digits of the TRAIN split); the flow-matching editors on its first ``--fm-tune-items`` items
   (5 per class at 50; they cost 100-150 NFE). Rule (``curves.choose_strength``): the smallest strength
   reaching ``--min-accuracy`` target accuracy, else the most accurate.
2. Report: every editor on ``mnist_heldout_swap100`` (100 held-out test digits); the FM editors on a
   ``--fm-items`` subset of it (every k-th item, classes balanced), and our editors' summary on that
   same subset too, so the curves in the table compare the same images.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_edit_curves.py --out benchmarks/results/bench_edit.json \
        --plot benchmarks/results/bench_edit.png --table benchmarks/results/bench_edit.md

Prints one JSON line per sweep point, then the whole report as one JSON line (also written to --out).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pmf_edit.bench.curves import choose_strength, markdown_table, plot_curves
from pmf_edit.bench.editors import default_strength, make_editor_gated
from pmf_edit.bench.manifest import bundled_manifest, load_manifest
from pmf_edit.bench.run import run_editor
from pmf_edit.bench.score import Scorer

PMF_EDITORS = ("flow_edit", "sdedit", "edit")
FM_EDITORS = ("fm_sdedit", "fm_flowedit", "fm_ode_edit")


def _floats(s: str) -> list[float]:
    return [round(float(v), 4) for v in s.split(",") if v]


def _every(manifest, n: int):
    """``n`` items spread evenly over the manifest (balanced classes for the class-sorted bundles)."""
    k = max(1, len(manifest.items) // n)
    return manifest.select([it.id for it in manifest.items[::k][:n]])


def _point(manifest, scorer, editor, name, strength, fm_steps, subset_ids=None) -> tuple[dict, dict | None]:
    res = run_editor(manifest, editor, strength=strength, batch_size=25, name=name)
    rep = scorer.score(res.images, res.records, res.meta)
    row = {"editor": name, "strength": strength, **rep["summary"]}
    if name.startswith("fm_"):
        row["fm_steps"] = fm_steps
    sub = None
    if subset_ids is not None:
        keep = set(subset_ids)
        sub = {"editor": name, "strength": strength, **scorer.summary([r for r in rep["items"] if r["id"] in keep])}
    print(json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return row, sub


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tune-manifest", default="mnist_tune_swap100", help="bundled name or file (train split)")
    p.add_argument("--report-manifest", default="mnist_heldout_swap100", help="bundled name or file (held out)")
    p.add_argument("--tune-strengths", default="0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85,0.9,0.95,1.0",
                   help="strength grid of our editors on the tuning split")
    p.add_argument("--strengths", default="0.5,0.6,0.7,0.8,0.9,1.0", help="reported grid of our editors (+ defaults)")
    p.add_argument("--fm-strengths", default="0.6,0.7,0.8,0.9", help="grid of fm_sdedit and fm_flowedit")
    p.add_argument("--fm-ode-strengths", default="0.8,1.0", help="grid of fm_ode_edit")
    p.add_argument("--fm-steps", type=int, default=50, help="Euler steps of the FM editors")
    p.add_argument("--fm-items", type=int, default=50, help="held-out items the FM editors are reported on")
    p.add_argument("--fm-tune-items", type=int, default=20, help="tuning items the FM editors' defaults use")
    p.add_argument("--min-accuracy", type=float, default=0.9, help="the default rule's target accuracy")
    p.add_argument("--skip-fm", action="store_true", help="our editors only")
    p.add_argument("--change-gate", type=float, default=None, metavar="T",
                   help="the same change gate on every editor's output, FM editors included (0 < T <= 1); 0: no "
                   "editor gated; default: as the libraries have it (ours gated at 0.6, FM not)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default=None, help="JSON report")
    p.add_argument("--plot", default=None, help="PNG of the held-out curves")
    p.add_argument("--table", default=None, help="Markdown table of the held-out curves")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = lambda s: load_manifest(bundled_manifest(s) if "/" not in s and not s.endswith((".json", ".csv")) else s)  # noqa: E731
    tune_m, rep_m = load(args.tune_manifest), load(args.report_manifest)
    fm_rep_m = _every(rep_m, args.fm_items)
    fm_tune_m = _every(tune_m, args.fm_tune_items)
    t_start, c_start = time.perf_counter(), time.process_time()
    editors = {n: make_editor_gated(n, args.change_gate, fm_steps=args.fm_steps)
               for n in PMF_EDITORS + (() if args.skip_fm else FM_EDITORS)}
    fm_grid = {"fm_sdedit": _floats(args.fm_strengths), "fm_flowedit": _floats(args.fm_strengths),
               "fm_ode_edit": _floats(args.fm_ode_strengths)}

    # 1. Tuning split: accuracy and pixel metrics are all the rule needs.
    tune_scorer = Scorer(tune_m, metrics=("accuracy", "pixels"))
    fm_tune_scorer = Scorer(fm_tune_m, metrics=("accuracy", "pixels"))
    tuning: dict[str, dict] = {}
    for name, ed in editors.items():
        fm = name.startswith("fm_")
        grid = fm_grid[name] if fm else _floats(args.tune_strengths)
        rows = [_point(fm_tune_m if fm else tune_m, fm_tune_scorer if fm else tune_scorer, ed, name, s, args.fm_steps)[0]
                for s in grid]
        chosen, why = choose_strength(rows, args.min_accuracy)
        tuning[name] = {"chosen": chosen, "rule": why, "current_default": default_strength(name), "rows": rows,
                        "items": len((fm_tune_m if fm else tune_m).items)}
        print(json.dumps({"editor": name, "chosen_strength": chosen, "rule": why,
                          "current_default": default_strength(name)}), flush=True)

    # 2. Held-out report.
    scorer = Scorer(rep_m)
    fm_scorer = Scorer(fm_rep_m)
    curves: dict[str, list[dict]] = {}
    curves_subset: dict[str, list[dict]] = {}
    for name, ed in editors.items():
        fm = name.startswith("fm_")
        grid = set(fm_grid[name] if fm else _floats(args.strengths))
        grid |= {tuning[name]["chosen"]}
        if not fm and default_strength(name) is not None:
            grid |= {default_strength(name)}
        for s in sorted(grid):
            if fm:
                row, _ = _point(fm_rep_m, fm_scorer, ed, name, s, args.fm_steps)
                curves.setdefault(name, []).append(row)
                curves_subset.setdefault(name, []).append(row)
            else:
                row, sub = _point(rep_m, scorer, ed, name, s, args.fm_steps, [it.id for it in fm_rep_m.items])
                curves.setdefault(name, []).append(row)
                curves_subset.setdefault(name, []).append(sub)
    defaults = {n: t["chosen"] for n, t in tuning.items()}
    report = {
        "bench": "bench_edit_curves", "tune_manifest": tune_m.name, "report_manifest": rep_m.name,
        "report_items": len(rep_m.items), "fm_report_items": len(fm_rep_m.items), "fm_steps": args.fm_steps,
        "min_accuracy": args.min_accuracy, "threads": args.threads, "change_gate": args.change_gate,
        "defaults_chosen": defaults,
        "tuning": tuning, "heldout": curves, "heldout_fm_subset": curves_subset,
        "wall_s": round(time.perf_counter() - t_start, 1), "cpu_s": round(time.process_time() - c_start, 1),
    }
    if args.plot:
        plot_curves(curves_subset, args.plot, defaults=defaults,
                    title=f"class swap y -> y+1, {len(fm_rep_m.items)} held-out digits (all editors, same images)")
        plot_curves(curves, Path(args.plot).with_name(Path(args.plot).stem + "_pmf100.png"),
                    defaults={n: d for n, d in defaults.items() if not n.startswith("fm_")},
                    title=f"{len(rep_m.items)} held-out digits (our editors; FM editors on {len(fm_rep_m.items)})")
    if args.table:
        Path(args.table).write_text(
            f"## {len(fm_rep_m.items)} held-out digits, every editor\n\n" + markdown_table(curves_subset, defaults)
            + f"\n\n## {len(rep_m.items)} held-out digits (FM editors: the {len(fm_rep_m.items)} above)\n\n"
            + markdown_table(curves, defaults) + "\n")
    line = json.dumps(report)
    print(line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
