"""Image editing on a pMF network's average-velocity field: one function per task.

Every task takes float images (B, C, H, W) in [0, 1] (float32 or float64; the output keeps the dtype)
and a trained network, converts to the model range [-1, 1] once (``core.images``), works with the
primitives of ``pmf_edit.velocity`` and returns a small dataclass with the images and ``nfe``, the
network evaluations spent per image. The keyword names are shared: ``labels`` (the class to produce,
or to invert under), ``source_labels`` (the class the input shows, for edits), ``strength`` (how far
towards noise an edit goes, t in (0, 1]), ``num_steps``, ``guidance_scale`` (omega, a network input:
guidance costs no extra evaluation), ``guidance_interval`` and ``generator`` (noise is drawn sample by
sample, so results do not depend on the batch size).

    invert       image -> z_t, implicit backward jumps solved by fixed-point iterations
    reconstruct  invert, then jump back along the same grid
    edit         invert under the source class to t = strength, regenerate under the target class
    sdedit       noise to t = strength, one jump (or a few) under the target class
    flow_edit    inversion-free: move the image by the difference of the target and source fields
    inpaint      refill a masked region (RePaint-style re-noising), unmasked pixels kept bit-identical

Example:
    >>> net, cfg = from_pretrained(bundled_model_dir("mnist"))
    >>> out = edit(net, images01, source_labels=labels, labels=(labels + 1) % 10)
    >>> out.images.shape, out.nfe
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core import checks
from core.images import from_model_range, to_model_range
from core.model import PixelMeanFlow
from core.sampling import draw_noise
from pmf_edit import velocity as vf
from pmf_edit.velocity import DEFAULT_INTERVALS, DEFAULT_ITERATIONS, Labels

__all__ = [
    "EditResult", "InversionResult", "from_pretrained", "invert", "reconstruct", "edit", "sdedit",
    "flow_edit", "inpaint",
]

Interval = tuple[float, float]

# Defaults from class-swap measurements on held-out digits (benchmarks/bench_editing.py, docs/editing.md).
EDIT_STRENGTH = 1.0  # invert all the way: at t < 1 the noise-seeded latent keeps too much of the source class
EDIT_ITERATIONS = 2  # fixed-point updates of the edit's inversion (more: closer to the source)
EDIT_GUIDANCE = 4.0  # omega of the target condition (a network input: free); 2 rarely changes the class
SDEDIT_STRENGTH = 0.7
FLOWEDIT_STRENGTH = 0.9
FLOWEDIT_STEPS = 4


@dataclass
class EditResult:
    """Images (B, C, H, W) in [0, 1] with the input's dtype, and network evaluations per image."""

    images: torch.Tensor
    nfe: int


@dataclass
class InversionResult:
    """The state z_t (B, C, H, W) in model units (noise scale s, not an image) at time ``t``.

    ``nfe`` counts network evaluations per image; ``residual`` is the mean absolute size of the last
    fixed-point update (small = converged).
    """

    latents: torch.Tensor
    t: float
    nfe: int
    residual: float


@checks.checked
def from_pretrained(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[PixelMeanFlow, dict[str, Any]]:
    """Load a network for editing: a model folder (``config.json`` + ``model.safetensors``) or an
    official pMF ``.pt`` / ``.safetensors`` file.

    Returns:
        (network in eval mode, config dict; ``config["sampling"]`` holds the recommended
        ``guidance_scale`` and ``guidance_interval`` where the model has them).

    Example:
        >>> from core.checkpoint import bundled_model_dir
        >>> net, cfg = from_pretrained(bundled_model_dir("mnist"))
    """
    from core.pretrained import from_pretrained as _load

    return _load(path, device=device)


# ------------------------------------------------------------------------------------------------
# Validation and conversion (the one [0, 1] <-> [-1, 1] boundary)


def _check_images(net: PixelMeanFlow, images: torch.Tensor, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B, C, H, W) in [0, 1], got {type(images).__name__}")
    if images.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64 in [0, 1], got dtype {images.dtype}")
    cfg = net.cfg
    want = (cfg.in_channels, cfg.image_size, cfg.image_size)
    if images.ndim != 4:
        raise ValueError(f"{name} must be (B, C, H, W) = (B, {', '.join(map(str, want))}), got shape {tuple(images.shape)}")
    if images.shape[1] != cfg.in_channels:
        raise ValueError(f"{name} have {images.shape[1]} channels but the model takes {cfg.in_channels} "
                         f"(shape {tuple(images.shape)})")
    if tuple(images.shape[2:]) != want[1:]:
        raise ValueError(f"{name} are {images.shape[2]}x{images.shape[3]} but the model takes "
                         f"{cfg.image_size}x{cfg.image_size} (shape {tuple(images.shape)})")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(images.shape)})")
    lo, hi = float(images.min()), float(images.max())
    if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")


