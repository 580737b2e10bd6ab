"""The one boundary between the public pmf_edit API and the model: the rules every task follows.

Numbers (finite, in range, integers), guidance, generators and configs follow ``core.checks``, the
rules that ``core`` and ``apps`` use too; this module adds the image and label rules of the [0, 1] API.

Public functions of ``pmf_edit.editing`` and ``pmf_edit.style`` take float images (B, C, H, W) in
[0, 1] and return the same; ``core`` works in [-1, 1] on the network's device and dtype. Everything
that crosses between the two goes through here, so that every task checks its arguments with the
same rules and words, converts ranges the same way and draws noise the same way:

    checks      images (one rule: torch float32/float64 (B, C, H, W), B >= 1, values in [0, 1]),
                class labels (one rule: indices 0..K-1 or None for the null class), strength,
                step counts, guidance
    ranges      to_model: [0, 1] -> [-1, 1] on the network's device and dtype;
                to_images: [-1, 1] -> [0, 1] (clamped) on the caller's device and dtype
    noise       sample_noise: standard normal drawn sample by sample from the caller's generator, so
                sample i's noise does not depend on the batch size
    noising     forward_noise: z_t = (1 - t) x + t s e, the time convention of core/meanflow.py
    precision   with_precision: the ``precision=`` keyword of every task ("fp32" / "bf16" autocast
                of the network's matmuls, None = ``core.precision``'s session default), one
                autocast region around the whole task so each weight is cast once per call

The jump loop and the inversion are model-range primitives: ``pmf_edit.velocity``.

Example:
    >>> check_images(images01, "content", channels=3)
    >>> x = to_model(net, images01)                        # (B, C, H, W) in [-1, 1]
    >>> e = sample_noise(x.shape[0], x.shape[1:], generator, like=x)
    >>> z = forward_noise(x, e, 0.7, net.cfg.noise_scale)  # z_0.7
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable, Sequence, TypeVar

import torch
from torch import Tensor

from core import checks
from core.images import from_model_range, to_model_range
from core.model import PixelMeanFlow
from core.precision import autocast, state_dtype
from core.sampling import draw_noise

__all__ = [
    "Labels", "check_images", "check_labels", "check_strength", "check_steps", "check_guidance", "resolve_guidance",
    "to_model",
    "to_images", "state_like", "sample_noise", "forward_noise", "noise_of_state", "with_precision",
]

Labels = Tensor | Sequence[int] | Sequence[str] | int | str | None

# ------------------------------------------------------------------------------------------------
# Argument checks: each raises TypeError (not a tensor) or ValueError naming the argument.


def check_images(
    images: Tensor,
    name: str = "images",
    *,
    channels: int | None = None,
    size: int | None = None,
    min_side: int = 1,
) -> None:
    """Raise unless ``images`` is a float32/float64 tensor (B, C, H, W), B >= 1, values in [0, 1].

    Args:
        images: the argument to check.
        name: the argument's name, used in the message.
        channels: the C the model takes (None: any).
        size: the side the model takes, H = W = size (None: any size).
        min_side: smallest H and W accepted.

    Raises:
        TypeError: not a tensor.
        ValueError: dtype, rank, channels, size, empty batch, or values outside [0, 1] (NaN included).

    Example:
        >>> check_images(torch.rand(2, 3, 32, 32), "content", channels=3)
    """
    c = "C" if channels is None else str(channels)
    if not isinstance(images, Tensor):
        hint = ""
        if type(images).__name__ == "ndarray" or hasattr(images, "getbands"):  # numpy array, PIL image
            hint = ("; from an (H, W, C) uint8 array or PIL image: torch.from_numpy(numpy.asarray(a)).permute(2, 0, 1)"
                    "[None].float() / 255, or read a file with pmf_edit.open_image(path).pixels")
        raise TypeError(f"{name} must be a torch.Tensor (B, {c}, H, W) in [0, 1], got {type(images).__name__}{hint}")
    shape = tuple(images.shape)
    if images.dtype not in (torch.float32, torch.float64):
        hint = (": convert with .float() / 255" if images.dtype == torch.uint8
                else ": convert with .float()" if images.is_floating_point() else "")
        raise ValueError(f"{name} must be float32 or float64 in [0, 1], got dtype {images.dtype} (shape {shape}){hint}")
    if images.ndim != 4:
        hint = (f"; one image (C, H, W) is a batch of one: {name}[None]"
                if images.ndim == 3 and images.shape[0] in (1, 3) else "")
        raise ValueError(f"{name} must be (B, C, H, W) = (B, {c}, H, W), got shape {shape}{hint}")
    if channels is not None and images.shape[1] != channels:
        hint = (f"; this looks like channels last (B, H, W, C): {name}.permute(0, 3, 1, 2)"
                if images.shape[-1] == channels and images.shape[1] not in (1, 3) else "")
        raise ValueError(f"{name} must be (B, {channels}, H, W): {images.shape[1]} channels but the model takes "
                         f"{channels}, got shape {shape}{hint}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {shape})")
    if size is not None and tuple(images.shape[2:]) != (size, size):
        raise ValueError(f"{name} are {images.shape[2]}x{images.shape[3]} but the model takes "
                         f"{size}x{size} (shape {shape})")
    if min(images.shape[2:]) < min_side:
        raise ValueError(f"{name} must be at least {min_side}x{min_side} pixels, got shape {shape}")
    lo, hi = float(images.min()), float(images.max())
    if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
        if not bool(torch.isfinite(images).all()):
            raise ValueError(f"{name} must lie in [0, 1] and holds NaN or infinite values (shape {shape})")
        hint = ("; 8-bit values? divide by 255" if hi > 1.0 and hi <= 255.0 and lo >= 0.0 else
                "; model-range values in [-1, 1]? map them with (x + 1) / 2" if lo >= -1.0 and hi <= 1.0 else "")
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}] (shape {shape}){hint}")


def _names_to_indices(net: PixelMeanFlow, labels: str | Sequence[int | str], name: str,
                      class_names: Sequence[str] | None = None) -> list[int]:
    """Class names (or a mix of names and indices) -> indices by ``class_names``, else the network's."""
    from core.class_names import resolve_class

    values = [labels] if isinstance(labels, str) else list(labels)
    names = class_names if class_names is not None else getattr(net, "class_names", None)
    if not names:
        if all(not isinstance(v, str) or v.strip().isdigit() for v in values):  # "3": an index as text
            return [int(v) for v in values]
        raise ValueError(f"{name} given by name ({labels!r}), but this network carries no class names (load it "
                         "with pmf_edit.from_pretrained, or pass class indices)")
    return [resolve_class(v, names, name) for v in values]


