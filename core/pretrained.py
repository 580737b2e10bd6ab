"""``from_pretrained``: one entry point for every weight source we can read.

* a model folder written by ``core.checkpoint.save_model`` (``config.json`` + ``model.safetensors``);
* an official pMF PyTorch checkpoint (``pMF-B-16.pt`` ... ``pMF-H-32.pt`` from the authors'
  ``torch`` branch), converted by ``core.official``;
* a ``.safetensors`` file holding an official- or our-named state dict (config inferred from shapes).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from core.checkpoint import load_model
from core.model import PixelMeanFlow
from core.official import load_official


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only=True refuses arbitrary pickled classes (argparse.Namespace, optimizer
        # wrappers, ...): unpickling them would run code from the file.
        raise ValueError(
            f"{path} contains pickled Python objects besides tensors, which we do not unpickle "
            "(it could run code). If you trust the file, load it yourself with "
            "torch.load(path, weights_only=False), keep only the state dict, and pass it to "
            f"core.official.load_official. torch said: {str(err).splitlines()[0]}"
        ) from err


def from_pretrained(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    ema: str | None = None,
    with_v_head: bool = False,
) -> tuple[PixelMeanFlow, dict[str, Any]]:
    """Load a pMF network for inference from a model folder or an official checkpoint file.

    Args:
        path: a folder from ``save_model``, an official ``.pt`` file, or a ``.safetensors`` file.
        device: where the network lives ("cpu", "cuda", ...).
        ema: for files holding several weight sets, which one (entry name or a unique substring
            such as ``"2000"``); by default the EMA, and among several EMAs the paper's best one.
            Not used for model folders (they hold one set).
        with_v_head: also load the auxiliary v-head (training-mode files only).

    Returns:
        (network in eval mode, config dict). The dict has ``"model"`` (PMFConfig fields) and, for
        official files, ``"sampling"`` with the recommended ``guidance_scale``,
        ``guidance_interval`` ([t_min, t_max]), ``num_steps`` and ``noise_scale``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a pMF checkpoint, pickled objects, unknown keys, shape mismatches.

    Example:
        >>> net, cfg = from_pretrained("pMF-B-16.pt")
        >>> s = cfg["sampling"]                      # guidance 8.5 in [0.1, 0.7], 1 step
        >>> z = torch.randn(1, 3, 256, 256) * s["noise_scale"]
        >>> one = torch.ones(1)
        >>> x = z - net(z, one, 0 * one, torch.tensor([207]), s["guidance_scale"] * one,
        ...             s["guidance_interval"][0] * one, s["guidance_interval"][1] * one)
    """
    path = Path(path)
    if path.is_dir():
        if ema is not None:
            raise ValueError(f"{path} is a model folder with one weight set; ema={ema!r} has no meaning")
        return load_model(path, device=device, with_v_head=with_v_head)
    if not path.is_file():
        raise FileNotFoundError(f"no model folder or checkpoint file at {path}")
    obj = load_file(str(path)) if path.suffix == ".safetensors" else _torch_load(path)
    return load_official(obj, device=device, ema=ema, with_v_head=with_v_head, source=str(path))
