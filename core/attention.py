"""One attention function with an explicit backend switch.

Backends:
  * ``"xformers"``: ``xformers.ops.memory_efficient_attention`` (CUDA only, when importable).
  * ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention`` (flash / mem-efficient / CPU kernels).
  * ``"math"``: matmul -> fp32 softmax -> matmul. Slower, O(N^2) memory, but every op has a
    forward-mode AD rule, so it is the only backend that may run inside ``torch.func.jvp``.
  * ``"auto"``: xformers on CUDA when available, otherwise SDPA.

Why the math path exists: the fused kernels (SDPA flash / efficient / cuDNN, xformers) have no
forward-AD formula (pytorch#117629, #128971; flash-attention#1672), so a JVP through them raises
``NotImplementedError``. Two independent guards keep them away from the MeanFlow JVP:
  1. ``forward_ad_safe()``: a context manager that forces ``"math"`` for every call inside it,
     whatever backend the caller asked for. ``core.meanflow`` runs its JVP inside it.
  2. Inputs that are functorch-wrapped (``torch.func.jvp``/``vmap``) or carry a forward-AD tangent
     (``torch.autograd.forward_ad``) are detected and routed to ``"math"`` as well.
"""
from __future__ import annotations

import contextlib
import functools
import math
import threading
from typing import Iterator, Literal

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F

Backend = Literal["auto", "xformers", "sdpa", "math"]
BACKENDS: tuple[str, ...] = ("auto", "xformers", "sdpa", "math")

_state = threading.local()

@functools.lru_cache(maxsize=None)
def _xformers_ops():
    """``xformers.ops`` or None. Imported lazily and only with CUDA present: its kernels are
    CUDA-only, and on a CPU machine the import just prints a warning."""
    if not torch.cuda.is_available():
        return None
    try:  # optional dependency: `pip install pmf-edit[xformers]` on CUDA machines
        import xformers.ops as xops  # type: ignore
    except Exception:  # ImportError, or a broken build that fails at import time
        return None
    return xops


def xformers_available() -> bool:
    """True when CUDA is present and xformers imports."""
    return _xformers_ops() is not None


@contextlib.contextmanager
def forward_ad_safe() -> Iterator[None]:
    """Force the forward-AD-safe ``"math"`` backend for every attention call in this block.

    Example:
        >>> with forward_ad_safe():
        ...     out, tangent = torch.func.jvp(fn, primals, tangents)
    """
    previous = getattr(_state, "force_math", False)
    _state.force_math = True
    try:
        yield
    finally:
        _state.force_math = previous


def _needs_forward_ad_safe(x: torch.Tensor) -> bool:
    if getattr(_state, "force_math", False):
        return True
    if torch.compiler.is_compiling():
        # Dynamo cannot trace the two probes below (one graph break per attention call). A compiled
        # forward is never the MeanFlow JVP: core.meanflow runs the bare module inside
        # forward_ad_safe(), which the check above honours.
        return False
    # torch.func.jvp / vmap wrap their inputs; the fused kernels cannot see through the wrapper.
    if torch._C._functorch.is_functorch_wrapped_tensor(x):
        return True
    # torch.autograd.forward_ad dual tensors carry their tangent on the tensor itself.
    return fwAD.unpack_dual(x).tangent is not None


def resolve_backend(backend: str, q: torch.Tensor, *others: torch.Tensor) -> str:
    """The backend that will actually run for ``backend`` and inputs ``q`` (and ``others``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {BACKENDS}")
    if any(_needs_forward_ad_safe(x) for x in (q, *others)):
        return "math"
    if backend == "auto":
        return "xformers" if (q.is_cuda and xformers_available()) else "sdpa"
    if backend == "xformers" and not (q.is_cuda and xformers_available()):
        raise RuntimeError(
            "attention backend 'xformers' needs CUDA tensors and an importable xformers "
            f"(got device={q.device}, xformers usable={xformers_available()}); use 'sdpa' or 'auto'"
        )
    return backend


def math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(hd)) v with the logits and softmax in fp32. Shapes (B, nh, N, hd)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    acc = torch.promote_types(q.dtype, torch.float32)  # fp32 at least (fp64 stays fp64)
    logits = torch.matmul(q.to(acc) * scale, k.to(acc).transpose(-2, -1))  # (B, nh, N, N)
    weights = logits.softmax(dim=-1).to(v.dtype)
    return torch.matmul(weights, v)  # (B, nh, N, hd)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: Backend = "auto"
) -> torch.Tensor:
    """Scaled dot-product self-attention, no mask.

    Args:
        q, k, v: (B, nh, N, hd) tensors on the same device and dtype.
        backend: ``"auto"``, ``"xformers"``, ``"sdpa"`` or ``"math"`` (see module docstring).
            Inside ``forward_ad_safe()`` or under forward-mode AD it is always ``"math"``.

    Returns:
        (B, nh, N, hd) attention output.

    Example:
        >>> q = k = v = torch.randn(2, 4, 16, 32)
        >>> attention(q, k, v, backend="math").shape
        torch.Size([2, 4, 16, 32])
    """
    if q.ndim != 4 or k.shape != q.shape or v.shape[:-1] != q.shape[:-1]:
        raise ValueError(
            f"attention expects q, k, v of shape (B, nh, N, hd); got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    which = resolve_backend(backend, q, k, v)
    if which == "math":
        return math_attention(q, k, v)
    if which == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    # xformers wants (B, N, nh, hd).
    out = _xformers_ops().memory_efficient_attention(
        q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()
    )
    return out.transpose(1, 2)  # (B, nh, N, hd)
