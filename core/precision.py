"""Numeric precision and the cheap speed switches of the network, in one place.

* ``precision="bf16"``: bf16 autocast around the network's forwards (matmuls and convs in bf16;
  RMSNorm statistics, RoPE, the attention softmax of the math path and the x -> u conversion stay
  fp32, see core/model.py). The MeanFlow JVP always runs in fp32 (core.meanflow.du_dt disables
  autocast around it), so a bf16 training step keeps an fp32 tangent.
* ``tf32``: TF32 tensor-core matmuls / convolutions for fp32 work on CUDA (no effect on CPU).
* ``channels_last``: NHWC memory format for the patch embedding (the network's only convolutions).

Which precision is the default: ``DEFAULT_PRECISION`` below, decided by
benchmarks/bench_cpu_speed.py (speed, fp32 vs bf16 at pMF-B/16) and its PSNR check on the bundled
trained models. A session-wide default can be changed with ``set_default_precision``; every
function that takes ``precision=None`` resolves it through ``resolve_precision``.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Literal

import torch

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")

# fp32 stays the default: on this project's CPU (2 cores, avx512_bf16) bf16 autocast was measured
# below 2x faster than fp32 at pMF-B/16 (benchmarks/bench_cpu_speed.py), the bar for making it the
# default; the numbers are in the README ("CPU speed of the big model").
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
    (for tests). Called directly, the copy wants bf16 inputs (or a bf16 ``autocast``), as any bf16
    module does.

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
    "set_default_precision", "autocast", "set_tf32", "tf32", "to_channels_last", "fast_inference_copy",
]
