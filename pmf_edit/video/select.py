"""A learned choice between the two warped frames (optional: `InterpolationConfig(select=True)`).

The flow method (`pmf_edit.video.interpolate`) blends frame 0 and frame 1, each warped to time t, with
fixed shares. Where something moves in front of something else, one of the two shows the right
content and the other a stretched or doubled copy of the occluder; the blend averages them and
ghosts. How much a perfect choice would give, per 8x8 block (`benchmarks/vfi_bounds.py`): +1.1 dB on
bikes (camera footage with fast riders), nothing on carphone; the non-learned rules tried
(forward-backward visibility, splat density) each lose.

`SelectNet` looks at the two warped frames, the blend share, and six evidence maps the flow stage
already has (`PairInterpolator.evidence`: forward-backward inconsistency and brightness-constancy
confidence at each candidate's source, and how densely each frame's pixels land at time t) and moves
the share of frame 0: out = w a + (1 - w) b, w = sigmoid(logit(m) + d(...)). It can only choose or mix
the two candidates, never paint, and it starts as the plain blend (d = 0). Its convolutions run at half
resolution with dilations up to 8, so it sees about 32 px around each pixel. Trained only on Big Buck
Bunny (first 80 % of its frames) and synthetic scenes of offline stills under moving sprites
(`benchmarks/train_vfi_selector.py`), never on the benchmark clips; the weights
(`core/assets/vfi_selector.safetensors`, float32) ship with the package, nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.checkpoint import ASSETS
from pmf_edit.video.refine import check_warps
from pmf_edit.video.weights import load_net, save_net

WEIGHTS = str(ASSETS / "vfi_selector.safetensors")
NUM_MAPS = 6  # PairInterpolator.evidence channels
MARGIN = 40  # rows of context above and below a band: more than the network's reach (2 x (1 + 2 + 4 + 8 + 1))


@dataclass(frozen=True)
class SelectConfig:
    """Size of `SelectNet`; stored in the weights file's metadata so a file rebuilds its own network."""

    width: int = 32  # channels of the hidden convolutions
    dilations: str = "1,2,4,8,1"  # one 3x3 convolution per entry, at half resolution

    def dilation_list(self) -> list[int]:
        return [int(d) for d in self.dilations.split(",")]


class SelectNet(nn.Module):
    """(a, b, m, evidence) -> the share of frame 0 in the blend."""

    def __init__(self, cfg: SelectConfig = SelectConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c = 3 + 3 + 1 + 1 + NUM_MAPS
        for d in cfg.dilation_list():
            layers += [nn.Conv2d(c, cfg.width, 3, padding=d, dilation=d), nn.ReLU()]
            c = cfg.width
        last = nn.Conv2d(c, 1, 1)
        nn.init.zeros_(last.weight)  # starts as the plain blend
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*layers, last)

    def forward(self, a: torch.Tensor, b: torch.Tensor, m: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """Share of `a` per pixel.

        Args:
            a, b: (B, 3, H, W) float in [0, 1], frame 0 and frame 1 warped to time t.
            m: (B, 1, H, W) in (0, 1), the plain blend's share of `a`.
            maps: (B, 6, ceil(H/2), ceil(W/2)) evidence maps (`PairInterpolator.evidence`) at half resolution.

        Returns:
            (B, 1, H, W) in (0, 1).
        """
        x = torch.cat([a - 0.5, b - 0.5, (a - b).abs().mean(1, keepdim=True), m], 1)  # (B, 8, H, W)
        x = F.avg_pool2d(x, 2, ceil_mode=True)  # (B, 8, H/2, W/2)
        d = self.body(torch.cat([x, maps], 1))  # (B, 1, H/2, W/2)
        # x2 then cropped (not resized to (H, W)): for odd sides a resize would shift the grid, and a band
        # of rows would then not reproduce the whole frame's result
        d = F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)[..., :a.shape[-2], :a.shape[-1]]
        return torch.sigmoid(torch.logit(m.clamp(1e-4, 1 - 1e-4)) + d)


def load_selector(path: str | None = None) -> SelectNet:
    """The selection network from a safetensors file (default: the bundled weights), cached per path.

    Raises:
        FileNotFoundError: the weights file is missing.
    """
    def build(meta: dict[str, str]) -> SelectNet:
        return SelectNet(SelectConfig(width=int(meta.get("width", SelectConfig.width)),
                                      dilations=meta.get("dilations", SelectConfig.dilations)))

    return load_net(path or WEIGHTS, build, "The VFI selector weights ship with the package "
                    "(core/assets/vfi_selector.safetensors); retrain them with benchmarks/train_vfi_selector.py, "
                    "or use a config with select=False.")


def save_selector(net: SelectNet, path: str) -> None:
    """Write `net`'s weights as safetensors, its `SelectConfig` as string metadata."""
    save_net(net, path)


def select(a: np.ndarray, b: np.ndarray, wa: np.ndarray, wb: np.ndarray, maps: np.ndarray,
           net: SelectNet | None = None, band_rows: int = 512) -> np.ndarray:
    """Blend two warped frames with the learned shares (what `PairInterpolator.render` does with select=True).

    Args:
        a, b: (H, W, 3) uint8 or float32 in [0, 1], the two frames warped to time t.
        wa, wb: (H, W) float32 > 0, their plain blend weights (`PairInterpolator.warps`).
        maps: (h, w, 6) float32 evidence maps at any resolution (`PairInterpolator.evidence`).
        net: the network (default: the bundled one).
        band_rows: output rows per network call (each with `MARGIN` rows of context), bounding memory.

    Returns:
        (H, W, 3) in the dtype of `a`.

    Example:
        >>> pair = PairInterpolator(f0, f1, InterpolationConfig())       # doctest: +SKIP
        >>> out = select(*pair.warps(0.5), pair.evidence(0.5))           # doctest: +SKIP
    """
    check_warps(a, b, wa, wb)
    if maps.ndim != 3 or maps.shape[-1] != NUM_MAPS:
        raise ValueError(f"expected (h, w, {NUM_MAPS}) evidence maps, got {maps.shape}")
    net = net or load_selector()
    H, W = a.shape[:2]
    half = cv2.resize(maps, ((W + 1) // 2, (H + 1) // 2), interpolation=cv2.INTER_LINEAR)  # (H/2, W/2, 6)
    m = wa / (wa + wb)  # (H, W) share of a
    scale = np.float32(1 / 255) if a.dtype == np.uint8 else np.float32(1)
    out = np.empty_like(a)
    band_rows = max(2, band_rows // 2 * 2)  # even, so a band starts on a half-resolution row
    with torch.no_grad():
        for r0 in range(0, H, band_rows):
            r1 = min(H, r0 + band_rows)
            s0, s1 = max(0, r0 - MARGIN), min(H, r1 + MARGIN)  # s0 even (r0 and MARGIN are)
            ta, tb = _tensor(a[s0:s1]) * scale, _tensor(b[s0:s1]) * scale
            w = net(ta, tb, _tensor(m[s0:s1, :, None]), _tensor(half[s0 // 2:(s1 + 1) // 2]))  # (1, 1, rows, W)
            y = (w * ta + (1 - w) * tb)[0, :, r0 - s0:r1 - s0].permute(1, 2, 0).numpy()  # (band, W, 3)
            if out.dtype == np.uint8:
                out[r0:r1] = np.clip(y * 255 + 0.5, 0, 255).astype(np.uint8)
            else:
                out[r0:r1] = np.clip(y, 0, 1)
    return out


def _tensor(x: np.ndarray) -> torch.Tensor:
    """(rows, W, C) array -> (1, C, rows, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float()
