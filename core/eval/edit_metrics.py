"""Edit-evaluation metrics on frozen ImageNet MobileNetV2 features (offline weights, `core/eval/perceptual.py`).

- Perceptual distance: `core.eval.perceptual.maps_distance` (LPIPS-style with unit channel weights) on the
  maps at strides 4, 8, 16, 32.
- Structure distance: the self-similarity of deep features, as in Splice (Tumanyan et al. 2022) and
  PIE-Bench's "Structure Distance" (Ju et al. 2023): for each image, the cosine similarity between
  every pair of spatial positions of one feature map, S = F^T F / (|f_i| |f_j|) (N x N, N = h w); the
  distance is the mean squared difference of S between source and edit. PIE-Bench takes the keys of
  DINO-ViT-B/8's last layer at 224 px (784 tokens); we take MobileNetV2's stride-16 map `features.13`
  (96 channels, 14 x 14 = 196 positions at 224 px), the only offline network (DATA.md). Values are on
  another scale than PIE-Bench's: compare them only with each other.

    feats = EditFeatures()
    fx, fy = feats(x01), feats(y01)               # cached per image by the caller if it wishes
    d_perc, d_struct = feats.perceptual(fx, fy), feats.structure(fx, fy)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

from core.eval.perceptual import MobileNetFeatures, maps_distance

__all__ = ["EditFeatures", "FeatureMaps", "self_similarity", "STRUCTURE_LAYER"]

PERCEPTUAL_LAYERS = (3, 6, 13, 18)  # MobileNetFeatures' default taps: strides 4, 8, 16, 32
STRUCTURE_LAYER = 13  # features.13: stride 16, 96 channels (14 x 14 positions at 224 px)


@dataclass
class FeatureMaps:
    """MobileNetV2 maps of a batch: ``maps[i]`` is the output of ``features.PERCEPTUAL_LAYERS[i]``."""

    maps: list[Tensor]  # each (B, C_l, h_l, w_l)

    def __getitem__(self, index: slice | Tensor) -> FeatureMaps:
        return FeatureMaps([m[index] for m in self.maps])

    @staticmethod
    def cat(parts: list[FeatureMaps]) -> FeatureMaps:
        return FeatureMaps([torch.cat(ms) for ms in zip(*(p.maps for p in parts))])


def self_similarity(feature_map: Tensor) -> Tensor:
    """Cosine self-similarity of a feature map's positions.

    Args:
        feature_map: (B, C, h, w).

    Returns:
        (B, h w, h w) in [-1, 1]; 1 on the diagonal (where a feature is non-zero).

    Example:
        >>> self_similarity(torch.randn(2, 8, 3, 3)).shape
        torch.Size([2, 9, 9])
    """
    if feature_map.ndim != 4:
        raise ValueError(f"feature_map must be (B, C, h, w), got shape {tuple(feature_map.shape)}")
    f = feature_map.flatten(2)  # (B, C, N)
    f = f / (f.norm(dim=1, keepdim=True) + 1e-10)
    return f.transpose(1, 2) @ f  # (B, N, N)


class EditFeatures:
    """Frozen MobileNetV2 at ``size`` px for the perceptual and structure distances of edits.

    Args:
        size: side images are resized to (224 = ImageNet; smaller is faster, coarser).
        weights: MobileNetV2 state-dict path; None = the offline package.
        batch_size: images per forward pass.

    Example:
        >>> feats = EditFeatures(size=112)
        >>> fx = feats(torch.rand(2, 1, 32, 32))
        >>> feats.structure(fx, fx)
        tensor([0., 0.])
    """

    def __init__(self, size: int = 224, weights: str | os.PathLike | None = None, batch_size: int = 32) -> None:
        if size < 32:
            raise ValueError(f"size must be >= 32 (MobileNetV2 downsamples 32x), got {size}")
        self.net = MobileNetFeatures(weights, size=size, layers=PERCEPTUAL_LAYERS)
        self.size = size
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images01: Tensor) -> FeatureMaps:
        """Maps of images (B, 1|3, H, W) in [0, 1]."""
        if images01.ndim != 4 or images01.shape[1] not in (1, 3) or not images01.is_floating_point():
            raise ValueError(f"images must be float (B, 1|3, H, W) in [0, 1], got {images01.dtype} {tuple(images01.shape)}")
        parts = []
        for i in range(0, len(images01), self.batch_size):
            _, maps = self.net(images01[i : i + self.batch_size].float() * 2 - 1, return_maps=True)
            parts.append(FeatureMaps(maps))
        return FeatureMaps.cat(parts)

    def perceptual(self, a: FeatureMaps, b: FeatureMaps) -> Tensor:
        """(B,) LPIPS-style distance (`core.eval.perceptual.maps_distance`), 0 for identical images."""
        return maps_distance(a.maps, b.maps)

    def structure(self, a: FeatureMaps, b: FeatureMaps) -> Tensor:
        """(B,) mean squared difference of the ``features.13`` self-similarity matrices, 0 for identical images."""
        k = PERCEPTUAL_LAYERS.index(STRUCTURE_LAYER)
        return (self_similarity(a.maps[k]) - self_similarity(b.maps[k])).square().mean((1, 2))
