"""Moved to ``pmf_edit.video.flow``; this name stays importable and is the same module object."""
import sys

from pmf_edit.video import flow as _moved

sys.modules[__name__] = _moved
