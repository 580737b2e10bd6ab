"""Generation in the public API's shape: images in [0, 1], classes by index or name, and the model's own
sampling settings (one step and its tuned guidance for a pMF; the ODE for a flow-matching model) unless
the caller overrides them. ``pmf sample`` is this function plus file writing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from core import checks
from core.images import from_model_range
from core.model import PixelMeanFlow
from core.sampling import sample_flow_matching, sample_pmf
from pmf_edit.boundary import Labels, check_labels

DEFAULT_FM_STEPS = 50  # a flow-matching model's ODE steps when its folder names none


@dataclass(frozen=True)
class GenerationResult:
    """What ``sample`` made and with which settings (the model's defaults filled in)."""

    images: Tensor  # (B, C, S, S) float32 in [0, 1], on the network's device
    nfe: int  # network evaluations per image
    labels: Tensor | None  # (B,) class indices; None: the null (unconditional) class
    num_steps: int  # pMF jumps or ODE steps
    guidance_scale: float
    guidance_interval: tuple[float, float]


@checks.checked  # net, num_steps, guidance, generator, method, batch_size by the shared rules (None passes)
def sample(
    net: PixelMeanFlow,
    labels: Labels = None,
    *,
    num_samples: int | None = None,
    num_steps: int | None = None,
    guidance_scale: float | None = None,
    guidance_interval: tuple[float, float] | None = None,
    method: Literal["euler", "heun"] = "heun",
    generator: torch.Generator | None = None,
    batch_size: int = 64,
    precision: str | None = None,
) -> GenerationResult:
    """Generate images with a trained model, in ONE network evaluation for a pMF by default.

    Settings the caller leaves at None come from the model (``net.recommended_sampling``, set by
    ``pmf_edit.from_pretrained`` from the model folder or the official checkpoint): its number of steps
    (1 for a pMF, ``DEFAULT_FM_STEPS`` ODE steps for a flow-matching model without one) and the guidance
    it was tuned with; else guidance 1 (none) on (0, 1).

    Args:
        net: a network from ``pmf_edit.from_pretrained`` (or any ``PixelMeanFlow``: then a pMF without
            defaults).
        labels: one class for every image or (B,) classes, as indices or names (``"tabby"``, for a network
            that knows its class names); None: the null class (then ``num_samples`` is required).
        num_samples: images to make (default: one per label given).
        num_steps: pMF jumps (1 = one-step generation) or ODE steps of a flow-matching model.
        guidance_scale: omega >= 1; a pMF takes it as a network input (no extra evaluation).
        guidance_interval: (t_min, t_max) in which guidance applies.
        method: the ODE solver of a flow-matching model ("euler" or "heun"); a pMF ignores it.
        generator: the caller's generator for the initial noise; image i's noise does not depend on the
            batch size or on ``batch_size``.
        batch_size: images per network call (memory), at least 1.
        precision: "fp32", "bf16" (autocast) or None for ``core.precision``'s session default.

    Returns:
        ``GenerationResult``: images (B, C, S, S) in [0, 1] and the settings used.

    Example:
        >>> import pmf_edit, torch
        >>> from core.checkpoint import bundled_model_dir
        >>> net, _ = pmf_edit.from_pretrained(bundled_model_dir("mnist"))
        >>> out = pmf_edit.sample(net, [3, 7], generator=torch.Generator().manual_seed(0))
        >>> out.images.shape, out.nfe
        (torch.Size([2, 1, 32, 32]), 1)
    """
    defaults = getattr(net, "recommended_sampling", None) or {}
    fm = getattr(net, "objective", "pmf") == "fm"
    if labels is None and num_samples is None:
        raise ValueError("give labels (classes) or num_samples (images of the null class)")
    if num_samples is not None:
        checks.integer(num_samples, "num_samples", lo=1)
    n = num_samples if num_samples is not None else _count(labels)
    y = check_labels(net, labels, n)
    steps = num_steps if num_steps is not None else int(defaults.get("num_steps", DEFAULT_FM_STEPS if fm else 1))
    checks.integer(batch_size, "batch_size", lo=1)
    scale = float(guidance_scale if guidance_scale is not None else defaults.get("guidance_scale", 1.0))
    interval = tuple(float(v) for v in (guidance_interval if guidance_interval is not None
                                        else defaults.get("guidance_interval", (0.0, 1.0))))
    parts, nfe = [], steps
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        kw = dict(num_samples=rows.stop - rows.start, num_steps=steps, guidance_scale=scale,
                  guidance_interval=interval, generator=generator, precision=precision)
        chunk = None if y is None else y[rows]
        res = sample_flow_matching(net, chunk, method=method, **kw) if fm else sample_pmf(net, chunk, **kw)
        parts.append(from_model_range(res.images.float()))
        nfe = res.nfe
    return GenerationResult(images=torch.cat(parts), nfe=nfe, labels=y, num_steps=steps,
                            guidance_scale=scale, guidance_interval=interval)  # type: ignore[arg-type]


def _count(labels: Labels) -> int:
    """Images asked for by ``labels`` alone: one per entry of a sequence, tensor or array, else one."""
    if isinstance(labels, str) or np.ndim(labels) == 0:
        return 1
    return len(labels)
