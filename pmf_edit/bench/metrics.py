"""Preservation metrics outside the edit mask, on images in [0, 1] (PIE-Bench's "background
preservation": PSNR, MSE, SSIM computed on the unedited region).

``keep`` is (B, 1, H, W) bool, True where the edit should leave the image alone (the complement of the
manifest mask); None = the whole image.

Example:
    >>> x = torch.rand(2, 1, 32, 32)
    >>> masked_mse(x, x, None)
    tensor([0., 0.], dtype=torch.float64)
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["masked_mse", "masked_psnr", "masked_ssim", "PSNR_CAP_DB"]

PSNR_CAP_DB = 100.0  # PSNR of identical regions (MSE 0) is reported as this, so means stay finite


def _check(x: Tensor, y: Tensor, keep: Tensor | None) -> Tensor:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if keep is None:
        return torch.ones(x.shape[0], 1, *x.shape[2:], dtype=torch.bool)
    if keep.dtype != torch.bool or keep.shape != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(f"keep must be bool (B, 1, H, W) = {(x.shape[0], 1, *x.shape[2:])}, got {keep.dtype} {tuple(keep.shape)}")
    return keep.cpu()


def masked_mse(x: Tensor, y: Tensor, keep: Tensor | None) -> Tensor:
    """(B,) float64 mean squared error over the kept pixels (all channels); NaN where nothing is kept."""
    k = _check(x, y, keep).expand_as(x).double()
    se = (x.detach().cpu().double() - y.detach().cpu().double()).square() * k
    return se.flatten(1).sum(1) / k.flatten(1).sum(1)


def masked_psnr(x: Tensor, y: Tensor, keep: Tensor | None) -> Tensor:
    """(B,) float64 PSNR in dB (peak 1) over the kept pixels, capped at ``PSNR_CAP_DB``."""
    mse = masked_mse(x, y, keep)
    return (10 * torch.log10(1.0 / mse)).clamp(max=PSNR_CAP_DB)


def masked_ssim(x: Tensor, y: Tensor, keep: Tensor | None) -> Tensor:
    """(B,) float64 SSIM averaged over the kept pixels of scikit-image's SSIM map.

    scikit-image's 7x7 uniform window, data range 1, channels averaged; like ``structural_similarity``
    the map's border of 3 pixels (where the window does not fit) is left out, so with ``keep=None``
    this equals ``core.eval.metrics.ssim`` (tested). NaN where no kept pixel lies inside the border.
    """
    from skimage.metrics import structural_similarity

    k = _check(x, y, keep)
    if min(x.shape[-2:]) < 7:
        raise ValueError(f"ssim needs H, W >= 7 (its window), got {tuple(x.shape)}")
    a = x.detach().cpu().double().permute(0, 2, 3, 1).numpy()  # (B, H, W, C)
    b = y.detach().cpu().double().permute(0, 2, 3, 1).numpy()
    pad = 3  # (win_size - 1) // 2 for the 7x7 window
    out = []
    for i in range(len(a)):
        _, smap = structural_similarity(a[i], b[i], data_range=1.0, channel_axis=2, full=True)
        smap = smap.mean(axis=2)[pad:-pad, pad:-pad]  # (H - 6, W - 6), channels averaged
        kk = k[i, 0].numpy()[pad:-pad, pad:-pad]
        out.append(float(smap[kk].mean()) if kk.any() else float("nan"))
    return torch.tensor(np.array(out), dtype=torch.float64)
