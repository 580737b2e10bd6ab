"""Strength sweeps: an editor's accuracy-vs-preservation curve, the rule that picks its default, a
table and a plot.

Default rule (``choose_strength``): the smallest strength whose target accuracy on the tuning split
reaches ``min_accuracy`` (the least change that still makes the edit); if no strength reaches it,
the most accurate strength (the smaller one on ties).

Example:
    >>> rows = sweep(manifest, "flow_edit", [0.6, 0.7, 0.8], Scorer(manifest))
    >>> choose_strength(rows, 0.9)
"""
from __future__ import annotations

import os
from pathlib import Path

from pmf_edit.bench.editors import Editor, make_editor
from pmf_edit.bench.manifest import Manifest
from pmf_edit.bench.run import run_editor, write_outputs
from pmf_edit.bench.score import Scorer

__all__ = ["sweep", "choose_strength", "markdown_table", "plot_curves", "strength_dirname"]


def strength_dirname(strength: float | None) -> str:
    """Subfolder of one sweep point: ``strength_0.70`` (``default`` for None)."""
    return "default" if strength is None else f"strength_{strength:.2f}"


def sweep(
    manifest: Manifest,
    editor: str | Editor,
    strengths: list[float | None],
    scorer: Scorer,
    *,
    out_dir: str | os.PathLike | None = None,
    fmt: str = "png",
    batch_size: int = 16,
    editor_kwargs: dict | None = None,
) -> list[dict]:
    """Run ``editor`` at each strength and score it; with ``out_dir`` also write each point's folder and
    score it from there (the numbers a diffusion editor's folder would get).

    Returns:
        One row per strength: {"strength", **scorer summary}.
    """
    name = editor if isinstance(editor, str) else getattr(editor, "__name__", "callable")
    fn = make_editor(editor, **(editor_kwargs or {})) if isinstance(editor, str) else editor
    rows = []
    for s in strengths:
        res = run_editor(manifest, fn, strength=s, batch_size=batch_size, name=name)
        if out_dir is not None:
            folder = write_outputs(Path(out_dir) / strength_dirname(s), manifest, res, fmt=fmt)
            report = scorer.score_folder(folder)
        else:
            report = scorer.score(res.images, res.records, res.meta)
        rows.append({"strength": s, **report["summary"]})
    return rows


def choose_strength(rows: list[dict], min_accuracy: float = 0.9) -> tuple[float, str]:
    """The default rule (module docstring) -> (strength, one-line reason)."""
    pts = sorted((r for r in rows if r.get("target_accuracy") is not None and r["strength"] is not None),
                 key=lambda r: r["strength"])
    if not pts:
        raise ValueError("no sweep point has a target accuracy to choose by")
    for r in pts:
        if r["target_accuracy"] >= min_accuracy:
            return r["strength"], f"smallest strength with target accuracy >= {min_accuracy:.0%} ({r['target_accuracy']:.1%})"
    best = max(pts, key=lambda r: (r["target_accuracy"], -r["strength"]))
    return best["strength"], f"no strength reaches {min_accuracy:.0%}; most accurate ({best['target_accuracy']:.1%})"


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown_table(curves: dict[str, list[dict]], defaults: dict[str, float | None] | None = None) -> str:
    """One row per (editor, strength); the default operating point in bold."""
    lines = ["| editor | strength | NFE | target acc. | SSIM | PSNR | MSE | perceptual | structure | ms / image (wall, CPU) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, rows in curves.items():
        for r in rows:
            d = defaults is not None and defaults.get(name) is not None and r["strength"] == defaults[name]
            b = "**" if d else ""
            cells = [name, _fmt(r["strength"], ".2f") + (" (default)" if d else ""), _fmt(r.get("nfe"), ".0f"),
                     _fmt(r.get("target_accuracy"), ".1%"), _fmt(r.get("ssim"), ".3f"), _fmt(r.get("psnr"), ".2f"),
                     _fmt(r.get("mse"), ".4f"), _fmt(r.get("perceptual"), ".3f"), _fmt(r.get("structure"), ".4f"),
                     f"{_fmt(r.get('wall_ms_per_image'), '.1f')}, {_fmt(r.get('cpu_ms_per_image'), '.1f')}"]
            lines.append("| " + " | ".join(f"{b}{c}{b}" if c != "-" else c for c in cells) + " |")
    return "\n".join(lines)


def plot_curves(
    curves: dict[str, list[dict]],
    path: str | os.PathLike,
    *,
    defaults: dict[str, float | None] | None = None,
    title: str = "",
) -> Path:
    """Accuracy against SSIM (left), perceptual (middle) and structure distance (right); one line per
    editor, labelled with strengths; a star marks each editor's default operating point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("ssim", "SSIM to source (higher = more preserved)"),
              ("perceptual", "perceptual distance (lower = more preserved)"),
              ("structure", "structure distance (lower = more preserved)"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, (key, label) in zip(axes, panels):
        for name, rows in curves.items():
            pts = [r for r in rows if r.get("target_accuracy") is not None and r.get(key) is not None]
            if not pts:
                continue
            nfe = pts[0].get("nfe")
            line, = ax.plot([r["target_accuracy"] for r in pts], [r[key] for r in pts], "o-", ms=3,
                            label=f"{name} ({'?' if nfe is None else f'{nfe:.0f}'} NFE)")
            for r in pts:
                ax.annotate(f"{r['strength']:.2f}", (r["target_accuracy"], r[key]), fontsize=5,
                            xytext=(2, 2), textcoords="offset points", color=line.get_color())
            d = (defaults or {}).get(name)
            dp = [r for r in pts if d is not None and r["strength"] == d]
            if dp:
                ax.plot([dp[0]["target_accuracy"]], [dp[0][key]], "*", ms=13, color=line.get_color(),
                        markeredgecolor="black", zorder=5)
        ax.set_xlabel("target-class accuracy")
        ax.set_ylabel(label)
        ax.axvline(0.9, color="gray", lw=0.5, ls="--")
    axes[0].legend(fontsize=7)
    fig.suptitle((title + "   " if title else "") + "(star: the editor's default strength)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
