"""The training loop: one linear function, ``train(cfg)``.

Muon for the matrix weights (every nn.Linear), Adam(0.9, 0.95) for everything else (convs, norms,
gates, tokens, embeddings, biases), constant learning rate, no weight decay (PMF_SPEC section 6);
EMA copies with half-lives in kimg (EDM-style ramp-up); safetensors checkpoints written atomically;
exact resume; a tqdm bar, a JSONL log and periodic one-step sample grids.

Several processes: launch with ``torchrun --nproc_per_node N -m apps.cli train ...``; ``parallel``
picks PyTorch DDP or FSDP2 (core/parallel.py). Only the loss's grad forward goes through the DDP
wrapper; the no-grad guidance and JVP passes use the bare module. ``grad_accum`` splits each rank's
share of the global batch into equal micro-batches whose gradients add up before one optimizer step.
Several processes write sharded checkpoints (core/sharded_checkpoint.py) that resume on any number
of processes; one process writes the safetensors format below.

Randomness is a pure function of (seed, step, row of the global batch): the loss's draws for step k
come from ``step_seed(seed, k)`` (``core.meanflow.draw_rows``) and the data order from (seed, epoch),
so the run does not depend on how the global batch is split over processes and micro-batches, and a
resumed run repeats the uninterrupted one exactly.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from core import checks
from core.checkpoint import (atomic_save_json, atomic_save_tensors, atomic_save_text, load_weights_into, read_json,
                             read_safetensors, remove_stale_temp_files, save_model)
from core.data import ImageDataset
from core.images import make_grid, save_png
from core.loader import BatchStream, LoaderConfig, open_training_set
from core.meanflow import (
    FlowMatchingConfig, MeanFlowConfig, draw_fm_rows, draw_rows, fm_loss_given, pmf_loss_given,
)
from core.invert_distill import InvertDistillConfig, draw_invert_rows, invert_distill_loss_given, trainable_parameters
from core.model import PRESETS, PixelMeanFlow, PMFConfig, build_model
from core.parallel import PARALLEL_MODES, ShardedMuon, full_tensors, grad_sync, parallelize
from core.sampling import sample_flow_matching, sample_pmf
from core.sharded_checkpoint import FORMAT as SHARDED_FORMAT
from core.sharded_checkpoint import load_sharded, load_sharded_ema, save_sharded


OBJECTIVES = ("pmf", "fm", "invert")


def model_objective(objective: str) -> str:
    """What the trained network is ("pmf" or "fm"): an "invert" run trains a pMF's backward head."""
    return "fm" if objective == "fm" else "pmf"


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Written to ``<out_dir>/config.json``."""

    out_dir: str = "runs/mnist-pmf"  # run folder (checkpoints, log.jsonl, samples/, model/)
    dataset: str = "mnist"  # built-in name (mnist, digits, photos), an image-folder path, a file list
    #   (lines "path [label]") or a packed folder (core.shards); see core.loader.open_training_set
    stream: bool = False  # decode an image folder lazily in DataLoader workers (ADM centre crop) instead
    #   of loading it into memory: needed for ImageNet-size sets; file lists and packed folders always stream
    data_workers: int = 4  # DataLoader processes per rank decoding streamed sets (0: in the training process)
    hflip: bool = False  # random horizontal flips, a function of (seed, epoch, index); the official pMF
    #   ImageNet recipe uses none
    resolution: int | None = None  # None: the data set's default (mnist: 32)
    channels: int | None = None  # None: the data set's
    preset: str = "pMF-S/4"  # core.model.PRESETS name
    model_overrides: dict = field(default_factory=dict)  # PMFConfig field overrides
    objective: str = "pmf"  # "pmf" (MeanFlow), "fm" (flow-matching baseline, same network) or "invert"
    #   (the backward head trained as the inverse of a frozen pMF generator, core/invert_distill.py;
    #   needs init_from: the generator)
    meanflow: MeanFlowConfig = field(default_factory=MeanFlowConfig)
    flow_matching: FlowMatchingConfig = field(default_factory=FlowMatchingConfig)
    invert: InvertDistillConfig = field(default_factory=InvertDistillConfig)
    perceptual_net: str = "mobilenet"  # feature net of the perceptual term (used when
    #   meanflow.perceptual_weight > 0): "mobilenet" (offline ImageNet MobileNetV2) or a path to
    #   MobileNetV2 weights (torchvision names); LPIPS/ConvNeXt weights do not exist offline
    perceptual_size: int = 224  # side the perceptual net sees (ImageNet: 224; smaller is cheaper)
    batch_size: int = 64  # global batch of one optimizer step (all processes and micro-batches)
    grad_accum: int = 1  # micro-batches per step and process (batch_size / (processes * grad_accum) each)
    parallel: str = "ddp"  # several processes: "ddp" (replicated) or "fsdp" (FSDP2, sharded); one: unused
    steps: int = 4000  # total optimizer steps
    max_minutes: float = 0.0  # also stop (and export) after this much wall-clock time (0: no limit)
    lr: float = 1e-3  # Adam learning rate (constant, as the paper)
    muon_lr: float | None = None  # Muon learning rate; None: the same as lr (the paper's 1e-3)
    lr_cooldown_steps: int = 0  # the last N steps before `steps` scale both rates linearly down toward 0
    #   (a warmup-stable-decay cooldown; 0: constant rates as the paper). Steps, not minutes: a run cut
    #   by max_minutes before `steps` has not cooled down
    adam_betas: tuple[float, float] = (0.9, 0.95)
    muon_momentum: float = 0.95
    ema_halflife_kimg: tuple[float, ...] = (5.0, 20.0)  # EMA half-lives in thousands of images
    ema_rampup: float = 0.05  # half-life <= this share of the images seen so far (EDM)
    export_ema: int = -1  # which EMA copy becomes model/ (index into ema_halflife_kimg)
    seed: int = 0
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    bf16: bool = False  # bf16 autocast for matmuls (CUDA); norms, softmax, 1/t and losses stay fp32
    log_every: int = 10  # steps between JSONL log lines
    sample_every: int = 500  # steps between sample grids (0: never)
    ckpt_every: int = 500  # steps between checkpoints (and at the end)
    keep_checkpoints: int = 2  # older checkpoint folders are deleted
    guidance_scale: float = 2.0  # for the sample grids and the exported model's default
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    threads: int = 0  # torch.set_num_threads on CPU (0: leave torch's default)
    init_from: str | None = None  # model folder (core.checkpoint.save_model format) whose weights
    #   start a NEW run (a warm start, not a resume: fresh optimizer and step 0); heads it lacks are
    #   copied from its u-head (v-head: whole; backward head: blocks, final layer left at zero)
    progress: bool = True  # tqdm bar

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        if "meanflow" in d:
            d["meanflow"] = MeanFlowConfig(**d["meanflow"])
        if "flow_matching" in d:
            d["flow_matching"] = FlowMatchingConfig(**d["flow_matching"])
        if "invert" in d:
            d["invert"] = InvertDistillConfig(**d["invert"])
        for key in ("adam_betas", "ema_halflife_kimg", "guidance_interval"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


# What a resumed run may change and what it may not. Changing a FIXED field would make the
# checkpoint's weights, optimizer state or data order mean something else, so it is refused; every
# other field (steps, max_minutes, lr, muon_lr, the objective's weights, logging, sampling, device...)
# takes effect from the resumed step and is recorded in <out_dir>/resume.jsonl and on stderr.
RESUME_FIXED = ("dataset", "resolution", "channels", "preset", "model_overrides", "objective", "batch_size",
                "seed", "ema_halflife_kimg", "adam_betas", "muon_momentum")


def _validate(cfg: "TrainConfig") -> None:
    """Every field of a TrainConfig in range (NaN, zero and negative values are errors, not defaults)."""
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {cfg.objective!r}")
    if cfg.objective == "invert" and not cfg.init_from:
        raise ValueError("objective 'invert' trains the inverse of an existing generator: pass init_from "
                         "(pmf train --init-from MODEL_DIR)")
    if cfg.preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {cfg.preset!r}")
    if not isinstance(cfg.model_overrides, dict):
        raise TypeError(f"model_overrides must be a dict of PMFConfig fields, got {type(cfg.model_overrides).__name__}")
    fields = set(PMFConfig.__dataclass_fields__)
    unknown = sorted(set(cfg.model_overrides) - fields)
    if unknown:
        raise ValueError(f"model_overrides: unknown PMFConfig field(s) {unknown}; fields are {sorted(fields)}")
    try:
        replace(PRESETS[cfg.preset], **cfg.model_overrides)  # the values themselves (PMFConfig checks them)
    except (TypeError, ValueError) as err:
        raise ValueError(f"model_overrides: {err}") from err
    if cfg.resolution is not None:
        checks.integer(cfg.resolution, "resolution", lo=1)
    if cfg.channels is not None and cfg.channels not in (1, 3):
        raise ValueError(f"channels must be 1, 3 or None (the data set's), got {cfg.channels!r}")
    for name, lo in (("batch_size", 1), ("steps", 1), ("log_every", 1), ("sample_every", 0), ("ckpt_every", 1),
                     ("keep_checkpoints", 1), ("threads", 0), ("seed", 0), ("perceptual_size", 16),
                     ("data_workers", 0), ("lr_cooldown_steps", 0)):
        checks.integer(getattr(cfg, name), name, lo=lo)
    checks.real(cfg.max_minutes, "max_minutes", lo=0.0, hint=" (0: no limit)")
    checks.real(cfg.lr, "lr", lo=0.0, lo_open=True)
    if cfg.muon_lr is not None:
        checks.real(cfg.muon_lr, "muon_lr", lo=0.0, lo_open=True)
    for i, b in enumerate(cfg.adam_betas):
        checks.real(b, f"adam_betas[{i}]", lo=0.0, hi=1.0, hi_open=True)
    checks.real(cfg.muon_momentum, "muon_momentum", lo=0.0, hi=1.0, hi_open=True)
    if not cfg.ema_halflife_kimg:
        raise ValueError("ema_halflife_kimg must hold at least one half-life")
    for h in cfg.ema_halflife_kimg:
        checks.real(h, "ema_halflife_kimg", lo=0.0, lo_open=True)
    checks.real(cfg.ema_rampup, "ema_rampup", lo=0.0)
    n = len(cfg.ema_halflife_kimg)
    checks.integer(cfg.export_ema, "export_ema", lo=-n, hi=n - 1)
    checks.guidance_scale(cfg.guidance_scale)
    checks.guidance_interval(cfg.guidance_interval)
    mf, fm = cfg.meanflow, cfg.flow_matching
    checks.real(mf.P_mean, "P_mean")
    checks.real(mf.P_std, "P_std", lo=0.0, lo_open=True)
    checks.real(fm.P_mean, "P_mean")
    checks.real(fm.P_std, "P_std", lo=0.0, lo_open=True)
    checks.real(mf.cfg_max, "cfg_max", lo=0.0)
    checks.real(mf.perceptual_weight, "perceptual_weight", lo=0.0)
    checks.real(mf.perceptual_max_t, "perceptual_max_t", lo=0.0, hi=1.0)
    for name in ("fm_ratio", "uniform_tr_prob", "label_drop"):
        checks.real(getattr(mf, name), name, lo=0.0, hi=1.0)
    checks.real(fm.label_drop, "label_drop", lo=0.0, hi=1.0)
    if mf.jvp not in ("nograd", "fused"):
        raise ValueError(f"jvp must be 'nograd' or 'fused', got {mf.jvp!r}")
    if not isinstance(cfg.device, str):
        raise TypeError(f"device must be a string (auto, cpu, cuda, cuda:N), got {type(cfg.device).__name__}")


class NonFiniteLossError(RuntimeError):
    """Raised when the loss stops being finite; the last good checkpoint is kept on disk."""


# ------------------------------------------------------------------------------------------------
# Optimizer and EMA


def build_optimizers(net: PixelMeanFlow, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """[Muon over nn.Linear weights, Adam over all other parameters], trainable ones only."""
    linear_weights = {id(m.weight) for m in net.modules() if isinstance(m, torch.nn.Linear)}
    params = [p for p in net.parameters() if p.requires_grad]
    muon_params = [p for p in params if id(p) in linear_weights]
    adam_params = [p for p in params if id(p) not in linear_weights]
    return [
        # "original" scales each update by sqrt(max(1, fan_out / fan_in)), matching optax's Muon.
        # ShardedMuon is torch.optim.Muon with one gather per matrix for FSDP2 shards (core/parallel.py).
        ShardedMuon(muon_params, lr=cfg.muon_lr or cfg.lr, momentum=cfg.muon_momentum, nesterov=True,
                    weight_decay=0.0, adjust_lr_fn="original"),
        torch.optim.Adam(adam_params, lr=cfg.lr, betas=cfg.adam_betas, eps=1e-8, weight_decay=0.0),
    ]


def ema_beta(halflife_kimg: float, step: int, batch_size: int, rampup: float) -> float:
    """Per-step EMA decay: 0.5 ** (batch / halflife_images), halflife <= rampup * images seen."""
    halflife = halflife_kimg * 1000.0
    if rampup > 0:
        halflife = min(halflife, step * batch_size * rampup)
    return 0.5 ** (batch_size / max(halflife, 1e-8))


@torch.no_grad()
def update_ema(ema: dict[str, torch.Tensor], net: PixelMeanFlow, beta: float) -> None:
    for name, p in net.named_parameters():
        ema[name].lerp_(p.detach(), 1.0 - beta)


# ------------------------------------------------------------------------------------------------
# Checkpoint (de)serialisation. Optimizer state dicts are nested; tensors go to safetensors and the
# rest to JSON, with dicts stored as [key, value] pairs so integer keys survive.


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_checkpoint(
    run: Path, step: int, net: PixelMeanFlow, opts: list[torch.optim.Optimizer],
    emas: list[dict[str, torch.Tensor]], sampler: BatchStream, keep: int, world: int = 1,
) -> Path:
    """Write ``checkpoints/step_XXXXXXX/`` (into a temp folder, then renamed) and point
    ``checkpoints/latest.json`` at it; a kill at any moment leaves the previous checkpoint usable.
    With ``world`` > 1 every rank calls this and the folder is a sharded (DCP) checkpoint."""
    root = run / "checkpoints"
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp_step_{step:07d}"
    rank = dist.get_rank() if world > 1 else 0
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    meta = {"step": step, "sampler": sampler.state_dict(), "model_config": net.cfg.to_dict()}
    if world > 1:
        dist.barrier()  # the old temp folder is gone before anyone writes into it
        save_sharded(tmp, net, opts, emas)
        if rank == 0:
            atomic_save_json(tmp / "state.json", {"format": SHARDED_FORMAT, "world_size": world, **meta})
        dist.barrier()  # every shard is on disk before the folder becomes the latest checkpoint
        if rank != 0:
            return final
    else:
        tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in net.state_dict().items()}
        for i, ema in enumerate(emas):
            tensors.update({f"ema{i}.{k}": v for k, v in ema.items()})
        meta["optimizers"] = [_flatten(o.state_dict(), f"opt{i}", tensors) for i, o in enumerate(opts)]
        atomic_save_tensors(tmp / "state.safetensors", tensors)
        atomic_save_json(tmp / "state.json", meta)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_save_json(root / "latest.json", {"step": step, "path": final.name})
    old = sorted(p for p in root.glob("step_*") if p.is_dir() and p != final)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def load_checkpoint(
    run: Path, net: PixelMeanFlow, opts: list[torch.optim.Optimizer],
    emas: list[dict[str, torch.Tensor]], sampler: BatchStream,
) -> int:
    """Restore the latest checkpoint of ``run`` (if any) in place; returns the step to continue from.

    A sharded checkpoint (written by several processes) loads into any number of processes under
    DDP or FSDP2, or into one; a single-process checkpoint loads into one process or into DDP ranks
    (each reads the whole file), not into FSDP2 shards."""
    pointer = run / "checkpoints" / "latest.json"
    if not pointer.is_file():
        return 0
    where = read_json(pointer)
    if not isinstance(where, dict) or "path" not in where:
        raise ValueError(f"corrupt {pointer}: expected {{'step': N, 'path': 'step_N'}}, got {where!r}"[:300])
    ckpt = run / "checkpoints" / where["path"]
    meta = read_json(ckpt / "state.json")
    if PMFConfig.from_dict(meta["model_config"]) != net.cfg:  # fields added later take defaults
        raise ValueError(
            f"checkpoint {ckpt} was trained with a different model config; use a new --out-dir "
            f"(checkpoint: {meta['model_config']}, now: {net.cfg.to_dict()})"
        )
    if meta.get("format") == SHARDED_FORMAT:
        load_sharded(ckpt, net, opts, emas)
        sampler.load_state_dict(meta["sampler"])
        return int(meta["step"])
    if any(isinstance(p, DTensor) for p in net.parameters()):
        raise ValueError(f"checkpoint {ckpt} was written by one process and cannot be loaded into "
                         f"FSDP2 shards; resume it with parallel='ddp' (its next checkpoint is sharded)")
    tensors = read_safetensors(ckpt / "state.safetensors")
    net.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    for i, ema in enumerate(emas):
        for k in ema:
            ema[k].copy_(tensors[f"ema{i}.{k}"])
    for o, state in zip(opts, meta["optimizers"]):
        o.load_state_dict(_unflatten(state, tensors))
    sampler.load_state_dict(meta["sampler"])
    return int(meta["step"])


# ------------------------------------------------------------------------------------------------
# Distributed helpers


def _dist_setup(device: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    return rank, world, torch.device(device)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (written after the checkpoint a resumed run restarts from).

    A torn last line (a kill in the middle of a write) is dropped; an unreadable line elsewhere is an
    error naming the file and line, since it was not written by this loop."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    keep = []
    for i, ln in enumerate(lines):
        try:
            rec = json.loads(ln)
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                print(f"pmf train: dropping the torn last line of {path} (a kill during a write)", file=sys.stderr)
                break
            raise ValueError(f"{path} line {i + 1} is not JSON ({err}); remove that line to resume") from err
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            raise ValueError(f"{path} line {i + 1} has no integer 'step'; remove that line to resume")
        if rec["step"] <= step:
            keep.append(ln)
    atomic_save_text(path, "".join(ln + "\n" for ln in keep))


def _lock_run(run: Path):
    """Hold an exclusive lock on the run folder for this process's lifetime (released by the OS when
    the process dies, even by SIGKILL). Returns the open lock file; a held lock is a clear error."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no lock
        return None
    f = open(run / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise ValueError(f"{run} is in use by another training run (pid {holder} holds {run / '.lock'}); "
                         "wait for it to finish or choose another --out-dir") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def _remove_stale_temp_files(run: Path) -> None:
    """Temporary files and folders that a killed run left behind (safe: we hold the run's lock)."""
    removed = []
    ckpts = run / "checkpoints"
    if ckpts.is_dir():
        for d in ckpts.glob(".tmp_step_*"):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
        for d in ckpts.glob("step_*"):
            removed += remove_stale_temp_files(d)
    for d in (run, ckpts, run / "model", run / "samples"):
        removed += remove_stale_temp_files(d)
    if removed:
        print(f"pmf train: removed {len(removed)} temporary file(s) left by an interrupted run in {run}",
              file=sys.stderr)


def _resume_changes(run: Path, cfg: "TrainConfig", start: int) -> dict[str, list]:
    """Compare the resumed config with the run's previous one: refuse RESUME_FIXED changes, return the
    others as {field: [old, new]}."""
    path = run / "config.json"
    if start == 0 or not path.is_file():
        return {}
    try:
        old = read_json(path).get("train", {})
    except ValueError as err:
        print(f"pmf train: cannot compare with the previous config ({err}); resuming anyway", file=sys.stderr)
        return {}
    new = json.loads(json.dumps(cfg.to_dict()))  # tuples -> lists, as stored
    changed = {k: [old.get(k), v] for k, v in new.items() if k != "out_dir" and k in old and old[k] != v}
    fixed = {k: v for k, v in changed.items() if k in RESUME_FIXED}
    if fixed:
        what = "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in fixed.items())
        raise ValueError(f"{run} cannot resume with a different {', '.join(fixed)} ({what}): these fix what the "
                         f"checkpoint means; use the old values or a new --out-dir")
    return changed


def _time_is_up(t_start: float, minutes: float, world: int) -> bool:
    """Wall-clock budget check that all ranks agree on (else one would wait forever in a collective)."""
    up = torch.tensor([float(time.perf_counter() - t_start > 60.0 * minutes)])
    if world > 1:
        dist.all_reduce(up, op=dist.ReduceOp.MAX)
    return bool(up.item())


def step_seed(seed: int, step: int) -> int:
    """The seed of the loss's draws at ``step`` (``core.meanflow.draw_rows``): a pure function of
    (seed, step), the same on every rank; rows, not ranks, get different draws."""
    return (seed * 1_000_003 + step) % (2**63)


def _mean_over_ranks(stats: dict[str, float], world: int) -> dict[str, float]:
    """Average the step's stats over ranks (every rank gets the same numbers, so a non-finite loss
    on any rank stops all of them together)."""
    if world == 1:
        return stats
    vals = torch.tensor(list(stats.values()), dtype=torch.float64)
    dist.all_reduce(vals)
    return dict(zip(stats, (vals / world).tolist()))


# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def warm_start(net: PixelMeanFlow, directory: str | Path) -> None:
    """Load a model folder's weights into ``net`` for a new run; heads it lacks come from its u-head.

    The v-head (absent from exported models) becomes a copy of the u-head: the u-head at h = 0 is
    the guided instantaneous velocity that the v-head regresses, so the guidance targets start
    right. A backward head gets the u-head's blocks; its final layer too with the "data"
    parameterisation (an image estimate, as the u-head's: then a jump toward noise starts nearly
    right away from t = 0), a zero one with "noise" (its output means the noise endpoint). The
    folder's own backward head is kept only when ours is the same kind (parameterisation and
    ``backward_from``); otherwise it is dropped (e.g. the bundled MNIST model's inverse head when a
    MeanFlow run starts from it). Everything else must match exactly.
    """
    from core.checkpoint import WEIGHTS_NAME, read_config

    directory = Path(directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"--init-from {directory}: no {WEIGHTS_NAME} there (a model folder is needed)")
    src_cfg = PMFConfig.from_dict(read_config(directory)["model"])
    ours = replace(net.cfg, backward_head=False, backward_param="noise", backward_from="any")
    theirs = replace(src_cfg, backward_head=False, backward_param="noise", backward_from="any")
    if ours != theirs:
        raise ValueError(f"--init-from {directory}: its network {theirs} differs from this run's {ours}")
    sd = dict(read_safetensors(weights))
    own = net.state_dict()
    same_head = (src_cfg.backward_head and net.cfg.backward_head and src_cfg.backward_param == net.cfg.backward_param
                 and src_cfg.backward_from == net.cfg.backward_from)
    if not same_head:  # its backward head means something else here (or there is none): start ours afresh
        sd = {k: v for k, v in sd.items() if not k.startswith(("b_blocks.", "b_final."))}
    for k in list(own):
        if k in sd:
            continue
        for head, src in (("v_blocks.", "u_blocks."), ("v_final.", "u_final."), ("b_blocks.", "u_blocks.")):
            if k.startswith(head) and src + k[len(head):] in sd:
                sd[k] = sd[src + k[len(head):]]
        if k.startswith("b_final."):
            if net.cfg.backward_param == "data":  # an image too: the u-head's final layer fits
                sd[k] = sd["u_final." + k[len("b_final."):]]
            else:
                sd[k] = own[k]  # zero-initialised: its output means the noise endpoint
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise ValueError(f"--init-from {weights}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})


def sample_grid(net: PixelMeanFlow, cfg: TrainConfig, num_classes: int, objective: str) -> torch.Tensor:
    """A fixed grid: 8 samples per class (up to 10 classes), the same noise at every call."""
    labels = [c for c in range(min(num_classes, 10)) for _ in range(8)] or None  # None: unconditional
    g = torch.Generator().manual_seed(1234)
    kw = dict(guidance_scale=cfg.guidance_scale, guidance_interval=cfg.guidance_interval, generator=g)
    n = None if labels else 8  # unconditional: 8 samples
    if objective in ("pmf", "invert"):
        return sample_pmf(net, labels, num_samples=n, num_steps=1, **kw).images
    return sample_flow_matching(net, labels, num_samples=n, num_steps=20, method="heun", **kw).images


def lr_factor(step: int, steps: int, cooldown: int) -> float:
    """Multiplier of the learning rates for the update taken at 0-based ``step`` of a ``steps`` run.

    1 until the last ``cooldown`` steps, then linear down: (steps - step) / cooldown, i.e. 1 at the first
    cooled step and 1 / cooldown at the last (a warmup-stable-decay schedule's decay; Hagele et al. 2024).

    Example:
        >>> [lr_factor(s, 10, 4) for s in (5, 6, 7, 9)]
        [1.0, 1.0, 0.75, 0.25]
    """
    if cooldown <= 0 or step < steps - cooldown:
        return 1.0
    return max(steps - step, 1) / cooldown


def train(cfg: TrainConfig, dataset: ImageDataset | Any = None) -> dict[str, Any]:
    """Train (or resume) the run in ``cfg.out_dir``; returns a summary dict.

    The run folder gets ``config.json`` (resolved), ``log.jsonl`` (one line per ``log_every``
    steps), ``samples/step_*.png``, ``checkpoints/`` and, at the end, ``model/`` (the exported EMA
    network, loadable with ``core.checkpoint.load_model`` / ``pmf sample --model``).

    Re-running with the same ``out_dir`` resumes from the latest checkpoint. The fields in
    ``RESUME_FIXED`` (data set, sizes, preset, overrides, objective, batch size, seed, EMA half-lives,
    optimizer betas) may not change then (ValueError); any other change (e.g. a lower ``lr`` after a
    divergence, more ``steps``) takes effect from the resumed step and is written to
    ``resume.jsonl`` and stderr. The folder is locked while a run uses it, and temporary files left by
    a killed run are removed at start.

    Example:
        >>> train(TrainConfig(out_dir="runs/tiny", preset="pMF-T/4", steps=20, batch_size=16))
    """
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {cfg.objective!r}")
    if cfg.parallel not in PARALLEL_MODES:
        raise ValueError(f"parallel must be one of {PARALLEL_MODES}, got {cfg.parallel!r}")
    checks.device(cfg.device)  # a missing CUDA is a clear error here, not a torch traceback later
    rank, world, device = _dist_setup(cfg.device)
    if cfg.grad_accum < 1 or cfg.batch_size % (world * cfg.grad_accum):
        raise ValueError(f"batch_size {cfg.batch_size} must split evenly over {world} processes x "
                         f"grad_accum {cfg.grad_accum} micro-batches")
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    run = Path(cfg.out_dir)
    is_main = rank == 0
    lock = None
    if is_main:
        if run.exists() and not run.is_dir():
            raise ValueError(f"out_dir {run} is a file, not a folder")
        run.mkdir(parents=True, exist_ok=True)
        lock = _lock_run(run)
        _remove_stale_temp_files(run)
    try:
        return _train_locked(cfg, dataset, run, rank, world, device)
    finally:
        if lock is not None:
            lock.close()


def _train_locked(cfg: TrainConfig, dataset: ImageDataset | None, run: Path, rank: int, world: int,
                  device: torch.device) -> dict[str, Any]:
    """``train`` once the run folder is locked (rank 0) and the device is set up."""
    micro = cfg.batch_size // (world * cfg.grad_accum)  # rows per micro-batch (checked by ``train``)
    if dataset is None:
        dataset = open_training_set(cfg.dataset, stream=cfg.stream, resolution=cfg.resolution,
                                    channels=cfg.channels)
    overrides = dict(image_size=dataset.resolution, in_channels=dataset.channels,
                     num_classes=dataset.num_classes, **cfg.model_overrides)
    if cfg.objective == "pmf" and cfg.meanflow.backward_ratio > 0:
        if overrides.get("backward_head") is False:
            raise ValueError("meanflow.backward_ratio > 0 trains r > t rows: it needs backward_head=True")
        overrides["backward_head"] = True
    if cfg.objective == "invert":
        if overrides.get("backward_head") is False:
            raise ValueError("objective 'invert' trains the backward head: it needs backward_head=True")
        if overrides.get("backward_from", "data") != "data":
            raise ValueError("objective 'invert' trains the backward head from t = 0 only: backward_from='data'")
        overrides["backward_head"] = True
        overrides["backward_from"] = "data"
    # Identical initial weights on every rank, drawn from cfg.seed without touching the caller's
    # global RNG (every later draw of the run comes from explicit per-step generators).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = build_model(cfg.preset, with_v_head=cfg.objective == "pmf", **overrides).to(device)
    net.train()
    if cfg.init_from and not (run / "checkpoints" / "latest.json").is_file():  # a new run
        warm_start(net, cfg.init_from)  # on the bare network, before sharding and the EMA copies
    if cfg.objective == "invert":  # the generator is frozen: only the backward head trains
        train_names = set(trainable_parameters(net))
        for k, p in net.named_parameters():
            p.requires_grad_(k in train_names)
    grad_net = parallelize(net, cfg.parallel, world, device)  # before the optimizers (FSDP2 shards)
    opts = build_optimizers(net, cfg)
    emas = [{k: p.detach().clone() for k, p in net.named_parameters()} for _ in cfg.ema_halflife_kimg]
    loader_cfg = LoaderConfig(workers=cfg.data_workers, hflip=cfg.hflip, pin_memory=device.type == "cuda")
    sampler = BatchStream(dataset, cfg.batch_size, seed=cfg.seed, rank=rank, world_size=world,
                          config=loader_cfg, device=device)
    start = load_checkpoint(run, net, opts, emas, sampler)
    is_main = rank == 0
    changed = _resume_changes(run, cfg, start)  # refuses changes that RESUME_FIXED forbids
    # The configured rates win over the ones stored in the optimizer state (a resumed run may lower them);
    # set_rates is called before every step so a cooldown is a function of the step alone (exact resume).
    base_rates = (cfg.muon_lr or cfg.lr, cfg.lr)

    def set_rates(at: int) -> float:
        f = lr_factor(at, cfg.steps, cfg.lr_cooldown_steps)
        for o, lr in zip(opts, base_rates):
            for group in o.param_groups:
                group["lr"] = lr * f
        return f
    if is_main:
        if start:
            note = "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()) or "no settings changed"
            print(f"pmf train: resuming {run} at step {start}: {note}", file=sys.stderr)
            with open(run / "resume.jsonl", "a") as f:
                f.write(json.dumps({"step": start, "time": time.time(), "changed": changed}) + "\n")
        atomic_save_json(run / "config.json", {"train": cfg.to_dict(), "model": net.cfg.to_dict(),
                                               "class_names": dataset.class_names, "world_size": world})
        _truncate_log(run / "log.jsonl", start)
    log = open(run / "log.jsonl", "a") if is_main else None
    bar = None
    if is_main and cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.objective}", unit="step")
    perceptual = None
    if cfg.objective == "pmf" and cfg.meanflow.perceptual_weight > 0:
        from core.eval.perceptual import MobileNetFeatures

        weights = None if cfg.perceptual_net == "mobilenet" else cfg.perceptual_net
        perceptual = MobileNetFeatures(weights, size=cfg.perceptual_size).to(device).distance
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)

    def save() -> Path:  # every rank calls it (several processes write one sharded checkpoint)
        return save_checkpoint(run, step, net, opts, emas, sampler, cfg.keep_checkpoints, world)

    last_ckpt = None
    t_last = time.perf_counter()
    step = start
    t_start = time.perf_counter()
    try:
        while step < cfg.steps:
            if cfg.max_minutes and _time_is_up(t_start, cfg.max_minutes, world):
                last_ckpt = save()
                break
            x_rank, y_rank = next(sampler)  # this rank's rows of the global batch, on device
            seed = step_seed(cfg.seed, step)
            for o in opts:
                o.zero_grad(set_to_none=True)
            stats: dict[str, float] = {}
            for a in range(cfg.grad_accum):
                x, y = x_rank[a * micro : (a + 1) * micro], y_rank[a * micro : (a + 1) * micro]
                first_row = rank * (cfg.batch_size // world) + a * micro  # in the global batch
                # Gradients are reduced across ranks in the last micro-batch's backward only.
                with grad_sync(grad_net, a == cfg.grad_accum - 1):
                    with autocast:
                        if cfg.objective == "pmf":
                            draws = draw_rows(x, cfg.meanflow, seed, first_row, cfg.batch_size)
                            loss, part = pmf_loss_given(net, x, y, draws, cfg.meanflow, perceptual,
                                                        grad_net=grad_net)
                        elif cfg.objective == "invert":
                            draws = draw_invert_rows(x, cfg.invert, dataset.num_classes, seed, first_row,
                                                     cfg.batch_size)
                            loss, part = invert_distill_loss_given(net, x, y, draws, cfg.invert, grad_net=grad_net)
                        else:
                            draws = draw_fm_rows(x, cfg.flow_matching, seed, first_row, cfg.batch_size)
                            loss, part = fm_loss_given(net, x, y, draws, grad_net=grad_net)
                    # Equal micro-batches: the mean of their means is the global batch's mean.
                    (loss / cfg.grad_accum).backward()
                for k, v in part.items():
                    stats[k] = stats.get(k, 0.0) + v / cfg.grad_accum
            stats = _mean_over_ranks(stats, world)
            if not math.isfinite(stats["loss"]):  # checked before the update: the weights stay good
                raise NonFiniteLossError(
                    f"non-finite loss {stats['loss']} at step {step} ({stats}); the last good "
                    f"checkpoint is {last_ckpt or 'none (no checkpoint written yet)'}"
                )
            stats["lr_factor"] = set_rates(step)
            for o in opts:
                o.step()
            step += 1
            for ema, hl in zip(emas, cfg.ema_halflife_kimg):
                update_ema(ema, net, ema_beta(hl, step, cfg.batch_size, cfg.ema_rampup))
            if is_main and (step % cfg.log_every == 0 or step == cfg.steps):
                now = time.perf_counter()
                sec = (now - t_last) / (cfg.log_every if step % cfg.log_every == 0 else 1)
                t_last = now
                log.write(json.dumps({"step": step, **stats, "sec_per_step": sec,
                                      "images_per_sec": cfg.batch_size / sec}) + "\n")
                log.flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.4f}")
            if cfg.sample_every and step % cfg.sample_every == 0:
                ema = full_tensors(emas[cfg.export_ema])  # every rank: FSDP2 gathers the shards
                if is_main:
                    _write_grid(run / "samples" / f"step_{step:07d}.png", net, ema, cfg, dataset.num_classes)
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                last_ckpt = save()
    finally:
        sampler.close()
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    summary: dict[str, Any] = {"steps": step, "out_dir": str(run)}
    export_state = full_tensors(emas[cfg.export_ema])  # every rank: FSDP2 gathers the shards
    if is_main:
        export = run / "model"
        save_model(
            export, net, state_dict=export_state, objective=model_objective(cfg.objective),
            class_names=dataset.class_names,
            sampling=_sampling_defaults(cfg),
            ema_halflife_kimg=cfg.ema_halflife_kimg[cfg.export_ema], train_steps=step,
            dataset=cfg.dataset,
        )
        summary["model_dir"] = str(export)
    return summary


