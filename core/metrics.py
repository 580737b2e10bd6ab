"""Moved to ``core.eval.metrics``; this name keeps old imports working (it is the same module object)."""
import sys

from core.eval import metrics as _moved

sys.modules[__name__] = _moved
