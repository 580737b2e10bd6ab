"""The ``score`` half of the edit benchmark: the same metrics for any editor's outputs, in memory or
from a folder that follows the manifest (``<item id>.png`` / ``.npy``, optional ``run.json``).

Per item: the classifier's prediction and whether it is the target class; MSE, PSNR and SSIM between
source and edit outside the mask (``pmf_edit.bench.metrics``); the perceptual distance (both images
with the edit region blacked out, as PIE-Bench does for LPIPS) and the structure distance (whole
images) on MobileNetV2 features (``core.eval.edit_metrics``); NFE, wall and CPU seconds from ``run.json``
where given. The summary averages each over the items (accuracy over the items that have a target).

Example:
    >>> m = load_manifest(bundled_manifest("mnist_heldout_swap100"))
    >>> scorer = Scorer(m)
    >>> report = scorer.score_folder("out/flow_edit_0.7")
    >>> report["summary"]["target_accuracy"], report["summary"]["ssim"]
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.data import _to_channels
from core.eval.edit_metrics import EditFeatures
from pmf_edit.bench.classifiers import Classifier, make_classifier, predict
from pmf_edit.bench.manifest import Manifest, load_images, load_masks, read_image01
from pmf_edit.bench.metrics import masked_mse, masked_psnr, masked_ssim
from pmf_edit.bench.run import RUN_FILE

__all__ = ["Scorer", "load_outputs", "METRICS"]

METRICS = ("accuracy", "pixels", "perceptual", "structure")  # what Scorer computes (all by default)


def load_outputs(folder: str | os.PathLike, manifest: Manifest) -> tuple[list[Tensor], dict[str, dict], dict]:
    """Read an output folder that follows ``manifest``.

    Returns:
        (one (C, H, W) [0, 1] tensor per item in manifest order, run.json's per-item records (may be
        empty), run.json's other fields (may be empty)).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder {str(folder)!r} does not exist")
    images, missing = [], []
    for it in manifest.items:
        found = [p for p in (folder / f"{it.id}.png", folder / f"{it.id}.npy", folder / f"{it.id}.jpg") if p.is_file()]
        if not found:
            missing.append(it.id)
            continue
        images.append(read_image01(found[0]))
    if missing:
        raise FileNotFoundError(f"{str(folder)!r} lacks outputs for {len(missing)} of {len(manifest.items)} items, "
                                f"e.g. {missing[:5]} (expected <id>.png or <id>.npy)")
    run = json.loads((folder / RUN_FILE).read_text()) if (folder / RUN_FILE).is_file() else {}
    records = run.pop("items", {}) if isinstance(run, dict) else {}
    return images, records, run


def _mean(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(v)) if v else None


