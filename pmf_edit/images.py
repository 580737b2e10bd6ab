"""The size policy: images of any H x W through a network that works at S x S, and back.

A pMF network sees S x S pixels (32 for the bundled models, 256 for the official ImageNet ones); a
photo is any H x W. Every image task runs the same three steps:

    net_in  = to_network(plan, images)            # (B T, C, S, S): what the network sees
    net_out = task(net_in)                        # the network's result at its own resolution
    images' = from_network(plan, images, net_in, net_out)   # (B, C, H, W): the input's size

``plan = plan_size(H, W, S, mode)`` says how the two resolutions meet (``size_mode``):

    fit   the whole image: long side resized to S, short side reflect-padded to S (aspect kept).
          One network call per image, any size; detail finer than H / S is not the network's.
    crop  a centred square (or one around a given centre) resized to S; outside it the image is
          left as it is. The network sees the middle at a higher resolution than ``fit`` gives it.
    tile  overlapping S x S tiles at full resolution (no resizing), their changes blended with a
          tent window. The network sees every pixel at its own scale, but only S x S of context at
          a time, and the cost grows with the area (about H W / (0.75 S)^2 tiles).

Carry-back (``from_network``): what the network CHANGED is carried to full resolution and added to
the original, images' = images + up(net_out - net_in), so content the network left alone keeps its
full-resolution pixels (an unchanged result returns the input bit-exactly). ``up`` is an edge-aware
upsampler, the fast guided filter (He and Sun 2015): the change is modelled in each small window as
an affine function of the low-resolution input, delta ~ a x_lo + b, and the coefficients (smooth)
are upsampled and applied to the full-resolution original, so the change's edges sit on the
original's edges with no halo. ``fit`` pads by reflection rather than with a constant colour: a
letterbox bar is an edge the network never saw in training and tries to repair next to the image,
while a mirrored continuation has the image's own statistics (its changes are discarded either way).

At the network's own size every mode is the identity: the network's output is returned unchanged.

Example:
    >>> plan = plan_size(300, 451, 32, "fit")
    >>> x_in = to_network(plan, images)                    # (B, C, 32, 32)
    >>> out = from_network(plan, images, x_in, x_in * 0.9)  # (B, C, 300, 451)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SizeMode", "SIZE_MODES", "SizeConfig", "SizePlan", "MIN_SIDE", "MAX_SIDE", "check_image_size",
    "plan_size", "to_network", "from_network", "mask_to_network", "guided_upsample", "through_network",
    "repeat_per_tile", "resize_bilinear", "TILE_CHUNK", "input_chunks", "chunk_progress",
]

SizeMode = Literal["fit", "crop", "tile"]
SIZE_MODES: tuple[str, ...] = ("fit", "crop", "tile")
MIN_SIDE = 8  # smallest side accepted: below it there is no picture to edit, only a few values
MAX_SIDE = 16384  # largest side accepted: a float32 RGB image of 16384^2 is already 3 GiB


@dataclass(frozen=True)
class SizeConfig:
    """Knobs of the size policy (defaults measured in tests/test_images.py and docs/editing.md)."""

    tile_overlap: float = 0.25  # fraction of a tile shared with its neighbour (stride = S (1 - overlap))
    guide_radius: int = 1  # window radius of the guided upsampler, in network pixels (1 = 3x3)
    # Its regulariser in [0, 1]^2 units. Smaller follows the original's edges more closely but fits
    # changes that do not follow the original (new content) to its noise, which a_hi then amplifies
    # into speckle. On a 512-px step edge (tests/test_images.py) the change leaking across it is
    # 0.0014 / 0.0097 / 0.029 at 1e-4 / 1e-3 / 1e-2 (bilinear: 0.049); 1e-4 visibly speckled a
    # class edit drawn on a noisy background, 1e-2 left ghosts of removed strokes.
    guide_eps: float = 1e-3
    crop_feather: float = 0.125  # fraction of the crop side over which the change fades out at an inner border

    def __post_init__(self) -> None:
        if not 0.0 <= self.tile_overlap < 1.0:
            raise ValueError(f"tile_overlap must lie in [0, 1), got {self.tile_overlap}")
        if int(self.guide_radius) != self.guide_radius or self.guide_radius < 0:
            raise ValueError(f"guide_radius must be an integer >= 0, got {self.guide_radius}")
        if not self.guide_eps > 0.0:
            raise ValueError(f"guide_eps must be > 0, got {self.guide_eps}")
        if not 0.0 <= self.crop_feather <= 0.5:
            raise ValueError(f"crop_feather must lie in [0, 0.5], got {self.crop_feather}")


@dataclass(frozen=True)
class SizePlan:
    """How an H x W image meets an S x S network (made by ``plan_size``; all values in pixels)."""

    mode: str  # "fit", "crop" or "tile"
    height: int  # H of the full image
    width: int  # W of the full image
    side: int  # S, the network's side
    box: tuple[int, int, int, int]  # (top, left, h, w): the part of the image the network sees
    inner: tuple[int, int, int, int]  # (top, left, h, w): where that part lies on the canvas
    canvas: tuple[int, int]  # (Hc, Wc): the network-scale picture the tiles are cut from
    starts_y: tuple[int, ...]  # tile rows' top edges on the canvas ((0,) unless tiled)
    starts_x: tuple[int, ...]  # tile columns' left edges on the canvas
    config: SizeConfig  # the knobs it was made with

    @property
    def num_tiles(self) -> int:
        """T, network-size inputs per image."""
        return len(self.starts_y) * len(self.starts_x)

    @property
    def native(self) -> bool:
        """True when the image is the network's size: every step is then the identity."""
        return (self.height, self.width) == (self.side, self.side)


