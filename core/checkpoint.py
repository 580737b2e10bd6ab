"""Checkpoints: safetensors weights + JSON config, written atomically.

A model directory holds
    config.json          {"model": PMFConfig fields, "objective": "pmf" | "fm", "class_names": [...],
                          "sampling": {default guidance etc.}, ...}
    model.safetensors    network weights (EMA weights for a released model; no v-head needed)
A training run (``core/train.py``) keeps its resumable state elsewhere: ``RUN/checkpoints/step_XXXXXXX/``
holds ``state.safetensors`` (network, EMA and optimizer tensors) + ``state.json`` (step, data-order
state, model config, optimizer scalars), or a sharded DCP folder with ``state.json`` for a multi-process
run; ``RUN/checkpoints/latest.json`` names the newest one. ``pmf export RUN OUT`` turns one into a model
directory.

Every file is written to a temporary name in the same folder, fsync'ed, then ``os.replace``d, so a
kill at any moment leaves either the previous file or the new one, never a truncated one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from core.model import PixelMeanFlow, PMFConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ASSETS = Path(__file__).resolve().parent / "assets"
TMP_SUFFIX = ".tmp"  # temporary files are ".<final name>.<random>.tmp" next to the final file
BUNDLED_MODELS = {
    "mnist": "pmf-mnist",  # class-conditional pMF on MNIST-5k (train split), 32x32, one step
    "mnist-fm": "fm-mnist",  # the same network trained as flow matching (baseline), same budget
    "photos": "pmf-photos",  # class-conditional pMF on the 13-source "photos" crops, 32x32 RGB
    "photos-fm": "fm-photos",  # the same network trained as flow matching, same wall-clock budget
}


def bundled_model_dir(name: str = "mnist") -> Path:
    """Folder of a model shipped inside the package (see README, "Bundled models")."""
    if name not in BUNDLED_MODELS:
        raise ValueError(f"unknown bundled model {name!r}; choose one of {sorted(BUNDLED_MODELS)}")
    path = ASSETS / BUNDLED_MODELS[name]
    if not (path / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"bundled model {name!r} is missing from {path}; reinstall pmf-edit or pass --model DIR"
        )
    return path


def _umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the final file follows the umask like open()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_save_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")

    _atomic_write(Path(path), write)


def atomic_save_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    _atomic_write(Path(path), write)


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete temporary files that a killed writer left in ``folder`` (not recursive); returns them.

    Only call this while no other process writes there (``pmf train`` holds the run folder's lock).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.is_file() and p.name.startswith(".")
             and (p.name.endswith(TMP_SUFFIX) or p.name.endswith(".tmp.png"))]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing or corrupt file is an error that names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"corrupt JSON file {path}: {err}") from err


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a .safetensors file; an empty, truncated or foreign file is an error that names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path} is empty (0 bytes): an interrupted copy or download?")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises SafetensorError (not exported) for every bad file
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable safetensors file ({size} bytes; truncated, corrupt or "
                         f"another format?): {msg}") from err


def atomic_save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write a flat dict of tensors as safetensors to ``path`` atomically."""
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _atomic_write(Path(path), lambda tmp: save_file(flat, tmp))


def model_state(net: PixelMeanFlow, include_v_head: bool = False) -> dict[str, torch.Tensor]:
    """The network's weights; the v-head is dropped unless asked for (inference never uses it)."""
    sd = net.state_dict()
    if not include_v_head:
        sd = {k: v for k, v in sd.items() if not k.startswith(("v_blocks.", "v_final."))}
    return sd


def save_model(
    directory: str | Path,
    net: PixelMeanFlow,
    *,
    state_dict: dict[str, torch.Tensor] | None = None,
    include_v_head: bool = False,
    dtype: torch.dtype | None = None,
    **config_extra: Any,
) -> Path:
    """Save a network as ``config.json`` + ``model.safetensors`` in ``directory``.

    Args:
        directory: output folder (created).
        net: the network (its ``cfg`` is written).
        state_dict: weights to write instead of ``net``'s own (e.g. an EMA copy).
        include_v_head: keep the auxiliary v-head weights (needed to resume training only).
        dtype: cast floating weights (e.g. ``torch.bfloat16`` to halve a bundled file).
        **config_extra: more JSON-able entries for config.json (class_names, sampling defaults, ...).

    Returns:
        The directory path.
    """
    directory = Path(directory)
    sd = state_dict if state_dict is not None else model_state(net, include_v_head)
    if not include_v_head:
        sd = {k: v for k, v in sd.items() if not k.startswith(("v_blocks.", "v_final."))}
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    atomic_save_tensors(directory / WEIGHTS_NAME, sd)
    atomic_save_json(directory / CONFIG_NAME, {"model": net.cfg.to_dict(), **config_extra})
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    """Read ``config.json`` of a model directory, with a clear error when it is missing/corrupt."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory} (is it a pmf-edit model folder?)")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"corrupt {path}: {err}") from err


def load_weights_into(net: PixelMeanFlow, sd: dict[str, torch.Tensor], source: str) -> None:
    """Load ``sd`` into ``net`` strictly (v-head may be absent), naming every mismatch."""
    own = net.state_dict()
    # A network built with a v-head needs all of it (a partial v-head would load silently).
    optional = () if net.has_v_head else ("v_blocks.", "v_final.")
    missing = [k for k in own if k not in sd and not (optional and k.startswith(optional))]
    unexpected = [k for k in sd if k not in own]
    shape = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
             for k in sd if k in own and sd[k].shape != own[k].shape]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
        if shape:
            parts.append(f"{len(shape)} shape mismatches (e.g. {shape[:3]})")
        raise ValueError(f"checkpoint {source} does not match the model: " + "; ".join(parts))
    dtype = next(net.parameters()).dtype
    net.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=False)


def load_model(
    directory: str | Path,
    *,
    device: str | torch.device = "cpu",
    with_v_head: bool = False,
) -> tuple[PixelMeanFlow, dict[str, Any]]:
    """Load a model folder written by ``save_model``; returns (network in eval mode, config dict)."""
    directory = Path(directory)
    cfg_all = read_config(directory)
    if "model" not in cfg_all:
        raise ValueError(f"{directory / CONFIG_NAME} has no 'model' section")
    cfg = PMFConfig.from_dict(cfg_all["model"])
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {directory}")
    sd = read_safetensors(weights)
    has_v = any(k.startswith("v_blocks.") for k in sd)
    if with_v_head and not has_v:
        raise ValueError(f"{weights} has no v-head weights; it cannot resume training")
    net = PixelMeanFlow(cfg, with_v_head=with_v_head)
    load_weights_into(net, sd, str(weights))
    return net.to(device).eval(), cfg_all
