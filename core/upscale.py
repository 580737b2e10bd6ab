"""Carry a trained pMF to a larger image size with the same token grid (a warm start, not a resampler).

A ViT on p x p patches sees an image only through its patch embedding and writes it only through its
final linear layer. Multiply the image side and the patch side by the same ``factor`` and the token
grid, the positions, RoPE and every block stay as they are; only those two layers change shape:

- the patch embedding's p x p kernel becomes a (f p) x (f p) kernel whose every weight is the old one
  repeated over an f x f block and divided by f^2, so that a nearest-upsampled input gives exactly
  the old tokens;
- the final layer's p * p * C outputs become (f p)^2 * C outputs, each old pixel's row repeated over
  its f x f block, so that the new network writes the nearest-upsampled old prediction.

So ``up(net)(nearest_up(z)) == nearest_up(net(z))`` (tested). The noise must keep its per-token
strength: averaged over an f x f block, i.i.d. noise of std s shrinks to s / f, so the new network
is given ``noise_scale * f`` (the pMF paper's rule "noise scale = image side / 256" for the same reason).
Training the converted network on images of the new size then adds the detail inside each patch,
starting from everything the small model knew (classes, layout, colour) instead of from random
weights.

Example:
    >>> from core.model import build_model
    >>> big = upscale_patches(build_model("pMF-T/4", in_channels=3), 2)
    >>> big.cfg.image_size, big.cfg.patch_size, big.cfg.noise_scale
    (64, 8, 2.0)
"""

from __future__ import annotations

from dataclasses import replace

import torch

from core.checks import integer
from core.model import PixelMeanFlow

__all__ = ["upscale_patches", "upscale_state_dict"]

# Final layers that write pixels (u-head, v-head, backward head); their rows are ordered (row, col, channel).
_FINAL_LAYERS = ("u_final.linear.", "v_final.linear.", "b_final.linear.")


def upscale_state_dict(sd: dict[str, torch.Tensor], patch_size: int, channels: int, factor: int) -> dict[str, torch.Tensor]:
    """The weights of ``upscale_patches`` without building a network (a state dict in, a new one out).

    Args:
        sd: a ``PixelMeanFlow`` state dict (v-head and backward head optional).
        patch_size: the old patch side p.
        channels: image channels C (the final layers write p * p * C values per token).
        factor: integer f >= 1; the new patch side is f * p.

    Returns:
        A new dict; only ``patch_embed.proj1.weight`` and the final layers' weights and biases change.
    """
    f, p, C = factor, patch_size, channels
    out = dict(sd)
    w = sd["patch_embed.proj1.weight"]  # (d', C_in, p, p)
    out["patch_embed.proj1.weight"] = w.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3) / f**2  # (d', C_in, fp, fp)
    for prefix in _FINAL_LAYERS:
        for name in ("weight", "bias"):
            key = prefix + name
            if key not in sd:
                continue
            t = sd[key]  # (p * p * C, ...) rows in (row, col, channel) order
            t = t.reshape(p, p, C, *t.shape[1:])  # (p, p, C, ...)
            t = t.repeat_interleave(f, dim=0).repeat_interleave(f, dim=1)  # (fp, fp, C, ...)
            out[key] = t.reshape(f * p * f * p * C, *t.shape[3:]).contiguous()  # ((fp)^2 C, ...)
    return out


def upscale_patches(net: PixelMeanFlow, factor: int, noise_scale: float | None = None) -> PixelMeanFlow:
    """A network for images ``factor`` times larger that starts as the nearest-upsampled ``net``.

    Args:
        net: a trained ``PixelMeanFlow`` (any heads; it is not modified).
        factor: integer >= 1; image side and patch side are both multiplied by it.
        noise_scale: the new network's noise scale; default ``net.cfg.noise_scale * factor``, which
            keeps the noise per token at the strength ``net`` was trained with.

    Returns:
        A new ``PixelMeanFlow`` (same device and dtype, same heads) of
        ``image_size = factor * net.cfg.image_size`` and ``patch_size = factor * net.cfg.patch_size``.

    Example:
        >>> from core.model import build_model
        >>> upscale_patches(build_model("pMF-T/4", in_channels=1), 4).cfg.image_size
        128
    """
    factor = integer(factor, "factor", lo=1)
    cfg = net.cfg
    new_cfg = replace(
        cfg,
        image_size=cfg.image_size * factor,
        patch_size=cfg.patch_size * factor,
        noise_scale=float(noise_scale) if noise_scale is not None else cfg.noise_scale * factor,
    )
    param = next(net.parameters())
    big = PixelMeanFlow(new_cfg, with_v_head=net.has_v_head, attn_backend=net.attn_backend)
    big = big.to(device=param.device, dtype=param.dtype)
    big.load_state_dict(upscale_state_dict(net.state_dict(), cfg.patch_size, cfg.in_channels, factor))
    return big.train(net.training)
