"""Optical-flow helpers for frame interpolation: DIS flow, backward warping, flow splatting.

Everything here works on numpy arrays laid out (H, W, C) float32, the layout OpenCV wants, so the
hot path converts from torch once per frame. A flow field is (H, W, 2)
holding (dx, dy) in pixels: pixel x of the source frame moves to x + flow(x) in the target frame.
Backward warping uses `cv2.remap`; forward splatting (which neither OpenCV nor kornia provides)
is a bilinear scatter-add (`torch.Tensor.index_add_`).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import cv2
import numpy as np
import torch

DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

REMAP_MODES: dict[str, int] = {
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,  # sharper than bilinear: +0.4 dB on carphone, where edges dominate the error
    "lanczos": cv2.INTER_LANCZOS4,
}

_local = threading.local()  # one DIS object per thread and setting: DIS objects are not thread-safe
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def to_gray_u8(img: np.ndarray) -> np.ndarray:
    """(H, W, C) float32 in [0, 1] or uint8, C in {1, 3} -> (H, W) uint8, the input DIS expects."""
    g = img[..., 0] if img.shape[-1] == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if g.dtype == np.uint8:
        return np.ascontiguousarray(g)
    return cv2.convertScaleAbs(g, alpha=255.0)  # rounds and saturates to [0, 255]


def _dis(preset: str, variational_iters: int | None, finest_scale: int | None) -> cv2.DISOpticalFlow:
    cache = getattr(_local, "dis", None)
    if cache is None:
        cache = _local.dis = {}
    key = (preset, variational_iters, finest_scale)
    if key not in cache:
        dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        if variational_iters is not None:
            dis.setVariationalRefinementIterations(int(variational_iters))
        if finest_scale is not None:
            dis.setFinestScale(int(finest_scale))
        cache[key] = dis
    return cache[key]


def _flow_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pmf-dis")
        return _pool


def dis_flow(gray0: np.ndarray, gray1: np.ndarray, preset: str = "medium",
             variational_iters: int | None = None, finest_scale: int | None = None) -> np.ndarray:
    """DIS flow (h, w, 2) float32 moving `gray0` pixels to `gray1`; (h, w) uint8 inputs.

    `variational_iters` and `finest_scale` (the finest pyramid level DIS searches patches on: 0 is
    the input's own resolution, each level halves it) override the preset's; None keeps them.
    """
    return _dis(preset, variational_iters, finest_scale).calc(gray0, gray1, None)


def dis_flows(
    gray0: np.ndarray, gray1: np.ndarray, preset: str = "medium", variational_iters: int | None = None,
    parallel: bool = True, finest_scale: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward DIS flow between two (h, w) uint8 images (settings as in `dis_flow`).

    With `parallel`, the backward flow runs in a worker thread while this thread computes the forward
    one (OpenCV releases the GIL; each thread has its own DIS object), about halving the wall time on
    a machine with a free core.

    Returns:
        (f01, f10), each (h, w, 2) float32: f01 moves frame 0 pixels to frame 1, f10 the reverse.
    """
    args = (preset, variational_iters, finest_scale)
    if not parallel:
        return dis_flow(gray0, gray1, *args), dis_flow(gray1, gray0, *args)
    fut = _flow_pool().submit(dis_flow, gray1, gray0, *args)
    f01 = dis_flow(gray0, gray1, *args)
    return f01, fut.result()


# A video pair uses up to six shapes (luma, chroma, flow and splat grids, a last band of each plane):
# with room for only four, 720p rebuilt its 7 MB luma grid every pair.
@lru_cache(maxsize=12)
def pixel_grid(h: int, w: int) -> np.ndarray:
    """(h, w, 2) float32 pixel coordinates (x, y), read-only (cached: one per frame or band shape)."""
    g = np.empty((h, w, 2), np.float32)
    g[..., 0] = np.arange(w, dtype=np.float32)[None, :]
    g[..., 1] = np.arange(h, dtype=np.float32)[:, None]
    g.flags.writeable = False
    return g


def backward_warp(img: np.ndarray, flow: np.ndarray, mode: str = "linear", row0: int = 0) -> np.ndarray:
    """Sample `img` at x + flow(x) (cv2.remap, replicated borders).

    Args:
        img: (H, W) or (H, W, C) float32 source image.
        flow: (h, W, 2) float32 displacement for output rows row0 .. row0 + h (a band of the output).
        mode: "linear", "cubic" or "lanczos".
        row0: first output row the band covers, so a band can be warped without a full-size grid.

    Returns:
        (h, W[, C]) float32, the same channel layout as `img`.
    """
    m = flow + pixel_grid(*flow.shape[:2])  # (h, W, 2) absolute sample positions
    if row0:
        m[..., 1] += row0
    out = cv2.remap(img, m, None, REMAP_MODES[mode], borderMode=cv2.BORDER_REPLICATE)
    if img.ndim == 3 and out.ndim == 2:  # remap drops a singleton channel
        out = out[..., None]
    return out


def fb_consistency(f01: np.ndarray, f10: np.ndarray) -> np.ndarray:
    """Forward-backward inconsistency |f01(x) + f10(x + f01(x))| in pixels, (h, w) float32.

    Large where the frame-0 pixel has no match in frame 1 (it is occluded there) or the flow is wrong.
    """
    d = f01 + backward_warp(f10, f01)
    return cv2.magnitude(d[..., 0], d[..., 1])


def splat(values: np.ndarray, flow: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward-splat `values` to x + flow(x) with bilinear kernels (softmax splatting numerator/denominator).

    Args:
        values: (h, w, C) float32 carried by each source pixel, or (S, h, w, C): S sources splatted onto
            one canvas (the result is the sum of their splats, in one scatter pass: on small frames the
            fixed cost of a pass is most of the work).
        flow: (h, w, 2) or (S, h, w, 2) float32 displacement of each source pixel.
        weight: (h, w) or (S, h, w) float32 non-negative importance (e.g. exp of a brightness-constancy metric).

    Returns:
        (numerator (h, w, C), denominator (h, w)); numerator / denominator is the weighted average of
        everything that landed on a pixel, and denominator ~ 0 marks a hole.

    Example:
        >>> v = np.ones((4, 5, 1), np.float32)
        >>> num, den = splat(v, np.zeros((4, 5, 2), np.float32), np.ones((4, 5), np.float32))
        >>> float(den.min()), float(den.max())
        (1.0, 1.0)
    """
    h, w, c = values.shape[-3:]
    n = values.size // c  # S * h * w source pixels
    grid = pixel_grid(h, w)  # broadcasts over the S sources
    # Targets are clamped into a canvas padded by 1 pixel left/top and 2 right/bottom: a clamped
    # target's weight falls on the padding (or has zero bilinear weight inside), and the padding is
    # cropped away, which is exactly "drop the corners that fall outside the picture".
    x = np.clip(flow[..., 0] + grid[..., 0], -1.0, float(w)).reshape(n)
    y = np.clip(flow[..., 1] + grid[..., 1], -1.0, float(h)).reshape(n)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    pw = w + 3
    base = (y0 * pw + x0 + (pw + 1)).astype(np.intp)  # padded index of the top-left corner
    idx = np.empty((4, n), np.intp)
    idx[0] = base
    np.add(base, 1, out=idx[1])
    np.add(base, pw, out=idx[2])
    np.add(base, pw + 1, out=idx[3])
    wt = weight.reshape(n)
    wx1 = fx * wt
    wx0 = wt - wx1
    # Row c holds the kernel weights (the denominator); rows 0..c-1 will hold them times each channel.
    ks = np.empty((c + 1, 4, n), np.float32)
    np.multiply(wx0, 1 - fy, out=ks[c, 0])
    np.multiply(wx1, 1 - fy, out=ks[c, 1])
    np.multiply(wx0, fy, out=ks[c, 2])
    np.multiply(wx1, fy, out=ks[c, 3])
    np.multiply(ks[c][None], values.reshape(n, c).T[:, None, :], out=ks[:c])  # (c, 4, n)
    # Scatter-add with torch's 1-D index_add_ (a serial loop, so it does not fight other processes for
    # cores; about 2x faster than np.bincount, which accumulates in float64). One pass for all c + 1
    # rows: row r's indices are offset by r canvases.
    m = (h + 3) * pw
    tidx = torch.from_numpy(idx.reshape(1, 4 * n) + np.arange(0, (c + 1) * m, m, dtype=np.intp)[:, None])
    acc = torch.zeros((c + 1) * m)
    acc.index_add_(0, tidx.reshape(-1), torch.from_numpy(ks.reshape(-1)))
    acc = acc.numpy().reshape(c + 1, h + 3, pw)[:, 1:h + 1, 1:w + 1]
    return np.ascontiguousarray(acc[:c].transpose(1, 2, 0)), np.ascontiguousarray(acc[c])
