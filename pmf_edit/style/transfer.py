"""Style transfer through a pMF network's average-velocity field.

"This picture, in that style": keep the content's layout, take the colours and textures of a style
image or of a style class of the model, in a handful of network evaluations (NFE).

Time convention (``core/meanflow.py``): t = 1 is noise, t = 0 is data, z_t = (1 - t) x + t s e; a jump
is z_r = z_t - (t - r) u(z_t, r, t). With t* = ``strength``:

    0. colour      (``color_first``, default) the content's Lab mean/std moved towards the style's
                   by ``color_weight`` (default ``strength``; Reinhard statistics, 0 NFE): the model
                   then stylises an image that already has the style's colours
    1. states      z_c = state of the content at t*, z_s = state of the style at t*
                   (``inversion="fixed_point"``: implicit backward jumps, ``pmf_edit.velocity.invert``;
                    ``"noise"``: z = (1 - t*) x + t* s e with the caller's generator, 0 NFE)
    2. AdaIN       (``state_adain``, off by default) z_c <- per-channel mean/std of z_c matched to
                   z_s (0 NFE)
    3. jump        z_c -> image in ``num_steps`` jumps under the style class (or the null class),
                   with the style's own jumps run in the same batch so that, in the blocks from
                   ``inject_from`` on, the content's attention also reads the style's image-token
                   keys/values (``method="kv"``, StyleAligned-like attention sharing), or the content's
                   image-token features are AdaIN-matched to the style's (``method="feat"``), or
                   nothing is injected (``method="swap"``: a condition swap with partial inversion);
                   ``"kv_replace"`` swaps the content's image-token keys/values for the style's
                   (``attention_temperature`` sharpens the content's attention over them,
                   ``injection_weight`` blends it with the content's own attention; neither
                   became a default: docs/style.md, "Style injection into attention")
    4. residual    (``residual``, default) output = content + (stylised - the content's own jump
                   from its un-AdaIN'd state with nothing injected), +1 NFE: keeps the detail the
                   model's regeneration would blur, transfers only the change the style makes
    5. colour      (``color_first=False``) the same Lab move on the output instead of step 0
    6. texture     (``texture`` > 0, default) the style image's own patches placed after the output at
                   full resolution, their fine luma detail added (``pmf_edit.style.texture``): the
                   texture a model-size network cannot draw into a large picture

``strength`` = 0 returns the content; 1 inverts all the way to noise. A content of any size goes
through the size policy of every pmf_edit task (``pmf_edit.images``, ``size_mode``): "fit" (default:
the whole picture at the model's side, aspect kept by reflection, the network's change carried back
to full resolution by an edge-aware upsampler, so the content keeps its own full-resolution detail),
"crop" or "tile" (overlapping model-size tiles at full resolution: the model's texture at its own
scale, but a patch-period mesh and tile seams show; docs/style.md). ``nfe`` counts model-size
network evaluations per input image, tiles and the style branch included.

Example:
    >>> from core.checkpoint import bundled_model_dir
    >>> from pmf_edit.editing import from_pretrained
    >>> net, cfg = from_pretrained(bundled_model_dir("photos"))
    >>> out = style_transfer(net, content01, style01, strength=0.6)
    >>> out.images.shape, out.nfe
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from core import checks
from core.attention import Backend, attention
from core.images import from_model_range, to_model_range
from core.model import AttentionProcessor, PixelMeanFlow
from pmf_edit import velocity as vf
from pmf_edit.boundary import (check_guidance, check_images, check_labels, check_steps, check_strength, forward_noise,
                               sample_noise, state_like, with_precision)
from pmf_edit.images import (SIZE_MODES, TILE_CHUNK, SizePlan, check_image_size, chunk_progress, from_network,
                             input_chunks, plan_size, repeat_per_tile, to_network)
from pmf_edit.style.texture import TextureConfig, add_texture_detail, cover_resize, noise_shape, synthesize_texture

__all__ = ["StyleResult", "style_transfer", "resolve_style_class"]

Method = Literal["kv", "kv_replace", "feat", "swap"]
StateMethod = Literal["fixed_point", "noise"]  # how the content and style states at t* are found
SizeMode = Literal["fit", "crop", "tile", "auto", "native", "resize"]
# Former size-mode names, still accepted: "auto" and "native" are the default (at the model's size
# every mode is the plain model-size pass), "resize" was fit without the aspect-keeping padding.
_SIZE_ALIASES = {"auto": "fit", "native": "fit", "resize": "fit"}
DEFAULT_SIZE_MODE = "fit"  # no periodic artefacts, contrast kept (benchmarks/bench_style_curve.py)
StyleSpec = Tensor | int | str | Sequence[int]

# Defaults chosen by benchmarks/bench_style.py on 16 tuning pairs (--seed 1) of the bundled photos
# model (docs/style.md): kv with the colour move first, at 0.7, was the best variant that needs no
# style class (combined 2.929; the first default, AdaIN + colour after at 0.5, scored 3.277).
DEFAULT_STRENGTH = 0.7
DEFAULT_METHOD: Method = "kv"
DEFAULT_RESIDUAL = True  # add the style's change to the content instead of regenerating it
DEFAULT_INJECT_FROM = 0  # first block (over shared + u blocks) whose attention reads the style
DEFAULT_INJECTION_WEIGHT = 1.0  # kv: blend own (0) / injected (1) attention; feat: the AdaIN weight
DEFAULT_ATTENTION_TEMPERATURE = 1.0  # kv: multiplies the content's logits over the shared keys
StyleScale = Literal["whole", "content"]
DEFAULT_STYLE_SCALE: StyleScale = "whole"  # the whole style image squeezed into the model's input
# The style's own texture added at full resolution (pmf_edit.style.texture): detail weight = texture x
# strength. Chosen by eye on the tuning pairs, where the Gram-at-Reinhard's-content-distance reading
# does not separate the weights (benchmarks/results/style_texture_tuning.json, docs/style.md).
DEFAULT_TEXTURE = 0.5
CLASS_MOSAIC = 3  # a style class's texture exemplar: CLASS_MOSAIC^2 one-step samples side by side


@dataclass
class StyleResult:
    """Stylised images and what they cost.

    Attributes:
        images: (B, 3, H, W) in [0, 1], the content's dtype and size.
        nfe: network evaluations per input image, at the model's size (tiles and the style branch
            included).
        size_mode: "native" (content at the model's size: nothing resized), "fit", "crop" or "tile".
        num_tiles: model-size tiles per image (1 unless tiled).
        method: the injection method that ran ("kv", "feat" or "swap").
        style_labels: (B,) class condition of the generation, or None for the null class.
    """

    images: Tensor
    nfe: int
    size_mode: str
    num_tiles: int
    method: str
    style_labels: Tensor | None


# ------------------------------------------------------------------------------------------------
# Validation


def _check_rgb(net: PixelMeanFlow, x: Tensor, name: str) -> None:
    """The boundary's image rule with this network's channels, any size the size policy accepts."""
    check_images(x, name, channels=net.cfg.in_channels)
    check_image_size(x, name)


def resolve_style_class(
    net: PixelMeanFlow, style: int | str | Sequence[int] | Tensor, n: int, class_names: Sequence[str] | None = None,
    name: str = "style",
) -> Tensor:
    """Class indices (n,) for a style given as an index, a class name, or (n,) indices.

    Args:
        net: the network (its ``cfg.num_classes`` bounds the indices).
        style: int index, class name (needs ``class_names``; ``"class:NAME"`` also works), or (n,) ints.
        n: batch size.
        class_names: the model's class names (``config["class_names"]`` of a model folder).

    Example:
        >>> resolve_style_class(net, "class:brick", 2, cfg["class_names"])
        tensor([7, 7])
    """
    if isinstance(style, str) and not style.startswith("class:") and Path(style).is_file():
        raise ValueError(f"{name} {style!r} is an image file: read it with pmf_edit.open_image(path).pixels and "
                         "pass that (1, 3, H, W) tensor (a string names a style class)")
    if isinstance(style, str):
        style = style.removeprefix("class:")
    return check_labels(net, style, n, f"{name} class", required=True, class_names=class_names)


# ------------------------------------------------------------------------------------------------
# Statistics transfer


def _adain(x: Tensor, ref: Tensor, weight: float = 1.0, dims: tuple[int, ...] = (2, 3)) -> Tensor:
    """Move x's per-channel mean/std (over ``dims``) towards ref's by ``weight`` in [0, 1]."""
    mu_x, sd_x = x.mean(dims, keepdim=True), x.std(dims, keepdim=True) + 1e-5
    mu_r, sd_r = ref.mean(dims, keepdim=True), ref.std(dims, keepdim=True) + 1e-5
    mu = (1 - weight) * mu_x + weight * mu_r
    sd = (1 - weight) * sd_x + weight * sd_r
    return (x - mu_x) / sd_x * sd + mu


def _lab_color_match(x01: Tensor, style01: Tensor, weight: float) -> Tensor:
    """Reinhard-style Lab statistics move of x towards the style (the image field's colours).

    Grey images (C = 1) are their own lightness: the same move on the one channel.
    """
    import kornia.color as kc

    if x01.shape[1] == 1:
        return _adain(x01.float(), style01.float(), weight).clamp(0, 1).to(x01.dtype)
    lab = kc.rgb_to_lab(x01.float())
    ref = kc.rgb_to_lab(style01.float())
    return kc.lab_to_rgb(_adain(lab, ref, weight), clip=True).clamp(0, 1).to(x01.dtype)


# ------------------------------------------------------------------------------------------------
# Injection of the style branch into the content branch (batch = [content (n); style (n)])


def _blocks(net: PixelMeanFlow) -> list[torch.nn.Module]:
    return list(net.shared_blocks) + list(net.u_blocks)


def _shared_kv(prefix: int, replace: bool, weight: float = 1.0, temperature: float = 1.0) -> AttentionProcessor:
    """Attention processor for a [content (n); style (n)] batch: the content half also attends to
    the style half's image tokens.

    The content queries see the keys/values [content prefix + content image tokens + style image
    tokens] (shared, StyleAligned-like), or with ``replace`` [content prefix + style image tokens]
    (StyleID-like). ``temperature`` (> 0) multiplies the content's attention logits over them
    (StyleID's T > 1 sharpens the match to the most similar style tokens); ``weight`` in [0, 1]
    blends the content's own plain attention (0) with the injected one (1). The style half runs the
    plain attention, so its own trajectory is what a plain forward would give.
    """

    def process(q: Tensor, k: Tensor, v: Tensor, backend: Backend) -> Tensor:
        n, L, hd = q.shape[0] // 2, q.shape[2], q.shape[3]  # q, k, v: (2n, nh, L, hd)
        own = prefix if replace else L  # content tokens kept: the prefix only, or all of them
        k_c = torch.cat([k[:n, :, :own], k[n:, :, prefix:]], dim=2)  # (n, nh, own + N, hd)
        v_c = torch.cat([v[:n, :, :own], v[n:, :, prefix:]], dim=2)
        # Cross-length attention (L queries, own + N keys): core.attention is self-attention only,
        # and this path never runs under a JVP, so plain SDPA is enough.
        o_c = F.scaled_dot_product_attention(q[:n], k_c, v_c, scale=temperature / hd**0.5)
        if weight < 1.0:
            o_c = weight * o_c + (1.0 - weight) * attention(q[:n], k[:n], v[:n], backend=backend)
        o_s = attention(q[n:], k[n:], v[n:], backend=backend)
        return torch.cat([o_c, o_s])  # (2n, nh, L, hd)

    return process


@contextlib.contextmanager
def _inject(net: PixelMeanFlow, method: Method, inject_from: int, weight: float,
            temperature: float = 1.0) -> Iterator[None]:
    """Make the blocks from ``inject_from`` on read the style half of a [content; style] batch:
    an attention processor (``core.model.Attention.processor``) for "kv" / "kv_replace", a forward
    hook for "feat". Both are removed on exit."""
    blocks = _blocks(net)[inject_from:]
    P = net.cfg.num_prefix
    handles, processed = [], []
    try:
        if method in ("kv", "kv_replace"):
            for blk in blocks:
                if blk.attn.processor is not None:
                    raise RuntimeError("an attention processor is already set on this network (nested injection?)")
                blk.attn.processor = _shared_kv(P, method == "kv_replace", weight, temperature)
                processed.append(blk.attn)
        elif method == "feat":

            def hook(_mod, _inp, out: Tensor) -> Tensor:
                n = out.shape[0] // 2
                img_c, img_s = out[:n, P:], out[n:, P:]  # (n, N, D) image tokens
                # AdaIN over the token axis: per-channel statistics of the style's features.
                img_c = _adain(img_c, img_s, weight, dims=(1,))
                return torch.cat([torch.cat([out[:n, :P], img_c], 1), out[n:]])

            handles = [blk.register_forward_hook(hook) for blk in blocks]
        yield
    finally:
        for attn in processed:
            attn.processor = None
        for h in handles:
            h.remove()


# ------------------------------------------------------------------------------------------------
# The model-size core


def _state(
    net: PixelMeanFlow, x: Tensor, t: float, y: Tensor | None, inversion: StateMethod,
    num_inversion_steps: int, num_iterations: int, eps: Tensor | None,
) -> tuple[Tensor, int]:
    """z_t of images x (model range) and the NFE spent; ``eps`` is the noise of ``"noise"``."""
    if inversion == "noise":
        return forward_noise(x, eps.to(x), t, net.cfg.noise_scale), 0
    inv = vf.invert(net, x, t, labels=y, num_intervals=num_inversion_steps, num_iterations=num_iterations,
                    init="carry")
    return inv.latents, inv.nfe


@torch.no_grad()
def _stylize_native(
    net: PixelMeanFlow, x_c: Tensor, x_s: Tensor, *, t: float, y_gen: Tensor | None, y_content: Tensor | None,
    y_style: Tensor | None, method: Method, inversion: StateMethod, num_inversion_steps: int,
    num_iterations: int, num_steps: int, guidance_scale: float, state_adain: bool, inject_from: int,
    eps: Tensor | None, residual: bool = False, injection_weight: float = 1.0, attention_temperature: float = 1.0,
) -> tuple[Tensor, int]:
    """Content x_c and style x_s, (n, C, S, S) in the model range -> (stylised (n, C, S, S), NFE).

    ``eps``: (n, 2, C, S, S) noise of the content and the style state (``inversion="noise"`` only).
    """
    n = x_c.shape[0]
    e_c, e_s = (None, None) if eps is None else (eps[:, 0], eps[:, 1])
    z_c, nfe_c = _state(net, x_c, t, y_content, inversion, num_inversion_steps, num_iterations, e_c)
    z_s, nfe_s = _state(net, x_s, t, y_style, inversion, num_inversion_steps, num_iterations, e_s)
    nfe = nfe_c + nfe_s
    delta = 0.0
    if residual:
        # The content's own reconstruction (same state, its own condition, nothing injected): the
        # stylised image minus it is the change the style makes; adding that change to the content
        # cancels the model's reconstruction error (blur) and keeps the content's detail.
        z, _ = vf.generate(net, z_c, t, num_steps, y_content)
        delta = x_c - z
        nfe += num_steps
    if state_adain:
        z_c = _adain(z_c, z_s)
    null = torch.full((n,), net.null_class, dtype=torch.long, device=z_c.device)
    y_c = y_gen if y_gen is not None else null
    if method == "swap":
        z, _ = vf.generate(net, z_c, t, num_steps, y_c, guidance_scale)
        return z + delta, nfe + num_steps
    # The style runs its own jumps beside the content in one batch; the injection lets the content
    # read it. Style branch: its own class if known (else null), unguided.
    y_s = y_style if y_style is not None else null
    z = torch.cat([z_c, z_s.to(z_c)])
    y = torch.cat([y_c, y_s])
    omega = torch.cat([torch.full((n,), float(guidance_scale)), torch.ones(n)]).to(z)
    with _inject(net, method, inject_from, injection_weight, attention_temperature):
        z, _ = vf.generate(net, z, t, num_steps, y, omega)
    return z[:n] + delta, nfe + 2 * num_steps


# ------------------------------------------------------------------------------------------------
# The style reference


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    down = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=down)


def _style_reference(style: Tensor, side: int, scale: float, style_scale: StyleScale) -> Tensor:
    """Style images (n, C, H', W') -> the model-size reference (n, C, S, S).

    "whole" squeezes the whole image into S x S (aspect not kept). "content" resizes it by ``scale``,
    the factor the content itself is resized by on its way into the network, so that the style's
    texture keeps its size relative to the content (bricks as large in the output as in the style
    image), then takes the centre S x S; a style too small for that is enlarged to cover S x S.
    """
    if style_scale == "whole":
        return _resize(style, (side, side))
    h, w = style.shape[-2:]
    f = max(scale, side / min(h, w))  # at least cover S x S
    nh, nw = max(side, round(h * f)), max(side, round(w * f))
    x = _resize(style, (nh, nw))  # (n, C, nh, nw)
    top, left = (nh - side) // 2, (nw - side) // 2
    return x[:, :, top:top + side, left:left + side]


@checks.checked
@with_precision
def style_transfer(
    net: PixelMeanFlow,
    content: Tensor,
    style: StyleSpec,
    *,
    strength: float = DEFAULT_STRENGTH,
    method: Method = DEFAULT_METHOD,
    style_labels: int | Sequence[int] | Tensor | None = None,
    content_labels: int | Sequence[int] | Tensor | None = None,
    class_names: Sequence[str] | None = None,
    inversion: StateMethod = "fixed_point",
    num_inversion_steps: int = 1,
    num_iterations: int = 1,
    num_steps: int = 1,
    guidance_scale: float = 1.0,
    state_adain: bool = False,
    color_match: bool = True,
    color_weight: float | None = None,
    color_first: bool = True,
    residual: bool = DEFAULT_RESIDUAL,
    inject_from: int = DEFAULT_INJECT_FROM,
    injection_weight: float = DEFAULT_INJECTION_WEIGHT,
    attention_temperature: float = DEFAULT_ATTENTION_TEMPERATURE,
    size_mode: SizeMode = DEFAULT_SIZE_MODE,
    style_scale: StyleScale = DEFAULT_STYLE_SCALE,
    texture: float = DEFAULT_TEXTURE,
    texture_config: TextureConfig | None = None,
    generator: torch.Generator | None = None,
) -> StyleResult:
    """Render ``content`` in the style of a reference image or of a class of the model.

    Args:
        net: an RGB pMF network (e.g. the bundled ``photos`` model).
        content: (B, 3, H, W) float32/float64 in [0, 1]; any H, W in [8, 16384] (see ``size_mode``).
        style: a reference image (B or 1, 3, H', W') in [0, 1] (resized to the model's side), or a
            style class: an index, a name (with ``class_names``; ``"class:NAME"`` works too), or (B,)
            indices. A class is turned into a reference by a one-step sample (1 NFE, ``generator``).
        strength: in [0, 1]; the time t* the content is inverted to, the weight of the colour move.
            0 returns the content (0 NFE), larger values trade content fidelity for style.
        method: "kv" (content attends to its own and the style's keys/values), "kv_replace" (to
            the style's image-token keys/values instead of its own), "feat" (AdaIN of the content's
            token features to the style's) or "swap" (no injection: partial inversion + the style
            class; needs a class).
        style_labels: the class a reference style image shows, if known: the generation is then
            conditioned on it (otherwise on the null class). Ignored when ``style`` is a class.
        content_labels: the class the content shows, if known (its inversion is conditioned on it).
        class_names: the model's class names, to resolve a style given by name.
        inversion: "fixed_point" (deterministic implicit backward jumps) or "noise" (stochastic
            re-noising from ``generator``, 0 NFE).
        num_inversion_steps: intervals of the fixed-point inversion (each costs ``num_iterations``).
        num_iterations: fixed-point updates per interval.
        num_steps: jumps from t* back to the image.
        guidance_scale: omega >= 1 of the generation (a network input: no extra NFE).
        state_adain: match the content state's per-channel mean/std to the style state's.
        color_match: move the Lab mean/std towards the style's (Reinhard statistics).
        color_weight: how far that colour move goes, in [0, 1] (1 = the style's Lab mean/std, as
            Reinhard transfer); None = ``strength``.
        color_first: make that colour move on the content before the velocity-field pass (the
            model then stylises an image that already has the style's colours; default, measured
            better than after: docs/style.md) instead of on the output.
        residual: return content + (stylised - reconstruction), the reconstruction being the
            content's own jump from the same state with nothing injected (+1 NFE): keeps the
            content's detail that the model's regeneration would blur.
        inject_from: first block (counting shared then u-head blocks) that reads the style branch.
        injection_weight: in [0, 1], how much of the injection the content takes: for "kv" /
            "kv_replace" the blend of its own plain attention (0) and the attention over the style's
            keys/values (1); for "feat" the AdaIN weight of its token features.
        attention_temperature: in [0.25, 8], "kv" / "kv_replace" only: the content's attention logits
            over the shared keys are multiplied by it (StyleID's temperature: > 1 makes each content
            token copy its closest style tokens more sharply).
        size_mode: "fit" (default: the whole content at the model's side, aspect kept by reflection;
            the change is carried back to full resolution by an edge-aware upsampler), "crop"
            (the centre square; outside it the content is kept) or "tile" (overlapping model-size
            tiles at full resolution, changes blended with a tent window); ``pmf_edit.images``.
            The former names "auto", "native" and "resize" mean "fit".
        style_scale: how a reference style image meets the model: "whole" (default: the whole image
            resized to the model's side) or "content" (resized by the content's own factor, then the
            centre model-size square: the style's texture keeps its size relative to the content).
        texture: >= 0, how much of the style's own texture is added at full resolution after the
            network pass (``pmf_edit.style.texture``: the style image's patches placed where the
            stylised output says, their fine luma detail added with weight ``texture x strength``;
            for a style class the texture comes from a mosaic of ``CLASS_MOSAIC``^2 one-step samples).
            0 = the network's change only (the behaviour before the texture stage). Not used for a
            content at the model's own size (there the network draws at full resolution).
        texture_config: matching settings (``TextureConfig``; None = the defaults).
        generator: the caller's generator (class styles, ``inversion="noise"`` and the texture's start
            noise); deterministic for a given generator state.

    Returns:
        ``StyleResult`` with images (B, 3, H, W) in [0, 1] (the content's dtype), NFE per image and
        the size mode used.

    Raises:
        TypeError, ValueError: bad images (shape, dtype, range), strength, class or option.

    Example:
        >>> out = style_transfer(net, content, "class:brick", class_names=cfg["class_names"],
        ...                      strength=0.5, generator=torch.Generator().manual_seed(0))
        >>> out.images.shape, out.nfe, out.size_mode   # at the model's size: no texture stage
        (torch.Size([1, 3, 32, 32]), 6, 'native')
    """
    opts = _check_options(
        net, content, style, strength=strength, method=method, inversion=inversion,
        num_inversion_steps=num_inversion_steps, num_iterations=num_iterations, num_steps=num_steps,
        guidance_scale=guidance_scale, state_adain=state_adain, color_match=color_match, color_weight=color_weight,
        color_first=color_first, residual=residual, inject_from=inject_from, injection_weight=injection_weight,
        attention_temperature=attention_temperature, size_mode=size_mode, style_scale=style_scale,
        texture=texture, texture_config=texture_config)
    B, _, H, W = content.shape
    like = state_like(net)  # noise, references and images in the network's state dtype (fp32 for bf16)
    # The size plan first: every image's noise is drawn in one piece (class sample, then two states
    # per tile), so image i's result does not depend on the batch size.
    plan = plan_size(H, W, net.cfg.image_size, opts.size_mode)
    reported_mode = "native" if plan.native else opts.size_mode  # what StyleResult reports
    style_is_image = isinstance(style, Tensor) and style.is_floating_point()
    # At the model's own size the network already draws at full resolution: the texture stage is for
    # larger (or other-shaped) pictures, whose change the network could only make at its own side.
    with_texture = opts.texture > 0 and opts.strength > 0 and not plan.native
    noise = _draw_noise(net, B, plan, opts, style_is_image, with_texture, generator, like)
    style01, y_style, nfe_style = _reference(net, style, style_is_image, B, plan, opts, noise, style_labels,
                                             class_names, like)
    if opts.method == "swap" and y_style is None:
        raise ValueError("method='swap' needs a style class: pass style as a class or style_labels=")
    y_content = None if content_labels is None else resolve_style_class(net, content_labels, B, class_names,
                                                                           "content_labels")
    if opts.strength == 0.0:
        return StyleResult(content.clone(), 0, reported_mode, plan.num_tiles, opts.method, y_style)
    x = content.to(like)
    out, nfe = _network_pass(net, x, plan, style01, y_content, y_style, opts, noise.states)
    nfe_texture = 0
    if with_texture:
        out, nfe_texture = _texture_pass(net, out, style if style_is_image else None, style01, y_style, plan, opts,
                                         noise)
    return StyleResult(out.to(device=content.device, dtype=content.dtype),
                       nfe * plan.num_tiles + nfe_style + nfe_texture, reported_mode, plan.num_tiles, opts.method,
                       y_style)


# ------------------------------------------------------------------------------------------------
# The steps of style_transfer


@dataclass(frozen=True)
class _Options:
    """The checked options of one ``style_transfer`` call (``size_mode`` with the former names resolved,
    ``color_weight`` with its default applied)."""

    strength: float
    method: Method
    inversion: StateMethod
    num_inversion_steps: int
    num_iterations: int
    num_steps: int
    guidance_scale: float
    state_adain: bool
    color_match: bool
    color_weight: float
    color_first: bool
    residual: bool
    inject_from: int
    injection_weight: float
    attention_temperature: float
    size_mode: str
    style_scale: StyleScale
    texture: float
    texture_config: TextureConfig


def _check_options(net: PixelMeanFlow, content: Tensor, style: StyleSpec, *, strength: float, method: str,
                   inversion: str, num_inversion_steps: int, num_iterations: int, num_steps: int,
                   guidance_scale: float, state_adain: bool, color_match: bool, color_weight: float | None,
                   color_first: bool, residual: bool, inject_from: int, injection_weight: float,
                   attention_temperature: float, size_mode: str, style_scale: StyleScale, texture: float,
                   texture_config: TextureConfig | None) -> _Options:
    """Every argument rule of ``style_transfer`` (the style's own image checks come with ``_reference``)."""
    _check_rgb(net, content, "content")
    if not isinstance(style, (Tensor, int, str, Sequence)) or isinstance(style, bool):
        raise TypeError(f"style must be a torch.Tensor image (B, 3, H, W) in [0, 1] or a class (index, name or "
                        f"(B,) indices), got {type(style).__name__}; convert an array with torch.from_numpy")
    s = check_strength(strength, allow_zero=True)
    cw = s if color_weight is None else checks.real(color_weight, "color_weight", lo=0.0, hi=1.0)
    if method not in ("kv", "kv_replace", "feat", "swap"):
        raise ValueError(f"method must be 'kv', 'kv_replace', 'feat' or 'swap', got {method!r}")
    if inversion not in ("fixed_point", "noise"):
        raise ValueError(f"inversion must be 'fixed_point' or 'noise', got {inversion!r}")
    mode = _SIZE_ALIASES.get(size_mode, size_mode) if isinstance(size_mode, str) else size_mode
    if mode not in SIZE_MODES:
        raise ValueError(f"size_mode must be one of {', '.join(map(repr, SIZE_MODES))} (or the former 'auto', "
                         f"'native', 'resize'), got {size_mode!r}")
    for name, v in (("num_inversion_steps", num_inversion_steps), ("num_iterations", num_iterations),
                    ("num_steps", num_steps)):
        check_steps(v, name)
    check_guidance(guidance_scale)
    iw = checks.real(injection_weight, "injection_weight", lo=0.0, hi=1.0)
    tx = checks.real(texture, "texture", lo=0.0, hi=4.0)
    tcfg = checks.config(texture_config, TextureConfig) if texture_config is not None else TextureConfig()
    at = checks.real(attention_temperature, "attention_temperature", lo=0.25, hi=8.0)
    n_blocks = len(_blocks(net))
    if not 0 <= inject_from < n_blocks:
        raise ValueError(f"inject_from must lie in [0, {n_blocks - 1}] for this network, got {inject_from}")
    return _Options(s, method, inversion, num_inversion_steps, num_iterations, num_steps, guidance_scale,
                    state_adain, color_match, cw, color_first, residual, inject_from, iw, at, mode, style_scale,
                    tx, tcfg)


@dataclass(frozen=True)
class _Noise:
    """Every random draw of one call, taken per image in one piece (``sample_noise``) so that image i's
    result does not depend on the batch size. C, S: the network's channels and side; T: tiles."""

    class_sample: Tensor | None  # (B, C, S, S): the one-step sample that turns a style class into a reference
    states: Tensor | None  # (B T, 2, C, S, S): content and style state noise of inversion="noise"
    mosaic: Tensor | None  # (B, CLASS_MOSAIC^2 - 1, C, S, S): more class samples, the class's texture exemplar
    texture: Tensor | None  # (B, n): the texture synthesis' start noise, reshaped to texture_shape per image
    texture_shape: tuple[int, ...]


def _draw_noise(net: PixelMeanFlow, B: int, plan: SizePlan, opts: _Options, style_is_image: bool,
                with_texture: bool, generator: torch.Generator | None, like: Tensor) -> _Noise:
    """Draw in a fixed order per image: the class sample, the state noise, the mosaic, the texture's noise."""
    C, S, tiles = net.cfg.in_channels, net.cfg.image_size, plan.num_tiles
    mosaic = (CLASS_MOSAIC**2 - 1) if with_texture and not style_is_image else 0
    draws = (0 if style_is_image else 1) + (2 * tiles if opts.inversion == "noise" else 0)
    # The texture covers what the network saw (plan.box: the whole image, or crop's centre square; the
    # rest of a crop stays the content's own pixels).
    _, _, bh, bw = plan.box
    tex_shape = noise_shape(bh, bw, opts.texture_config, C) if with_texture else (0,)
    n_net = (draws + mosaic) * C * S * S
    eps = mosaic_eps = tex_noise = None
    if with_texture:  # one piece per image: the network's draws, the mosaic's, then the texture's start noise
        flat = sample_noise(B, (n_net + math.prod(tex_shape),), generator, like)  # (B, n_net + n_tex)
        eps = flat[:, :draws * C * S * S].reshape(B, draws, C, S, S) if draws else None
        mosaic_eps = flat[:, draws * C * S * S:n_net].reshape(B, mosaic, C, S, S)
        tex_noise = flat[:, n_net:]
    elif draws:
        eps = sample_noise(B, (draws, C, S, S), generator, like)  # (B, draws, C, S, S)
    states = None
    if opts.inversion == "noise":
        states = eps[:, draws - 2 * tiles:].reshape(B * tiles, 2, C, S, S)  # (B T, 2, C, S, S)
    return _Noise(None if style_is_image else eps[:, 0], states, mosaic_eps, tex_noise, tex_shape)


def _reference(net: PixelMeanFlow, style: StyleSpec, style_is_image: bool, B: int, plan: SizePlan, opts: _Options,
               noise: _Noise, style_labels: int | Sequence[int] | Tensor | None, class_names: Sequence[str] | None,
               like: Tensor) -> tuple[Tensor, Tensor | None, int]:
    """The style as a model-size reference image (B, C, S, S) in [0, 1], its class (or None) and the NFE
    spent: a style image is resized (``style_scale``), a class sampled in one step (the model's own texture)."""
    S = net.cfg.image_size
    if style_is_image:
        _check_rgb(net, style, "style")
        if style.shape[0] not in (1, B):
            raise ValueError(f"style batch {style.shape[0]} must be 1 or match the content batch {B} "
                             f"(style shape {tuple(style.shape)})")
        scale = plan.inner[2] / plan.box[2]  # content pixels -> network pixels
        style01 = _style_reference(style.to(device=like.device, dtype=like.dtype), S, scale, opts.style_scale)
        y_style = None if style_labels is None else resolve_style_class(net, style_labels, B, class_names,
                                                                         "style_labels")
        return style01.clamp(0, 1).expand(B, -1, -1, -1), y_style, 0
    y_style = resolve_style_class(net, style, B, class_names)
    x1 = vf.jump(net, net.cfg.noise_scale * noise.class_sample, 1.0, 0.0, y_style)
    return from_model_range(x1), y_style, 1


def _stylize_tiles(net: PixelMeanFlow, x01: Tensor, ref01: Tensor, y_content: Tensor | None,
                   y_style: Tensor | None, eps: Tensor | None, opts: _Options) -> tuple[Tensor, int]:
    """(m, C, S, S) [0, 1] network inputs and references -> stylised [0, 1] inputs, NFE per input."""
    if opts.color_match and opts.color_first:
        x01 = _lab_color_match(x01, ref01, opts.color_weight)
    out, nfe = _stylize_native(
        net, to_model_range(x01), to_model_range(ref01), t=opts.strength, y_gen=y_style, y_content=y_content,
        y_style=y_style, method=opts.method, inversion=opts.inversion, num_inversion_steps=opts.num_inversion_steps,
        num_iterations=opts.num_iterations, num_steps=opts.num_steps, guidance_scale=opts.guidance_scale,
        state_adain=opts.state_adain, inject_from=opts.inject_from, eps=eps, residual=opts.residual,
        injection_weight=opts.injection_weight, attention_temperature=opts.attention_temperature,
    )
    out01 = from_model_range(out)
    if opts.color_match and not opts.color_first:
        out01 = _lab_color_match(out01, ref01, opts.color_weight)
    return out01, nfe


def _network_pass(net: PixelMeanFlow, x: Tensor, plan: SizePlan, style01: Tensor, y_content: Tensor | None,
                  y_style: Tensor | None, opts: _Options, state_eps: Tensor | None) -> tuple[Tensor, int]:
    """Content (B, C, H, W) in [0, 1] -> the content with the network's change carried to its size, and the
    NFE per network input: the network stylises what the size plan shows it (B T model-size inputs)."""
    x_in = to_network(plan, x)  # (B T, C, S, S)
    refs, ycs, yss = (repeat_per_tile(v, plan) for v in (style01, y_content, y_style))
    # In tile mode at most TILE_CHUNK inputs go through the network at once (a 4096x4096 image is ~29k
    # tiles: all at once would not fit in memory); every input's result is per-sample, so chunks change nothing.
    parts, nfe = [], 0
    for sl in chunk_progress(input_chunks(x_in.shape[0], plan, TILE_CHUNK), "style_transfer"):
        pick = lambda v: None if v is None else v[sl]  # noqa: E731
        out_c, nfe = _stylize_tiles(net, x_in[sl], refs[sl], pick(ycs), pick(yss), pick(state_eps), opts)
        parts.append(out_c)
    return from_network(plan, x, x_in, torch.cat(parts)), nfe


def _texture_pass(net: PixelMeanFlow, out: Tensor, style: Tensor | None, style01: Tensor, y_style: Tensor | None,
                  plan: SizePlan, opts: _Options, noise: _Noise) -> tuple[Tensor, int]:
    """Add the style's own texture to ``out`` (B, C, H, W; the network pass's own result, changed in place)
    inside the part the network saw (``plan.box``); returns it and the NFE per image (a style class's mosaic
    samples; 0 for a style image)."""
    B, C = out.shape[:2]
    S, tcfg = net.cfg.image_size, opts.texture_config
    bt, bl, bh, bw = plan.box
    nfe = 0
    if style is not None:
        exemplars = style.to(out).expand(B, -1, -1, -1)
    else:  # the class's texture: CLASS_MOSAIC^2 one-step samples (the first is the reference)
        m = CLASS_MOSAIC
        n = noise.mosaic.shape[1]
        z1 = net.cfg.noise_scale * noise.mosaic.reshape(B * n, C, S, S)
        more = from_model_range(vf.jump(net, z1, 1.0, 0.0, y_style.repeat_interleave(n)))
        tiles_m = torch.cat([style01[:, None], more.reshape(B, n, C, S, S)], 1)  # (B, m^2, C, S, S)
        # (B, m, m, C, S, S) -> (B, C, m S, m S): the samples side by side
        exemplars = tiles_m.reshape(B, m, m, C, S, S).permute(0, 3, 1, 4, 2, 5).reshape(B, C, m * S, m * S)
        nfe = n
    sigma = tcfg.detail_sigma * max(bh, bw) / min(tcfg.work_side, max(bh, bw))  # working -> output pixels
    for b in range(B):  # the texture is matched per image (its own style, guide and noise)
        part = out[b:b + 1, :, bt:bt + bh, bl:bl + bw]  # (1, C, bh, bw), a view: written in place below
        tex = synthesize_texture(part, cover_resize(exemplars[b:b + 1], bh, bw), tcfg,
                                 noise.texture[b].reshape(noise.texture_shape))
        add_texture_detail(part, tex, opts.texture * opts.strength, sigma, out=part)
        del tex  # (full-size: a 48-MP photo's is 576 MB)
    return out, nfe
