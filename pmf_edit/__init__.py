"""pmf_edit: image editing, style transfer and frame interpolation on velocity fields.

Public functions take and return float images in [0, 1], shaped (B, C, H, W) (or (C, H, W) where a
function says so). Names are resolved lazily so importing the package stays cheap.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "interpolate_frames": "pmf_edit.interpolate",
    "interpolate_video": "pmf_edit.video",
    "interpolate_videos": "pmf_edit.video",
    "from_pretrained": "pmf_edit.editing",
    "invert": "pmf_edit.editing",
    "reconstruct": "pmf_edit.editing",
    "edit": "pmf_edit.editing",
    "sdedit": "pmf_edit.editing",
    "flow_edit": "pmf_edit.editing",
    "inpaint": "pmf_edit.editing",
    "EditResult": "pmf_edit.editing",
    "InversionResult": "pmf_edit.editing",
    "style_transfer": "pmf_edit.style",
    "StyleResult": "pmf_edit.style",
    "reinhard_transfer": "pmf_edit.style_baselines",
    "gatys_transfer": "pmf_edit.style_baselines",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pmf_edit' has no attribute {name!r}")
