"""Style-transfer baselines and the style/content metrics of ``benchmarks/bench_style.py``.

    reinhard_transfer   Reinhard et al. 2001: match the per-channel mean and standard deviation of
                        the content to the style in CIE Lab (kornia). Colour only, no network.
    gatys_transfer      Gatys et al. 2016 on the offline ImageNet MobileNetV2 (no VGG weights exist
                        offline): optimise the pixels so their feature maps stay close to the
                        content's and their Gram matrices match the style's.

Metrics (per image pair, all on float images in [0, 1]):

    content_distance    LPIPS-style MobileNetV2 distance to the content (``core.eval.perceptual``), >= 0
    gram_distance       mean over the taps features.{3,6,13,18} of ||G(x) - G(s)||_F / ||G(s)||_F,
                        G = F F^T / (H W) of the (C, H W) feature map F at 224 px
    histogram_distance  total-variation distance of joint 8x8x8-bin RGB histograms, in [0, 1]
    combined            (1 + content_distance) x (1 + gram_distance), ArtFID-like (lower is better)

Gatys optimises the Gram matrices at the same taps the metric reads, i.e. it is scored on its own
objective: that is the most favourable setting for the baseline, and the benchmark says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from core import checks
from core.eval.perceptual import MobileNetFeatures
from pmf_edit.boundary import check_images

__all__ = [
    "reinhard_transfer", "gatys_transfer", "GatysConfig", "gram_matrices", "gram_distance",
    "content_distance", "histogram_distance", "style_scores",
]


def _check_rgb01(x: Tensor, name: str) -> None:
    check_images(x, name, channels=3)


def _pair_batch(content: Tensor, style: Tensor) -> Tensor:
    """Broadcast a single style image over the content batch."""
    if style.shape[0] == 1 and content.shape[0] > 1:
        return style.expand(content.shape[0], -1, -1, -1)
    if style.shape[0] != content.shape[0]:
        raise ValueError(f"style batch {style.shape[0]} must be 1 or match content batch {content.shape[0]}")
    return style


# ------------------------------------------------------------------------------------------------
# Reinhard colour transfer


@checks.checked
@checks.checked
@torch.no_grad()
def reinhard_transfer(content: Tensor, style: Tensor, strength: float = 1.0) -> Tensor:
    """Reinhard colour transfer: per-channel mean/std of the content matched to the style in Lab.

    Args:
        content: (B, 3, H, W) float in [0, 1].
        style: (B or 1, 3, H', W') float in [0, 1] (any size; only its statistics are used).
        strength: 0 returns the content, 1 the full transfer (the statistics are interpolated).

    Returns:
        (B, 3, H, W) in [0, 1], the content's dtype.

    Example:
        >>> out = reinhard_transfer(torch.rand(2, 3, 32, 32), torch.rand(1, 3, 64, 64))
    """
    import kornia.color as kc

    _check_rgb01(content, "content")
    _check_rgb01(style, "style")
    strength = checks.real(strength, "strength", lo=0.0, hi=1.0)
    for name, x in (("content", content), ("style", style)):
        if x.shape[2] * x.shape[3] < 2:  # a standard deviation needs two pixels (else NaN)
            raise ValueError(f"{name} must have at least 2 pixels for colour statistics, got shape {tuple(x.shape)}")
    style = _pair_batch(content, style)
    lab_c = kc.rgb_to_lab(content.float())  # (B, 3, H, W): L in [0, 100], a/b ~ [-128, 127]
    lab_s = kc.rgb_to_lab(style.float())
    mu_c, sd_c = lab_c.mean((2, 3), keepdim=True), lab_c.std((2, 3), keepdim=True)
    mu_s, sd_s = lab_s.mean((2, 3), keepdim=True), lab_s.std((2, 3), keepdim=True)
    mu = (1 - strength) * mu_c + strength * mu_s
    sd = (1 - strength) * sd_c + strength * sd_s
    out = (lab_c - mu_c) / (sd_c + 1e-5) * sd + mu
    return kc.lab_to_rgb(out, clip=True).clamp(0, 1).to(content.dtype)


# ------------------------------------------------------------------------------------------------
# Gram matrices and metrics


def gram_matrices(maps: list[Tensor]) -> list[Tensor]:
    """Gram matrices G = F F^T / (H W), (B, C, C), of feature maps (B, C, H, W)."""
    out = []
    for m in maps:
        f = m.flatten(2)  # (B, C, HW)
        out.append(f @ f.transpose(1, 2) / f.shape[2])
    return out


def _rel_gram(gx: list[Tensor], gs: list[Tensor], by_tap: bool = False) -> Tensor:
    d = [(a - b).flatten(1).norm(dim=1) / (b.flatten(1).norm(dim=1) + 1e-8) for a, b in zip(gx, gs)]
    return torch.stack(d, 1) if by_tap else torch.stack(d).mean(0)  # (B, taps) or (B,)


@torch.no_grad()
def gram_distance(x: Tensor, style: Tensor, features: MobileNetFeatures, by_tap: bool = False) -> Tensor:
    """Relative Gram distance (B,) of MobileNetV2 features, averaged over the network's taps.

    Args:
        x: (B, 3, H, W) in [0, 1].
        style: (B or 1, 3, H', W') in [0, 1].
        features: ``MobileNetFeatures`` (its ``layers`` are the taps).
        by_tap: return (B, taps), one distance per tap, instead of their mean.
    """
    style = _pair_batch(x, style)
    _, mx = features(x.float() * 2 - 1, return_maps=True)
    _, ms = features(style.float() * 2 - 1, return_maps=True)
    return _rel_gram(gram_matrices(mx), gram_matrices(ms), by_tap)


@torch.no_grad()
def content_distance(x: Tensor, content: Tensor, features: MobileNetFeatures) -> Tensor:
    """LPIPS-style MobileNetV2 distance (B,) between x and the content, both (B, 3, H, W) in [0, 1]."""
    if x.shape != content.shape:
        raise ValueError(f"x {tuple(x.shape)} and content {tuple(content.shape)} must have the same shape")
    return features.distance(x.float() * 2 - 1, content.float() * 2 - 1)


def histogram_distance(x: Tensor, style: Tensor, bins: int = 8) -> Tensor:
    """Total-variation distance (B,) in [0, 1] of joint RGB histograms (bins^3 cells).

    Example:
        >>> histogram_distance(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    """
    style = _pair_batch(x, style)

    def hist(img: Tensor) -> Tensor:
        q = (img.float().clamp(0, 1) * bins).long().clamp_max(bins - 1)  # (B, 3, H, W)
        idx = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]  # (B, H, W)
        h = torch.zeros(img.shape[0], bins**3).scatter_add_(1, idx.flatten(1).cpu(), torch.ones(idx.flatten(1).shape))
        return h / h.sum(1, keepdim=True)

    return 0.5 * (hist(x) - hist(style)).abs().sum(1)


@torch.no_grad()
def style_scores(output: Tensor, content: Tensor, style: Tensor, features: MobileNetFeatures) -> dict[str, Tensor]:
    """Every per-pair metric of the benchmark, each (B,).

    Returns:
        {"ssim", "content_distance", "gram_distance", "histogram_distance", "combined"} with
        combined = (1 + content_distance) (1 + gram_distance).
    """
    from core.eval.metrics import ssim

    style = _pair_batch(content, style)
    cd = content_distance(output, content, features)
    gd = gram_distance(output, style, features)
    return {
        "ssim": ssim(output.float() * 2 - 1, content.float() * 2 - 1),
        "content_distance": cd,
        "gram_distance": gd,
        "histogram_distance": histogram_distance(output, style),
        "combined": (1 + cd) * (1 + gd),
    }


# ------------------------------------------------------------------------------------------------
# Gatys optimisation


@dataclass(frozen=True)
class GatysConfig:
    """Gatys et al. style transfer on MobileNetV2 features."""

    num_steps: int = 100  # Adam steps on the pixels
    lr: float = 0.01  # Adam learning rate on the [0, 1] pixels (0.03 leaves high-frequency noise)
    content_layer: int = 13  # features.i whose maps are kept close to the content's (stride 16)
    content_weight: float = 1.0
    style_weight: float = 1.0  # weight of the sum of relative squared Gram errors over the taps

    def __post_init__(self) -> None:
        checks.integer(self.num_steps, "num_steps", lo=1)
        checks.real(self.lr, "lr", lo=0.0, lo_open=True)
        checks.integer(self.content_layer, "content_layer", lo=0)
        checks.real(self.content_weight, "content_weight", lo=0.0)
        checks.real(self.style_weight, "style_weight", lo=0.0)


@checks.checked
def gatys_transfer(
    content: Tensor,
    style: Tensor,
    features: MobileNetFeatures | None = None,
    config: GatysConfig = GatysConfig(),
) -> Tensor:
    """Gatys et al. style transfer: optimise the pixels (initialised at the content) on

        content_weight * mean((F_c(x) - F_c(content))^2) / mean(F_c(content)^2)
      + style_weight * sum_l ||G_l(x) - G_l(style)||_F^2 / ||G_l(style)||_F^2

    with F_c the maps of ``features.{content_layer}`` and G_l the Gram matrices at the taps
    ``features.layers``.

    Args:
        content: (B, 3, H, W) float in [0, 1].
        style: (B or 1, 3, H', W') float in [0, 1].
        features: MobileNetV2 features (None: offline weights at 224 px, taps 3, 6, 13, 18).
        config: steps, learning rate, layer and weights.

    Returns:
        (B, 3, H, W) in [0, 1], detached, the content's dtype.

    Example:
        >>> out = gatys_transfer(content, style, config=GatysConfig(num_steps=50))
    """
    _check_rgb01(content, "content")
    _check_rgb01(style, "style")
    config = checks.config(config, GatysConfig)
    if features is not None and not isinstance(features, MobileNetFeatures):
        raise TypeError(f"features must be a MobileNetFeatures or None, got {type(features).__name__}")
    style = _pair_batch(content, style)
    feats = features if features is not None else MobileNetFeatures()
    taps = list(feats.layers)
    if config.content_layer not in taps:
        raise ValueError(f"content_layer {config.content_layer} must be one of the feature taps {taps}")
    ci = taps.index(config.content_layer)
    with torch.no_grad():
        _, mc = feats(content.float() * 2 - 1, return_maps=True)
        _, ms = feats(style.float() * 2 - 1, return_maps=True)
        target_c = mc[ci]
        target_g = gram_matrices(ms)
        c_scale = target_c.square().mean((1, 2, 3)) + 1e-8
        g_scale = [g.flatten(1).square().sum(1) + 1e-8 for g in target_g]
    x = content.detach().float().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=config.lr)
    for _ in range(config.num_steps):
        opt.zero_grad(set_to_none=True)
        _, mx = feats(x * 2 - 1, return_maps=True)
        lc = (mx[ci] - target_c).square().mean((1, 2, 3)) / c_scale
        gx = gram_matrices(mx)
        ls = sum((a - b).flatten(1).square().sum(1) / s for a, b, s in zip(gx, target_g, g_scale))
        loss = (config.content_weight * lc + config.style_weight * ls).sum()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach().to(content.dtype)
