"""Moved to ``pmf_edit.style.baselines``; this name stays importable and is the same module object."""
import sys

from pmf_edit.style import baselines as _moved

sys.modules[__name__] = _moved
