"""Image editing on a pMF network's average-velocity field: one function per task.

Every task takes float images (B, C, H, W) in [0, 1] (float32 or float64; the output keeps the dtype)
and a trained network, checks its arguments and converts to the model range [-1, 1] once
(``pmf_edit.boundary``: the same rules as every pmf_edit task), works with the
primitives of ``pmf_edit.velocity`` and returns a small dataclass with the images and ``nfe``, the
network evaluations spent per image. The keyword names are shared: ``labels`` (the class to produce,
or to invert under), ``source_labels`` (the class the input shows, for edits), ``strength`` (how far
towards noise an edit goes, t in [0, 1], 0 = the input unchanged), ``num_steps``, ``guidance_scale``
(omega, a network input: guidance costs no extra evaluation), ``guidance_interval`` and ``generator``
(noise is drawn sample by sample, so results do not depend on the batch size).

Images of any size H x W (and aspect ratio) go through the size policy ``pmf_edit.images``
(``size_mode``: "fit" by default, "crop" or "tile"): the network works at its own side S, and what it
changes is carried back to H x W by an edge-aware upsampler, so the pixels it leaves alone keep their
full-resolution values; at H = W = S nothing is resized.

    invert       image -> z_t: explicit jumps toward noise (networks trained in both directions) or
                 the forward jump's implicit form solved by fixed-point iterations
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
from typing import Any, Callable, Iterator, Literal

import torch

from core import checks
from core.model import PixelMeanFlow, PMFConfig
from pmf_edit import velocity as vf
from pmf_edit.boundary import (Labels, check_guidance, check_images, check_labels, check_steps, check_strength,
                               forward_noise, resolve_guidance, sample_noise, state_like, to_images, to_model,
                               with_precision)
from pmf_edit.editing.gate import DEFAULT_GATE, ChangeGate, gate_change
from pmf_edit.images import (SIZE_MODES, TILE_CHUNK, SizeMode, SizePlan, check_image_size, chunk_progress,
                             input_chunks, mask_to_network, plan_size, repeat_per_tile, through_network, to_network)
from pmf_edit.velocity import DEFAULT_INTERVALS, DEFAULT_ITERATIONS, DEFAULT_REFINEMENTS, HYBRID_SWITCH

__all__ = [
    "EditResult", "InversionResult", "from_pretrained", "invert", "reconstruct", "edit", "sdedit",
    "flow_edit", "inpaint",
]

Interval = tuple[float, float]
InvertMethod = Literal["auto", "backward", "fixed-point", "hybrid", "seeded"]

# Defaults from class-swap measurements on held-out digits (benchmarks/bench_editing.py, docs/editing.md).
EDIT_STRENGTH = 1.0  # invert all the way: at t < 1 the noise-seeded latent keeps too much of the source class
EDIT_ITERATIONS = 2  # fixed-point updates of the edit's inversion (more: closer to the source)
EDIT_GUIDANCE = 4.0  # omega of the target condition (a network input: free); 2 rarely changes the class
SDEDIT_STRENGTH = 0.7
# Refinements of the backward inversion in an edit on an inverse head (pmf train --objective invert):
# chosen on 100 TRAIN digits (benchmarks/bench_bidirectional.py --split train --editors backward
# --refinements 0,1; benchmarks/results/inverse800_edits_train.json, the step-800 head): 0 reaches 90%
# target accuracy at SSIM 0.492 (2 NFE), 1 at 0.479 (4 NFE).
EDIT_REFINEMENTS_INVERSE = 0
# Edit strength on an inverse head: the smallest strength with >= 90% target accuracy on 100 TRAIN digits
# with the bundled head. Eighth session, the perceptual-term generator and its head: 0.85 (92%; grid 0.5-1.0
# by 0.05, benchmarks/bench_edit_curves.py --skip-fm, benchmarks/results/bench_edit_perceptual.json
# "tuning"). Before, on the previous generator: 0.9 (inverse_latent978_edits_train.json: 97%; 0.85 gave 89%).
EDIT_STRENGTH_INVERSE = 0.85
# Regeneration jumps of an edit on an inverse head: the fewest whose SSIM to the source at 90% target accuracy
# reaches flow_edit's, both with the change gate, on 100 TRAIN digits (fourteenth session;
# benchmarks/edit_steps_sweep.py train 100 "[4]" "[1]" "[1,2,4]"): 1 jump 0.575, 2 jumps 0.584 (3 NFE),
# 4 jumps 0.594; flow_edit 0.579 (8 NFE; benchmarks/results/edit_gate_sweep_train.jsonl).
EDIT_STEPS_INVERSE = 2
# Chosen by `benchmarks/bench_edit_curves.py` on 100 TRAIN digits: the smallest strength with >= 90% target
# accuracy (0.75: 95%; the earlier 0.9 gave 100% at SSIM 0.41 vs 0.53). Held-out result: docs/bench_edit.md.
FLOWEDIT_STRENGTH = 0.75
FLOWEDIT_STEPS = 4


@dataclass
class EditResult:
    """Images (B, C, H, W) in [0, 1] with the input's dtype and size, network evaluations per image
    (every tile counted) and the network-size inputs per image (1 unless ``size_mode="tile"``)."""

    images: torch.Tensor
    nfe: int
    num_tiles: int = 1


@dataclass
class InversionResult:
    """The state z_t in model units (noise scale s, not an image) at time ``t``, at the network's size:
    (B T, C, S, S), image i's T tiles consecutive (T = ``num_tiles``, 1 unless ``size_mode="tile"``).

    ``nfe`` counts network evaluations per image (every tile); ``residual`` is the mean absolute size
    of the last fixed-point update (small = converged); ``diverged`` is True when the iteration ran
    away (a RuntimeWarning says why and what to change; see ``pmf_edit.velocity.DIVERGED_RMS``).
    """

    latents: torch.Tensor
    t: float
    nfe: int
    residual: float
    num_tiles: int = 1
    diverged: bool = False


@checks.checked
def from_pretrained(path: str | Path, *, device: str | torch.device = "cpu",
                    config: PMFConfig | None = None, precision: str = "auto") -> tuple[PixelMeanFlow, dict[str, Any]]:
    """Load a network for editing: a model folder (``config.json`` + ``model.safetensors``) or an
    official pMF ``.pt`` / ``.safetensors`` file (``config`` names the architecture of an official-format
    file that is none of the released sizes; such files are refused without it).

    ``precision`` is the weights' precision: "auto" (bf16 for the official sizes on a CPU with native
    bf16, about 1.8x faster; fp32 for the bundled models and elsewhere), "fp32" or "bf16"; see
    ``core.pretrained.from_pretrained``. The tasks take either and return float32 images.

    Returns:
        (network in eval mode, config dict; ``config["sampling"]`` holds the recommended
        ``guidance_scale`` and ``guidance_interval`` where the model has them, ``config["precision"]``
        the weights' precision).

    Example:
        >>> from core.checkpoint import bundled_model_dir
        >>> net, cfg = from_pretrained(bundled_model_dir("mnist"))
    """
    from core.pretrained import from_pretrained as _load

    extra = {} if config is None else {"config": config}
    return _load(path, device=device, precision=precision, **extra)


# ------------------------------------------------------------------------------------------------
# Conversion helpers on top of pmf_edit.boundary


def _check_images(net: PixelMeanFlow, images: torch.Tensor, size_mode: str, name: str = "images") -> None:
    """The boundary's image rule with this network's channels, any size in the size policy's range."""
    check_images(images, name, channels=net.cfg.in_channels)
    check_image_size(images, name)
    if size_mode not in SIZE_MODES:
        raise ValueError(f"size_mode must be one of {', '.join(map(repr, SIZE_MODES))}, got {size_mode!r}")


@dataclass(frozen=True)
class _Inputs:
    """Rows ``rows`` of the B T network inputs of ``plan``: what one call of a task's step sees (tile mode
    runs the inputs in chunks of ``TILE_CHUNK`` to bound memory; ``images.input_chunks``)."""

    plan: SizePlan
    rows: slice

    def per_input(self, values: Any) -> Any:
        """Per-image values (B, ...) (labels, a per-sample guidance scale) -> these rows' (n, ...);
        None, numbers and 0-d tensors pass through."""
        if not isinstance(values, torch.Tensor) or values.ndim == 0:
            return values
        return repeat_per_tile(values, self.plan)[self.rows]


def _chunks(x_in: torch.Tensor, plan: SizePlan, what: str) -> Iterator[tuple[torch.Tensor, _Inputs]]:
    """The network inputs ``x_in`` (B T, C, S, S) as the calls see them: all at once, or in tile-mode chunks
    of ``TILE_CHUNK`` (with a progress bar over many), each with its ``_Inputs``."""
    for rows in chunk_progress(input_chunks(x_in.shape[0], plan, TILE_CHUNK), what):
        yield x_in[rows], _Inputs(plan, rows)


def _sized(net: PixelMeanFlow, images: torch.Tensor, fn: Callable[[torch.Tensor, _Inputs], tuple[torch.Tensor, int]],
           size_mode: str, mask: torch.Tensor | None = None, what: str = "edit",
           gate: ChangeGate | None = None) -> EditResult:
    """Run ``fn(x01, inputs) -> (out01, nfe per network input)`` at the network's size on images of
    any size: images (B, C, H, W) in the input's size, nfe per image = nfe per input x tiles. ``fn``
    sees the network inputs ``inputs.rows`` (all of them, or a tile-mode chunk) and expands per-image
    values with ``inputs.per_input``. ``gate``: the editors' change gate, applied to all of an image's
    network inputs together (``gate.gate_change``), before the change is carried back to full size."""
    spent = {}

    def run(x_in: torch.Tensor, plan: SizePlan) -> torch.Tensor:
        parts = []
        for x, at in _chunks(x_in, plan, what):
            out, spent["nfe"] = fn(x, at)
            parts.append(out)
        spent["tiles"] = plan.num_tiles
        out = parts[0] if len(parts) == 1 else torch.cat(parts)  # (B T, C, S, S) in [0, 1]
        return gate_change(out, x_in, gate, plan.num_tiles)

    out = through_network(images, net.cfg.image_size, run, size_mode=size_mode, mask=mask)
    return EditResult(images=out, nfe=spent["nfe"] * spent["tiles"], num_tiles=spent["tiles"])


def _unchanged(net: PixelMeanFlow, images: torch.Tensor, size_mode: str) -> EditResult:
    """strength 0: the input itself (a copy), no network evaluation, as ``style_transfer`` does."""
    plan = plan_size(*images.shape[-2:], net.cfg.image_size, size_mode)
    return EditResult(images=images.clone(), nfe=0, num_tiles=plan.num_tiles)


def _noise(net: PixelMeanFlow, n: int, draws: int, generator: torch.Generator | None) -> torch.Tensor:
    """(draws, B, C, H, W) standard normal noise, each sample's draws taken together from the generator,
    so sample i's noise does not depend on the batch size (``boundary.sample_noise``)."""
    cfg = net.cfg
    eps = sample_noise(n, (draws, cfg.in_channels, cfg.image_size, cfg.image_size), generator, state_like(net))
    return eps.transpose(0, 1)  # (n, draws, ...) -> (draws, n, ...)


INVERT_METHODS = ("auto", "backward", "fixed-point", "hybrid", "seeded")


def _resolve_method(net: PixelMeanFlow, method: str, for_edit: bool = False) -> str:
    """Resolve an inversion ``method`` ("auto", "backward", "fixed-point", "hybrid", "seeded") for ``net``
    to one of the last four; ``for_edit``: the inversion of ``edit``."""
    if method not in INVERT_METHODS:
        raise ValueError(f"method must be one of {INVERT_METHODS}, got {method!r}")
    if method in ("backward", "hybrid", "seeded") and not vf.has_backward_field(net):
        raise ValueError(f"method={method!r} needs a network trained in both directions "
                         "(pmf train --backward-ratio > 0); this one has no backward head")
    # "auto" is the fixed-point solver for now: on the only network trained in both directions so far
    # (MNIST, 2807 warm-started steps) the backward field measured far worse (round trip 18.9 dB at
    # 4 NFE vs 38.1 dB for the fixed-point solver on the same network), and so did the hybrid
    # (2 solver updates on [0, 0.9], one backward jump: 37.3 dB at 4 NFE vs the solver's 38.1 dB at 4
    # and 37.1 dB at 3; 100 held-out digits, docs/editing.md). It changes once a network beats the solver.
    # The edit is the exception: there the hybrid reaches 90% target accuracy at SSIM 0.475 to the
    # source vs 0.434 for the noise-seeded solver at the same 4 NFE (0.455 at its default 3 NFE).
    # A head trained as the inverse of the generator (backward_from="data", pmf train --objective invert)
    # edits in one jump from the image: on the bundled MNIST generator it reaches 90% target accuracy at
    # SSIM 0.496 with 2 NFE, where the noise-seeded solver never reaches 90% (docs/editing.md); its round
    # trip stays below the solver's, so "auto" for invert/reconstruct stays the solver.
    if method == "auto":
        if for_edit and vf.backward_from_data_only(net):
            return "backward"
        return "hybrid" if for_edit and vf.has_backward_field(net) else "fixed-point"
    return method


def _invert(net: PixelMeanFlow, x: torch.Tensor, t: float, y: torch.Tensor | None, guidance_scale: float,
            guidance_interval: Interval, num_steps: int, num_iterations: int | None, method: str,
            num_refinements: int, switch: float) -> vf.Inversion:
    """Model-range x -> z_t with a resolved ``method`` (``invert``'s three paths); ``num_iterations``
    None is the method's default."""
    if method == "backward":
        return vf.invert_backward(net, x, t, y, guidance_scale, guidance_interval, num_steps, num_refinements)
    if method == "hybrid":
        J = vf.HYBRID_ITERATIONS if num_iterations is None else num_iterations
        return vf.invert_hybrid(net, x, t, y, guidance_scale, guidance_interval, switch, J, num_steps)
    if method == "seeded":
        J = vf.SEEDED_ITERATIONS if num_iterations is None else num_iterations
        return vf.invert_seeded(net, x, t, y, guidance_scale, guidance_interval, J)
    J = DEFAULT_ITERATIONS if num_iterations is None else num_iterations
    return vf.invert(net, x, t, y, guidance_scale, guidance_interval, num_steps, J)


def _check_switch(switch: float) -> float:
    """The hybrid's switch (the solver's share of [0, strength]) as a float in [0, 1)."""
    return checks.real(switch, "switch", lo=0.0, hi=1.0, hi_open=True)


# ------------------------------------------------------------------------------------------------
# Tasks


@checks.checked
@with_precision
def invert(
    net: PixelMeanFlow,
    images: torch.Tensor,
    *,
    labels: Labels = None,
    strength: float = 1.0,
    num_steps: int = DEFAULT_INTERVALS,
    num_iterations: int | None = None,
    guidance_scale: float | torch.Tensor | None = None,
    guidance_interval: Interval | None = None,
    method: InvertMethod = "auto",
    num_refinements: int = DEFAULT_REFINEMENTS,
    switch: float = HYBRID_SWITCH,
    size_mode: SizeMode = "fit",
) -> InversionResult:
    """Image -> the state z_t at t = ``strength`` (t = 1: the noise that generates the image).

    Four solvers: "backward" (networks with a backward head, ``has_backward_field``): explicit
    jumps toward noise, z_1 = x + u(x, 1, 0), plus ``num_refinements`` image-space corrections of
    2 NFE each; "fixed-point": the implicit form of the forward jump solved by fixed-point updates
    (any network); "hybrid" (backward head needed): the fixed-point solver on [0, switch * t], then
    ``num_steps`` backward jumps to t; "seeded" (backward head needed): one backward jump 0 -> t seeds
    ``num_iterations`` fixed-point updates (``velocity.invert_seeded``). "auto": see docs/editing.md
    for the measurements behind the choice (``_resolve_method``).

    Args:
        net: a trained pMF network.
        images: (B, C, H, W) float32/float64 in [0, 1], any H, W (see ``size_mode``).
        labels: the class each image shows (one int or (B,)); None inverts under the null class.
        strength: end time t in [0, 1] (0: the image itself in model units, no evaluation).
        num_steps: uniform intervals on [0, t]; each is inverted by ``num_iterations``
            (Anderson-accelerated) fixed-point updates, so nfe = num_steps * num_iterations
            ("fixed-point"); the backward jumps of "backward" and "hybrid".
        num_iterations: fixed-point updates per interval (>= 1); None: 7 ("fixed-point"),
            ``velocity.HYBRID_ITERATIONS`` = 2 ("hybrid", on its one solver interval),
            ``velocity.SEEDED_ITERATIONS`` = 2 ("seeded": nfe = 1 + num_iterations).
        guidance_scale, guidance_interval: the condition the jumps are inverted under; None: the
            checkpoint's recommendation (``net.recommended_guidance``, official checkpoints), else
            1.0 (unguided) on (0, 1).
        method: "auto", "backward", "fixed-point", "hybrid" or "seeded" (above).
        num_refinements: round-trip corrections of the backward solver (>= 0); its
            nfe = num_steps * (1 + 2 * num_refinements).
        switch: "hybrid" only: the solver's share of [0, t], in [0, 1) (0: backward jumps from the
            image itself); nfe = num_iterations + num_steps (num_steps when switch = 0).
        size_mode: how images of another size than the model's are shown to it ("fit", "crop",
            "tile"; ``pmf_edit.images``): the latents are those of what the network saw.

    Returns:
        ``InversionResult``: latents (B T, C, S, S) in model units, input dtype; t; nfe; residual;
        num_tiles T; diverged.

    Warns:
        RuntimeWarning: the fixed-point iteration diverged (latents far outside the range of a
            state; e.g. an untrained checkpoint); the message names the remedies.

    Raises:
        FloatingPointError: the latents became NaN or infinite.

    Example:
        >>> inv = invert(net, images01, labels=[3, 7])
        >>> inv.latents.shape, inv.nfe
        (torch.Size([2, 1, 32, 32]), 7)
    """
    _check_images(net, images, size_mode)
    y = check_labels(net, labels, images.shape[0], "labels")
    t = check_strength(strength, allow_zero=True)
    guidance_scale, guidance_interval = resolve_guidance(net, guidance_scale, guidance_interval, 1.0)
    K = check_steps(num_steps)
    J = None if num_iterations is None else check_steps(num_iterations, "num_iterations")
    how, R = _resolve_method(net, method), checks.integer(num_refinements, "num_refinements", lo=0)
    sw = _check_switch(switch)
    plan = plan_size(*images.shape[-2:], net.cfg.image_size, size_mode)
    x_in = to_network(plan, images)
    if t == 0:  # the state at t = 0 is the image itself (in model units): nothing to solve
        return InversionResult(latents=to_model(net, x_in).to(device=images.device, dtype=images.dtype), t=0.0,
                               nfe=0, residual=0.0, num_tiles=plan.num_tiles)
    # Tile mode inverts its inputs in chunks (bounded memory); each input is solved on its own.
    parts = [_invert(net, to_model(net, x), t, at.per_input(y), at.per_input(guidance_scale), guidance_interval, K, J,
                     how, R, sw) for x, at in _chunks(x_in, plan, "invert")]
    inv = parts[0]
    latents = inv.latents if len(parts) == 1 else torch.cat([q.latents for q in parts])
    sizes = [q.latents.shape[0] for q in parts]
    residual = sum(q.residual * k for q, k in zip(parts, sizes)) / sum(sizes)  # the mean over all inputs
    return InversionResult(latents=latents.to(device=images.device, dtype=images.dtype), t=inv.t,
                           nfe=inv.nfe * plan.num_tiles, residual=residual, num_tiles=plan.num_tiles,
                           diverged=any(q.diverged for q in parts))


@checks.checked
@with_precision
def reconstruct(
    net: PixelMeanFlow,
    images: torch.Tensor,
    *,
    labels: Labels = None,
    strength: float = 1.0,
    num_steps: int = DEFAULT_INTERVALS,
    num_iterations: int | None = None,
    guidance_scale: float | torch.Tensor | None = None,
    guidance_interval: Interval | None = None,
    method: InvertMethod = "auto",
    num_refinements: int = DEFAULT_REFINEMENTS,
    switch: float = HYBRID_SWITCH,
    size_mode: SizeMode = "fit",
) -> EditResult:
    """Invert to t = ``strength``, then jump back to an image along the same grid (round trip).

    nfe = the inversion's (``invert``) + num_steps to regenerate: 8 by default with the fixed-point
    solver, 4 with the backward field (1 jump + 1 refinement of 2, then 1 to regenerate), 4 with the
    hybrid (2 solver updates + 1 backward jump, then 1 to regenerate).

    Args: as ``invert``.

    Returns:
        ``EditResult`` with images (B, C, H, W) in [0, 1], input dtype and size.

    Example:
        >>> rec = reconstruct(net, images01, labels=labels)
        >>> core.eval.metrics.psnr(rec.images, images01, data_range=1.0).mean()
    """
    _check_images(net, images, size_mode)
    y = check_labels(net, labels, images.shape[0], "labels")
    t = check_strength(strength, allow_zero=True)
    guidance_scale, guidance_interval = resolve_guidance(net, guidance_scale, guidance_interval, 1.0)
    K = check_steps(num_steps)
    J = None if num_iterations is None else check_steps(num_iterations, "num_iterations")
    how, R = _resolve_method(net, method), checks.integer(num_refinements, "num_refinements", lo=0)
    sw = _check_switch(switch)

    if t == 0:
        return _unchanged(net, images, size_mode)

    def run(x01: torch.Tensor, at: _Inputs) -> tuple[torch.Tensor, int]:
        yy, g = at.per_input(y), at.per_input(guidance_scale)
        inv = _invert(net, to_model(net, x01), t, yy, g, guidance_interval, K, J, how, R, sw)
        x, n = vf.generate(net, inv.latents, inv.t, K, yy, g, guidance_interval)
        return to_images(x, x01), inv.nfe + n

    return _sized(net, images, run, size_mode, what="reconstruct")


@checks.checked
@with_precision
def edit(
    net: PixelMeanFlow,
    images: torch.Tensor,
    *,
    labels: Labels,
    source_labels: Labels = None,
    strength: float | None = None,
    num_steps: int | None = None,
    num_inversion_steps: int = 1,
    num_iterations: int = EDIT_ITERATIONS,
    guidance_scale: float | torch.Tensor | None = None,
    guidance_interval: Interval | None = None,
    source_guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
    method: InvertMethod = "auto",
    num_refinements: int | None = None,
    switch: float = HYBRID_SWITCH,
    size_mode: SizeMode = "fit",
    change_gate: ChangeGate | None = DEFAULT_GATE,
) -> EditResult:
    """Change the class of images: invert under the source class to t = ``strength``, regenerate
    from there to t = 0 under the target class in ``num_steps`` jumps.

    With ``method="backward"`` (networks trained in both directions) the inversion is the backward
    field's (``invert``): the latents that regenerate the source under the source class, found in
    1 + 2 ``num_refinements`` evaluations, with no seed noise. With ``method="hybrid"`` the
    noise-seeded solver below runs on [0, switch * strength] only and ``num_inversion_steps`` backward
    jumps carry its state on to t = strength. Otherwise ("fixed-point"):

    The inversion is seeded with the forward noising z_t = (1 - t) x + t s e (e from ``generator``)
    and refined by fixed-point updates until the latent regenerates the source under the source
    class; seeded with the image itself instead (as ``invert`` does, best for reconstruction), the
    latent looks like the image and regenerates it under *any* class (measured: 0-2% target
    accuracy), so an edit needs the noise-like seed.

    Args:
        net: a trained class-conditional pMF network.
        images: (B, C, H, W) float32/float64 in [0, 1], any H, W (see ``size_mode``).
        labels: target class (one int or (B,)).
        source_labels: the class the images show; None inverts under the null class.
        strength: t in [0, 1] to invert to (0 returns the input); larger changes more, smaller keeps
            more structure. None: ``EDIT_STRENGTH`` (1.0), or ``EDIT_STRENGTH_INVERSE`` (0.85) on an
            inverse head.
        num_steps: regeneration jumps (t -> 0); None: ``EDIT_STEPS_INVERSE`` (2) for the one backward jump
            of an inverse head, else 1.
        num_inversion_steps: inversion intervals on [0, t].
        num_iterations: fixed-point updates per inversion interval (fewer: noisier latent, bigger edits).
        guidance_scale, guidance_interval: the target condition's guidance (network inputs); None:
            the checkpoint's recommendation (``net.recommended_guidance``, official checkpoints),
            else ``EDIT_GUIDANCE`` (4.0) on (0, 1).
        source_guidance_scale: guidance used while inverting.
        generator: the caller's generator for the seed noise e ("fixed-point" and "hybrid").
        method: "auto", "backward", "fixed-point", "hybrid" or "seeded" (see ``invert``; "seeded":
            one backward jump seeds ``num_iterations`` solver updates on [0, strength], no noise drawn,
            ``num_inversion_steps`` unused); "auto" is "backward" on a head trained as the generator's
            inverse (``backward_from="data"``: 90% target accuracy at 3 NFE on MNIST), "hybrid" on other
            networks with a backward head (it edits closer to the source at equal accuracy and NFE;
            docs/editing.md), else "fixed-point".
        num_refinements: round-trip corrections of the backward inversion (>= 0); None: 0 on an
            inverse head (``EDIT_REFINEMENTS_INVERSE``: each one pulls the latent back toward a code of
            the source), ``velocity.DEFAULT_REFINEMENTS`` otherwise.
        switch: the hybrid's solver share of [0, strength], in [0, 1).
        size_mode: "fit" (default), "crop" or "tile": how an image of another size than the model's
            is shown to it (``pmf_edit.images``); the result has the input's size.
        change_gate: where the output keeps the source: ``ChangeGate`` (default ``DEFAULT_GATE``: the
            source kept where the change is under 60% of the image's largest, proportionally), None for
            the editor's output as it is (``pmf_edit.editing.gate``; 0 NFE).

    Returns:
        ``EditResult``; nfe = num_inversion_steps * num_iterations + num_steps ("fixed-point") or
        num_inversion_steps * (1 + 2 num_refinements) + num_steps ("backward") or
        num_iterations [switch > 0] + num_inversion_steps + num_steps ("hybrid") or
        1 + num_iterations + num_steps ("seeded").

    Example:
        >>> out = edit(net, images01, source_labels=labels, labels=(labels + 1) % 10,
        ...            generator=torch.Generator().manual_seed(0))
    """
    _check_images(net, images, size_mode)
    n = images.shape[0]
    y_tgt = check_labels(net, labels, n, "labels", required=True)
    y_src = check_labels(net, source_labels, n, "source_labels")
    if strength is None:
        strength = EDIT_STRENGTH_INVERSE if vf.backward_from_data_only(net) else EDIT_STRENGTH
    t = check_strength(strength, allow_zero=True)
    guidance_scale, guidance_interval = resolve_guidance(net, guidance_scale, guidance_interval, EDIT_GUIDANCE)
    check_guidance(source_guidance_scale, name="source_guidance_scale")
    K_inv, J = check_steps(num_inversion_steps, "num_inversion_steps"), check_steps(num_iterations, "num_iterations")
    how = _resolve_method(net, method, for_edit=True)
    if num_steps is None:  # the inverse head's one backward jump measured best with 2 regeneration jumps
        num_steps = EDIT_STEPS_INVERSE if how == "backward" and vf.backward_from_data_only(net) else 1
    K = check_steps(num_steps)
    if num_refinements is None:
        num_refinements = EDIT_REFINEMENTS_INVERSE if vf.backward_from_data_only(net) else DEFAULT_REFINEMENTS
    R = checks.integer(num_refinements, "num_refinements", lo=0)
    sw = _check_switch(switch)

    if t == 0:
        return _unchanged(net, images, size_mode)

    def run(x01: torch.Tensor, at: _Inputs) -> tuple[torch.Tensor, int]:
        x, y_in, sg = to_model(net, x01), at.per_input(y_src), at.per_input(source_guidance_scale)
        if how == "backward":
            inv = vf.invert_backward(net, x, t, y_in, sg, guidance_interval, K_inv, R)
        elif how == "seeded":  # the backward jump is the seed: no noise drawn
            inv = vf.invert_seeded(net, x, t, y_in, sg, guidance_interval, J)
        elif how == "hybrid":  # the same noise seed as the solver's edit, on [0, switch * t] only
            e = _noise(net, x01.shape[0], 1, generator)[0]
            inv = vf.invert_hybrid(net, x, t, y_in, sg, guidance_interval, sw, J, K_inv, init="noise", noise=e)
        else:
            e = _noise(net, x01.shape[0], 1, generator)[0]
            inv = vf.invert(net, x, t, y_in, sg, guidance_interval, K_inv, J, init="noise", noise=e)
        out, k = vf.generate(net, inv.latents, t, K, at.per_input(y_tgt), at.per_input(guidance_scale),
                             guidance_interval)
        return to_images(out, x01), inv.nfe + k

    return _sized(net, images, run, size_mode, what="edit", gate=change_gate)


@checks.checked
@with_precision
def sdedit(
    net: PixelMeanFlow,
    images: torch.Tensor,
    *,
    labels: Labels = None,
    strength: float = SDEDIT_STRENGTH,
    num_steps: int = 1,
    guidance_scale: float | torch.Tensor | None = None,
    guidance_interval: Interval | None = None,
    generator: torch.Generator | None = None,
    size_mode: SizeMode = "fit",
    change_gate: ChangeGate | None = DEFAULT_GATE,
) -> EditResult:
    """SDEdit in one jump: noise the input to z_t = (1 - t) x + t s e (t = ``strength``), then jump
    to t = 0 under ``labels`` (``num_steps`` jumps; 1 by default).

    Args:
        net: a trained pMF network.
        images: (B, C, H, W) float32/float64 in [0, 1], any H, W (a rough input, a sketch, another class).
        labels: class to produce (one int or (B,)); None = the null class.
        strength: noise level t in [0, 1]; 1 ignores the input, 0 returns it (no evaluation).
        num_steps: jumps from t to 0.
        guidance_scale, guidance_interval: guidance of the regeneration; None: the checkpoint's
            recommendation (``net.recommended_guidance``, official checkpoints), else
            ``EDIT_GUIDANCE`` (4.0) on (0, 1).
        generator: the caller's generator for e.
        size_mode: "fit" (default), "crop" or "tile": how an image of another size than the model's
            is shown to it (``pmf_edit.images``); the result has the input's size.
        change_gate: where the output keeps the source: ``ChangeGate`` (default ``DEFAULT_GATE``: the
            source kept where the change is under 60% of the image's largest, proportionally), None for
            the editor's output as it is (``pmf_edit.editing.gate``; 0 NFE).

    Returns:
        ``EditResult``; nfe = num_steps.

    Example:
        >>> out = sdedit(net, sketch01, labels=4, strength=0.6, generator=torch.Generator().manual_seed(0))
    """
    _check_images(net, images, size_mode)
    n = images.shape[0]
    y = check_labels(net, labels, n, "labels")
    t = check_strength(strength, allow_zero=True)
    guidance_scale, guidance_interval = resolve_guidance(net, guidance_scale, guidance_interval, EDIT_GUIDANCE)
    K = check_steps(num_steps)

    if t == 0:
        return _unchanged(net, images, size_mode)

    def run(x01: torch.Tensor, at: _Inputs) -> tuple[torch.Tensor, int]:
        e = _noise(net, x01.shape[0], 1, generator)[0]
        z = forward_noise(to_model(net, x01), e, t, net.cfg.noise_scale)
        out, k = vf.generate(net, z, t, K, at.per_input(y), at.per_input(guidance_scale), guidance_interval)
        return to_images(out, x01), k

    return _sized(net, images, run, size_mode, what="sdedit", gate=change_gate)


@checks.checked
@with_precision
def flow_edit(
    net: PixelMeanFlow,
    images: torch.Tensor,
    *,
    labels: Labels,
    source_labels: Labels = None,
    strength: float = FLOWEDIT_STRENGTH,
    num_steps: int = FLOWEDIT_STEPS,
    guidance_scale: float | torch.Tensor | None = None,
    guidance_interval: Interval | None = None,
    source_guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
    size_mode: SizeMode = "fit",
    change_gate: ChangeGate | None = DEFAULT_GATE,
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
        images: (B, C, H, W) float32/float64 in [0, 1], any H, W (see ``size_mode``).
        labels: target class (one int or (B,)).
        source_labels: class the images show; None = the null class.
        strength: first time t_0 in [0, 1] (0 returns the input, no evaluation).
        num_steps: K steps (2 network evaluations each).
        guidance_scale, guidance_interval: guidance of the target field; None: the checkpoint's
            recommendation (``net.recommended_guidance``, official checkpoints), else
            ``EDIT_GUIDANCE`` (4.0) on (0, 1).
        source_guidance_scale: guidance of the source field.
        generator: the caller's generator for the noise.
        size_mode: "fit" (default), "crop" or "tile": how an image of another size than the model's
            is shown to it (``pmf_edit.images``); the result has the input's size.
        change_gate: where the output keeps the source: ``ChangeGate`` (default ``DEFAULT_GATE``: the
            source kept where the change is under 60% of the image's largest, proportionally), None for
            the editor's output as it is (``pmf_edit.editing.gate``; 0 NFE).

    Returns:
        ``EditResult``; nfe = 2 * num_steps.

    Example:
        >>> out = flow_edit(net, images01, source_labels=labels, labels=(labels + 1) % 10,
        ...                 generator=torch.Generator().manual_seed(0))
    """
    _check_images(net, images, size_mode)
    n = images.shape[0]
    y_tgt = check_labels(net, labels, n, "labels", required=True)
    y_src = check_labels(net, source_labels, n, "source_labels")
    if y_src is None:
        y_src = torch.full_like(y_tgt, net.null_class)
    t0 = check_strength(strength, allow_zero=True)
    K = check_steps(num_steps)
    guidance_scale, guidance_interval = resolve_guidance(net, guidance_scale, guidance_interval, EDIT_GUIDANCE)
    check_guidance(source_guidance_scale, name="source_guidance_scale")
    ts = torch.linspace(t0, 0.0, K + 1, dtype=torch.float64).tolist()
    s = net.cfg.noise_scale

    if t0 == 0:
        return _unchanged(net, images, size_mode)

    def run(x01: torch.Tensor, at: _Inputs) -> tuple[torch.Tensor, int]:
        m = x01.shape[0]  # network inputs in this call (B T, or a tile-mode chunk of them)
        x_src = to_model(net, x01)
        eps = _noise(net, m, K, generator)
        x_edit = x_src.clone()
        # One batched call per step: [target branch; source branch] with their own conditions.
        y = torch.cat([at.per_input(y_tgt), at.per_input(y_src)])
        omega = [guidance_scale] * m + [source_guidance_scale] * m
        for k in range(K):
            t, r = ts[k], ts[k + 1]
            z_src = forward_noise(x_src, eps[k], t, s)
            z_tgt = z_src + x_edit - x_src
            u = _velocity_mixed(net, torch.cat([z_tgt, z_src]), t, r, y, omega, guidance_interval)  # (2m, C, S, S)
            u_tgt, u_src = u.chunk(2)
            x_edit = x_edit - (t - r) * (u_tgt - u_src)
        return to_images(x_edit, x01), 2 * K

    return _sized(net, images, run, size_mode, what="flow_edit", gate=change_gate)


@torch.no_grad()
def _velocity_mixed(net: PixelMeanFlow, z: torch.Tensor, t: float, r: float, y: torch.Tensor,
                    omega: list[float], interval: Interval) -> torch.Tensor:
    """u(z, r, t) for a batch whose samples carry their own label and guidance scale (checked by the caller)."""
    m = z.shape[0]
    dev = z.device
    full = lambda v: torch.full((m,), float(v), device=dev, dtype=z.dtype)  # noqa: E731
    return net(z, full(t), full(r), y, torch.tensor(omega, device=dev, dtype=z.dtype),
               full(interval[0]), full(interval[1]))


@checks.checked
@with_precision
def inpaint(
    net: PixelMeanFlow,
    images: torch.Tensor,
    mask: torch.Tensor,
    *,
    labels: Labels = None,
    strength: float = 1.0,
    num_steps: int = 4,
    num_resample: int = 2,
    guidance_scale: float | torch.Tensor | None = None,
    guidance_interval: Interval | None = None,
    generator: torch.Generator | None = None,
    size_mode: SizeMode = "fit",
) -> EditResult:
    """Refill the masked region; the unmasked pixels are returned bit-identical.

    RePaint-style with one-step jumps: on times t_k = strength (1 - k / K), k = 0..K-1, repeat
    ``num_resample`` times: noise the current estimate, z = (1 - t_k) x + t_k s e, predict the image
    in one jump x_hat = x(z, 0, t_k), and paste the known pixels back, x = m x_hat + (1 - m) x_known.
    Decreasing t lets the filled region first agree with the known one at a coarse level, then in
    detail; resampling at each level harmonises the seam. At another size than the model's, the
    network refills its own (dilated) mask at its resolution and the masked full-resolution pixels
    take its output resized (``size_mode="crop"`` centres the square on the mask, so a small hole is
    refilled at a higher resolution); every unmasked pixel is still the input's, bit-identical.

    Args:
        net: a trained pMF network.
        images: (B, C, H, W) float32/float64 in [0, 1], any H, W (see ``size_mode``).
        mask: (B, 1, H, W), (B, C, H, W), (1, H, W) or (H, W); bool or {0, 1} float, True/1 = fill.
        labels: class to produce (one int or (B,)); None = the null class.
        strength: first noise level in [0, 1] (1 ignores the masked region's content; 0 returns the
            input, no evaluation).
        num_steps: K noise levels.
        num_resample: rounds per level.
        guidance_scale, guidance_interval: guidance of the jumps; None: the checkpoint's
            recommendation (``net.recommended_guidance``, official checkpoints), else 1.0 on (0, 1).
        generator: the caller's generator for the noise.
        size_mode: "fit" (default), "crop" or "tile": how an image of another size than the model's
            is shown to it (``pmf_edit.images``); the result has the input's size.

    Returns:
        ``EditResult``; nfe = num_steps * num_resample.

    Example:
        >>> m = torch.zeros(1, 1, 32, 32, dtype=torch.bool); m[..., 16:, :] = True   # bottom half
        >>> out = inpaint(net, images01, m, labels=3, generator=torch.Generator().manual_seed(0))
    """
    _check_images(net, images, size_mode)
    n, C, H, W = images.shape
    m = _check_mask(mask, images).to(images.device)
    y = check_labels(net, labels, n, "labels")
    t0 = check_strength(strength, allow_zero=True)
    K = check_steps(num_steps)
    R = check_steps(num_resample, "num_resample")
    guidance_scale, guidance_interval = resolve_guidance(net, guidance_scale, guidance_interval, 1.0)
    s = net.cfg.noise_scale

    if t0 == 0:
        return _unchanged(net, images, size_mode)

    masks: dict[str, torch.Tensor] = {}  # the mask at the network's size, for every input: made once per call

    def run(x01: torch.Tensor, at: _Inputs) -> tuple[torch.Tensor, int]:
        known = to_model(net, x01)
        if "all" not in masks:
            masks["all"] = mask_to_network(at.plan, m.expand(n, -1, -1, -1))  # (B T, 1 or C, S, S)
        mm = masks["all"][at.rows].to(device=known.device, dtype=known.dtype).expand_as(known)  # (rows, C, S, S)
        eps = _noise(net, x01.shape[0], K * R, generator)
        yy, g = at.per_input(y), at.per_input(guidance_scale)
        x = known
        for k in range(K):
            t = t0 * (1.0 - k / K)
            for j in range(R):
                z = forward_noise(x, eps[k * R + j], t, s)
                x_hat = vf.image_field(net, z, t, 0.0, yy, g, guidance_interval)
                x = mm * x_hat + (1.0 - mm) * known
        return to_images(x, x01), K * R

    # The size policy pastes the input's own [0, 1] values outside the mask: bit-identical there
    # (no range round trip), at any size.
    return _sized(net, images, run, size_mode, mask=m, what="inpaint")


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