def check_image_size(images: Tensor | tuple[int, ...], name: str = "images", *, min_side: int = MIN_SIDE,
                     max_side: int = MAX_SIDE) -> None:
    """Refuse images whose height or width is outside [min_side, max_side], naming the argument.

    Args:
        images: (..., H, W) tensor, or its shape.
        name: the argument's name for the message.
        min_side, max_side: accepted range of H and W in pixels.

    Raises:
        ValueError: a side out of range (the message names ``name`` and prints the shape).

    Example:
        >>> check_image_size(torch.rand(1, 3, 1, 1))
        Traceback (most recent call last):
        ValueError: images is 1x1 (shape (1, 3, 1, 1)); each side must be at least 8 pixels
    """
    shape = tuple(int(v) for v in (images.shape if isinstance(images, Tensor) else images))
    H, W = shape[-2], shape[-1]
    if min(H, W) < min_side:
        raise ValueError(f"{name} is {H}x{W} (shape {shape}); each side must be at least {min_side} pixels")
    if max(H, W) > max_side:
        raise ValueError(f"{name} is {H}x{W} (shape {shape}); each side must be at most {max_side} pixels "
                         "(downscale it first)")


def _tile_starts(length: int, tile: int, stride: int) -> tuple[int, ...]:
    """Tile origins covering [0, length) with tiles of ``tile``, about ``stride`` apart, ends flush."""
    if length <= tile:
        return (0,)
    n = math.ceil((length - tile) / stride) + 1
    # Spread evenly so every seam gets about the same overlap (a flush last tile otherwise overlaps a lot).
    return tuple(round(i * (length - tile) / (n - 1)) for i in range(n))


