"""Numeric precision and the cheap speed switches of the network, in one place.

* ``precision="bf16"``: bf16 autocast around the network's forwards (matmuls and convs in bf16;
  RMSNorm statistics, RoPE, the attention softmax of the math path and the x -> u conversion stay
  fp32, see core/model.py). The MeanFlow JVP always runs in fp32 (core.meanflow.du_dt disables
  autocast around it), so a bf16 training step keeps an fp32 tangent.
* ``tf32``: TF32 tensor-core matmuls / convolutions for fp32 work on CUDA (no effect on CPU).
* ``channels_last``: NHWC memory format for the patch embedding (the network's only convolutions).

Two places where precision is chosen:

* the weights, once, when a network is loaded for inference (``core.pretrained.from_pretrained``,
  ``pmf --precision``): ``inference_precision`` turns "auto" into bf16 weights on a CPU with native
  bf16 dot products for networks of ``AUTO_BF16_MIN_PARAMS`` or more (the official sizes), fp32
  otherwise. bf16 weights are the faster bf16 path on CPU (no per-call casts; 1.8x fp32 at pMF-B/16 on the
  earlier sessions' EPYC against 1.56x for autocast, 2.8x on the fifteenth session's Zen 5 EPYC; README "CPU
  speed of the big model").
* the autocast regime of each call (``precision=`` of the samplers and ``pmf_edit`` tasks):
  ``DEFAULT_PRECISION`` below, changeable per session with ``set_default_precision``; every function
  that takes ``precision=None`` resolves it through ``resolve_precision``. It matters for fp32 weights
  only (a bf16 network runs in bf16 whatever the regime).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Literal

import torch

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")

# The autocast regime of an fp32 network stays fp32 by default: bf16 autocast measured 1.56x at
# pMF-B/16 on this project's CPU, below bf16 weights' 1.8x, which is what the loaders give big
# networks by default ("auto" below; README "CPU speed of the big model").
DEFAULT_PRECISION: Precision = "fp32"
_default: list[Precision] = [DEFAULT_PRECISION]  # mutable cell for set_default_precision


def check_precision(precision: str) -> Precision:
    """``precision`` itself when it is one of ``PRECISIONS``; a ValueError naming it otherwise."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision  # type: ignore[return-value]


def resolve_precision(precision: str | None) -> Precision:
    """``precision``, or the session default (``set_default_precision``) when it is None."""
    return _default[0] if precision is None else check_precision(precision)


def set_default_precision(precision: str) -> Precision:
    """Set the precision used where a caller passes ``precision=None``; returns the previous one.

    Example:
        >>> old = set_default_precision("bf16")   # every sampler / pmf_edit call now runs in bf16
        >>> set_default_precision(old)
        'bf16'
    """
    previous = _default[0]
    _default[0] = check_precision(precision)
    return previous


def autocast(device: torch.device | str, precision: str | None = None) -> contextlib.AbstractContextManager:
    """The autocast context for ``precision`` on ``device`` ("fp32": a disabled autocast).

    Put it around a whole task rather than each forward: inside one autocast region the bf16 casts
    of the weights are cached, so a multi-step task casts each weight once.

    Args:
        device: the network's device (its type picks CPU or CUDA autocast).
        precision: "fp32" (autocast off), "bf16", or None for the session default (when that is
            fp32, a caller's enclosing autocast stays in force).

    Example:
        >>> with torch.no_grad(), autocast("cpu", "bf16"):
        ...     u = net(z, t, r)        # matmuls in bf16, u comes back in fp32
    """
    resolved = resolve_precision(precision)
    if precision is None and resolved == "fp32":
        # Nothing asked for: leave the caller's own autocast (if any) in force rather than
        # switching it off.
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=resolved == "bf16")


