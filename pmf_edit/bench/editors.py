"""Editors the benchmark can run: ours by name, or any Python callable given as ``module:function``.

The editor protocol (what a user's callable implements):

    def my_editor(batch: EditBatch) -> torch.Tensor | tuple[torch.Tensor, int] | EditorOutput

``batch.images`` is (B, C, H, W) float32 in [0, 1]; ``batch.items`` the manifest items (source,
target, free-text ``edit``, seed); ``batch.masks`` (B, 1, H, W) bool (True = edit) or None;
``batch.generators`` one ``torch.Generator`` per item, seeded with the item's seed (diffusers
pipelines take such a list as ``generator=``); ``batch.strength`` the sweep's strength or None
(= the editor's default). Return images (B, C, H, W) in [0, 1] (any size the scorer can take), and
optionally the network evaluations per image (NFE; None when unknown).

Built-in editors (``EDITORS``): ``flow_edit``, ``edit``, ``sdedit``, ``inpaint`` on a pMF model
(``pmf_edit.editing``), the flow-matching baselines ``fm_sdedit``, ``fm_flowedit``, ``fm_ode_edit``
(``pmf_edit.bench.fm_editors``), and ``identity`` (returns the input: the no-edit reference point).

Example:
    >>> editor = make_editor("flow_edit")                       # bundled MNIST pMF
    >>> editor = make_editor("my_pkg.editors:sd_img2img")        # a user's callable
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Union

import torch

from pmf_edit.bench.manifest import EditItem
from pmf_edit.editing.gate import DEFAULT_GATE, ChangeGate, gate_change

__all__ = ["EditBatch", "EditorOutput", "Editor", "EDITORS", "make_editor", "load_callable", "default_strength",
           "gated", "make_editor_gated"]


@dataclass(frozen=True)
class EditBatch:
    """What an editor receives for a batch of manifest items."""

    images: torch.Tensor  # (B, C, H, W) float32 in [0, 1]
    items: tuple[EditItem, ...]  # the manifest items, same order
    masks: torch.Tensor | None  # (B, 1, H, W) bool, True = region to edit; None if the manifest has none
    generators: tuple[torch.Generator, ...]  # one per item, seeded with item.seed
    strength: float | None  # the sweep's strength; None = the editor's default


@dataclass(frozen=True)
class EditorOutput:
    """Edited images (B, C, H', W') in [0, 1] and the network evaluations per image (None: unknown)."""

    images: torch.Tensor
    nfe: int | None = None


Editor = Callable[[EditBatch], Union[torch.Tensor, tuple, EditorOutput]]


def _as_output(raw: object, n: int) -> EditorOutput:
    if isinstance(raw, EditorOutput):
        out = raw
    elif isinstance(raw, torch.Tensor):
        out = EditorOutput(raw)
    elif isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[0], torch.Tensor):
        out = EditorOutput(raw[0], raw[1])
    elif hasattr(raw, "images") and isinstance(raw.images, torch.Tensor):  # e.g. pmf_edit.EditResult
        out = EditorOutput(raw.images, getattr(raw, "nfe", None))
    else:
        raise ValueError(f"an editor must return a tensor, (tensor, nfe) or an object with .images; got "
                         f"{type(raw).__name__}")
    x = out.images
    if x.ndim != 4 or x.shape[0] != n or x.shape[1] not in (1, 3) or not x.is_floating_point():
        raise ValueError(f"editor returned images {x.dtype} {tuple(x.shape)}; expected float (B={n}, 1|3, H, W) in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if not (-1e-3 <= lo and hi <= 1 + 1e-3):  # also catches NaN
        raise ValueError(f"editor returned values in [{lo:.4g}, {hi:.4g}]; images must lie in [0, 1]")
    nfe = None if out.nfe is None else int(out.nfe)
    return EditorOutput(x.detach().float().cpu().clamp(0, 1), nfe)


def gated(editor: Editor, gate: ChangeGate) -> Editor:
    """``editor`` with the change gate (``pmf_edit.editing.gate``) applied to its outputs, each against its
    input (resized to the output's size when the editor returns another size): any editor, a diffusion
    pipeline's too, gets what our editors apply to theirs, so the two compare like for like (ours then
    built with ``make_editor(..., change_gate=None)``, so the gate runs once).

    Example:
        >>> editor = gated(make_editor("fm_flowedit"), DEFAULT_GATE)
    """
    def run(batch: EditBatch) -> EditorOutput:
        out = _as_output(editor(batch), len(batch.items))
        src = batch.images
        if src.shape[-2:] != out.images.shape[-2:]:
            src = torch.nn.functional.interpolate(src, size=out.images.shape[-2:], mode="bilinear",
                                                  antialias=True, align_corners=False).clamp(0, 1)
        return EditorOutput(gate_change(out.images, src.expand_as(out.images), gate), out.nfe)

    return run


def load_callable(spec: str) -> Callable:
    """Import ``module:function`` (dots allowed in both parts, e.g. ``pkg.mod:Class.method``)."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ValueError(f"a callable must be given as module:function, got {spec!r}")
    try:
        obj = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ValueError(f"cannot import module {mod_name!r} of {spec!r}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{spec!r}: {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{spec!r} is not callable")
    return obj


