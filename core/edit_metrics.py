"""Moved to ``core.eval.edit_metrics``; this name keeps old imports working (it is the same module object)."""
import sys

from core.eval import edit_metrics as _moved

sys.modules[__name__] = _moved