def export_checkpoint(run_dir: str | Path, out_dir: str | Path, ema_index: int = -1,
                      guidance_scale: float | None = None) -> Path:
    """Export the EMA weights of a run's latest checkpoint as a model folder, without resuming it.

    For a look at a run that is still going (or was stopped): the result loads with
    ``core.checkpoint.load_model`` like the ``model/`` folder a finished run writes.
    ``guidance_scale`` (>= 0) replaces the run's sampling default in the folder's config.

    Example:
        >>> export_checkpoint("runs/mnist", "runs/mnist/model_peek")
    """
    from core.checkpoint import read_config

    run = Path(run_dir)
    pointer = run / "checkpoints" / "latest.json"
    if not pointer.is_file():
        raise FileNotFoundError(f"{run} has no checkpoints/latest.json (no checkpoint written yet?)")
    ckpt = run / "checkpoints" / json.loads(pointer.read_text())["path"]
    meta = json.loads((ckpt / "state.json").read_text())
    run_cfg = read_config(run)
    train_cfg = TrainConfig.from_dict(run_cfg["train"])
    n_ema = len(train_cfg.ema_halflife_kimg)
    if guidance_scale is not None and not guidance_scale >= 0:  # before anything is written
        raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")
    if not -n_ema <= ema_index < n_ema:
        raise ValueError(f"ema_index {ema_index} is out of range: the run keeps {n_ema} EMAs "
                         f"(half-lives {list(train_cfg.ema_halflife_kimg)} kimg), indices {-n_ema} to {n_ema - 1}")
    k = range(n_ema)[ema_index]
    with torch.random.fork_rng(devices=[]):  # building the network draws initial weights
        net = PixelMeanFlow(PMFConfig.from_dict(meta["model_config"]), with_v_head=True)
    if meta.get("format") == SHARDED_FORMAT:  # written by several processes
        ema = load_sharded_ema(ckpt, net, k)
    else:
        tensors = read_safetensors(ckpt / "state.safetensors")
        ema = {name[len(f"ema{k}."):]: v for name, v in tensors.items() if name.startswith(f"ema{k}.")}
    return save_model(
        out_dir, net, state_dict=ema, objective=model_objective(train_cfg.objective), class_names=run_cfg.get("class_names"),
        sampling=_sampling_defaults(train_cfg) if guidance_scale is None else {
            **_sampling_defaults(train_cfg), "guidance_scale": guidance_scale, "tuned_by": "pmf export --guidance-scale"},
        ema_halflife_kimg=train_cfg.ema_halflife_kimg[k], train_steps=int(meta["step"]),
        dataset=train_cfg.dataset,
    )