# ------------------------------------------------------------------------------------------------
# Our editors


def _labels(batch: EditBatch, field: str) -> torch.Tensor | None:
    vals = [getattr(it, field) for it in batch.items]
    if all(v is None for v in vals):
        return None
    if any(v is None for v in vals):
        raise ValueError(f"items {[it.id for it in batch.items if getattr(it, field) is None][:5]} lack "
                         f"'{field}', which this editor needs for every item")
    return torch.tensor(vals, dtype=torch.long)


def _need(t: torch.Tensor | None, what: str, editor: str) -> torch.Tensor:
    if t is None:
        raise ValueError(f"editor {editor!r} needs a {what} for every manifest item")
    return t


def _per_item(fn: Callable[..., object], batch: EditBatch, **kw) -> EditorOutput:
    """Run a pMF editor item by item, each with its own generator (the pMF API takes one generator for
    a batch; one per item keeps every item's noise a function of its seed alone). On the bundled
    MNIST model batching saves nothing on CPU (flow_edit: 38 ms/image at batch 64, 40 at batch 1)."""
    outs, nfe = [], None
    for i in range(len(batch.items)):
        one = {k: (v[i : i + 1] if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        r = fn(batch.images[i : i + 1], generator=batch.generators[i], **one)
        outs.append(r.images)
        nfe = r.nfe
    return EditorOutput(torch.cat(outs), nfe)


def _pmf_editor(kind: str, model: str | None, guidance_scale: float | None, device: str,
                change_gate: ChangeGate | None) -> Editor:
    from core.checkpoint import bundled_model_dir
    from pmf_edit import editing

    net, _ = editing.from_pretrained(model or bundled_model_dir("mnist"), device=device)
    g = editing.EDIT_GUIDANCE if guidance_scale is None else guidance_scale
    fn = {"flow_edit": editing.flow_edit, "edit": editing.edit, "sdedit": editing.sdedit,
          "inpaint": editing.inpaint}[kind]

    def run(batch: EditBatch) -> EditorOutput:
        kw: dict = {} if batch.strength is None else {"strength": batch.strength}
        tgt, src = _labels(batch, "target"), _labels(batch, "source")
        if kind == "inpaint":
            masks = _need(batch.masks, "mask", kind)
            # Fill with the target class where given, else the source class; guidance as inpaint's default.
            return _per_item(lambda x, **k: fn(net, x, k.pop("mask"), **k), batch, mask=masks,
                             labels=tgt if tgt is not None else src, **kw)
        kw["labels"] = _need(tgt, "target class", kind)
        if kind != "sdedit":
            kw["source_labels"] = src
        return _per_item(lambda x, **k: fn(net, x, **k), batch, guidance_scale=g, change_gate=change_gate, **kw)

    return run


def _fm_editor(kind: str, model: str | None, guidance_scale: float | None, device: str, steps: int) -> Editor:
    from core.checkpoint import bundled_model_dir
    from core.images import from_model_range, to_model_range
    from pmf_edit import editing
    from pmf_edit.bench import fm_editors as fm

    net, cfg = editing.from_pretrained(model or bundled_model_dir("mnist-fm"), device=device)
    g = editing.EDIT_GUIDANCE if guidance_scale is None else guidance_scale
    interval = tuple(cfg.get("sampling", {}).get("guidance_interval", (0.0, 1.0)))
    default = FM_DEFAULT_STRENGTH[kind]

    def run(batch: EditBatch) -> EditorOutput:
        s = default if batch.strength is None else float(batch.strength)
        if not 0.0 < s <= 1.0:
            raise ValueError(f"strength must lie in (0, 1], got {s}")
        x = to_model_range(batch.images.to(device))
        tgt = _need(_labels(batch, "target"), "target class", kind).to(device)
        src = _labels(batch, "source")
        src = torch.full_like(tgt, net.null_class) if src is None else src.to(device)
        if kind == "fm_sdedit":
            out, nfe = fm.fm_sdedit(net, x, tgt, s, steps, g, interval, fm.per_item_noise(net, 1, list(batch.generators))[0])
        elif kind == "fm_flowedit":
            out, nfe = fm.fm_flowedit(net, x, src, tgt, s, steps, g, interval,
                                      fm.per_item_noise(net, steps, list(batch.generators)))
        else:
            out, nfe = fm.fm_ode_edit(net, x, src, tgt, s, steps, g, interval)
        return EditorOutput(from_model_range(out).cpu(), nfe)

    return run


def _identity(batch: EditBatch) -> EditorOutput:
    return EditorOutput(batch.images.clone(), 0)


EDITORS = ("flow_edit", "edit", "sdedit", "inpaint", "fm_sdedit", "fm_flowedit", "fm_ode_edit", "identity")
# The FM editors' strength when none is given (bench_editing.py's comparison point).
FM_DEFAULT_STRENGTH = {"fm_sdedit": 0.7, "fm_flowedit": 0.7, "fm_ode_edit": 1.0}


def default_strength(name: str) -> float | None:
    """The strength an editor uses when none is given (None: no strength, e.g. identity or a callable)."""
    from pmf_edit import editing

    return {"flow_edit": editing.FLOWEDIT_STRENGTH, "edit": editing.EDIT_STRENGTH, "sdedit": editing.SDEDIT_STRENGTH,
            "inpaint": 1.0, **FM_DEFAULT_STRENGTH}.get(name)


def make_editor(
    name: str,
    *,
    model: str | None = None,
    guidance_scale: float | None = None,
    fm_steps: int = 50,
    device: str = "cpu",
    change_gate: ChangeGate | None = DEFAULT_GATE,
) -> Editor:
    """An editor by name (``EDITORS``) or ``module:function``.

    Args:
        name: one of ``EDITORS`` or ``module:function`` (a callable following the editor protocol).
        model: model folder / official file; None = the bundled MNIST pMF (FM editors: the bundled FM).
        guidance_scale: guidance of the target condition; None = ``editing.EDIT_GUIDANCE``.
        fm_steps: Euler steps of the FM editors (each way).
        device: where our models run.
        change_gate: the change gate of our ``edit`` / ``sdedit`` / ``flow_edit`` (the library's default;
            None: their plain output). Other editors have none; ``gated`` gives any editor one.

    Returns:
        A callable ``EditBatch -> EditorOutput`` (a user's callable is returned as is).
    """
    if ":" in name:
        return load_callable(name)
    if name == "identity":
        return _identity
    if name in ("flow_edit", "edit", "sdedit", "inpaint"):
        return _pmf_editor(name, model, guidance_scale, device, change_gate)
    if name in ("fm_sdedit", "fm_flowedit", "fm_ode_edit"):
        if int(fm_steps) != fm_steps or fm_steps < 1:
            raise ValueError(f"fm_steps must be an integer >= 1, got {fm_steps}")
        return _fm_editor(name, model, guidance_scale, device, int(fm_steps))
    raise ValueError(f"unknown editor {name!r}; use one of {EDITORS} or module:function")


def make_editor_gated(name: str, threshold: float | None, **kwargs) -> Editor:
    """``make_editor`` with one gate rule for every editor, what ``--change-gate T`` means on the command
    lines: None: each editor as its library has it (ours gated, others not); 0: no editor gated (ours
    plain); T in (0, 1]: every editor's output gated with ``ChangeGate(threshold=T)`` (``gated``).

    Example:
        >>> editor = make_editor_gated("fm_flowedit", 0.6)   # the FM baseline with our editors' gate
    """
    if threshold is None:
        return make_editor(name, **kwargs)
    editor = make_editor(name, change_gate=None, **kwargs)
    return editor if threshold == 0 else gated(editor, ChangeGate(threshold=threshold))
