"""Argument checks shared by ``core``, ``pmf_edit`` and ``apps``: one rule per kind of value.

Every check names the argument, says what it must be and what it got, and raises ``TypeError`` (wrong
kind of value: a string, a dict, a seed where a generator is wanted) or ``ValueError`` (right kind,
bad value: NaN, out of range, 1.5 steps). NaN needs care everywhere: it fails every comparison, so a
check written as ``if x < 1: raise`` lets it through; these checks test ``math.isfinite`` first.

``checked`` applies the rules by argument NAME to any function that uses the library's shared keyword
names (``guidance_scale``, ``num_steps``, ``generator``, ...), so a new public function that uses those
names is validated the same way by adding one decorator line.

Example:
    >>> integer(1.5, "num_steps", lo=1)
    Traceback (most recent call last):
    ValueError: num_steps must be an integer >= 1, got 1.5
"""
from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import math
import numbers
import os
import pathlib
import types
import typing
from typing import Any, Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def _scalar(value: Any) -> Any:
    """A 0-d tensor or numpy scalar as a Python number; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        return value.item()
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"lie in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return ""


def real(value: Any, name: str, *, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, hi_open: bool = False, hint: str = "") -> float:
    """A finite real number within [lo, hi] (ends open where asked) as a float.

    Raises:
        TypeError: not a real number (bool, str, None, a tensor with more than one element, ...).
        ValueError: NaN, infinite or out of range.
    """
    v = _scalar(value)
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}"[:200])
    f = float(v)
    bad = not math.isfinite(f)
    bad = bad or (lo is not None and (f <= lo if lo_open else f < lo))
    bad = bad or (hi is not None and (f >= hi if hi_open else f > hi))
    if bad:
        what = _range_text(lo, hi, lo_open, hi_open) or "a finite number"
        verb = "must" if what.startswith("lie") else "must be"
        raise ValueError(f"{name} {verb} {what}{hint}, got {value!r}")
    return f


def integer(value: Any, name: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """An integer (or an integral float such as 2.0) within [lo, hi], as an int.

    Raises:
        TypeError: not a number.
        ValueError: fractional, NaN, infinite or out of range.
    """
    v = _scalar(value)
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}"[:200])
    ok = isinstance(v, numbers.Integral) or (math.isfinite(float(v)) and float(v).is_integer())
    ok = ok and (lo is None or v >= lo) and (hi is None or v <= hi)
    if not ok:
        what = _range_text(lo, hi, False, False)
        text = f"must {what} (an integer)" if what.startswith("lie") else f"must be an integer {what}".rstrip()
        raise ValueError(f"{name} {text}, got {value!r}")
    return int(v)


def guidance_scale(value: Any, name: str = "guidance_scale") -> float:
    """omega >= 1 (1 = unguided), finite."""
    return real(value, name, lo=1.0, hint=" (1 = unguided)")


def guidance_interval(value: Any, name: str = "guidance_interval") -> tuple[float, float]:
    """(t_min, t_max) with 0 <= t_min <= t_max <= 1."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"{name} must be a pair (t_min, t_max), got {value!r}"[:200])
    lo = real(value[0], f"{name}[0] (t_min)", lo=0.0, hi=1.0)
    hi = real(value[1], f"{name}[1] (t_max)", lo=0.0, hi=1.0)
    if lo > hi:
        raise ValueError(f"{name} must satisfy 0 <= t_min <= t_max <= 1, got {tuple(value)} (reversed?)")
    return lo, hi


def generator(value: Any, name: str = "generator") -> torch.Generator | None:
    """None or a ``torch.Generator`` (a seed is not accepted: say which generator it seeds)."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(value).__name__} {value!r}; "
                        f"for a seed pass torch.Generator().manual_seed(seed)"[:300])
    return value


def config(value: Any, cls: type, name: str = "config") -> Any:
    """None (the defaults) or an instance of the frozen config dataclass ``cls``."""
    if value is None:
        return cls()
    if not isinstance(value, cls):
        hint = f"; build one with {cls.__name__}(**d)" if isinstance(value, dict) else ""
        raise TypeError(f"{name} must be a {cls.__name__} or None, got {type(value).__name__}{hint}")
    return value


def device(value: str | torch.device, name: str = "device") -> torch.device:
    """A device that exists here: "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:N", "mps"."""
    if isinstance(value, str) and value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{name} must be auto, cpu, cuda or cuda:N, got {value!r}") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {value!r}: no CUDA device is available here "
                             "(torch.cuda.is_available() is False); use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name} {value!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name} {value!r}: MPS is not available here; use cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name} must be auto, cpu, cuda or cuda:N, got {value!r}")
    return dev


def network(value: Any, name: str = "net") -> Any:
    """A ``core.model.PixelMeanFlow`` (from ``from_pretrained`` or ``build_model``)."""
    from core.model import PixelMeanFlow  # here, not at the top: core.model imports this module

    if not isinstance(value, PixelMeanFlow):
        raise TypeError(f"{name} must be a PixelMeanFlow network (from from_pretrained or build_model), got "
                        f"{type(value).__name__}")
    return value


def _steps(value: Any, name: str) -> int:
    return integer(value, name, lo=1)


# The shared keyword names of the public API and the rule each follows (see ``checked``).
ARG_RULES: dict[str, Callable[[Any, str], Any]] = {
    "net": network,
    "guidance_scale": guidance_scale,
    "source_guidance_scale": guidance_scale,
    "guidance_interval": guidance_interval,
    "num_steps": _steps,
    "num_inversion_steps": _steps,
    "num_iterations": _steps,
    "num_resample": _steps,
    "generator": generator,
    "device": device,
}


def boolean(value: Any, name: str) -> bool:
    """True/False (numpy bools too); numbers, NaN, strings and arrays are refused."""
    v = _scalar(value)
    if isinstance(v, bool):
        return v
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}"[:200])


def choice(value: Any, name: str, options: tuple) -> Any:
    """One of ``options`` (compared with their type, so 1 is not True and an array is never one)."""
    if not any(type(value) is type(o) and value == o for o in options):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}"[:300])
    return value


def path(value: Any, name: str) -> Any:
    """A file-system path: a str or an ``os.PathLike``."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__} {value!r}"[:200])
    return value