def check_labels(net: PixelMeanFlow, labels: Labels, n: int, name: str = "labels", *,
                 required: bool = False, class_names: Sequence[str] | None = None) -> Tensor | None:
    """Class labels as a (n,) int64 tensor on the network's device, or None for the null class.

    The one rule of the public API: a class is an index 0..K-1 (K = ``net.cfg.num_classes``) or,
    for a network that knows its class names (``net.class_names``, set by ``from_pretrained``), a
    name (case-insensitive, any synonym: ``core.class_names.resolve_class``), given once for the
    batch or per image; the null (unconditional) class is asked for with ``None``, never by its
    internal index K (``pmf_edit.velocity`` takes K inside the model range).

    Args:
        net: the network (its ``cfg.num_classes`` bounds the indices).
        labels: None, one int or name, or (n,) integer indices or names.
        n: batch size.
        name: the argument's name, used in the message.
        required: raise if ``labels`` is None.
        class_names: names to resolve by instead of ``net.class_names`` (a model folder's config).

    Example:
        >>> check_labels(net, 3, 2)
        tensor([3, 3])
    """
    k = net.cfg.num_classes
    if labels is None:
        if not required:
            return None
        raise ValueError(f"{name} is required (class indices in [0, {k - 1}])")
    if isinstance(labels, str) or (isinstance(labels, (list, tuple)) and any(isinstance(v, str) for v in labels)):
        labels = _names_to_indices(net, labels, name, class_names)
    try:
        y = torch.as_tensor(labels).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be class indices (an int, a sequence or a tensor) or names, got "
                        f"{type(labels).__name__}") from err
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class indices, got dtype {y.dtype}")
    y = y.long()
    if y.numel() == 1:
        y = y.expand(n)
    if y.shape != (n,):
        raise ValueError(f"{name} must be one int or ({n},) for {n} images, got shape {tuple(y.shape)}")
    if y.min() < 0 or y.max() >= k:
        bad = sorted(set(y[(y < 0) | (y >= k)].tolist()))
        raise ValueError(f"{name} {bad[:5]} outside the model's classes 0..{k - 1} (None = the null class)")
    return y.to(next(net.parameters()).device)


def check_strength(strength: float, *, allow_zero: bool = False, name: str = "strength") -> float:
    """``strength`` as a float in (0, 1], or [0, 1] with ``allow_zero`` (0 = return the input)."""
    return checks.real(strength, name, lo=0.0, hi=1.0, lo_open=not allow_zero)


def check_steps(num_steps: int, name: str = "num_steps") -> int:
    """A count of steps/iterations as an int >= 1 (NaN, 1.5 and strings refused, naming ``name``)."""
    return checks.integer(num_steps, name, lo=1)


def check_guidance(guidance_scale: float | Tensor, guidance_interval: tuple[float, float] = (0.0, 1.0),
                   name: str = "guidance_scale") -> None:
    """Guidance scale omega >= 1 (1 = unguided; a float or per-sample (B,) tensor) and interval
    0 <= t_min <= t_max <= 1."""
    if isinstance(guidance_scale, Tensor) and guidance_scale.ndim > 0:
        low = float(guidance_scale.min()) if guidance_scale.numel() else 1.0
        if not low >= 1.0 or not bool(torch.isfinite(guidance_scale).all()):  # also catches NaN
            raise ValueError(f"{name} must be >= 1 (1 = unguided), got a minimum of {low}")
    else:
        checks.guidance_scale(guidance_scale, name)
    checks.guidance_interval(guidance_interval)


