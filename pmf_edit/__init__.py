"""pmf_edit: image editing, style transfer and frame interpolation on velocity fields.

One subpackage per capability, on three shared modules one level up (never imported sideways):

    boundary.py   the rules every public function follows: argument checks, [0, 1] <-> [-1, 1],
                  per-sample noise, forward noising z_t = (1 - t) x + t s e
    velocity.py   the velocity-field primitives in the model range: jump, image field, inversion,
                  the jump loop (``generate``)
    images.py     the size policy: any H x W through the network's S x S (``size_mode`` fit, crop,
                  tile) and the network's change carried back to H x W edge-aware
    generation.py sample: generation in [0, 1] with the model's own sampling settings
    editing/      invert, reconstruct, edit, sdedit, flow_edit, inpaint; the editors' change gate
    style/        style_transfer, Reinhard and Gatys baselines, style metrics
    video/        optical flow, frame interpolation, video files

Public functions take and return float images in [0, 1], shaped (B, C, H, W) (or (C, H, W) where a
function says so); ``open_image`` / ``write_image`` read a file as a viewer shows it and write a result
that keeps what the file had (alpha, EXIF, colour profile, 16 bits). Names are resolved lazily so importing the package stays cheap. The former flat
modules (``pmf_edit.flow``, ``interpolate``, ``vfi_refine``, ``style_baselines``) remain importable.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "interpolate_frames": "pmf_edit.video.interpolate",
    "interpolate_video": "pmf_edit.video.files",
    "interpolate_videos": "pmf_edit.video.files",
    "from_pretrained": "pmf_edit.editing.tasks",
    "sample": "pmf_edit.generation",
    "open_image": "core.images",
    "write_image": "core.images",
    "ImageFile": "core.images",
    "GenerationResult": "pmf_edit.generation",
    "invert": "pmf_edit.editing.tasks",
    "reconstruct": "pmf_edit.editing.tasks",
    "edit": "pmf_edit.editing.tasks",
    "sdedit": "pmf_edit.editing.tasks",
    "flow_edit": "pmf_edit.editing.tasks",
    "inpaint": "pmf_edit.editing.tasks",
    "EditResult": "pmf_edit.editing.tasks",
    "InversionResult": "pmf_edit.editing.tasks",
    "ChangeGate": "pmf_edit.editing.gate",
    "style_transfer": "pmf_edit.style.transfer",
    "StyleResult": "pmf_edit.style.transfer",
    "reinhard_transfer": "pmf_edit.style.baselines",
    "gatys_transfer": "pmf_edit.style.baselines",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pmf_edit' has no attribute {name!r}")