def _check_labels(net: PixelMeanFlow, labels: Labels, n: int, name: str, allow_none: bool) -> torch.Tensor | None:
    if labels is None:
        if allow_none:
            return None
        raise ValueError(f"{name} is required (class indices in [0, {net.cfg.num_classes - 1}])")
    try:
        y = torch.as_tensor(labels).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be class indices (an int, a sequence or a tensor), got "
                        f"{type(labels).__name__}") from err
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class indices, got dtype {y.dtype}")
    y = y.long()
    if y.numel() == 1:
        y = y.expand(n)
    if y.shape != (n,):
        raise ValueError(f"{name} must be one int or ({n},) for {n} images, got shape {tuple(y.shape)}")
    k = net.cfg.num_classes
    if y.min() < 0 or y.max() >= k:
        bad = sorted(set(y[(y < 0) | (y >= k)].tolist()))
        raise ValueError(f"{name} {bad[:5]} outside the model's classes 0..{k - 1}")
    return y.to(next(net.parameters()).device)


def _check_strength(strength: float) -> float:
    return checks.real(strength, "strength", lo=0.0, hi=1.0, lo_open=True)


def _check_steps(num_steps: int, name: str = "num_steps") -> int:
    return checks.integer(num_steps, name, lo=1)


def _to_model(net: PixelMeanFlow, images: torch.Tensor) -> torch.Tensor:
    p = next(net.parameters())
    return to_model_range(images.to(device=p.device, dtype=p.dtype))


