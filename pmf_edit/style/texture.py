"""Texture by correspondence: the style image's own texture, placed where a guide image says.

The pMF network decides *what goes where* at its own resolution (the stylised colour and light
layout, carried to full size by ``style_transfer``); a 32x32 or 64x64 network cannot draw a brick
wall's mortar lines at 512 px, and its carried-up change is smooth (docs/style.md). This module
adds the texture the network cannot draw: every patch of the guide is matched to the most similar
patch of the style image (texture by numbers, Hertzmann et al. 2001; the iterated match-and-average
of Elad and Milanfar 2017), at a small working side, and the matched style patches are then pasted
at FULL resolution from the full-size style image, so the output's texture is the style's own
pixels at the style's own scale, whatever the content's size.

    1. work side   guide and style resized by one factor k = min(work_side, max(H, W)) / max(H, W)
                   (the style keeps its size relative to the content)
    2. match       the guide's overlapping patches (side 2 s, stride s) against every style patch
                   (stride ``style_stride``), squared distance in a PCA basis of the style's patches
    3. iterate     the matched patches averaged with sin^2 windows that sum to one (a synthesis at
                   the work side), blended with the guide by ``fidelity``, matched again: neighbours
                   then agree on their overlaps, so averaging them does not blur the texture
    4. paste       the last match, at full resolution: for each of the 2 x 2 overlapping patch
                   layers, the style image sampled at the matched offset, weighted by the window

No network evaluation; CPU cost is a few matrix products at the work side plus four full-size
resamplings (benchmarks/bench_style_curve.py reports it with the rest of style transfer).

Example:
    >>> tex = synthesize_texture(guide01, cover_resize(style01, H, W))   # (1, 3, H, W) in [0, 1]
    >>> out = add_texture_detail(guide01, tex, amount=0.35, sigma=2.0 * max(H, W) / 128)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from core import checks
from pmf_edit.images import CARRY_ROWS, resize_bilinear

PASTE_PIXELS = 1 << 22  # full-resolution pixels pasted at once (about 4M: ~150 MB of float32 maps)

__all__ = ["TextureConfig", "synthesize_texture", "add_texture_detail", "noise_shape", "cover_resize"]


@dataclass(frozen=True)
class TextureConfig:
    """How the texture is matched (sides in working-resolution pixels)."""

    # Defaults: 0.06-0.08 CPU s for a 512 x 512 guide on one core (0.32 s at work_side 128, style_stride 1,
    # pca_dims 24, 3 iterations, which look alike on the tuning pairs: docs/style.md).
    work_side: int = 128  # longer side of the working resolution (matching cost ~ work_side^4)
    stride: int = 4  # patch stride; patches are 2 x stride wide (each pixel is covered by 2 x 2)
    iterations: int = 2  # match-and-average rounds (the last match is pasted at full size)
    fidelity: float = 0.3  # weight of the guide when re-matching (0: pure texture; larger: closer to the guide)
    pca_dims: int = 16  # matching dimensions (the style patches' principal components)
    style_stride: int = 2  # stride of the style's patch bank
    noise: float = 0.5  # std of the noise added to the guide before the first match, x the style's std:
    #   a flat guide region would otherwise match one style patch everywhere (a visible repeat)
    detail_sigma: float = 2.0  # add_texture_detail: the texture's detail is what a Gaussian of this
    #   many working pixels removes (its coarser layout is the guide's)

    def __post_init__(self) -> None:
        checks.integer(self.work_side, "work_side", lo=16, hi=1024)
        checks.integer(self.stride, "stride", lo=1, hi=32)
        checks.integer(self.iterations, "iterations", lo=1, hi=20)
        checks.real(self.fidelity, "fidelity", lo=0.0)
        checks.integer(self.pca_dims, "pca_dims", lo=1)
        checks.integer(self.style_stride, "style_stride", lo=1, hi=16)
        checks.real(self.noise, "noise", lo=0.0)
        checks.real(self.detail_sigma, "detail_sigma", lo=0.0, lo_open=True)


def _work_size(H: int, W: int, cfg: TextureConfig) -> tuple[int, int]:
    """Working (h, w) of an H x W guide: longer side ``work_side`` (never above the guide's own),
    at least one patch."""
    k = min(cfg.work_side, max(H, W)) / max(H, W)
    p = 2 * cfg.stride
    return max(p, round(H * k)), max(p, round(W * k))


def noise_shape(height: int, width: int, config: TextureConfig = TextureConfig(),
                channels: int = 3) -> tuple[int, int, int, int]:
    """Shape (1, C, h', w') of the start noise ``synthesize_texture`` takes for a guide of
    ``height`` x ``width`` with C ``channels``: the working size padded by one stride per side to
    whole strides."""
    h, w = _work_size(height, width, config)
    s = config.stride
    return (1, channels, math.ceil(h / s) * s + 2 * s, math.ceil(w / s) * s + 2 * s)


def cover_resize(style: Tensor, height: int, width: int) -> Tensor:
    """The style (1, C, H', W') resized, aspect kept, to the smallest size that covers
    ``height`` x ``width``: the style's texture is as large relative to the output as it is relative
    to the style image."""
    Hs, Ws = style.shape[-2:]
    f = max(height / Hs, width / Ws)
    return resize_bilinear(style, (max(height, round(Hs * f)), max(width, round(Ws * f))))


def _window(p: int, device, dtype) -> Tensor:
    """(p, p) separable sin^2 window; copies at stride p / 2 sum to one."""
    t = torch.arange(p, device=device, dtype=dtype)
    w = torch.sin(math.pi * (t + 0.5) / p) ** 2  # w(t) + w(t + p/2) = 1
    return w[:, None] * w[None, :]


def _match(q: Tensor, keys: Tensor, key_sq: Tensor, chunk: int | None = None) -> Tensor:
    """Index (Nq,) of the nearest key (Nk, d) for each query (Nq, d) in squared distance.

    Queries go in chunks of about 2 MB of distances (``chunk`` rows; None: 2^19 / Nk): the
    (chunk, Nk) block is written by addmm and read by argmin while it is still in cache. With
    4096-row chunks the same work took 2.3x the time (1089 queries x 5673 keys, d = 16, one thread:
    22 ms vs 9.5 ms at 64 rows), memory-bound on the distance matrix.
    """
    chunk = chunk or max(16, (1 << 19) // max(1, keys.shape[0]))
    out = []
    for i in range(0, q.shape[0], chunk):
        # ||q - k||^2 = ||q||^2 - 2 q.k + ||k||^2; ||q||^2 does not change the argmin.
        out.append(torch.addmm(key_sq[None], q[i:i + chunk], keys.T, alpha=-2).argmin(1))
    return torch.cat(out)


@torch.no_grad()
def synthesize_texture(guide: Tensor, style: Tensor, config: TextureConfig = TextureConfig(),
                       noise: Tensor | None = None) -> Tensor:
    """Re-draw ``guide`` with the patches of ``style`` (see the module docstring).

    Args:
        guide: (1, C, H, W) in [0, 1]: where the texture goes (e.g. the stylised content).
        style: (1, C, H', W') in [0, 1] at the scale its texture should have in the output (resize it
            to the content's size first for "as large relative to the picture as in the style").
        config: working side, patch stride, iterations, fidelity, start noise.
        noise: standard normal start noise of shape ``noise_shape(H, W, config)`` (scaled by
            ``config.noise`` x the style's std); None: no noise (a flat guide then repeats one patch).

    Returns:
        (1, 3, H, W) in [0, 1]: the style's full-resolution pixels, arranged after the guide.
    """
    if guide.ndim != 4 or style.ndim != 4 or guide.shape[0] != 1 or style.shape[0] != 1:
        raise ValueError(f"guide and style must be (1, C, H, W), got {tuple(guide.shape)} and {tuple(style.shape)}")
    cfg = config
    H, W = guide.shape[-2:]
    Hs, Ws = style.shape[-2:]
    s = cfg.stride
    p = 2 * s
    h, w = _work_size(H, W, cfg)
    k = h / H  # working pixels per guide pixel
    hs, ws = max(p + 1, round(Hs * k)), max(p + 1, round(Ws * k))
    g = resize_bilinear(guide.float(), (h, w))  # (1, C, h, w)
    st = resize_bilinear(style.float(), (hs, ws))  # (1, C, hs, ws)
    C = g.shape[1]

    # The style's patch bank (Ns, C p p) and its PCA basis (C p p, d).
    bank = F.unfold(st, p, stride=cfg.style_stride)[0].T  # (Ns, C p p)
    ns_w = (ws - p) // cfg.style_stride + 1  # bank columns
    mean = bank.mean(0)
    d = min(cfg.pca_dims, bank.shape[1], bank.shape[0])
    # Principal axes from the covariance of (at most 4096 of) the patches: an eigh of a (C p p)^2
    # matrix is ~10x cheaper here than an SVD of the patch matrix.
    few = bank[torch.randperm(bank.shape[0], generator=torch.Generator().manual_seed(0))[:4096]] - mean
    _, vecs = torch.linalg.eigh(few.T @ few)  # eigenvalues ascending
    basis = vecs[:, -d:]  # (C p p, d)
    keys = (bank - mean) @ basis  # (Ns, d)
    key_sq = keys.square().sum(1)

    # The guide padded by one stride on each side (replicate), up to a whole number of strides, so that
    # the 2 x 2 overlapping layers of patches cover every pixel.
    ph, pw = math.ceil(h / s) * s + 2 * s, math.ceil(w / s) * s + 2 * s
    pad = (s, pw - w - s, s, ph - h - s)  # left, right, top, bottom

    def padded(x: Tensor) -> Tensor:
        return F.pad(x, pad, mode="replicate")

    win = _window(p, g.device, g.dtype).reshape(1, 1, p * p).expand(1, C, -1).reshape(1, C * p * p, 1)
    norm = F.fold(win.expand(1, -1, ((ph - p) // s + 1) * ((pw - p) // s + 1)), (ph, pw), p, stride=s)
    gp = padded(g)
    x = gp
    if noise is not None and cfg.noise > 0:
        if tuple(noise.shape) != (1, C, ph, pw):
            raise ValueError(f"noise must have shape {(1, C, ph, pw)} (noise_shape), got {tuple(noise.shape)}")
        x = gp + cfg.noise * st.std() * noise.to(gp)
    idx = None
    for it in range(cfg.iterations):
        q = F.unfold(x, p, stride=s)[0].T  # (Nq, C p p)
        idx = _match((q - mean) @ basis, keys, key_sq)  # (Nq,)
        if it == cfg.iterations - 1:
            break
        synth = F.fold((bank[idx].T[None] * win), (ph, pw), p, stride=s) / norm.clamp_min(1e-8)  # (1, C, ph, pw)
        x = (synth + cfg.fidelity * gp) / (1 + cfg.fidelity)

    # Paste at full resolution. Patch (a, b) of the padded grid has its top-left at work pixel
    # (a s - s, b s - s), i.e. full pixel ((a - 1) S, (b - 1) S) with S = s / k; its match starts at
    # style work pixel (u, v), i.e. full style pixel (u / k, v / k).
    na, nb = (ph - p) // s + 1, (pw - p) // s + 1
    u = (idx // ns_w).reshape(na, nb).to(g.dtype) * cfg.style_stride  # (na, nb) style rows (work px)
    v = (idx % ns_w).reshape(na, nb).to(g.dtype) * cfg.style_stride
    S_h, S_w = s * H / h, s * W / w  # one stride in full pixels (rows, columns)
    xs = torch.arange(W, dtype=g.dtype, device=g.device) + 0.5  # pixel centres
    out = torch.empty(1, C, H, W, dtype=guide.dtype, device=g.device)
    style_f = style.float()
    band = max(1, PASTE_PIXELS // W)  # rows per band: bounds the (rows, W) maps of a huge picture
    for y0 in range(0, H, band):
        ys = torch.arange(y0, min(H, y0 + band), dtype=g.dtype, device=g.device) + 0.5
        acc = torch.zeros(1, C, len(ys), W, dtype=g.dtype, device=g.device)
        wsum = torch.zeros(1, 1, len(ys), W, dtype=g.dtype, device=g.device)
        for ry in (0, 1):
            # Layer ry holds the patches a = ry, ry + 2, ...; each covers 2 S rows from (a - 1) S.
            a = (torch.floor((ys / S_h + 1 - ry) / 2) * 2 + ry).long().clamp(0, na - 1)  # (rows,)
            ty = ys - (a.to(g.dtype) - 1) * S_h  # (rows,) in [0, 2 S)
            wy = torch.sin(math.pi * ty / (2 * S_h)) ** 2
            for rx in (0, 1):
                b = (torch.floor((xs / S_w + 1 - rx) / 2) * 2 + rx).long().clamp(0, nb - 1)  # (W,)
                tx = xs - (b.to(g.dtype) - 1) * S_w
                wx = torch.sin(math.pi * tx / (2 * S_w)) ** 2
                # Style full-resolution position of every pixel through its patch in this layer.
                sy = u[a][:, b] * (Hs / hs) + ty[:, None]  # (rows, W) style rows, in pixels (centres)
                sx = v[a][:, b] * (Ws / ws) + tx[None, :]
                grid = torch.stack([sx / Ws * 2 - 1, sy / Hs * 2 - 1], -1)[None]  # (1, rows, W, 2)
                sample = F.grid_sample(style_f, grid, mode="bilinear", padding_mode="reflection",
                                       align_corners=False)
                wgt = (wy[:, None] * wx[None, :])[None, None]  # (1, 1, rows, W)
                acc += sample * wgt
                wsum += wgt
        out[:, :, y0:y0 + len(ys)] = (acc / wsum.clamp_min(1e-8)).clamp(0, 1).to(guide.dtype)
    return out


def add_texture_detail(image: Tensor, texture: Tensor, amount: float, sigma: float, *,
                       out: Tensor | None = None) -> Tensor:
    """Add the texture's fine luma detail to the image, keeping the image's colour and layout.

    Y = 0.299 R + 0.587 G + 0.114 B of the texture, minus its Gaussian blur, is added with weight
    ``amount`` to all three channels of the image (a grey offset: hue and chroma stay the image's up
    to clipping). The texture brings its mortar lines and pebble edges; what is coarser than
    ``sigma`` (and every colour) stays the image's, so the content's objects and the stylised colours
    survive.

    Args:
        image: (B, 3 or 1, H, W) in [0, 1].
        texture: (B, 3 or 1, H, W) in [0, 1] (``synthesize_texture``'s output for this image).
        amount: >= 0, the weight of the detail (0 returns ``image``).
        sigma: Gaussian standard deviation in pixels of this size.
        out: where to write the result (``image`` itself is allowed: each band of rows is read before it
            is written); None: a new tensor.

    Returns:
        (B, 3, H, W) in [0, 1], the image's dtype (``out`` when given).
    """
    if amount == 0:
        return image if out is None else out.copy_(image)
    if texture.shape[1] == 3:
        luma = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=texture.device)
        y = (texture.float() * luma[:, None, None]).sum(1, keepdim=True)  # (B, 1, H, W)
    else:  # a gray image is its own luma
        y = texture.float()[:, :1]
    smooth = _smooth(y, sigma)
    if out is None:
        out = torch.empty(image.shape, dtype=image.dtype, device=image.device)
    for r0 in range(0, image.shape[-2], CARRY_ROWS):  # in bands of rows: no full-size temporaries on a big photo
        rows = slice(r0, r0 + CARRY_ROWS)
        detail = y[..., rows, :] - smooth[..., rows, :]
        out[..., rows, :] = (image[..., rows, :].float() + amount * detail).clamp_(0, 1)
    return out


# Above this blur width (pixels) the blur is computed on a copy shrunk so the width there is about this: the
# blurred image is smooth at that scale, so nothing it holds is lost, and a 48-megapixel photo's 751-tap
# kernel (16 CPU s) becomes a few ms. Below it (every picture up to ~1300 px a side) the blur is exact.
SMOOTH_SIGMA = 10.0


def _smooth(y: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of (B, 1, H, W) with standard deviation ``sigma`` pixels (reflected borders); for
    sigma > SMOOTH_SIGMA at 1 / f of the size (f = sigma // SMOOTH_SIGMA), resized back bilinearly."""
    import kornia.filters as kf

    f = int(sigma // SMOOTH_SIGMA)
    H, W = y.shape[-2:]
    small = y if f < 2 else F.interpolate(y, size=(max(1, round(H / f)), max(1, round(W / f))), mode="area")
    s = sigma if f < 2 else sigma * small.shape[-1] / W
    k = min(2 * round(3 * s) + 1, 2 * min(small.shape[-2:]) - 1)  # (a reflected border is shorter than the side)
    blurred = kf.gaussian_blur2d(small, (k, k), (s, s), border_type="reflect") if k > 1 else small
    return blurred if f < 2 else F.interpolate(blurred, size=(H, W), mode="bilinear", align_corners=False)