def resolve_guidance(net: PixelMeanFlow, guidance_scale: float | Tensor | None,
                     guidance_interval: tuple[float, float] | None, default_scale: float = 1.0,
                     name: str = "guidance_scale") -> tuple[float | Tensor, tuple[float, float]]:
    """The guidance a task runs with, checked: what the caller passed; where it passed None, the
    network's ``recommended_guidance`` (an official checkpoint's, set by ``from_pretrained``); else
    ``default_scale`` (the task's own default, measured on the bundled models) and (0, 1).

    Example:
        >>> resolve_guidance(net, None, None, 4.0)       # a bundled model: the task's default
        (4.0, (0.0, 1.0))
    """
    rec = getattr(net, "recommended_guidance", None) or {}
    scale = guidance_scale if guidance_scale is not None else rec.get("guidance_scale", default_scale)
    interval = guidance_interval if guidance_interval is not None else tuple(rec.get("guidance_interval", (0.0, 1.0)))
    check_guidance(scale, interval, name)
    return scale, interval


# ------------------------------------------------------------------------------------------------
# Ranges, noise, forward noising


def to_model(net: PixelMeanFlow, images: Tensor) -> Tensor:
    """[0, 1] images -> [-1, 1] on the network's device, in its state dtype (``core.precision.
    state_dtype``: the weights' float type, at least float32), same shape."""
    return to_model_range(images.to(device=next(net.parameters()).device, dtype=state_dtype(net)))


def to_images(x: Tensor, like: Tensor) -> Tensor:
    """Model-range x -> [0, 1] (clamped) with the device and dtype of ``like`` (the caller's input)."""
    return from_model_range(x).to(device=like.device, dtype=like.dtype)


def state_like(net: PixelMeanFlow) -> Tensor:
    """An empty tensor on the network's device in its state dtype (``core.precision.state_dtype``): the
    ``like`` of ``sample_noise`` and of the images a task hands the network."""
    return torch.empty(0, device=next(net.parameters()).device, dtype=state_dtype(net))


def sample_noise(n: int, shape: Sequence[int], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """(n, *shape) standard normal noise with the device and dtype of ``like``.

    Drawn one sample at a time on the CPU (``core.sampling.draw_noise``), so sample i's noise does
    not depend on the batch size; a sample's several draws (e.g. shape (draws, C, H, W)) are taken
    together.
    """
    return draw_noise(n, tuple(shape), generator, like.device).to(dtype=like.dtype)


def forward_noise(x: Tensor, eps: Tensor, t: float, noise_scale: float) -> Tensor:
    """z_t = (1 - t) x + t s e: the state at time t of image x (model range) with noise e, scale s."""
    return (1.0 - t) * x + t * noise_scale * eps


def noise_of_state(z_t: Tensor, x: Tensor, t: float, noise_scale: float) -> Tensor:
    """The noise e with ``forward_noise(x, e, t, s) == z_t``: e = (z_t - (1 - t) x) / (t s), t > 0."""
    return (z_t - (1.0 - t) * x) / (t * noise_scale)


# ------------------------------------------------------------------------------------------------
# Precision

_Task = TypeVar("_Task", bound=Callable)
_PRECISION_DOC = ('        precision: "fp32", "bf16" (bf16 autocast of the network\'s matmuls; images, states\n'
                  '            and results stay fp32), or None for ``core.precision``\'s session default.\n')


def with_precision(task: _Task) -> _Task:
    """Give a task ``task(net, ...)`` a keyword-only ``precision`` argument: the whole call runs
    inside ``core.precision.autocast(net's device, precision)``.

    One region per call rather than per network evaluation: inside it autocast casts each weight
    to bf16 once, so a task of K evaluations pays the casts once. The argument is added to the
    signature and to the docstring's Args.

    Example:
        >>> @with_precision
        ... def sdedit(net, images, *, strength=0.7): ...
        >>> sdedit(net, images01, precision="bf16")
    """
    @functools.wraps(task)
    def run(net: PixelMeanFlow, *args, precision: str | None = None, **kwargs):
        with autocast(next(net.parameters()).device, precision):
            return task(net, *args, **kwargs)

    sig = inspect.signature(task)
    param = inspect.Parameter("precision", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="str | None")
    run.__signature__ = sig.replace(parameters=[*sig.parameters.values(), param])
    doc = task.__doc__ or ""
    if "\n    Returns:" in doc:  # Google style: the new argument goes last in Args
        head, tail = doc.split("\n    Returns:", 1)
        run.__doc__ = head.rstrip("\n") + "\n" + _PRECISION_DOC + "\n    Returns:" + tail
    return run  # type: ignore[return-value]
