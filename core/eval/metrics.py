"""Distribution and per-image metrics: Frechet distance on features, cached feature statistics,
PSNR and SSIM on images in [-1, 1].

The Frechet distance between Gaussians fitted to two feature sets (FID's formula):

    FD = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})

computed in float64 with symmetric eigendecompositions. S_a^{1/2} S_b S_a^{1/2} is symmetric PSD, so
its square root's trace is the sum of square roots of its (clamped non-negative) eigenvalues; this
stays finite and real when N < D makes the covariances rank deficient, where scipy's sqrtm of the
non-symmetric S_a S_b may return complex values. The value with few samples is biased upward (as FID
is); compare numbers only at equal N.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["FeatureStats", "frechet_distance", "psnr", "ssim"]


@dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance of a feature set, enough for a Frechet distance.

    Attributes:
        mean: float64 (D,).
        cov: float64 (D, D), unbiased (divides by n - 1).
        n: number of feature vectors the statistics come from.

    Example:
        >>> ref = FeatureStats.from_features(torch.randn(500, 128))
        >>> ref.save("ref_stats.npz"); FeatureStats.load("ref_stats.npz").n
        500
    """

    mean: Tensor
    cov: Tensor
    n: int

    @staticmethod
    def from_features(features: Tensor | np.ndarray) -> FeatureStats:
        """Fits (mean, covariance) to features (N, D), N >= 2."""
        f = _as_2d_float64(features, "features")
        if f.shape[0] < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got shape {tuple(f.shape)}")
        mean = f.mean(0)
        centred = f - mean
        return FeatureStats(mean, centred.T @ centred / (f.shape[0] - 1), f.shape[0])

    def save(self, path: str | os.PathLike) -> None:
        """Writes ``.npz`` (numpy) or ``.safetensors`` by the file extension."""
        path = Path(path)
        arrays = {"mean": self.mean.cpu(), "cov": self.cov.cpu(), "n": torch.tensor([self.n], dtype=torch.int64)}
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in arrays.items()}, str(path))
        elif path.suffix == ".npz":
            np.savez(path, **{k: v.numpy() for k, v in arrays.items()})
        else:
            raise ValueError(f"feature stats path must end in .npz or .safetensors, got {str(path)!r}")

    @staticmethod
    def load(path: str | os.PathLike) -> FeatureStats:
        """Reads a file written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"feature stats file {str(path)!r} does not exist")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            d = load_file(str(path))
        elif path.suffix == ".npz":
            with np.load(path) as z:
                d = {k: torch.from_numpy(z[k]) for k in z.files}
        else:
            raise ValueError(f"feature stats path must end in .npz or .safetensors, got {str(path)!r}")
        missing = {"mean", "cov", "n"} - set(d)
        if missing:
            raise ValueError(f"{str(path)!r} lacks {sorted(missing)}; not a FeatureStats file")
        return FeatureStats(d["mean"].double(), d["cov"].double(), int(d["n"].reshape(-1)[0]))


def _as_2d_float64(x: Tensor | np.ndarray, name: str) -> Tensor:
    t = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if t.ndim != 2:
        raise ValueError(f"{name} must be (N, D), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains non-finite values")
    return t


def _psd_sqrt(m: Tensor) -> Tensor:
    """Square root of a symmetric PSD matrix via eigh; tiny negative eigenvalues (round-off) -> 0."""
    w, v = torch.linalg.eigh((m + m.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(
    feats_a: Tensor | np.ndarray | FeatureStats,
    feats_b: Tensor | np.ndarray | FeatureStats,
) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    Args:
        feats_a: features (N_a, D) or precomputed `FeatureStats`.
        feats_b: features (N_b, D) or `FeatureStats`, same D.

    Returns:
        FD >= 0 (0 for identical sets; symmetric in its arguments).

    Example:
        >>> a, b = torch.randn(1000, 8), torch.randn(1000, 8) + 1
        >>> round(frechet_distance(a, b))     # ~ ||1||^2 * 8 = 8
        8
    """
    sa = feats_a if isinstance(feats_a, FeatureStats) else FeatureStats.from_features(feats_a)
    sb = feats_b if isinstance(feats_b, FeatureStats) else FeatureStats.from_features(feats_b)
    if sa.mean.shape != sb.mean.shape:
        raise ValueError(f"feature dimensions differ: {tuple(sa.mean.shape)} vs {tuple(sb.mean.shape)}")
    mu_a, mu_b, cov_a, cov_b = sa.mean.double(), sb.mean.double(), sa.cov.double(), sb.cov.double()
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a  # symmetric PSD, same trace-sqrt as S_a S_b
    tr_covmean = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    fd = (mu_a - mu_b).square().sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * tr_covmean
    return max(float(fd), 0.0)  # round-off can give -1e-12 for identical sets


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: Tensor, y: Tensor, *, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        x, y: (B, C, H, W), by default in [-1, 1] (data_range 2); pass data_range=1 for [0, 1].

    Returns:
        (B,) float; +inf where the images are identical.

    Example:
        >>> psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.2))   # 10 log10(4 / 0.04)
        tensor([20.])
    """
    _check_pair(x, y)
    mse = (x.double() - y.double()).square().flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse)).float()


def ssim(x: Tensor, y: Tensor, *, data_range: float = 2.0) -> Tensor:
    """Structural similarity per image (scikit-image's `structural_similarity`, Gaussian-free default 7x7 window).

    Args:
        x, y: (B, C, H, W), by default in [-1, 1]; H and W must be >= 7.

    Returns:
        (B,) float in [-1, 1]; 1 for identical images.
    """
    from skimage.metrics import structural_similarity

    _check_pair(x, y)
    if min(x.shape[-2:]) < 7:
        raise ValueError(f"ssim needs H, W >= 7 (its window), got {tuple(x.shape)}")
    a = x.detach().cpu().double().permute(0, 2, 3, 1).numpy()  # (B, H, W, C)
    b = y.detach().cpu().double().permute(0, 2, 3, 1).numpy()
    return torch.tensor(
        [structural_similarity(a[i], b[i], data_range=data_range, channel_axis=2) for i in range(len(a))],
        dtype=torch.float32,
    )
