"""The ``run`` half of the edit benchmark: apply an editor to every item of a manifest, record NFE and
time, and write the outputs as files that ``score`` (or anyone) reads back.

Output folder layout (what ``score`` expects from any editor, ours or not):

    OUT/<item id>.png        one image per manifest item (8-bit PNG, gray or RGB), or <item id>.npy
                             (float32 (C, H, W) in [0, 1], lossless) with ``fmt="npy"``
    OUT/run.json             optional: {"editor", "strength", ..., "items": {id: {"nfe", "wall_s", "cpu_s"}}}

Time per image is the batch's wall-clock (``time.perf_counter``) and process CPU time
(``time.process_time``, all threads) divided by the batch size.

Example:
    >>> m = load_manifest(bundled_manifest("mnist_heldout_swap100"))
    >>> res = run_editor(m, make_editor("flow_edit"), strength=0.7)
    >>> write_outputs("out/flow_edit_0.7", m, res)
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pmf_edit.bench.editors import EditBatch, Editor, _as_output
from pmf_edit.bench.manifest import Manifest, load_images, load_masks

__all__ = ["RunResult", "run_editor", "write_outputs", "quantize_u8", "RUN_FILE"]

RUN_FILE = "run.json"


@dataclass
class RunResult:
    """Edited images of a manifest, in item order, with per-item cost."""

    images: list[torch.Tensor]  # per item (C, H', W') float32 in [0, 1]
    records: dict[str, dict] = field(default_factory=dict)  # id -> {"nfe", "wall_s", "cpu_s"}
    meta: dict = field(default_factory=dict)  # editor name, strength, settings


def run_editor(
    manifest: Manifest,
    editor: Editor,
    *,
    strength: float | None = None,
    batch_size: int = 16,
    name: str = "",
    progress: bool = False,
) -> RunResult:
    """Apply ``editor`` to every item of ``manifest``.

    Args:
        manifest: the edits.
        editor: a callable following the protocol in ``pmf_edit.bench.editors``.
        strength: passed to the editor (None = its default).
        batch_size: items per editor call (per-item seeds make the outputs independent of it for
            editors that honour ``batch.generators``).
        name: recorded in ``meta``.
        progress: show a tqdm bar.

    Returns:
        ``RunResult`` with one image per item and its NFE, wall and CPU seconds.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
    images = load_images(manifest)
    masks = load_masks(manifest)
    result = RunResult(images=[], meta={"editor": name, "strength": strength, "manifest": manifest.name,
                                        "num_items": len(manifest.items)})
    items = manifest.items
    for i in tqdm(range(0, len(items), batch_size), disable=not progress, desc=name or "edit"):
        sl = slice(i, i + batch_size)
        batch = EditBatch(images=images[sl].clone(), items=items[sl], masks=None if masks is None else masks[sl].clone(),
                          generators=tuple(torch.Generator().manual_seed(it.seed) for it in items[sl]),
                          strength=strength)
        w0, c0 = time.perf_counter(), time.process_time()
        out = _as_output(editor(batch), len(batch.items))
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        n = len(batch.items)
        for it, img in zip(batch.items, out.images):
            result.images.append(img)
            result.records[it.id] = {"nfe": out.nfe, "wall_s": wall / n, "cpu_s": cpu / n}
    return result


def quantize_u8(images: torch.Tensor) -> torch.Tensor:
    """What an 8-bit PNG keeps: round(255 x) / 255 for x in [0, 1] (any shape)."""
    return (images.clamp(0, 1) * 255.0).round() / 255.0


def write_outputs(out_dir: str | os.PathLike, manifest: Manifest, result: RunResult, *, fmt: str = "png") -> Path:
    """Write one file per item (``png``: 8-bit, ``npy``: float32 lossless) and ``run.json``."""
    from core.images import save_png

    if fmt not in ("png", "npy"):
        raise ValueError(f"fmt must be 'png' or 'npy', got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for it, img in zip(manifest.items, result.images):
        if fmt == "npy":
            np.save(out / f"{it.id}.npy", img.numpy().astype(np.float32))
        else:
            arr = (quantize_u8(img) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
            save_png(out / f"{it.id}.png", arr)
    (out / RUN_FILE).write_text(json.dumps({**result.meta, "format": fmt, "items": result.records}, indent=1) + "\n")
    return out
