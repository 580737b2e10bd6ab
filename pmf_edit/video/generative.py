"""The generative half of frame interpolation: a small conditional pMF that fills what flow cannot.

The flow method (`pmf_edit.video.interpolate`) warps both frames to time t and blends them. Where the
flow is wrong (occlusion, disocclusion, fast thin motion) the blend ghosts or tears. There the two
warped candidates disagree. This module draws the correction with a one-step pixel MeanFlow network:

    x = 2 (f_t - blend)            the residual of the blend, in the [-1, 1] image scale (B, 3, S, S)
    cond = [2a - 1, 2b - 1, 2m - 1]  both warped frames and the blend share (B, 7, S, S)

The network is `core.model.PixelMeanFlow` with `cond_channels=7` (the condition is concatenated to
z_t at the patch embedding), trained with the same MeanFlow objective as the image generator
(`core.meanflow.pmf_loss_given(..., cond=)`). At inference one evaluation maps noise z_1 to a residual,
x = z_1 - u(z_1, r=0, t=1 | cond), on S x S tiles (32 px) of the frame. Tiles overlap by half with
sin^2 windows that sum to one, and only tiles where the warped candidates disagree by more than
`threshold` levels are drawn, so the cost follows the unreliable area and the rest of the frame keeps
the flow blend exactly.

Weights: `core/assets/vfi-pmf/` (a `save_model` folder), trained by `benchmarks/train_vfi_generative.py`
on Big Buck Bunny and synthetic motion only; nothing is downloaded.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core import checks
from core.checkpoint import ASSETS, load_model
from core.model import PixelMeanFlow, PMFConfig
from pmf_edit.video.refine import check_warps

BUNDLED = ASSETS / "vfi-pmf"
COND_CHANNELS = 7  # a (3), b (3), m (1)


def model_config(tile: int = 32, width: int = 96, depth: int = 6, num_heads: int = 4, bottleneck: int = 160,
                 noise_scale: float = 0.25) -> PMFConfig:
    """Architecture of the VFI network: a pMF ViT on S x S tiles with 7 condition channels.

    No class, guidance or interval tokens (it is unconditional but for the frames); 4 h tokens. The
    patch embedding's bottleneck keeps all 160 values of a 4x4 patch of (z, a, b, m) (JiT's 64 would
    drop detail the correction needs), and the noise is scaled to the residual's size (its std is
    about 0.25 on the hard crops, where the standard-normal noise of an image generator would drown it).
    """
    return PMFConfig(image_size=tile, in_channels=3, cond_channels=COND_CHANNELS, patch_size=4, width=width,
                     depth=depth, head_depth=2, num_heads=num_heads, bottleneck=bottleneck, num_classes=0,
                     class_tokens=0, omega_tokens=0, interval_tokens=0, h_tokens=4, noise_scale=noise_scale)


@dataclass(frozen=True)
class GenerativeConfig:
    """How the generative correction is applied to a frame."""

    threshold: float = 8.0  # draw a tile where mean |a - b| over it exceeds this (0-255 levels); 0: every tile
    noise: str = "zero"  # "zero": the one-step jump from z_1 = 0 (deterministic, the mode of the noise);
    #   "sample": the jump from z_1 = s e, e ~ N(0, I) (a draw); "mean": no jump, the instantaneous field
    #   at t = 1 (r = t), whose x-prediction from pure noise is the conditional mean E[x | frames]
    seed: int = 0  # noise seed when noise="sample" (per frame: the same input gives the same output)
    batch: int = 64  # tiles per network call
    lattices: int = 2  # tile lattices averaged, lattice k moved k p / lattices px diagonally, so their
    #   patch grids interleave and the network's p-px patch mesh fades (k x the network work); 1 to p;
    #   2 chosen on development frames (benchmarks/tune_vfi_generative.py --lattices 1,2,4: 2 and 4 tie
    #   in PSNR, 4 fades the mesh a little further at twice the cost; docs/interpolation.md)

    def __post_init__(self) -> None:
        checks.real(self.threshold, "threshold", lo=0.0)
        checks.integer(self.lattices, "lattices", lo=1)
        if self.noise not in ("zero", "sample", "mean"):
            raise ValueError(f"noise must be 'zero', 'sample' or 'mean', got {self.noise!r}")
        checks.integer(self.batch, "batch", lo=1)


def to_condition(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(a, b) (B, 3, S, S) and m (B, 1, S, S), all in [0, 1] -> the network's condition (B, 7, S, S) in [-1, 1]."""
    return torch.cat([a, b, m], dim=1) * 2 - 1