class Scorer:
    """Scores edits of one manifest; the source images, masks and their features are computed once.

    Args:
        manifest: the edits.
        classifier: ``"digits"``, ``"imagenet"``, ``"module:function"``, a callable, or None = the
            manifest's ``classifier`` (no accuracy if that is None too).
        feature_size: side for the MobileNetV2 metrics; None = the manifest's ``feature_size``.
        metrics: subset of ``METRICS`` to compute.
        resize: resize outputs whose size differs from the manifest's (bilinear, antialiased); without
            it a size mismatch is an error.
    """

    def __init__(
        self,
        manifest: Manifest,
        *,
        classifier: str | Classifier | None = None,
        feature_size: int | None = None,
        metrics: tuple[str, ...] = METRICS,
        resize: bool = False,
    ) -> None:
        bad = set(metrics) - set(METRICS)
        if bad:
            raise ValueError(f"unknown metrics {sorted(bad)}; choose from {METRICS}")
        self.manifest = manifest
        self.metrics = tuple(metrics)
        self.resize = resize
        self.sources = load_images(manifest)  # (N, C, R, R)
        masks = load_masks(manifest)
        self.keep = None if masks is None else ~masks  # preserve outside the edit region
        spec = classifier if classifier is not None else manifest.classifier
        self.classifier_name = spec if isinstance(spec, str) else getattr(spec, "__name__", "callable")
        self.classifier = None
        if "accuracy" in metrics and spec is not None:
            self.classifier = make_classifier(spec) if isinstance(spec, str) else spec
        self.features = None
        if {"perceptual", "structure"} & set(metrics):
            self.features = EditFeatures(size=feature_size or manifest.feature_size)
            self._src_full = self.features(self.sources)
            self._src_kept = self._src_full if self.keep is None else self.features(self._blackout(self.sources))

    def _blackout(self, x: Tensor) -> Tensor:
        return x if self.keep is None else x * self.keep.to(x.dtype)

    def _stack(self, outputs: list[Tensor] | Tensor) -> Tensor:
        n, (C, R) = len(self.manifest.items), (self.manifest.channels, self.manifest.resolution)
        if len(outputs) != n:
            raise ValueError(f"got {len(outputs)} outputs for {n} manifest items")
        fixed = []
        for it, y in zip(self.manifest.items, outputs):
            if y.ndim != 3 or y.shape[0] not in (1, 3):
                raise ValueError(f"output {it.id!r} must be (C, H, W) with C in (1, 3), got {tuple(y.shape)}")
            y = y.float()
            if y.shape[0] != C:  # gray edit of an RGB source (repeated) or RGB edit of a gray source (luma)
                y = _to_channels(y[None], C)[0]
            if tuple(y.shape[1:]) != (R, R):
                if not self.resize:
                    raise ValueError(f"output {it.id!r} is {y.shape[1]}x{y.shape[2]} but the manifest's images are "
                                     f"{R}x{R}; resize it or pass resize=True (--resize)")
                y = F.interpolate(y[None], size=(R, R), mode="bilinear", antialias=True, align_corners=False)[0]
            fixed.append(y.clamp(0, 1))
        return torch.stack(fixed)

    def score(self, outputs: list[Tensor] | Tensor, records: dict[str, dict] | None = None, meta: dict | None = None) -> dict:
        """Score edited images (one (C, H, W) in [0, 1] per manifest item, in order).

        Returns:
            {"summary": {...means...}, "items": [{"id", ...per-item values...}], "meta": meta}.
        """
        y = self._stack(outputs)
        x = self.sources
        items = [{"id": it.id, "source": it.source, "target": it.target} for it in self.manifest.items]
        if self.classifier is not None:
            pred = predict(self.classifier, y).tolist()
            for row, p in zip(items, pred):
                row["predicted"] = int(p)
                row["target_hit"] = None if row["target"] is None else bool(p == row["target"])
        if "pixels" in self.metrics:
            for name, fn in (("mse", masked_mse), ("psnr", masked_psnr), ("ssim", masked_ssim)):
                for row, v in zip(items, fn(y, x, self.keep).tolist()):
                    row[name] = v
        if self.features is not None:
            if "perceptual" in self.metrics:
                fy = self.features(self._blackout(y))
                for row, v in zip(items, self.features.perceptual(fy, self._src_kept).tolist()):
                    row["perceptual"] = v
            if "structure" in self.metrics:
                fy = self.features(y) if self.keep is not None or "perceptual" not in self.metrics else fy
                for row, v in zip(items, self.features.structure(fy, self._src_full).tolist()):
                    row["structure"] = v
        for row in items:
            rec = (records or {}).get(row["id"], {})
            row.update(nfe=rec.get("nfe"), wall_s=rec.get("wall_s"), cpu_s=rec.get("cpu_s"))
        return {"summary": self.summary(items), "items": items, "meta": meta or {}}

    def score_folder(self, folder: str | os.PathLike) -> dict:
        """Score the outputs in ``folder`` (see ``load_outputs``); run.json's fields go into ``meta``."""
        images, records, run = load_outputs(folder, self.manifest)
        return self.score(images, records, {**run, "folder": str(folder)})

    def summary(self, items: list[dict]) -> dict:
        """Means over per-item rows (as in ``score(...)["items"]``; pass a subset to summarise a subset)."""
        hits = [r["target_hit"] for r in items if r.get("target_hit") is not None]
        s: dict = {"n": len(items), "classifier": self.classifier_name if self.classifier is not None else None,
                   "target_accuracy": float(np.mean(hits)) if hits else None, "n_with_target": len(hits)}
        for k in ("mse", "psnr", "ssim", "perceptual", "structure", "nfe"):
            s[k] = _mean([r.get(k) for r in items])
        for k, out in (("wall_s", "wall_ms_per_image"), ("cpu_s", "cpu_ms_per_image")):
            v = _mean([r.get(k) for r in items])
            s[out] = None if v is None else 1000 * v
        return s
