"""`pmf bench-edit run|score`: the edit-quality benchmark on a manifest (docs/bench_edit.md).

    pmf bench-edit run --manifest mnist_heldout_swap100 --editor flow_edit --strengths 0.6,0.7,0.8 --out out/fe
    pmf bench-edit run --manifest my.json --editor my_pkg.editors:sd_img2img --out out/sd
    pmf bench-edit score --manifest mnist_heldout_swap100 --outputs out/fe --out fe_scores.json --plot fe.png

``run`` writes OUT/<id>.png (or .npy) + OUT/run.json (NFE, wall and CPU seconds per item); with several
strengths, one such folder per strength (OUT/strength_0.70/...). ``score`` reads any folder in that
layout (a diffusion editor's too), or a folder of such folders (a sweep), and prints one JSON line per
folder.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _manifest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True,
                   help="manifest file (.json or .csv) or the name of a bundled one (e.g. mnist_heldout_swap100)")
    p.add_argument("--resolution", type=int, default=None, help="image side (required for CSV manifests)")
    p.add_argument("--channels", type=int, default=None, choices=(1, 3), help="1 or 3 (required for CSV manifests)")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("bench-edit", help="edit-quality benchmark: run an editor over a manifest, score outputs",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    halves = p.add_subparsers(dest="half", metavar="run|score")

    r = halves.add_parser("run", help="apply an editor to every manifest item; write outputs + run.json")
    _manifest_args(r)
    r.add_argument("--editor", required=True,
                   help="flow_edit, edit, sdedit, inpaint, fm_sdedit, fm_flowedit, fm_ode_edit, identity, "
                   "or module:function (see docs/bench_edit.md for the protocol)")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--strength", type=float, default=None, help="one strength (default: the editor's default)")
    r.add_argument("--strengths", default=None, help="comma-separated sweep; one subfolder per strength")
    r.add_argument("--model", default=None, help="model folder or official .pt (default: bundled MNIST pMF / FM)")
    r.add_argument("--guidance-scale", type=float, default=None, help="target guidance (default: editing.EDIT_GUIDANCE)")
    r.add_argument("--fm-steps", type=int, default=50, help="Euler steps of the fm_* editors")
    r.add_argument("--batch-size", type=int, default=16, help="items per editor call")
    r.add_argument("--format", choices=("png", "npy"), default="png", help="png: 8-bit; npy: float32, lossless")
    r.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (our editors)")
    r.add_argument("--change-gate", type=float, default=None, metavar="T",
                   help="the same change gate on every editor's output, ours and any other (0 < T <= 1; our "
                   "editors' default is 0.6); 0: no editor gated, ours plain; default: each editor as its "
                   "library has it (ours gated, others not)")
    r.set_defaults(func=run_run)

    s = halves.add_parser("score", help="score a folder of outputs (any editor's) against the manifest")
    _manifest_args(s)
    s.add_argument("--outputs", required=True, help="folder with <id>.png/.npy, or a folder of such folders (a sweep)")
    s.add_argument("--classifier", default=None,
                   help="digits, imagenet or module:function (default: the manifest's classifier)")
    s.add_argument("--feature-size", type=int, default=None, help="MobileNetV2 input side (default: the manifest's)")
    s.add_argument("--metrics", default="accuracy,pixels,perceptual,structure", help="comma-separated subset")
    s.add_argument("--resize", action="store_true", help="resize outputs of another size to the manifest's")
    s.add_argument("--per-item", action="store_true", help="also keep per-item values in --out")
    s.add_argument("--out", default=None, help="JSON file with the summaries (and per-item values with --per-item)")
    s.add_argument("--plot", default=None, help="PNG of accuracy against preservation (sweeps)")
    s.set_defaults(func=run_score)
    p.set_defaults(func=lambda args: p.print_help() or 2)
    return p


def _manifest(args: argparse.Namespace):
    from pmf_edit.bench.manifest import bundled_manifest, load_manifest

    path = Path(args.manifest)
    if not path.is_file() and path.suffix == "" and "/" not in args.manifest:
        path = bundled_manifest(args.manifest)
    return load_manifest(path, resolution=args.resolution, channels=args.channels)


def _floats(spec: str, name: str) -> list[float]:
    try:
        return [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers, got {spec!r}") from None


def run_run(args: argparse.Namespace) -> int:
    from pmf_edit.bench.curves import strength_dirname
    from pmf_edit.bench.editors import default_strength, make_editor_gated
    from pmf_edit.bench.run import run_editor, write_outputs

    if args.strength is not None and args.strengths is not None:
        raise ValueError("give --strength or --strengths, not both")
    m = _manifest(args)
    editor = make_editor_gated(args.editor, args.change_gate, model=args.model, guidance_scale=args.guidance_scale,
                               fm_steps=args.fm_steps, device=args.device)
    sweep = args.strengths is not None
    for s in _floats(args.strengths, "--strengths") if sweep else [args.strength]:
        res = run_editor(m, editor, strength=s, batch_size=args.batch_size, name=args.editor)
        res.meta.update(model=args.model, guidance_scale=args.guidance_scale, change_gate=args.change_gate,
                        strength_used=s if s is not None else default_strength(args.editor),
                        fm_steps=args.fm_steps if args.editor.startswith("fm_") else None)
        out = write_outputs(Path(args.out) / strength_dirname(s) if sweep else Path(args.out), m, res, fmt=args.format)
        nfe = {r["nfe"] for r in res.records.values()}
        wall = sum(r["wall_s"] for r in res.records.values())
        print(json.dumps({"editor": args.editor, "strength": s, "out": str(out), "items": len(res.images),
                          "nfe": sorted(nfe, key=str), "wall_ms_per_image": round(1000 * wall / len(res.images), 2)}))
    return 0


def _point_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"output folder {str(root)!r} does not exist")
    if (root / "run.json").is_file() or any(root.glob("*.png")) or any(root.glob("*.npy")):
        return [root]
    subs = sorted(d for d in root.iterdir() if d.is_dir() and ((d / "run.json").is_file() or any(d.glob("*.png"))
                                                              or any(d.glob("*.npy"))))
    if not subs:
        raise FileNotFoundError(f"{str(root)!r} holds no outputs (<id>.png/.npy) and no subfolders with outputs")
    return subs


def run_score(args: argparse.Namespace) -> int:
    from pmf_edit.bench.curves import markdown_table, plot_curves
    from pmf_edit.bench.score import Scorer

    m = _manifest(args)
    scorer = Scorer(m, classifier=args.classifier, feature_size=args.feature_size,
                    metrics=tuple(x for x in args.metrics.split(",") if x), resize=args.resize)
    points = []
    for folder in _point_folders(Path(args.outputs)):
        rep = scorer.score_folder(folder)
        meta = rep["meta"]
        strength = meta.get("strength") if meta.get("strength") is not None else meta.get("strength_used")
        row = {"folder": str(folder), "editor": meta.get("editor"), "strength": strength,
               **rep["summary"]}
        print(json.dumps(row))
        points.append({**row, "items": rep["items"]} if args.per_item else row)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"manifest": m.name, "points": points}, indent=1) + "\n")
    if args.plot:
        curves: dict[str, list[dict]] = {}
        for r in points:
            curves.setdefault(r["editor"] or Path(args.outputs).name, []).append(r)
        plot_curves(curves, args.plot, title=m.name)
        print(markdown_table(curves))
    return 0