def blend_of(cond: torch.Tensor) -> torch.Tensor:
    """The flow blend m a + (1 - m) b of a condition (B, 7, S, S), in [0, 1]: (B, 3, S, S)."""
    a, b, m = (cond[:, :3] + 1) / 2, (cond[:, 3:6] + 1) / 2, (cond[:, 6:] + 1) / 2
    return b + m * (a - b)


@torch.no_grad()
def one_step(net: PixelMeanFlow, cond: torch.Tensor, z: torch.Tensor, r: float = 0.0) -> torch.Tensor:
    """The residual in one evaluation: z = s e (B, 3, S, S) at t = 1 -> x = z - u(z, r, 1 | cond).

    r = 0: the average-velocity jump to the data (a draw of the residual); r = 1: the instantaneous
    velocity at t = 1, whose x-prediction is the conditional mean (the flow-matching rows train it).
    """
    ones = torch.ones(z.shape[0], dtype=z.dtype, device=z.device)
    return z - net(z, ones, ones * r, cond=cond)


def load_generative(directory: str | Path | None = None) -> PixelMeanFlow:
    """The VFI network from a model folder (default: the bundled one), in eval mode.

    Raises:
        FileNotFoundError: no model at `directory` (nothing is downloaded).
        ValueError: the folder holds a network without the 7 condition channels.
    """
    path = Path(directory) if directory is not None else BUNDLED
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no generative VFI model at {path} (expected config.json and model.safetensors; "
                                "train one with benchmarks/train_vfi_generative.py)")
    net, _ = load_model(path)
    if net.cfg.cond_channels != COND_CHANNELS or net.cfg.in_channels != 3:
        raise ValueError(f"{path} is not a VFI model: it has cond_channels={net.cfg.cond_channels}, "
                         f"in_channels={net.cfg.in_channels} (need {COND_CHANNELS} and 3)")
    return net


_CACHE: dict[str, PixelMeanFlow] = {}
_LOCK = threading.Lock()


def cached_generative(directory: str | Path | None = None) -> PixelMeanFlow:
    """`load_generative(directory)`, loaded once per process (frame pairs run in threads)."""
    key = str(directory) if directory is not None else ""
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_generative(directory)
        return _CACHE[key]


def _window(tile: int) -> np.ndarray:
    """(tile, tile) sin^2 window: tiles at a stride of tile / 2 sum to exactly 1 everywhere inside."""
    w = np.sin(np.pi * (np.arange(tile) + 0.5) / tile) ** 2
    return np.outer(w, w).astype(np.float32)


