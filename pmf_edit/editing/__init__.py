"""Image editing on a pMF network's velocity field: invert, reconstruct, edit, sdedit, flow_edit, inpaint.

    gate.py    the change gate: the editors keep the source where they changed it only a little
    tasks.py   one public function per task, [0, 1] images in and out (argument checks, range
               conversion and noise from ``pmf_edit.boundary``; jumps and inversion from
               ``pmf_edit.velocity``)

Example:
    >>> from pmf_edit.editing import from_pretrained, edit
    >>> net, cfg = from_pretrained(bundled_model_dir("mnist"))
    >>> out = edit(net, images01, source_labels=labels, labels=(labels + 1) % 10)
"""
from __future__ import annotations

from pmf_edit.editing import tasks
from pmf_edit.editing.gate import DEFAULT_GATE, ChangeGate, gate_change
from pmf_edit.editing.tasks import (EDIT_GUIDANCE, EDIT_ITERATIONS, EDIT_STEPS_INVERSE, EDIT_STRENGTH,
                                    EDIT_STRENGTH_INVERSE, FLOWEDIT_STEPS, FLOWEDIT_STRENGTH, SDEDIT_STRENGTH,
                                    EditResult, InversionResult, edit, flow_edit, from_pretrained, inpaint, invert,
                                    reconstruct, sdedit)

__all__ = [
    "EditResult", "InversionResult", "from_pretrained", "invert", "reconstruct", "edit", "sdedit", "flow_edit",
    "inpaint", "EDIT_STRENGTH", "EDIT_STRENGTH_INVERSE", "EDIT_STEPS_INVERSE", "EDIT_ITERATIONS", "EDIT_GUIDANCE",
    "SDEDIT_STRENGTH", "FLOWEDIT_STRENGTH", "FLOWEDIT_STEPS", "ChangeGate", "DEFAULT_GATE", "gate_change",
]


def __getattr__(name: str):
    # Every other name of the former flat module pmf_edit/editing.py (now tasks.py) still resolves here.
    try:
        return getattr(tasks, name)
    except AttributeError:
        raise AttributeError(f"module 'pmf_edit.editing' has no attribute {name!r}") from None