# "auto" picks bf16 weights from this size up. bf16-weight forward vs fp32 at batch 1, 2 threads, on
# this project's CPU (avx512_bf16), side by side: the bundled 1.3-1.7M models (64 tokens) 0.98-1.0x,
# 7.2M (256 tokens) 1.41x, 22.9M 1.55x, 40.2M 1.69x, pMF-B/16 118M 1.75x (README "CPU speed of the
# big model"). Below the threshold bf16 buys nothing and would only change the small models' numbers.
AUTO_BF16_MIN_PARAMS = 5_000_000
WEIGHT_PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 dot products in hardware (AVX512-BF16 or AMX tiles).

    Elsewhere (AVX2-only CPUs, most ARM builds) bf16 matmuls are emulated and slower than fp32, so
    "auto" keeps fp32 there. Reads torch's CPU probes; False when this torch build has none.
    """
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(probe()) for probe in probes if probe is not None)


def inference_precision(net: torch.nn.Module, precision: str = "auto") -> Precision:
    """The weight precision ``precision`` means for inference with ``net`` where it lives now.

    "fp32" and "bf16" are themselves; "auto" is "bf16" when the network is on a CPU with native bf16
    (``cpu_has_native_bf16``) and has at least ``AUTO_BF16_MIN_PARAMS`` parameters, else "fp32"
    (CUDA stays fp32: bf16 there is unmeasured in this project; small networks gain nothing).

    Example:
        >>> from core.model import build_model
        >>> inference_precision(build_model("pMF-T/4"))      # a tiny network: fp32 everywhere
        'fp32'
    """
    if precision not in WEIGHT_PRECISIONS:
        raise ValueError(f"precision must be one of {WEIGHT_PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision  # type: ignore[return-value]
    params = list(net.parameters())
    big = sum(p.numel() for p in params) >= AUTO_BF16_MIN_PARAMS
    on_cpu = bool(params) and params[0].device.type == "cpu"
    return "bf16" if big and on_cpu and cpu_has_native_bf16() else "fp32"


def state_dtype(net: torch.nn.Module) -> torch.dtype:
    """The dtype the samplers and tasks keep images, states and results in for ``net``: its weights'
    float type, at least float32. A bf16 network computes in bf16 but is fed, and returns, float32
    (``PixelMeanFlow.forward`` casts), so a solver's iterates and a task's images keep fp32 precision.

    Example:
        >>> from core.model import build_model
        >>> state_dtype(build_model("pMF-T/4").to(torch.bfloat16))
        torch.float32
    """
    return torch.promote_types(next(net.parameters()).dtype, torch.float32)


def set_tf32(enabled: bool) -> bool:
    """Allow (or forbid) TF32 for fp32 matmuls and cuDNN convolutions on CUDA; returns the previous
    matmul setting. TF32 keeps fp32 range with a 10-bit mantissa (about bf16-autocast accuracy for
    fp32 code that is not autocast). No effect on CPU computations."""
    previous = bool(torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)
    return previous


@contextlib.contextmanager
def tf32(enabled: bool = True) -> Iterator[None]:
    """``set_tf32(enabled)`` for the duration of a block, then the previous settings.

    Example:
        >>> with tf32():
        ...     loss.backward()
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    set_tf32(enabled)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def to_channels_last(net: torch.nn.Module) -> torch.nn.Module:
    """Store the weights of every 4-D convolution of ``net`` in NHWC (channels-last), in place.

    In pMF only the patch embedding is convolutional, so this helps only where its convolution is
    a visible share of the forward (large images, small widths); feed the images in channels-last
    too (``images.contiguous(memory_format=torch.channels_last)``). Returns ``net``.
    """
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.to(memory_format=torch.channels_last)
    return net


def fast_inference_copy(net: torch.nn.Module, *, compile: bool = True, backend: str = "inductor") -> torch.nn.Module:
    """A copy of ``net`` for fast inference: its weights stored in bf16 and, with ``compile``, its
    forward compiled by ``torch.compile`` (``nn.Module.compile``: the copy stays a ``PixelMeanFlow``,
    so every sampler and ``pmf_edit`` task takes it; they return the caller's dtype as before).

    On this project's 2-core CPU at pMF-B/16 256x256 (``benchmarks/bench_cpu_speed.py --fast-path``,
    README "CPU speed of the big model") the compiled copy runs a network evaluation 2.0-2.3x faster
    than the fp32 network and the tasks 1.9-2.2x (bf16 autocast alone: 1.6-1.8x), every task >= 40 dB
    against fp32 on the bundled trained models. The price is compilation, once per process: 20-55 CPU
    seconds on the first call, as much again when a second batch size appears (torch then compiles one
    graph with a dynamic batch dimension that later batch sizes reuse), and again for a new image size
    or call pattern; so it pays off over tens of evaluations (a folder of photos, a benchmark), not for
    one edit. ``compile=False`` gives the bf16-weight copy alone (no compilation, a smaller gain).
    Training is unaffected (it never sees the copy). ``backend="eager"`` traces without code generation
    (for tests). Called directly, the copy takes float32 inputs too (it casts them and returns u in
    the input's dtype; since the eleventh session, ``PixelMeanFlow.forward``).

    Example:
        >>> fast = fast_inference_copy(net)                      # net: a trained PixelMeanFlow
        >>> out = pmf_edit.edit(fast, photos01, source_labels=207, labels=281)  # doctest: +SKIP
    """
    import copy

    fast = copy.deepcopy(net).eval().to(torch.bfloat16)
    if compile:
        fast.compile(backend=backend)  # dynamic=None: static first, then one dynamic-batch graph
    return fast


__all__ = [
    "Precision", "PRECISIONS", "DEFAULT_PRECISION", "check_precision", "resolve_precision",
    "AUTO_BF16_MIN_PARAMS", "WEIGHT_PRECISIONS", "cpu_has_native_bf16", "inference_precision", "state_dtype",
    "set_default_precision", "autocast", "set_tf32", "tf32", "to_channels_last", "fast_inference_copy",
]