def _sampling_defaults(cfg: TrainConfig) -> dict[str, Any]:
    """The exported model's sampling defaults. An "invert" run keeps its generator's (the generator is
    frozen: its recommended guidance has not changed)."""
    if cfg.objective == "invert" and cfg.init_from:
        from core.checkpoint import read_config

        theirs = read_config(Path(cfg.init_from)).get("sampling")
        if theirs:
            return dict(theirs)
    return {"guidance_scale": cfg.guidance_scale, "guidance_interval": list(cfg.guidance_interval),
            "num_steps": 1 if model_objective(cfg.objective) == "pmf" else 50}


def _write_grid(path: Path, net: PixelMeanFlow, ema: dict[str, torch.Tensor], cfg: TrainConfig,
                num_classes: int) -> None:
    """Sample with the EMA weights (full tensors) in a separate copy of the network and write a PNG
    grid; the live network (possibly sharded or wrapped) is left alone."""
    with torch.random.fork_rng(devices=[]):  # building the copy draws initial weights
        copy = PixelMeanFlow(net.cfg, with_v_head=net.has_v_head)
    load_weights_into(copy, ema, "the EMA weights")
    copy = copy.to(next(iter(ema.values())).device).eval()
    images = sample_grid(copy, cfg, num_classes, cfg.objective)
    save_png(path, make_grid(images, nrow=8))  # one row of 8 per class


__all__ = ["TrainConfig", "train", "warm_start", "export_checkpoint", "NonFiniteLossError", "build_optimizers",
           "ema_beta", "step_seed"]