def _to_images(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return from_model_range(x).to(device=like.device, dtype=like.dtype)


def _noise(net: PixelMeanFlow, n: int, draws: int, generator: torch.Generator | None) -> torch.Tensor:
    """(draws, B, C, H, W) standard normal noise, each sample's draws taken together from the generator,
    so sample i's noise does not depend on the batch size (``core.sampling.draw_noise``)."""
    cfg = net.cfg
    p = next(net.parameters())
    eps = draw_noise(n, (draws, cfg.in_channels, cfg.image_size, cfg.image_size), generator, p.device)
    return eps.transpose(0, 1).to(dtype=p.dtype)  # (n, draws, ...) -> (draws, n, ...)


# ------------------------------------------------------------------------------------------------
# Tasks


@checks.checked
def invert(
    net: PixelMeanFlow,
    images: torch.Tensor,
    *,
    labels: Labels = None,
    strength: float = 1.0,
    num_steps: int = DEFAULT_INTERVALS,
    num_iterations: int = DEFAULT_ITERATIONS,
    guidance_scale: float = 1.0,
    guidance_interval: Interval = (0.0, 1.0),
) -> InversionResult:
    """Image -> the state z_t at t = ``strength`` (t = 1: the noise that generates the image).

    Args:
        net: a trained pMF network.
        images: (B, C, H, W) float32/float64 in [0, 1].
        labels: the class each image shows (one int or (B,)); None inverts under the null class.
        strength: end time t in (0, 1].
        num_steps: uniform intervals on [0, t]; each is inverted by ``num_iterations``
            (Anderson-accelerated) fixed-point updates, so nfe = num_steps * num_iterations.
        num_iterations: fixed-point updates per interval (>= 1).
        guidance_scale, guidance_interval: the condition the jumps are inverted under.

    Returns:
        ``InversionResult``: latents (B, C, H, W) in model units, input dtype; t; nfe; residual.

    Example:
        >>> inv = invert(net, images01, labels=[3, 7])
        >>> inv.latents.shape, inv.nfe
        (torch.Size([2, 1, 32, 32]), 7)
    """
    _check_images(net, images)
    y = _check_labels(net, labels, images.shape[0], "labels", allow_none=True)
    t = _check_strength(strength)
    inv = vf.invert(net, _to_model(net, images), t, y, guidance_scale, guidance_interval,
                    _check_steps(num_steps), _check_steps(num_iterations, "num_iterations"))
    return InversionResult(latents=inv.latents.to(device=images.device, dtype=images.dtype), t=inv.t,
                           nfe=inv.nfe, residual=inv.residual)


@checks.checked
def reconstruct(
    net: PixelMeanFlow,
    images: torch.Tensor,
    *,
    labels: Labels = None,
    strength: float = 1.0,
    num_steps: int = DEFAULT_INTERVALS,
    num_iterations: int = DEFAULT_ITERATIONS,
    guidance_scale: float = 1.0,
    guidance_interval: Interval = (0.0, 1.0),
) -> EditResult:
    """Invert to t = ``strength``, then jump back to an image along the same grid (round trip).

    nfe = num_steps * num_iterations to invert + num_steps to regenerate (8 by default).

    Args: as ``invert``.

    Returns:
        ``EditResult`` with images (B, C, H, W) in [0, 1], input dtype.

    Example:
        >>> rec = reconstruct(net, images01, labels=labels)
        >>> core.metrics.psnr(rec.images, images01, data_range=1.0).mean()
    """
    inv = invert(net, images, labels=labels, strength=strength, num_steps=num_steps,
                 num_iterations=num_iterations, guidance_scale=guidance_scale,
                 guidance_interval=guidance_interval)
    y = _check_labels(net, labels, images.shape[0], "labels", allow_none=True)
    x, n = vf.generate(net, inv.latents.to(next(net.parameters())), inv.t, num_steps, y, guidance_scale,
                       guidance_interval)
    return EditResult(images=_to_images(x, images), nfe=inv.nfe + n)


@checks.checked
def edit(
    net: PixelMeanFlow,
    images: torch.Tensor,
    *,
    labels: Labels,
    source_labels: Labels = None,
    strength: float = EDIT_STRENGTH,
    num_steps: int = 1,
    num_inversion_steps: int = 1,
    num_iterations: int = EDIT_ITERATIONS,
    guidance_scale: float = EDIT_GUIDANCE,
    guidance_interval: Interval = (0.0, 1.0),
    source_guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> EditResult:
    """Change the class of images: invert under the source class to t = ``strength``, regenerate
    from there to t = 0 under the target class in ``num_steps`` jumps.

    The inversion is seeded with the forward noising z_t = (1 - t) x + t s e (e from ``generator``)
    and refined by fixed-point updates until the latent regenerates the source under the source
    class; seeded with the image itself instead (as ``invert`` does, best for reconstruction), the
    latent looks like the image and regenerates it under *any* class (measured: 0-2% target
    accuracy), so an edit needs the noise-like seed.

    Args:
        net: a trained class-conditional pMF network.
        images: (B, C, H, W) float32/float64 in [0, 1].
        labels: target class (one int or (B,)).
        source_labels: the class the images show; None inverts under the null class.
        strength: t in (0, 1] to invert to; larger changes more, smaller keeps more structure.
        num_steps: regeneration jumps (t -> 0).
        num_inversion_steps: inversion intervals on [0, t].
        num_iterations: fixed-point updates per inversion interval (fewer: noisier latent, bigger edits).
        guidance_scale, guidance_interval: the target condition's guidance (network inputs).
        source_guidance_scale: guidance used while inverting.
        generator: the caller's generator for the seed noise e.

    Returns:
        ``EditResult``; nfe = num_inversion_steps * num_iterations + num_steps.

    Example:
        >>> out = edit(net, images01, source_labels=labels, labels=(labels + 1) % 10,
        ...            generator=torch.Generator().manual_seed(0))
    """
    _check_images(net, images)
    n = images.shape[0]
    y_tgt = _check_labels(net, labels, n, "labels", allow_none=False)
    y_src = _check_labels(net, source_labels, n, "source_labels", allow_none=True)
    t = _check_strength(strength)
    e = _noise(net, n, 1, generator)[0]
    inv = vf.invert(net, _to_model(net, images), t, y_src, source_guidance_scale, guidance_interval,
                    _check_steps(num_inversion_steps, "num_inversion_steps"),
                    _check_steps(num_iterations, "num_iterations"), seed="noise", noise=e)
    x, k = vf.generate(net, inv.latents, t, _check_steps(num_steps), y_tgt, guidance_scale, guidance_interval)
    return EditResult(images=_to_images(x, images), nfe=inv.nfe + k)


@checks.checked
def sdedit(
    net: PixelMeanFlow,
    images: torch.Tensor,
    *,
    labels: Labels = None,
    strength: float = SDEDIT_STRENGTH,
    num_steps: int = 1,
    guidance_scale: float = EDIT_GUIDANCE,
    guidance_interval: Interval = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> EditResult:
    """SDEdit in one jump: noise the input to z_t = (1 - t) x + t s e (t = ``strength``), then jump
    to t = 0 under ``labels`` (``num_steps`` jumps; 1 by default).

    Args:
        net: a trained pMF network.
        images: (B, C, H, W) float32/float64 in [0, 1] (a rough input, a sketch, another class).
        labels: class to produce (one int or (B,)); None = the null class.
        strength: noise level t in (0, 1]; 1 ignores the input.
        num_steps: jumps from t to 0.
        guidance_scale, guidance_interval: guidance of the regeneration.
        generator: the caller's generator for e.

    Returns:
        ``EditResult``; nfe = num_steps.

    Example:
        >>> out = sdedit(net, sketch01, labels=4, strength=0.6, generator=torch.Generator().manual_seed(0))
    """
    _check_images(net, images)
    n = images.shape[0]
    y = _check_labels(net, labels, n, "labels", allow_none=True)
    t = _check_strength(strength)
    x = _to_model(net, images)
    e = _noise(net, n, 1, generator)[0]
    z = (1.0 - t) * x + t * net.cfg.noise_scale * e  # z_t = (1 - t) x + t s e
    out, k = vf.generate(net, z, t, _check_steps(num_steps), y, guidance_scale, guidance_interval)
    return EditResult(images=_to_images(out, images), nfe=k)


@checks.checked
def flow_edit(
    net: PixelMeanFlow,
    images: torch.Tensor,
    *,
    labels: Labels,
    source_labels: Labels = None,
    strength: float = FLOWEDIT_STRENGTH,
    num_steps: int = FLOWEDIT_STEPS,
    guidance_scale: float = EDIT_GUIDANCE,
    guidance_interval: Interval = (0.0, 1.0),
    source_guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> EditResult:
    """Inversion-free edit (FlowEdit, Kulikov et al. 2024, on average velocities): move the image
    along the difference of the target and source conditions' jumps.

    With times t_0 = strength > t_1 > ... > t_K = 0 and x^edit = x^src at the start, each step draws
    fresh noise e and sets
        z^src = (1 - t_k) x^src + t_k s e,      z^tgt = z^src + x^edit - x^src,
        x^edit <- x^edit - (t_k - t_{k+1}) [u_tgt(z^tgt, t_{k+1}, t_k) - u_src(z^src, t_{k+1}, t_k)].
    Where the two conditions agree (background, pose, stroke) the difference is ~0, so the image
    stays; the noise is shared by both branches, so it cancels. The two evaluations are batched.

    Args:
        net: a trained class-conditional pMF network.
        images: (B, C, H, W) float32/float64 in [0, 1].
        labels: target class (one int or (B,)).
        source_labels: class the images show; None = the null class.
        strength: first time t_0 in (0, 1].
        num_steps: K steps (2 network evaluations each).
        guidance_scale, guidance_interval: guidance of the target field.
        source_guidance_scale: guidance of the source field.
        generator: the caller's generator for the noise.

    Returns:
        ``EditResult``; nfe = 2 * num_steps.

    Example:
        >>> out = flow_edit(net, images01, source_labels=labels, labels=(labels + 1) % 10,
        ...                 generator=torch.Generator().manual_seed(0))
    """
    _check_images(net, images)
    n = images.shape[0]
    y_tgt = _check_labels(net, labels, n, "labels", allow_none=False)
    y_src = _check_labels(net, source_labels, n, "source_labels", allow_none=True)
    if y_src is None:
        y_src = torch.full_like(y_tgt, net.null_class)
    t0 = _check_strength(strength)
    K = _check_steps(num_steps)
    x_src = _to_model(net, images)
    eps = _noise(net, n, K, generator)
    ts = torch.linspace(t0, 0.0, K + 1, dtype=torch.float64).tolist()
    s = net.cfg.noise_scale
    x_edit = x_src.clone()
    lo, hi = guidance_interval
    # One batched call per step: [target branch; source branch] with their own conditions.
    y = torch.cat([y_tgt, y_src])
    omega = [guidance_scale] * n + [source_guidance_scale] * n
    for k in range(K):
        t, r = ts[k], ts[k + 1]
        z_src = (1.0 - t) * x_src + t * s * eps[k]
        z_tgt = z_src + x_edit - x_src
        u = _velocity_mixed(net, torch.cat([z_tgt, z_src]), t, r, y, omega, (lo, hi))  # (2B, C, H, W)
        u_tgt, u_src = u.chunk(2)
        x_edit = x_edit - (t - r) * (u_tgt - u_src)
    return EditResult(images=_to_images(x_edit, images), nfe=2 * K)


@torch.no_grad()
def _velocity_mixed(net: PixelMeanFlow, z: torch.Tensor, t: float, r: float, y: torch.Tensor,
                    omega: list[float], interval: Interval) -> torch.Tensor:
    """u(z, r, t) for a batch whose samples carry their own label and guidance scale."""
    for w in omega:
        checks.guidance_scale(w, "guidance scale")
    m = z.shape[0]
    dev = z.device
    full = lambda v: torch.full((m,), float(v), device=dev, dtype=z.dtype)  # noqa: E731
    return net(z, full(t), full(r), y, torch.tensor(omega, device=dev, dtype=z.dtype),
               full(interval[0]), full(interval[1]))


@checks.checked
def inpaint(
    net: PixelMeanFlow,
    images: torch.Tensor,
    mask: torch.Tensor,
    *,
    labels: Labels = None,
    strength: float = 1.0,
    num_steps: int = 4,
    num_resample: int = 2,
    guidance_scale: float = 1.0,
    guidance_interval: Interval = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> EditResult:
    """Refill the masked region; the unmasked pixels are returned bit-identical.

    RePaint-style with one-step jumps: on times t_k = strength (1 - k / K), k = 0..K-1, repeat
    ``num_resample`` times: noise the current estimate, z = (1 - t_k) x + t_k s e, predict the image
    in one jump x_hat = x(z, 0, t_k), and paste the known pixels back, x = m x_hat + (1 - m) x_known.
    Decreasing t lets the filled region first agree with the known one at a coarse level, then in
    detail; resampling at each level harmonises the seam.

    Args:
        net: a trained pMF network.
        images: (B, C, H, W) float32/float64 in [0, 1].
        mask: (B, 1, H, W), (B, C, H, W), (1, H, W) or (H, W); bool or {0, 1} float, True/1 = fill.
        labels: class to produce (one int or (B,)); None = the null class.
        strength: first noise level in (0, 1] (1 ignores the masked region's content).
        num_steps: K noise levels.
        num_resample: rounds per level.
        guidance_scale, guidance_interval: guidance of the jumps.
        generator: the caller's generator for the noise.

    Returns:
        ``EditResult``; nfe = num_steps * num_resample.

    Example:
        >>> m = torch.zeros(1, 1, 32, 32, dtype=torch.bool); m[..., 16:, :] = True   # bottom half
        >>> out = inpaint(net, images01, m, labels=3, generator=torch.Generator().manual_seed(0))
    """
    _check_images(net, images)
    n, C, H, W = images.shape
    m = _check_mask(mask, images)
    y = _check_labels(net, labels, n, "labels", allow_none=True)
    t0 = _check_strength(strength)
    K = _check_steps(num_steps)
    R = _check_steps(num_resample, "num_resample")
    known = _to_model(net, images)
    mm = m.to(device=known.device, dtype=known.dtype).expand(n, C, H, W)
    eps = _noise(net, n, K * R, generator)
    x = known
    s = net.cfg.noise_scale
    for k in range(K):
        t = t0 * (1.0 - k / K)
        for j in range(R):
            z = (1.0 - t) * x + t * s * eps[k * R + j]
            x_hat = vf.image_field(net, z, t, 0.0, y, guidance_scale, guidance_interval)
            x = mm * x_hat + (1.0 - mm) * known
    filled = _to_images(x, images)
    # Paste in the input's own [0, 1] values, so unmasked pixels are bit-identical (no range round trip).
    out = torch.where(m.to(images.device).expand(n, C, H, W), filled, images)
    return EditResult(images=out, nfe=K * R)


def _check_mask(mask: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Bool mask broadcastable to images, (B or 1, 1 or C, H, W)."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    n, C, H, W = images.shape
    m = mask
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        m = m[:, None] if m.shape[0] == n and n != 1 else m[None]
    ok = m.ndim == 4 and m.shape[0] in (1, n) and m.shape[1] in (1, C) and tuple(m.shape[2:]) == (H, W)
    if not ok:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match images {tuple(images.shape)}; "
                         f"expected (B, 1, H, W), (B, C, H, W), (1, H, W) or (H, W) with H, W = {H}, {W}")
    if m.dtype != torch.bool:
        if not m.is_floating_point() and m.dtype not in (torch.uint8, torch.int32, torch.int64):
            raise ValueError(f"mask must be bool or 0/1 numbers, got dtype {mask.dtype}")
        vals = torch.unique(m)
        if not bool(((vals == 0) | (vals == 1)).all()):
            raise ValueError(f"mask must hold only 0 and 1 (or bool), got values {vals[:5].tolist()}...")
        m = m != 0
    return m