def correct(a: np.ndarray, b: np.ndarray, wa: np.ndarray, wb: np.ndarray, net: PixelMeanFlow | None = None,
            config: GenerativeConfig = GenerativeConfig()) -> np.ndarray:
    """The blended frame with the generative correction where the warped frames disagree.

    Args:
        a, b: (H, W, 3) uint8 in [0, 255] or float32 in [0, 1]: frames 0 and 1 warped to time t
            (`PairInterpolator.warps`).
        wa, wb: (H, W) float32 > 0, their blend weights.
        net: the VFI network (`load_generative`); the bundled one by default.
        config: threshold, noise and batch size.

    Returns:
        (H, W, 3) in the dtype of `a` (uint8 rounded, or float32 clipped to [0, 1]). Where no tile is
        drawn it equals the plain blend (wa a + wb b) / (wa + wb) up to rounding.

    Example:
        >>> pair = PairInterpolator(f0, f1, InterpolationConfig())  # doctest: +SKIP
        >>> mid = correct(*pair.warps(0.5))  # doctest: +SKIP
    """
    check_warps(a, b, wa, wb)
    net = net or cached_generative()
    scale = 1 / 255 if a.dtype == np.uint8 else 1.0
    m = (wa / (wa + wb)).astype(np.float32)
    af, bf = a.astype(np.float32) * scale, b.astype(np.float32) * scale  # (H, W, 3) in [0, 1]
    blend = bf + m[..., None] * (af - bf)
    # Lattice k is moved k p / n pixels diagonally: the n patch grids interleave.
    p = net.cfg.patch_size
    if config.lattices > p:
        raise ValueError(f"lattices={config.lattices} exceeds the network's patch size {p} (offsets would repeat)")
    offsets = sorted({k * p // config.lattices for k in range(config.lattices)})
    corr = sum(_lattice(af, bf, m, net, config, off) for off in offsets) / len(offsets)
    return _finish(blend + corr, a.dtype)


def _lattice(af: np.ndarray, bf: np.ndarray, m: np.ndarray, net: PixelMeanFlow, config: GenerativeConfig,
             offset: int) -> np.ndarray | float:
    """The windowed correction (H, W, 3) of one tile lattice (origin ``offset`` px up-left of the
    usual one), or 0.0 when it draws no tile."""
    S = net.cfg.image_size
    half = S // 2
    H, W = af.shape[:2]
    # Pad by half a tile (+ offset, reflect) and up to a multiple of half a tile, so every pixel is
    # covered by four tiles whose windows sum to 1.
    top = half + offset
    pad = ((top, half + (-(H + offset)) % half), (top, half + (-(W + offset)) % half))
    ap, bp = (np.pad(x, pad + ((0, 0),), mode="reflect") for x in (af, bf))
    mp = np.pad(m, pad, mode="reflect")
    Hp, Wp = ap.shape[:2]
    # Disagreement of the candidates per tile (levels), from an integral image of |a - b|.
    diff = np.abs(ap - bp).mean(-1) * 255  # (Hp, Wp)
    ii = np.pad(diff.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys, xs = np.arange(0, Hp - S + 1, half), np.arange(0, Wp - S + 1, half)
    Y, X = np.meshgrid(ys, xs, indexing="ij")
    score = (ii[Y + S, X + S] - ii[Y, X + S] - ii[Y + S, X] + ii[Y, X]) / (S * S)  # (ny, nx)
    sel = np.argwhere(score > config.threshold)  # (n, 2) tile indices
    if len(sel) == 0:
        return 0.0
    corr = np.zeros((Hp, Wp, 3), np.float32)
    win = _window(S)[..., None]  # (S, S, 1)
    gen = torch.Generator().manual_seed(config.seed + offset)
    for i in range(0, len(sel), config.batch):
        idx = sel[i:i + config.batch]
        tiles = [(ys[r], xs[c]) for r, c in idx]
        crop = lambda img: np.stack([img[y:y + S, x:x + S] for y, x in tiles])  # noqa: E731  (n, S, S, ...)
        ta = torch.from_numpy(crop(ap)).permute(0, 3, 1, 2)  # (n, 3, S, S)
        tb = torch.from_numpy(crop(bp)).permute(0, 3, 1, 2)
        tm = torch.from_numpy(crop(mp))[:, None]  # (n, 1, S, S)
        cond = to_condition(ta, tb, tm)
        z = torch.zeros(len(idx), 3, S, S) if config.noise != "sample" else \
            net.cfg.noise_scale * torch.randn(len(idx), 3, S, S, generator=gen)  # z_1 = s e
        r = 1.0 if config.noise == "mean" else 0.0
        res = (one_step(net, cond, z, r) / 2).permute(0, 2, 3, 1).numpy()  # (n, S, S, 3), [0, 1] units
        for (y, x), r in zip(tiles, res):
            corr[y:y + S, x:x + S] += win * r
    return corr[top:top + H, top:top + W]


def _finish(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.clip(img, 0.0, 1.0).astype(np.float32)

