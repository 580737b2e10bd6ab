"""Picture-quality measures of a stylised photo that the Gram/content distances miss.

    folded_gradient_ratio   periodicity of the gradient energy at a period P (1 = none)
    folded_gradient_excess  that ratio of the output over the content's (1.00 = no excess)
    lightness_std_ratio     Lab lightness std of the output over the content's (contrast kept)

A mesh of period P (the network's patch grid, or a tile stride) puts more gradient energy on some
pixel columns/rows modulo P than on others. Folding the squared gradient at P,

    E[k] = mean_{x = k mod P} (dI/dx)^2 + mean_{y = k mod P} (dI/dy)^2,  k = 0 .. P - 1,

a picture with no such pattern has a flat profile (max E / mean E close to 1; exactly 1 only in
the limit of infinite size); the content's own ratio is the reference, since its edges fall on some
phases by chance. The excess divides the output's ratio by the content's, so 1.00 = the output is
no more periodic at P than the content. I is the Lab lightness (kornia), in [0, 100].

Example:
    >>> folded_gradient_excess(out01, content01, period=4)   # 1.00: no 4-px mesh
"""
from __future__ import annotations

import kornia.color as kc
import torch
from torch import Tensor

__all__ = ["folded_gradient_profile", "folded_gradient_ratio", "folded_gradient_excess", "lightness_std_ratio",
           "texture_periods"]


def _lightness(x01: Tensor) -> Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, H, W) Lab L in [0, 100] (gray input: 100 x)."""
    if x01.ndim != 4 or x01.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, 1 or 3, H, W), got shape {tuple(x01.shape)}")
    if x01.shape[1] == 1:
        return 100.0 * x01[:, 0].double()
    return kc.rgb_to_lab(x01.float().clamp(0, 1))[:, 0].double()


def folded_gradient_profile(x01: Tensor, period: int) -> Tensor:
    """(B, P): the squared lightness gradient folded at ``period`` (see the module docstring).

    Args:
        x01: (B, 3 or 1, H, W) in [0, 1], H and W >= 2 * period.
        period: P >= 2 pixels.
    """
    if int(period) != period or period < 2:
        raise ValueError(f"period must be an integer >= 2, got {period}")
    H, W = x01.shape[-2:]
    if min(H, W) < 2 * period:
        raise ValueError(f"images of {H}x{W} are too small to fold at period {period} (need >= {2 * period})")
    L = _lightness(x01)
    gx = (L[:, :, 1:] - L[:, :, :-1]).pow(2)  # (B, H, W - 1): difference between columns x and x + 1
    gy = (L[:, 1:] - L[:, :-1]).pow(2)  # (B, H - 1, W)
    prof = torch.zeros(L.shape[0], period, dtype=L.dtype)
    for k in range(period):
        prof[:, k] = gx[:, :, k::period].mean((1, 2)) + gy[:, k::period].mean((1, 2))
    return prof


def folded_gradient_ratio(x01: Tensor, period: int) -> Tensor:
    """(B,) max over phases / mean over phases of the folded gradient energy (>= 1)."""
    prof = folded_gradient_profile(x01, period)
    return prof.max(1).values / prof.mean(1).clamp_min(1e-12)


def folded_gradient_excess(output01: Tensor, content01: Tensor, period: int) -> Tensor:
    """(B,) ``folded_gradient_ratio`` of the output over the content's: 1.00 = no added periodicity.

    Example:
        >>> folded_gradient_excess(out, content, 4)
        tensor([1.0031], dtype=torch.float64)
    """
    if output01.shape != content01.shape:
        raise ValueError(f"output {tuple(output01.shape)} and content {tuple(content01.shape)} must have one shape")
    return folded_gradient_ratio(output01, period) / folded_gradient_ratio(content01, period)


def lightness_std_ratio(output01: Tensor, content01: Tensor) -> Tensor:
    """(B,) std of the output's Lab lightness over the content's (1 = contrast kept)."""
    return _lightness(output01).flatten(1).std(1) / _lightness(content01).flatten(1).std(1).clamp_min(1e-12)


def texture_periods(height: int, width: int) -> tuple[int, int]:
    """The texture stage's patch stride and patch side carried to an ``height`` x ``width`` output
    (``pmf_edit.style.texture`` at its default ``TextureConfig``), rounded to whole pixels: the periods
    at which its pasted patches could leave a mesh."""
    from pmf_edit.style.texture import TextureConfig

    cfg = TextureConfig()
    stride = cfg.stride * max(height, width) / cfg.work_side
    return max(2, round(stride)), max(2, round(2 * stride))