def plan_size(height: int, width: int, side: int, mode: str = "fit", *, center: tuple[float, float] | None = None,
              config: SizeConfig = SizeConfig()) -> SizePlan:
    """Plan how an H x W image is shown to an S x S network.

    Args:
        height, width: the image's H, W in [MIN_SIDE, MAX_SIDE].
        side: the network's side S (``net.cfg.image_size``).
        mode: "fit", "crop" or "tile" (see the module docstring).
        center: ``crop`` only: (y, x) pixel the square is centred on (clamped so it stays inside the
            image); None = the image's centre.
        config: overlap, feathering and upsampler knobs.

    Returns:
        ``SizePlan``.

    Example:
        >>> plan_size(300, 451, 32, "fit").inner          # the resized image inside the padded square
        (5, 0, 21, 32)
    """
    if mode not in SIZE_MODES:
        raise ValueError(f"size_mode must be one of {', '.join(map(repr, SIZE_MODES))}, got {mode!r}")
    H, W, S = int(height), int(width), int(side)
    check_image_size((H, W), "the image")
    if center is not None and mode != "crop":
        raise ValueError(f"center applies to size_mode='crop' only, got size_mode={mode!r}")
    none = ((0,), (0,))
    if mode == "fit":
        k = S / max(H, W)  # long side -> S
        h, w = max(1, min(S, round(H * k))), max(1, min(S, round(W * k)))
        inner = ((S - h) // 2, (S - w) // 2, h, w)
        return SizePlan(mode, H, W, S, (0, 0, H, W), inner, (S, S), *none, config)
    if mode == "crop":
        c = min(H, W)
        cy, cx = (H / 2, W / 2) if center is None else (float(center[0]), float(center[1]))
        top = min(max(0, round(cy - c / 2)), H - c)
        left = min(max(0, round(cx - c / 2)), W - c)
        return SizePlan(mode, H, W, S, (top, left, c, c), (0, 0, S, S), (S, S), *none, config)
    Hc, Wc = max(H, S), max(W, S)  # a side shorter than S is reflect-padded up to S
    stride = max(1, round(S * (1.0 - config.tile_overlap)))
    inner = ((Hc - H) // 2, (Wc - W) // 2, H, W)
    return SizePlan(mode, H, W, S, (0, 0, H, W), inner, (Hc, Wc), _tile_starts(Hc, S, stride),
                    _tile_starts(Wc, S, stride), config)


# ------------------------------------------------------------------------------------------------
# Resampling helpers


def resize_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of (..., H, W) to `size`, antialiased when shrinking; returned as is when the
    size already matches. A convex combination, so [0, 1] stays in [0, 1].

    Example:
        >>> resize_bilinear(torch.rand(1, 3, 512, 384), (64, 48)).shape
        torch.Size([1, 3, 64, 48])
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    down = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=down)


def _reflect_index(n: int, before: int, total: int, device: torch.device) -> Tensor:
    """Indices of a length-``total`` reflection (edge not repeated) of a length-n axis starting at -before.

    Unlike ``F.pad(mode="reflect")`` it accepts a pad longer than the axis (folds back and forth).
    """
    i = torch.arange(-before, total - before, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i < n, i, period - i)


def _reflect_pad(x: Tensor, inner: tuple[int, int, int, int], canvas: tuple[int, int]) -> Tensor:
    """Place x (..., h, w) at ``inner`` on a ``canvas`` and fill the rest by reflection."""
    top, left, h, w = inner
    iy = _reflect_index(h, top, canvas[0], x.device)
    ix = _reflect_index(w, left, canvas[1], x.device)
    return x.index_select(-2, iy).index_select(-1, ix)


def _tent(S: int, like: Tensor) -> Tensor:
    """(S, S) separable tent window, > 0 everywhere (every canvas pixel gets weight)."""
    r = torch.arange(S, device=like.device, dtype=like.dtype)
    w = torch.minimum(r + 1, S - r) / math.ceil(S / 2)
    return w[:, None] * w[None, :]


def _split(plan: SizePlan, canvas: Tensor) -> Tensor:
    """(B, C, Hc, Wc) -> (B T, C, S, S), image-major: image i's tiles are rows i T .. i T + T - 1."""
    S = plan.side
    tiles = [canvas[:, :, a:a + S, b:b + S] for a in plan.starts_y for b in plan.starts_x]
    return torch.stack(tiles, 1).flatten(0, 1)  # (B, T, C, S, S) -> (B T, C, S, S)


def _merge(plan: SizePlan, tiles: Tensor) -> Tensor:
    """(B T, C, S, S) -> (B, C, Hc, Wc): tiles blended with a tent window (T = 1: the tile itself)."""
    if plan.num_tiles == 1:
        return tiles
    S, T = plan.side, plan.num_tiles
    t = tiles.view(-1, T, *tiles.shape[1:])  # (B, T, C, S, S)
    win = _tent(S, tiles)
    acc = tiles.new_zeros(t.shape[0], t.shape[2], *plan.canvas)
    wsum = tiles.new_zeros(1, 1, *plan.canvas)
    i = 0
    for a in plan.starts_y:
        for b in plan.starts_x:
            acc[:, :, a:a + S, b:b + S] += t[:, i] * win
            wsum[:, :, a:a + S, b:b + S] += win
            i += 1
    return acc / wsum


# ------------------------------------------------------------------------------------------------
# The two directions


def _check_full(plan: SizePlan, x: Tensor, name: str) -> None:
    if x.ndim != 4 or tuple(x.shape[-2:]) != (plan.height, plan.width):
        raise ValueError(f"{name} must be (B, C, {plan.height}, {plan.width}) for this plan, got shape "
                         f"{tuple(x.shape)}")


def to_network(plan: SizePlan, images: Tensor) -> Tensor:
    """Full images -> what the network sees.

    Args:
        plan: from ``plan_size``.
        images: (B, C, H, W) float in [0, 1].

    Returns:
        (B T, C, S, S) in [0, 1], image-major (image i's T tiles are consecutive); ``images`` itself
        when native.

    Example:
        >>> to_network(plan_size(300, 451, 32, "tile"), torch.rand(2, 3, 300, 451)).shape
        torch.Size([722, 3, 32, 32])
    """
    _check_full(plan, images, "images")
    if plan.native:
        return images
    top, left, h, w = plan.box
    x = images[:, :, top:top + h, left:left + w]
    if plan.mode == "crop":
        x = resize_bilinear(x, (plan.side, plan.side))
    else:
        if plan.mode == "fit":
            x = resize_bilinear(x, plan.inner[2:])
        x = _split(plan, _reflect_pad(x, plan.inner, plan.canvas))
    # Resampling weights are convex, but their rounding can step 1 ulp outside [0, 1].
    return x.clamp(0.0, 1.0)


def mask_to_network(plan: SizePlan, mask: Tensor) -> Tensor:
    """A full-resolution fill mask -> the network's, dilated: a network pixel is filled when any
    full-resolution pixel under it is (so no masked pixel is left to the original).

    Args:
        plan: from ``plan_size``.
        mask: (B or 1, 1 or C, H, W) bool.

    Returns:
        (B T or T, 1 or C, S, S) bool.
    """
    _check_full(plan, mask, "mask")
    if plan.native:
        return mask
    m = mask.float()
    top, left, h, w = plan.box
    m = m[:, :, top:top + h, left:left + w]
    size = (plan.side, plan.side) if plan.mode == "crop" else plan.inner[2:]
    if tuple(m.shape[-2:]) != tuple(size):
        # Max-pooling by area: adaptive_max_pool covers every source pixel when shrinking, and
        # nearest is exact when growing.
        shrink = size[0] <= m.shape[-2] and size[1] <= m.shape[-1]
        m = F.adaptive_max_pool2d(m, size) if shrink else F.interpolate(m, size=size, mode="nearest")
    if plan.mode != "crop":
        m = _split(plan, _reflect_pad(m, plan.inner, plan.canvas))
    return m > 0


def guided_upsample(delta: Tensor, guide_lo: Tensor, guide_hi: Tensor, *, radius: int = 1,
                    eps: float = 1e-3) -> Tensor:
    """Carry a low-resolution change to a high resolution along the edges of a guide (fast guided
    filter, He and Sun 2015), per channel.

    In each (2 radius + 1)^2 window of the low resolution the change is fitted as an affine function
    of the guide, delta ~ a guide_lo + b (ridge ``eps``); the window-averaged a, b are smooth, so they
    are resized bilinearly and applied to the full-resolution guide: out = a_hi guide_hi + b_hi.
    A change that follows the guide (brighter where it is bright) keeps the guide's sharp edges;
    a change with no counterpart in the guide comes out as a smooth (box-filtered) upsample.
    A zero change gives exactly zero.

    Args:
        delta: (B, C, h, w) low-resolution change.
        guide_lo: (B, C, h, w) the low-resolution image the change was made to.
        guide_hi: (B, C, H, W) the same image at the target resolution (any H, W).
        radius: window radius in low-resolution pixels.
        eps: ridge regulariser (units of guide^2); larger = smoother, less edge-following
            (``SizeConfig.guide_eps`` says how it was chosen).

    Returns:
        (B, C, H, W) change at the target resolution.

    Example:
        >>> lo = F.interpolate(hi, size=(32, 32), mode="bilinear", antialias=True)
        >>> up = guided_upsample(0.2 * lo, lo, hi)        # ~= 0.2 * hi, edges of hi kept
    """
    if delta.shape != guide_lo.shape or delta.shape[:2] != guide_hi.shape[:2]:
        raise ValueError(f"delta {tuple(delta.shape)}, guide_lo {tuple(guide_lo.shape)} and guide_hi "
                         f"{tuple(guide_hi.shape)} must agree in (B, C) and delta/guide_lo in size")
    a, b = _guided_coefficients(delta, guide_lo, radius, eps)
    size = tuple(guide_hi.shape[-2:])
    return resize_bilinear(a, size) * guide_hi + resize_bilinear(b, size)


def _guided_coefficients(delta: Tensor, guide_lo: Tensor, radius: int, eps: float) -> tuple[Tensor, Tensor]:
    """The window-averaged affine coefficients (a, b), (B, C, h, w) each, of ``guided_upsample``:
    delta ~ a guide + b per (2 radius + 1)^2 window (ridge ``eps``), then averaged over the windows."""
    k = 2 * radius + 1

    def box(v: Tensor) -> Tensor:
        """Mean over each k x k window, borders reflected (any size, even a 1-pixel-thin image)."""
        if k == 1:
            return v
        h, w = v.shape[-2:]
        return F.avg_pool2d(_reflect_pad(v, (radius, radius, h, w), (h + 2 * radius, w + 2 * radius)), k, stride=1)

    mean_g, mean_d = box(guide_lo), box(delta)
    cov = box(guide_lo * delta) - mean_g * mean_d
    var = box(guide_lo * guide_lo) - mean_g * mean_g
    a = cov / (var.clamp_min(0.0) + eps)
    b = mean_d - a * mean_g
    return box(a), box(b)


# Full-resolution rows the carry-up works on at once: bounds its memory on a big photo (a 48-megapixel picture
# in one piece took ~2.4 GB of float32 temporaries; in bands of 256 rows a few tens of MB).
CARRY_ROWS = 256


def _upsampled_rows(lo: Tensor, height: int, wide: Tensor, rows: slice) -> Tensor:
    """Rows ``rows`` of the bilinear upsampling (half-pixel centres, as ``F.interpolate``) of ``lo`` (B, C, h, w)
    to ``height`` rows, from ``wide`` = ``lo`` already resized to the full width (B, C, h, W)."""
    h = lo.shape[-2]
    y = torch.arange(rows.start, rows.stop, device=lo.device, dtype=torch.float64)
    src = ((y + 0.5) * (h / height) - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp_max(h - 1)
    i1 = (i0 + 1).clamp_max(h - 1)
    w1 = (src - i0).to(lo.dtype)[:, None]  # (rows, 1)
    return wide[..., i0, :] * (1 - w1) + wide[..., i1, :] * w1


def _feather(plan: SizePlan, like: Tensor) -> Tensor:
    """(h, w) weights of the crop box: 1 inside, fading linearly to 0 at sides inside the image."""
    top, left, h, w = plan.box

    def ramp(n: int, lo_inside: bool, hi_inside: bool) -> Tensor:
        f = max(1, round(plan.config.crop_feather * n))
        r = torch.ones(n, device=like.device, dtype=like.dtype)
        fade = (torch.arange(f, device=like.device, dtype=like.dtype) + 0.5) / f
        if lo_inside and plan.config.crop_feather > 0:
            r[:f] = torch.minimum(r[:f], fade)
        if hi_inside and plan.config.crop_feather > 0:
            r[n - f:] = torch.minimum(r[n - f:], fade.flip(0))
        return r

    wy = ramp(h, top > 0, top + h < plan.height)
    wx = ramp(w, left > 0, left + w < plan.width)
    return wy[:, None] * wx[None, :]


def from_network(plan: SizePlan, images: Tensor, net_in: Tensor, net_out: Tensor, *,
                 mask: Tensor | None = None) -> Tensor:
    """The network's result -> full resolution: the original plus the carried-up change.

    images' = clamp(images + up(net_out - net_in), 0, 1), ``up`` the guided upsampler (``fit``,
    ``crop``) or the tent-blended tiles (``tile``, no resizing). With ``mask`` (inpainting) the
    masked pixels take the network's output itself, resized (the original content there is being
    replaced, so adding a change to it would keep a ghost of it), and every other pixel is the input's
    own value, bit-identical.

    Args:
        plan: from ``plan_size``.
        images: (B, C, H, W) the full-resolution input in [0, 1].
        net_in: (B T, C, S, S) what ``to_network`` gave the network.
        net_out: (B T, C, S, S) the network's result in [0, 1] (same dtype as net_in).
        mask: optional (B or 1, 1 or C, H, W) bool, True = pixels the network refills.

    Returns:
        (B, C, H, W) in [0, 1], the dtype of ``images``. When native, ``net_out`` itself
        (``torch.where`` with the input outside ``mask``).

    Example:
        >>> plan = plan_size(300, 451, 32, "fit")
        >>> x_in = to_network(plan, x)
        >>> from_network(plan, x, x_in, x_in).equal(x)       # nothing changed -> the input
        True
    """
    _check_full(plan, images, "images")
    B, C, H, W = images.shape
    want = (B * plan.num_tiles, C, plan.side, plan.side)
    if tuple(net_in.shape) != want or net_out.shape != net_in.shape:
        raise ValueError(f"net_in and net_out must be {want} for this plan, got {tuple(net_in.shape)} and "
                         f"{tuple(net_out.shape)}")
    if mask is not None:
        _check_full(plan, mask, "mask")
        mask = mask.expand(B, C, H, W)
    if plan.native:
        out = net_out.to(images.dtype)
        return out if mask is None else torch.where(mask, out, images)
    # The change, blended over tiles onto the canvas, then cut to the image's part of the canvas.
    delta = _merge(plan, (net_out - net_in).to(images.dtype))  # (B, C, Hc, Wc)
    top, left, h, w = plan.inner
    delta = delta[:, :, top:top + h, left:left + w]
    btop, bleft, bh, bw = plan.box
    region = images[:, :, btop:btop + bh, bleft:bleft + bw]  # the part the network saw, full resolution
    if mask is not None:
        # Inside the mask: the network's own pixels (output = input + change at its resolution).
        guide_lo = _merge(plan, net_in.to(images.dtype))[:, :, top:top + h, left:left + w]
        filled = resize_bilinear(guide_lo + delta, (bh, bw)).clamp(0, 1)
        out = images.clone()
        out[:, :, btop:btop + bh, bleft:bleft + bw] = filled
        return torch.where(mask, out, images)
    out = images.clone()
    if plan.mode == "tile":  # tiles are at full resolution: nothing to resize
        out[:, :, btop:btop + bh, bleft:bleft + bw] = (region + delta).clamp(0, 1)
        return out
    # The guided upsampler (guided_upsample) applied band by band: its coefficients at the network's
    # resolution, resized to the full width once, then to the full height a band of rows at a time.
    guide_lo = _merge(plan, net_in.to(images.dtype))[:, :, top:top + h, left:left + w]
    a, b = _guided_coefficients(delta, guide_lo, plan.config.guide_radius, plan.config.guide_eps)
    a_wide, b_wide = (resize_bilinear(v, (v.shape[-2], bw)) for v in (a, b))  # (B, C, h, bw)
    feather = _feather(plan, region) if plan.mode == "crop" else None  # (bh, bw)
    for r0 in range(0, bh, CARRY_ROWS):
        rows = slice(r0, min(r0 + CARRY_ROWS, bh))
        band = region[:, :, rows]
        change = _upsampled_rows(a, bh, a_wide, rows) * band + _upsampled_rows(b, bh, b_wide, rows)
        if feather is not None:
            change = change * feather[rows]
        out[:, :, btop + rows.start:btop + rows.stop, bleft:bleft + bw] = (band + change).clamp_(0, 1)
    return out


def through_network(images: Tensor, side: int, fn: Callable[[Tensor, SizePlan], Tensor], *, size_mode: str = "fit",
                    mask: Tensor | None = None, config: SizeConfig = SizeConfig()) -> Tensor:
    """Run ``fn`` at the network's size on images of any size and return the input's size.

    The one place every image task meets the size policy: plan, ``to_network``, ``fn``,
    ``from_network``. For ``crop`` with a ``mask`` the square is centred on the mask's bounding box
    (the region to refill), and a mask reaching outside the square is refused.

    Args:
        images: (B, C, H, W) in [0, 1], H and W in [MIN_SIDE, MAX_SIDE].
        side: the network's side S.
        fn: ``fn(net_in, plan) -> net_out``, both (B T, C, S, S) in [0, 1]; ``plan.num_tiles`` = T
            (per-image inputs such as labels repeat T times, ``repeat_per_tile``).
        size_mode: "fit", "crop" or "tile".
        mask: optional (B or 1, 1 or C, H, W) bool, True = refill (inpainting): the rest of the
            image is returned bit-identical.
        config: the policy's knobs.

    Returns:
        (B, C, H, W) in [0, 1], the dtype of ``images``.

    Example:
        >>> out = through_network(x, 32, lambda x_in, plan: 1 - x_in, size_mode="fit")
    """
    check_image_size(images, "images")
    H, W = images.shape[-2:]
    center = None
    if mask is not None and size_mode == "crop" and bool(mask.any()):
        ys, xs = torch.nonzero(mask.reshape(-1, H, W).any(0), as_tuple=True)
        center = ((int(ys.min()) + int(ys.max()) + 1) / 2, (int(xs.min()) + int(xs.max()) + 1) / 2)
    plan = plan_size(H, W, side, size_mode, center=center, config=config)
    if center is not None and not plan.native:
        top, left, h, w = plan.box
        inside = torch.zeros(H, W, dtype=torch.bool, device=mask.device)
        inside[top:top + h, left:left + w] = True
        if bool((mask.reshape(-1, H, W) & ~inside).any()):
            raise ValueError(f"mask reaches outside the {h}x{w} square that size_mode='crop' can refill in a "
                             f"{H}x{W} image; use size_mode='fit' or 'tile'")
    net_in = to_network(plan, images)
    net_out = fn(net_in, plan)
    return from_network(plan, images, net_in, net_out, mask=mask)


# Network inputs run at once in tile mode: bounds memory whatever the picture's size (a 12-megapixel photo is
# ~21k tiles of a 32-px model, ~16 GB of activations in one batch; 64 tiles take ~60 MB at 32 px).
TILE_CHUNK = 64


def input_chunks(n: int, plan: SizePlan, chunk: int = TILE_CHUNK) -> list[slice]:
    """The rows of the ``n`` = B T network inputs of ``plan`` that go through the network together: all
    of them when the plan has one input per image (fit, crop: the caller chose the batch), chunks of
    ``chunk`` in tile mode (the size policy chose T). Per-sample noise and results make the chunking
    invisible in the output.

    Example:
        >>> input_chunks(130, plan_size(512, 512, 32, "tile"), 64)   # one image, 441 tiles: 3 chunks of it
        [slice(0, 64, None), slice(64, 128, None), slice(128, 130, None)]
    """
    if plan.num_tiles == 1:
        return [slice(0, n)]
    return [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]


def chunk_progress(chunks: list[slice], what: str) -> Iterable[slice]:
    """``chunks`` with a progress bar when they are many (tile mode on a big picture: 2048 px is 113 chunks,
    ~45 CPU s at 32 px); tqdm's auto mode shows it on a terminal only, and it disappears when done."""
    if len(chunks) < 8:
        return chunks
    from tqdm.auto import tqdm

    return tqdm(chunks, desc=f"{what}: tiles in chunks", unit="chunk", disable=None, leave=False)


def repeat_per_tile(values: Tensor | None, plan: SizePlan) -> Tensor | None:
    """Per-image values (B, ...) -> per network input (B T, ...) (None stays None)."""
    if values is None or plan.num_tiles == 1:
        return values
    return values.repeat_interleave(plan.num_tiles, 0)
