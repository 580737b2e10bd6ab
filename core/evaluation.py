"""Moved to ``core.eval.evaluation``; this name keeps old imports working (it is the same module object)."""
import sys

from core.eval import evaluation as _moved

sys.modules[__name__] = _moved
