"""Training-step cost of the pMF loss against the flow-matching loss, same network and batch.

Reports, per objective / JVP strategy: milliseconds per optimizer step (median of timed steps after
warm-up), peak memory (CUDA: max_memory_allocated; CPU: peak resident-set growth over 3 steps in a
fresh subprocess, sampled every 2 ms), the memory autograd saves for backward, and
for pMF a breakdown into the guidance forwards (v-head, 2B rows, no grad), the JVP (r < t rows, no
grad), the grad forward (both heads) and the backward.

    python benchmarks/bench_train_step.py --preset pMF-S/4 --batch-size 32 --out benchmarks/results/train_step.json

``--loop`` times whole optimizer steps of the training loop itself (``core.train.train``: the draws,
the grad forward through DDP / FSDP2 when ``--world`` > 1, gradient-accumulation micro-batches, the
optimizers, EMA, the stats reduction), pMF and FM on the same network, alternating, from the
loop's own ``log.jsonl`` (``sec_per_step``); ``--world N`` runs N gloo (CPU) or NCCL processes:

    python benchmarks/bench_train_step.py --loop --world 2 --parallel ddp --batch-size 32 --steps 6

Prints one JSON line. Ratios (pMF / FM) are the numbers to compare across machines.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.meanflow import (  # noqa: E402
    FlowMatchingConfig, MeanFlowConfig, draw_batch, du_dt, fm_loss, pmf_loss,
)
from core.model import build_model  # noqa: E402
from core.data import ImageDataset  # noqa: E402
from core.train import TrainConfig, build_optimizers, train  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _setup(args, objective: str, device: torch.device):
    torch.manual_seed(0)
    net = build_model(args.preset, with_v_head=objective != "fm", image_size=32, in_channels=1,
                      num_classes=10).to(device)
    opts = build_optimizers(net, TrainConfig())
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(args.batch_size, 1, 32, 32, generator=g) * 2 - 1).to(device)
    y = torch.randint(0, 10, (args.batch_size,), generator=g).to(device)
    return net, opts, x, y


def time_steps(args, objective: str, jvp: str, device: torch.device) -> dict:
    """Median ms per full optimizer step (loss + backward + optimizer)."""
    net, opts, x, y = _setup(args, objective, device)
    times = []
    for i in range(args.warmup + args.steps):
        _sync(device)
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(i)
        if objective == "fm":
            loss, _ = fm_loss(net, x, y, FlowMatchingConfig(), g)
        else:
            loss, _ = pmf_loss(net, x, y, MeanFlowConfig(jvp=jvp), g)
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
        _sync(device)
        if i >= args.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return {"ms_per_step": statistics.median(times), "ms_min": min(times)}


def breakdown(args, device: torch.device) -> dict:
    """Median ms of each phase of one pMF step (the phases of core.meanflow.pmf_loss_given)."""
    net, _, x, y = _setup(args, "pmf", device)
    cfg = MeanFlowConfig()
    phases: dict[str, list[float]] = {"guidance_forwards": [], "jvp": [], "grad_forward": [], "backward": []}

    def clock(name, fn):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        phases[name].append((time.perf_counter() - t0) * 1e3)
        return out

    for i in range(args.warmup + args.steps):
        b = draw_batch(x, cfg, torch.Generator().manual_seed(i))
        z = (1 - b.t.view(-1, 1, 1, 1)) * x + b.t.view(-1, 1, 1, 1) * b.e
        ones = torch.ones_like(b.t)
        null = torch.full_like(y, net.null_class)
        with torch.no_grad():
            v_c = clock("guidance_forwards", lambda: net(
                torch.cat([z, z]), torch.cat([b.t, b.t]), torch.cat([b.t, b.t]), torch.cat([y, null]),
                torch.cat([b.omega, ones]), heads="v").chunk(2)[0])
        mf = b.t > b.r
        clock("jvp", lambda: du_dt(net, z[mf], b.t[mf], b.r[mf], v_c[mf], y[mf], b.omega[mf],
                                   b.t_min[mf], b.t_max[mf]))
        u, v = clock("grad_forward", lambda: net(z, b.t, b.r, y, b.omega, b.t_min, b.t_max, heads="uv"))
        clock("backward", lambda: (u.square().sum() + v.square().sum()).backward())
        if i < args.warmup:
            for k in phases:
                phases[k].clear()
    return {k: statistics.median(v) for k, v in phases.items()}


def saved_activation_mb(args, objective: str, jvp: str, device: torch.device) -> float:
    """MB of tensors autograd keeps for the backward of one loss (deduplicated by storage):
    the activation memory the JVP strategy decides, independent of allocator caching."""
    net, _, x, y = _setup(args, objective, device)
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        try:
            key = t.untyped_storage().data_ptr()
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except Exception:  # functorch-wrapped tensors have no plain storage
            seen[id(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        g = torch.Generator().manual_seed(0)
        if objective == "fm":
            loss, _ = fm_loss(net, x, y, FlowMatchingConfig(), g)
        else:
            loss, _ = pmf_loss(net, x, y, MeanFlowConfig(jvp=jvp), g)
    loss.backward()
    return sum(seen.values()) / 2**20


def peak_memory_child(args, objective: str, jvp: str) -> float:
    """Peak memory growth in MB of `steps` steps, in a fresh subprocess (CPU) or via CUDA stats."""
    cmd = [sys.executable, __file__, "--child", objective, jvp, "--preset", args.preset,
           "--batch-size", str(args.batch_size), "--device", args.device, "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"])


class _RSSPeak:
    """Samples this process's resident set size every few ms in a thread (ru_maxrss cannot be reset,
    and the import of torch already sets it higher than a small model's training step)."""

    def __init__(self) -> None:
        self.page = resource.getpagesize()
        self.base = self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _child(args) -> None:
    objective, jvp = args.child
    device = torch.device(args.device)
    net, opts, x, y = _setup(args, objective, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        sampler = _RSSPeak().__enter__()
    for i in range(3):
        g = torch.Generator().manual_seed(i)
        loss, _ = (fm_loss(net, x, y, FlowMatchingConfig(), g) if objective == "fm"
                   else pmf_loss(net, x, y, MeanFlowConfig(jvp=jvp), g))
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        sampler.__exit__()
        peak = (sampler.peak - sampler.base) / 2**20
    print(json.dumps({"peak_mb": peak}))


def _loop_worker(rank: int, world: int, port: int, cfg: dict, dataset: ImageDataset) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    import torch.distributed as dist

    try:
        train(TrainConfig.from_dict(cfg), dataset=dataset)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def loop_ms_per_step(args, objective: str, out_dir: str) -> list[float]:
    """Milliseconds of each timed optimizer step of ``core.train.train`` (after ``--warmup`` steps),
    read from the run's log.jsonl; ``--world`` processes when > 1."""
    g = torch.Generator().manual_seed(0)
    n = args.batch_size * 4
    dataset = ImageDataset(torch.rand(n, 1, 32, 32, generator=g) * 2 - 1,
                           torch.randint(0, 10, (n,), generator=g), [str(i) for i in range(10)])
    cfg = TrainConfig(out_dir=out_dir, preset=args.preset, objective=objective, batch_size=args.batch_size,
                      grad_accum=args.grad_accum, parallel=args.parallel, steps=args.warmup + args.steps,
                      log_every=1, sample_every=0, ckpt_every=10**9, progress=False, threads=args.threads,
                      device=args.device, meanflow=MeanFlowConfig(jvp="nograd"))
    if args.world == 1:
        train(cfg, dataset=dataset)
    else:
        import torch.multiprocessing as mp

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.start_processes(_loop_worker, args=(args.world, port, cfg.to_dict(), dataset), nprocs=args.world,
                           join=True, start_method="spawn")
    log = [json.loads(ln) for ln in (Path(out_dir) / "log.jsonl").read_text().splitlines()]
    return [d["sec_per_step"] * 1e3 for d in log if d["step"] > args.warmup]


def loop_section(args) -> dict:
    """pMF and FM steps of the training loop, alternating ``--loop-repeats`` times; medians and ratio."""
    times: dict[str, list[float]] = {"fm": [], "pmf": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.loop_repeats):
            for objective in ("fm", "pmf"):
                times[objective] += loop_ms_per_step(args, objective, f"{tmp}/{objective}{rep}")
    res = {"world": args.world, "parallel": args.parallel, "grad_accum": args.grad_accum,
           "global_batch": args.batch_size}
    for objective, ts in times.items():
        med = statistics.median(ts)
        res[objective] = {"ms_per_step": med, "ms_min": min(ts), "images_per_sec": args.batch_size / med * 1e3,
                          "timed_steps": len(ts)}
    res["ratio_time_pmf_over_fm"] = res["pmf"]["ms_per_step"] / res["fm"]["ms_per_step"]
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="pMF-S/4", help="network preset (32x32 grayscale, 10 classes)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size")
    p.add_argument("--steps", type=int, default=8, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    p.add_argument("--loop", action="store_true",
                   help="time whole steps of core.train.train (pMF vs FM) instead of the loss-level sections")
    p.add_argument("--world", type=int, default=1, help="--loop: processes (gloo on CPU, NCCL on CUDA)")
    p.add_argument("--parallel", choices=("ddp", "fsdp"), default="ddp", help="--loop: engine when --world > 1")
    p.add_argument("--grad-accum", type=int, default=1, help="--loop: micro-batches per step and process")
    p.add_argument("--loop-repeats", type=int, default=2, help="--loop: alternating FM / pMF runs of each")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        _child(args)
        return
    device = torch.device(args.device)
    res: dict = {"preset": args.preset, "batch_size": args.batch_size, "device": str(device),
                 "threads": args.threads, "torch": torch.__version__}
    if args.loop:
        res["loop"] = loop_section(args)
        line = json.dumps(res)
        print(line)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
        return
    # Interleave the configurations so that machine noise hits them alike.
    runs = {"fm": ("fm", "nograd"), "pmf_nograd_jvp": ("pmf", "nograd"), "pmf_fused_jvp": ("pmf", "fused")}
    for name, (obj, jvp) in runs.items():
        res[name] = time_steps(args, obj, jvp, device)
        res[name]["peak_mb"] = peak_memory_child(args, obj, jvp)
        res[name]["saved_activations_mb"] = saved_activation_mb(args, obj, jvp, device)
    res["pmf_breakdown_ms"] = breakdown(args, device)
    fm = res["fm"]["ms_per_step"]
    res["ratio_time_pmf_over_fm"] = res["pmf_nograd_jvp"]["ms_per_step"] / fm
    res["ratio_time_fused_over_nograd"] = res["pmf_fused_jvp"]["ms_per_step"] / res["pmf_nograd_jvp"]["ms_per_step"]
    for key in ("peak_mb", "saved_activations_mb"):
        res[f"ratio_{key}_pmf_over_fm"] = res["pmf_nograd_jvp"][key] / max(res["fm"][key], 1e-6)
        res[f"ratio_{key}_fused_over_nograd"] = res["pmf_fused_jvp"][key] / max(res["pmf_nograd_jvp"][key], 1e-6)
    line = json.dumps(res)
    print(line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
