"""Moved to ``core.eval.classifier``; this name keeps old imports working (it is the same module object)."""
import sys

from core.eval import classifier as _moved

sys.modules[__name__] = _moved
