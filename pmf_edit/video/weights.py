"""Loading and saving the small learned VFI networks (`refine.RefineNet`, `select.SelectNet`).

Each is a safetensors file of float32 weights whose string metadata is the network's frozen config
dataclass (`net.cfg`), so a file rebuilds its own network. Loaded networks are cached per path (they are
read-only: eval mode, no gradients) and shared between threads.
"""
from __future__ import annotations

import os
import threading
from dataclasses import asdict
from typing import Callable, TypeVar

from torch import nn

Net = TypeVar("Net", bound=nn.Module)

_cache: dict[str, nn.Module] = {}
_lock = threading.Lock()


def load_net(path: str, build: Callable[[dict[str, str]], Net], missing: str) -> Net:
    """The network in the safetensors file `path`, built by `build(metadata)`, cached per path.

    Raises:
        FileNotFoundError: `path` is missing; the message names it, followed by `missing` (where the
            file should come from, what to do instead).
    """
    with _lock:
        if path not in _cache:
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} not found. {missing}")
            from safetensors import safe_open
            from safetensors.torch import load_file

            with safe_open(path, "pt") as fh:
                meta = fh.metadata() or {}
            net = build(meta)
            net.load_state_dict(load_file(path))
            _cache[path] = net.eval().requires_grad_(False)
        return _cache[path]  # type: ignore[return-value]


def save_net(net: nn.Module, path: str) -> None:
    """Write `net`'s weights as safetensors, its config dataclass `net.cfg` as string metadata."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path,
              metadata={k: str(v) for k, v in asdict(net.cfg).items()})
