"""Data-parallel engines for training: PyTorch DDP or FSDP2 (``fully_shard``), chosen by name.

``parallelize(net, "ddp" | "fsdp", world)`` returns the module that runs the GRAD forward of the loss:

* ``"ddp"``: a ``DistributedDataParallel`` wrapper of ``net`` (bucketed all-reduce overlapped with the
  backward). The loss's no-grad passes (guidance forwards, the ``torch.func.jvp`` of du/dt) call the
  bare ``net``: forward AD cannot go through the wrapper, and they need no gradient sync.
* ``"fsdp"``: ``net`` itself after ``fully_shard`` on every transformer block and then on the root
  (ZeRO-3: parameters, gradients and optimizer state sharded over the ranks, one all-gather per
  block per forward, reduce-scatter in the backward). Parameters become ``DTensor`` shards.

  The JVP on FSDP2: FSDP2's forward pre-hooks all-gather a module's shards into ordinary unsharded
  tensors and swap them in before EVERY forward, the one inside ``torch.func.jvp`` included (the
  hooks are plain module hooks, which functorch's jvp runs), and reshard each block after it (the
  root's small group, embeddings and final layers, stays gathered, as FSDP2 does). So the JVP sees
  ordinary tensors; its tangents are on the inputs (z, t, r) only, the parameters carry none, and no
  DTensor enters forward AD. tests/test_parallel.py checks du/dt under FSDP2 against the bare
  module (and that the blocks are shards again after it) and whole FSDP2 runs against DDP. We chose this over unsharding the whole model around the JVP
  (``net.unshard()``): the hooks gather one block at a time, so the JVP's peak parameter memory is one
  block, not the model.

  Muon on FSDP2: Muon orthogonalises each weight's whole update matrix. Plain ``torch.optim.Muon``
  on ``DTensor`` shards gets it right (DTensor turns every Newton-Schulz matmul into the full-matrix
  operation) but with collectives inside each of the ~15 matmuls per matrix per step (10x slower than
  DDP's optimizer step here). ``ShardedMuon`` instead keeps the momentum in shards, gathers each
  matrix's update once, runs Muon's own Newton-Schulz on it and applies this rank's rows: one
  all-gather per matrix, the same numbers as the unsharded optimizer (tested equal to DDP). Every
  rank repeats the Newton-Schulz work (a few small matmuls per weight, small next to the step).

With one process both modes return ``net`` unchanged (no process group, nothing to shard).
Gradient accumulation: ``grad_sync(grad_net, False)`` around all but the last micro-batch skips the
gradient communication (DDP ``no_sync``; FSDP2 ``set_requires_gradient_sync``).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Literal

import torch
from torch.distributed.tensor import DTensor, distribute_tensor
from torch.optim._muon import _adjust_lr, _zeropower_via_newtonschulz  # Muon's own math, reused

Parallel = Literal["ddp", "fsdp"]
PARALLEL_MODES = ("ddp", "fsdp")


def parallelize(net: torch.nn.Module, mode: Parallel, world: int,
                device: torch.device | None = None) -> torch.nn.Module:
    """Make ``net`` data-parallel over the ``world`` processes of the default process group.

    Args:
        net: the bare network (PixelMeanFlow), already on its device and identical on every rank.
        mode: "ddp" (replicated parameters, all-reduced gradients) or "fsdp" (FSDP2 sharding of
            every block in ``shared_blocks``, ``u_blocks``, ``v_blocks`` and then the root; not for
            a network with a backward head, whose rows are routed per rank).
        world: number of processes; 1 returns ``net`` unchanged.
        device: ``net``'s device (DDP's ``device_ids`` on CUDA).

    Returns:
        The module for the grad forward: the DDP wrapper, or ``net`` itself (sharded in place).
        Build optimizers and EMA copies from ``net.parameters()`` AFTER this call (FSDP2 replaces
        the parameters by DTensor shards).

    Example:
        >>> grad_net = parallelize(net, "ddp", world=dist.get_world_size())
        >>> loss, stats = pmf_loss_given(net, x, y, draws, cfg, grad_net=grad_net)
    """
    if mode not in PARALLEL_MODES:
        raise ValueError(f"parallel must be one of {PARALLEL_MODES}, got {mode!r}")
    if world == 1:
        return net
    # A backward head (bidirectional pMF) runs only for rows with r > t, so which modules run, and
    # which parameters get a gradient, differs between ranks and steps.
    routed = bool(getattr(getattr(net, "cfg", None), "backward_head", False))
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device is not None and device.type == "cuda" else None
        # No buffer sync per forward: the only buffers are the RoPE tables, equal on every rank.
        # find_unused_parameters: a rank whose rows skip the backward head still joins its all-reduce.
        return DistributedDataParallel(net, device_ids=ids, forward_sync_buffers=False,
                                       find_unused_parameters=routed)
    if routed:
        raise ValueError("parallel='fsdp' needs every rank to run the same modules, but the backward "
                         "head runs only for r > t rows (its all-gathers would pair up wrongly); "
                         "train a bidirectional network with parallel='ddp'")
    from torch.distributed.fsdp import fully_shard

    for name in ("shared_blocks", "u_blocks", "v_blocks"):
        for block in getattr(net, name, ()):
            fully_shard(block)
    fully_shard(net)  # the rest: embeddings, tokens, final layers
    return net


@contextlib.contextmanager
def grad_sync(grad_net: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """Inside, the backward of ``grad_net`` syncs gradients across ranks only if ``enabled``
    (False for all but the last micro-batch of an accumulated step; the gradients then add up
    locally and the last backward reduces their sum)."""
    if enabled:
        yield
    elif hasattr(grad_net, "no_sync"):  # DDP
        with grad_net.no_sync():
            yield
    elif hasattr(grad_net, "set_requires_gradient_sync"):  # FSDP2
        grad_net.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            grad_net.set_requires_gradient_sync(True)
    else:  # one process: nothing to sync
        yield


class ShardedMuon(torch.optim.Muon):
    """``torch.optim.Muon`` for FSDP2 ``DTensor`` parameters: one all-gather of each update matrix per
    step, Newton-Schulz on the full matrix, this rank's shard applied (module docstring). Same
    arguments and state (``momentum_buffer``, sharded like its parameter) as ``torch.optim.Muon``,
    which it is for plain tensors.

    Example:
        >>> opt = ShardedMuon(linear_weights, lr=1e-3, momentum=0.95, nesterov=True, weight_decay=0.0)
    """

    @torch.no_grad()
    def step(self, closure=None):
        if not any(isinstance(p, DTensor) for g in self.param_groups for p in g["params"]):
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - group["momentum"])  # elementwise: on the shards, no collective
                update = p.grad.lerp(buf, group["momentum"]) if group["nesterov"] else buf
                full = update.full_tensor() if isinstance(update, DTensor) else update  # (out, in)
                ortho = _zeropower_via_newtonschulz(full, group["ns_coefficients"], group["ns_steps"],
                                                    group["eps"])
                if isinstance(p, DTensor):  # this rank's rows; src_data_rank=None: no communication
                    ortho = distribute_tensor(ortho, p.device_mesh, p.placements, src_data_rank=None)
                lr = float(group["lr"])
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(ortho, alpha=-_adjust_lr(lr, group["adjust_lr_fn"], p.shape))
        return loss


def full_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same dict with every DTensor shard gathered into its full tensor (a collective: every
    rank must call it); plain tensors are returned as they are."""
    return {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in tensors.items()}


__all__ = ["Parallel", "PARALLEL_MODES", "parallelize", "grad_sync", "ShardedMuon", "full_tensors"]
