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

from core.checkpoint import load_model, read_safetensors
from core.model import PixelMeanFlow, PMFConfig
from core.official import load_official
from core.precision import WEIGHT_PRECISIONS, inference_precision


def _sniff(path: Path) -> str:
    """The file's format from its first bytes (not its name): "safetensors", "torch" or "unknown"."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save zip, or a legacy pickle
        return "torch"
    # safetensors: an 8-byte little-endian header length, then a JSON header starting with "{".
    if len(head) > 8 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"
    return "unknown"


def _first_sentence(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text.split(". ")[0] if text else type(err).__name__)[:200]


def _torch_load(path: Path) -> Any:
    try:
        with open(path, "rb") as f:  # a file object: torch.load would pick its reader by the file's suffix
            return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = _first_sentence(err)
        if "Unsupported global" in str(err):
            # weights_only=True refuses arbitrary pickled classes (argparse.Namespace, optimizer
            # wrappers, ...): unpickling them would run code from the file.
            raise ValueError(
                f"{path} holds pickled Python objects besides tensors, which we do not unpickle (that "
                "could run code from the file); save only the state dict (torch.save(model.state_dict()) "
                "where the file came from) and load that"
            ) from err
        raise ValueError(f"{path} is not a readable torch checkpoint (corrupt or truncated?): {first}") from err
    except Exception as err:  # torch raises EOFError, RuntimeError (zip), ValueError... for a damaged file
        first = _first_sentence(err)
        raise ValueError(f"{path} is not a readable torch checkpoint (truncated or corrupt; an interrupted "
                         f"download?): {first}") from err


def _load_file(path: Path) -> Any:
    """A checkpoint file's contents, by what the bytes are; clear errors for empty/garbage files."""
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path} is empty (0 bytes): an interrupted copy or download?")
    kind = _sniff(path)
    if kind == "safetensors":
        return read_safetensors(path)
    if kind == "torch":
        return _torch_load(path)
    raise ValueError(f"{path} is neither a safetensors file nor a torch checkpoint ({size} bytes, starts with "
                     f"{open(path, 'rb').read(8)!r}); a failed download or a different kind of file?")


def from_pretrained(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    ema: str | None = None,
    with_v_head: bool = False,
    config: PMFConfig | None = None,
    precision: str = "auto",
) -> tuple[PixelMeanFlow, dict[str, Any]]:
    """Load a pMF network for inference from a model folder or an official checkpoint file.

    Args:
        path: a folder from ``save_model``, an official ``.pt`` file, or a ``.safetensors`` file.
        device: where the network lives ("cpu", "cuda", ...).
        ema: for files holding several weight sets, which one (entry name or a unique substring
            such as ``"2000"``); by default the EMA, and among several EMAs the paper's best one.
            Not used for model folders (they hold one set).
        with_v_head: also load the auxiliary v-head (training-mode files only).
        config: the architecture of a checkpoint file with official names that is not one of the
            released sizes (otherwise refused: a truncated file would load as a smaller model).
        precision: the weights' precision: "auto" (default: bf16 for networks of 5M+ parameters on
            a CPU with native bf16, e.g. the official sizes on an AVX512-BF16 machine, 1.8x
            (older EPYC) to 2.8x (Zen 5) faster at pMF-B/16 and >= 40 dB from fp32; fp32 otherwise), "fp32" or "bf16" (see
            ``core.precision.inference_precision``). A ``with_v_head`` load (training-mode) stays
            fp32 under "auto". The tasks take either and return float32 images.

    Returns:
        (network in eval mode, config dict). The dict has ``"model"`` (PMFConfig fields),
        ``"precision"`` (the weights' precision) and, for official files, ``"sampling"`` with the
        recommended ``guidance_scale``, ``guidance_interval`` ([t_min, t_max]), ``num_steps`` and
        ``noise_scale``; that guidance is also on ``net.recommended_guidance``, which the
        ``pmf_edit`` tasks use where no guidance is passed. ``config["class_names"]`` (a model
        folder's, or the ImageNet names of an official file) is also on ``net.class_names``: the
        ``pmf_edit`` tasks then take classes by name (``labels="tabby"``).

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
    if precision not in WEIGHT_PRECISIONS:  # before any file is read
        raise ValueError(f"precision must be one of {WEIGHT_PRECISIONS}, got {precision!r}")
    path = Path(path)
    if path.is_dir():
        if ema is not None or config is not None:
            raise ValueError(f"{path} is a model folder (its config.json gives the architecture, one weight "
                             f"set); ema= and config= are for checkpoint files")
        net, meta = load_model(path, device=device, with_v_head=with_v_head)
    elif not path.is_file():
        raise FileNotFoundError(f"no model folder or checkpoint file at {path}")
    else:
        net, meta = load_official(_load_file(path), device=device, ema=ema, with_v_head=with_v_head, config=config,
                                  source=str(path))
    chosen = "fp32" if (with_v_head and precision == "auto") else inference_precision(net, precision)
    if chosen == "bf16":
        net = net.to(torch.bfloat16)
    net.recommended_guidance = recommended_guidance(meta)
    net.class_names = list(meta["class_names"]) if meta.get("class_names") else None
    net.objective = meta.get("objective", "pmf")
    net.recommended_sampling = {k: meta["sampling"][k] for k in ("num_steps", "guidance_scale", "guidance_interval")
                                if k in (meta.get("sampling") or {})} or None
    return net, {**meta, "precision": chosen}


def recommended_guidance(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The guidance an official checkpoint recommends ({"guidance_scale", "guidance_interval"}) from
    its config dict, or None for other models (the bundled ones: each task's own measured default).

    Official files and model folders converted from them carry it (``source.official_model``)."""
    sampling = meta.get("sampling") or {}
    if not (meta.get("source") or {}).get("official_model") or "guidance_scale" not in sampling:
        return None
    return {"guidance_scale": float(sampling["guidance_scale"]),
            "guidance_interval": tuple(float(v) for v in sampling.get("guidance_interval", (0.0, 1.0)))}
