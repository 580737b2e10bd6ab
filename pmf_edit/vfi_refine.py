"""Moved to ``pmf_edit.video.refine``; this name stays importable and is the same module object."""
import sys

from pmf_edit.video import refine as _moved

sys.modules[__name__] = _moved
