"""Image conversions at the library's boundaries, and sample grids.

Ranges: ``core`` works in [-1, 1]; ``pmf_edit`` public functions use [0, 1]; files are uint8.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def to_model_range(images01: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return images01 * 2.0 - 1.0


def from_model_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((images + 1.0) * 0.5).clamp(0.0, 1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> uint8 (B, H, W, C) with round(255 (x + 1) / 2) (the torch branch's rule)."""
    x = from_model_range(images.detach().float().cpu())
    return (x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, nrow: int, pad: int = 2) -> np.ndarray:
    """Tile (B, C, H, W) images in [-1, 1] into one uint8 (H', W', C) picture, ``nrow`` per row."""
    arr = to_uint8(images)  # (B, H, W, C)
    B, H, W, C = arr.shape
    ncol = max(1, nrow)
    nrows = (B + ncol - 1) // ncol
    grid = np.zeros((nrows * (H + pad) + pad, ncol * (W + pad) + pad, C), dtype=np.uint8)
    for i in range(B):
        r, c = divmod(i, ncol)
        y0, x0 = pad + r * (H + pad), pad + c * (W + pad)
        grid[y0 : y0 + H, x0 : x0 + W] = arr[i]
    return grid


def save_png(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 (H, W) / (H, W, 1) / (H, W, 3) array as PNG (atomically: temp name, then rename)."""
    return _save_atomic(Path(path), array, ".png")


def save_image(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 (H, W) / (H, W, 1) / (H, W, 3) array in the format its extension names (.png,
    .jpg, .tif, ...), atomically (temp name in the same folder, then rename; the folder is created).

    Example:
        >>> save_image("/tmp/out/mid.jpg", np.zeros((8, 8, 3), np.uint8))  # doctest: +SKIP
    """
    path = Path(path)
    if not path.suffix:
        raise ValueError(f"output {path} has no file extension; it picks the image format (e.g. .png)")
    return _save_atomic(path, array, path.suffix)


def _save_atomic(path: Path, array: np.ndarray, suffix: str) -> Path:
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    tmp = path.with_name(f".{path.name}.tmp{suffix}")
    try:
        iio.imwrite(tmp, array)
        tmp.replace(path)
    except BaseException:  # a failed or interrupted write leaves nothing behind
        tmp.unlink(missing_ok=True)
        raise
    return path