def strings(value: Any, name: str) -> Any:
    """A sequence of strings (a single str is refused: it would be read as its characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) for v in value):
        raise TypeError(f"{name} must be a list or tuple of strings, got {type(value).__name__} {value!r}"[:200])
    return value


def _instance(cls: type) -> Callable[[Any, str], Any]:
    def rule(value: Any, name: str) -> Any:
        if dataclasses.is_dataclass(cls):
            return config(value, cls, name)
        if not isinstance(value, cls):
            what = f"torch.{cls.__name__}" if cls.__module__.startswith("torch") else cls.__name__
            raise TypeError(f"{name} must be a {what}, got {type(value).__name__}"[:200])
        return value

    return rule


def _rule_for(tp: Any) -> Callable[[Any, str], Any] | None:
    """The check that a type annotation implies, or None where the function checks for itself."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    simple = {bool: boolean, int: integer, float: real, str: _string}
    if tp in simple:
        return simple[tp]
    if origin is typing.Literal:
        return lambda v, n: choice(v, n, args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if set(rest) <= {str, os.PathLike, pathlib.Path} and len(rest) > 1:
            inner = path
        elif len(rest) == 1:
            inner = _rule_for(rest[0])
        elif set(rest) <= set(simple):  # e.g. bool | str: any one of them
            inner = _any_of([(t.__name__, simple[t]) for t in rest])
        else:
            return None
        if inner is None:
            return None
        none_ok = type(None) in args
        return lambda v, n: None if (v is None and none_ok) else inner(v, n)
    if origin in (collections.abc.Sequence, list, tuple) and args in ((str,), (str, ...)):
        return strings
    if isinstance(tp, type) and tp.__module__ != "builtins" and origin is None and tp is not torch.Tensor:
        return _instance(tp)  # (tensors are left to the functions: their messages give the shape wanted)
    return None


def _any_of(rules: list[tuple[str, Callable[[Any, str], Any]]]) -> Callable[[Any, str], Any]:
    def rule(value: Any, name: str) -> Any:
        for _, r in rules:
            try:
                return r(value, name)
            except (TypeError, ValueError):
                continue
        kinds = " or ".join(k for k, _ in rules)
        raise TypeError(f"{name} must be a {kinds}, got {type(value).__name__} {value!r}"[:200])

    return rule


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}"[:200])
    return value


def checked(fn: F) -> F:
    """Decorator: check every argument of ``fn`` before the call: by NAME where the name is in
    ``ARG_RULES``, else by its type annotation (bool, int, float, str, Literal, a path, a sequence of
    strings, a class such as Tensor or a config dataclass; ``X | None`` lets None through). Arguments
    with other annotations are left to the function.

    An argument left at a default of None is not checked (None means "the function decides").

    Example:
        >>> @checked
        ... def sample(net, *, num_steps: int = 1, guidance_scale: float = 1.0): ...
        >>> sample(None, guidance_scale=float("nan"))
        Traceback (most recent call last):
        ValueError: guidance_scale must be >= 1 (1 = unguided), got nan
    """
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: check by name only
        hints = {}
    rules = {}
    for n, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        rule = ARG_RULES.get(n) or (_rule_for(hints[n]) if n in hints else None)
        if rule is not None:
            rules[n] = rule

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        for n, rule in rules.items():
            if n in bound.arguments:
                v = bound.arguments[n]
                if v is None and sig.parameters[n].default is None:
                    continue
                rule(v, n)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


__all__ = ["real", "integer", "guidance_scale", "guidance_interval", "generator", "config", "device", "network",
           "boolean", "choice", "path", "strings", "ARG_RULES", "checked"]
