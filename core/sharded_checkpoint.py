"""Sharded training checkpoints with ``torch.distributed.checkpoint`` (DCP), for several processes.

A checkpoint folder ``checkpoints/step_XXXXXXX/`` written by N processes holds
    .metadata, __<rank>_0.distcp   DCP: model, both optimizers and the EMA copies; under FSDP2 each
                                   rank writes its own shards, under DDP the replicated tensors are
                                   written once
    state.json                     {"format": "dcp", "step", "sampler", "model_config", "world_size"}

Every tensor is saved under its parameter name (``get_model_state_dict`` / ``get_optimizer_state_dict``
key optimizer state by name, not by id), so a checkpoint written by N processes under DDP or FSDP2
loads into M processes under either, or into one process without a process group (DCP reshards on
load). The single-process format (safetensors + JSON, core/train.py) stays what one process writes.

Multi-node: all ranks must see the same ``out_dir`` (a shared file system), as for any DCP save.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict, get_optimizer_state_dict, set_model_state_dict, set_optimizer_state_dict,
)

FORMAT = "dcp"  # state.json "format" of a sharded checkpoint (the single-process one has none)


def _state(net: torch.nn.Module, opts: list[torch.optim.Optimizer],
           emas: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
    state: dict[str, Any] = {"model": get_model_state_dict(net)}
    for i, o in enumerate(opts):
        state[f"opt{i}"] = get_optimizer_state_dict(net, o)  # creates empty state on a fresh optimizer
    for i, ema in enumerate(emas):
        state[f"ema{i}"] = ema  # loaded in place
    return state


def save_sharded(directory: str | Path, net: torch.nn.Module, opts: list[torch.optim.Optimizer],
                 emas: list[dict[str, torch.Tensor]]) -> None:
    """Write model, optimizers and EMA copies to ``directory`` (a collective: every rank calls it).

    Args:
        directory: the checkpoint folder (created; shared by all ranks).
        net: the bare network or the FSDP2-sharded one (not a DDP wrapper: names must be the bare
            module's so DDP and FSDP2 checkpoints are interchangeable).
        opts: the optimizers over ``net``'s parameters.
        emas: EMA copies, each {parameter name: tensor or DTensor shard}.
    """
    dcp.save(_state(net, opts, emas), checkpoint_id=str(directory))


def load_sharded(directory: str | Path, net: torch.nn.Module, opts: list[torch.optim.Optimizer],
                 emas: list[dict[str, torch.Tensor]]) -> None:
    """Restore what ``save_sharded`` wrote into ``net``, ``opts`` and ``emas`` in place, whatever the
    number of processes (or none) and the engine (DDP or FSDP2) that wrote it.

    Example:
        >>> load_sharded(run / "checkpoints" / "step_0000004", net, opts, emas)
    """
    if not (Path(directory) / ".metadata").is_file():
        raise FileNotFoundError(f"{directory} is not a sharded (DCP) checkpoint: no .metadata file")
    state = _state(net, opts, emas)
    dcp.load(state, checkpoint_id=str(directory))
    set_model_state_dict(net, state["model"])
    for i, o in enumerate(opts):
        set_optimizer_state_dict(net, o, state[f"opt{i}"])


def load_sharded_ema(directory: str | Path, net: torch.nn.Module, index: int) -> dict[str, torch.Tensor]:
    """EMA copy ``index`` of a sharded checkpoint as full tensors shaped like ``net``'s parameters
    (a bare network), read in this process alone: the EMA is all that is loaded."""
    ema = {k: torch.empty_like(p) for k, p in net.named_parameters()}
    dcp.load({f"ema{index}": ema}, checkpoint_id=str(directory))
    return ema


__all__ = ["FORMAT", "save_sharded", "load_sharded", "load_sharded_ema"]
