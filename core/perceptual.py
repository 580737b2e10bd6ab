"""Moved to ``core.eval.perceptual``; this name keeps old imports working (it is the same module object)."""
import sys

from core.eval import perceptual as _moved

sys.modules[__name__] = _moved
