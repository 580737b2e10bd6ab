"""The one GPU check of pMF: equality of every speed path, then their speed. Prints one JSON line.

    python benchmarks/gpu_check.py [--budget-s 280] [--out report.json]      # on a GPU machine
    python benchmarks/gpu_check.py --cpu-smoke                              # tiny net, CPU, seconds

Sections, in this order (each one's wall seconds are reported; once ``--budget-s`` is spent the
remaining sections report "skipped: time budget", so the whole run stays under 5 minutes):

  attention  xformers / SDPA / math at pMF-B/16 shapes, fp32 and bf16: max error against fp64,
             forward and forward+backward time.
  equality   on pMF-B/16 (random weights with the zero-initialised gates and final layers moved off
             zero, so every path is exercised): one-step images of each speed path against the fp32
             eager reference (PSNR in [0, 1] units and max |diff|): SDPA vs math attention, bf16
             autocast, TF32, channels-last, ``OneStepSampler`` with a CUDA graph; the JVP under
             bf16 autocast against the fp32 JVP (must be identical: the JVP runs in fp32).
  sampling   one-step generation at 256x256: latency at batch 1 and images/s at ``--sample-batch``
             for fp32, bf16, bf16 + channels-last, bf16 + CUDA graph (eager). Targets: latency
             <= 5 ms at batch 1 in bf16, >= 5000 images/s batched.
  train      one optimizer step (Muon + Adam, bf16 autocast, TF32) of the pMF loss against the
             flow-matching loss on the same network and batch: ms/step, images/s, pMF / FM ratio
             (goal <= 2), and pMF's phases (guidance forwards, JVP, grad forward, backward).
  ddp        when >= 2 GPUs are visible: the same pMF step in 2 processes (NCCL) with the grad
             forward wrapped in DistributedDataParallel; ms/step, images/s per GPU, and whether the
             weights stay identical across ranks.
  compile    ``torch.compile`` (inductor): the one-step sampler (batch 1 with a CUDA graph, and
             batched) and the grad forward of the training step; equality to eager and speed.

``--cpu-smoke`` runs every section on the CPU with the tiny pMF-T/4 at 32x32, a few iterations and
the "aot_eager" compile backend (no code generation), so the suite can check that the script runs;
its timings mean nothing. Without CUDA and without ``--cpu-smoke`` it reports the missing GPU and
exits 0.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script from anywhere

from core.attention import attention, forward_ad_safe, xformers_available  # noqa: E402
from core.meanflow import (  # noqa: E402
    FlowMatchingConfig, MeanFlowConfig, draw_batch, du_dt, fm_loss, pmf_loss, pmf_loss_given,
)
from core.eval.metrics import psnr  # noqa: E402
from core.model import PixelMeanFlow, build_model  # noqa: E402
from core.onestep import OneStepSampler  # noqa: E402
from core.precision import autocast, tf32, to_channels_last  # noqa: E402
from core.sampling import sample_pmf  # noqa: E402
from core.train import TrainConfig, build_optimizers  # noqa: E402

LATENCY_TARGET_MS = 5.0  # issue 13: pMF-B/16 one-step latency at batch 1 in bf16
THROUGHPUT_TARGET = 5000.0  # images/s batched
TRAIN_RATIO_GOAL = 2.0  # pMF step / FM step on the same net


@dataclass(frozen=True)
class Setup:
    """What the sections run on: the real check (CUDA, pMF-B/16) or the CPU smoke run."""

    device: torch.device  # where everything runs
    preset: str  # network preset
    overrides: dict  # PMFConfig overrides of the preset (the smoke net's size)
    attn_shape: tuple[int, int, int, int]  # (B, nh, N, hd) of the attention section
    sample_batch: int  # batch of the throughput measurement
    train_batch: int  # per-GPU batch of the training step
    iters: int  # timed iterations per measurement (latency runs use 4x)
    warmup: int  # untimed calls before each measurement
    train_iters: int  # timed optimizer steps per training measurement
    compile_backend: str  # torch.compile backend
    budget_s: float  # wall seconds after which the remaining sections are skipped


def gpu_setup(args: argparse.Namespace) -> Setup:
    return Setup(torch.device("cuda"), "pMF-B/16", {}, (32, 12, 276, 64), args.sample_batch,
                 args.train_batch, 10, 3, 5, "inductor", args.budget_s)


def smoke_setup(args: argparse.Namespace) -> Setup:
    return Setup(torch.device("cpu"), "pMF-T/4", dict(in_channels=3, num_classes=10), (2, 2, 16, 32),
                 4, 4, 1, 1, 1, "aot_eager", args.budget_s)


# ------------------------------------------------------------------------------------------------
# Helpers


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_ms(fn: Callable[[], Any], dev: torch.device, warmup: int = 2, iters: int = 10) -> float:
    """Median wall ms of ``fn`` over ``iters`` calls after ``warmup``, synchronised on CUDA."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        _sync(dev)
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _err(e: BaseException) -> str:
    return f"error: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"


def trained_like(net: PixelMeanFlow) -> PixelMeanFlow:
    """Move the zero-initialised gates and final layers off zero (seeded), so that every block and
    both heads contribute as in a trained network; random weights leave them at zero."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim == 1 else 0.02))
    return net


def build(s: Setup, with_v_head: bool) -> PixelMeanFlow:
    torch.manual_seed(0)
    return trained_like(build_model(s.preset, with_v_head=with_v_head, **s.overrides)).to(s.device)


def _inputs(net: PixelMeanFlow, batch: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    c = net.cfg
    noise = torch.randn(batch, c.in_channels, c.image_size, c.image_size, generator=g).to(dev)
    return noise, (torch.arange(batch) % c.num_classes).to(dev)


def _compare(a: torch.Tensor, ref: torch.Tensor) -> dict[str, Any]:
    """PSNR over the batch (dB; images mapped from [-1, 1] to [0, 1] and clamped; "inf" when
    identical) and max |a - ref| in model units."""
    to01 = lambda x: ((x.float() + 1) / 2).clamp(0, 1).cpu().flatten()[None, None, None]  # noqa: E731
    db = float(psnr(to01(a), to01(ref), data_range=1.0)[0])  # the whole batch as one image
    return {"psnr_db": round(db, 2) if db != float("inf") else "inf",
            "max_abs_diff": float((a.float() - ref.float()).abs().max())}


def grad_net_supported() -> bool:
    """Whether core.meanflow's losses take ``grad_net`` (the module the grad forward goes through)."""
    return "grad_net" in inspect.signature(pmf_loss_given).parameters


# ------------------------------------------------------------------------------------------------
# Sections


def attention_check(s: Setup) -> dict[str, Any]:
    dev = s.device
    B, nh, N, hd = s.attn_shape
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, nh, N, hd, generator=g, dtype=torch.float64).to(dev) for _ in range(3))
    q = q * 2  # somewhat peaked softmax, like trained qk-normed logits
    ref = torch.softmax(q @ k.transpose(-2, -1) / hd**0.5, -1) @ v  # fp64 reference
    backends = ["math", "sdpa"] + (["xformers"] if xformers_available() else [])
    out: dict[str, Any] = {"shape": [B, nh, N, hd]}
    if not xformers_available():
        out["xformers"] = "skipped: xformers not importable (or no CUDA)"
    for dtype in (torch.float32, torch.bfloat16):
        for be in backends:
            key = f"{be}/{str(dtype).split('.')[-1]}"
            try:
                qd, kd, vd = (x.to(dtype).requires_grad_(True) for x in (q, k, v))
                with torch.no_grad():
                    o = attention(qd, kd, vd, backend=be)
                grad = torch.randn_like(o)
                out[key] = {
                    "max_abs_err_vs_fp64": (o.double() - ref).abs().max().item(),
                    "fwd_ms": round(time_ms(lambda: attention(qd, kd, vd, backend=be), dev, s.warmup, s.iters), 3),
                    "fwd_bwd_ms": round(time_ms(lambda: attention(qd, kd, vd, backend=be).backward(grad),
                                                dev, s.warmup, s.iters), 3),
                }
            except Exception as e:  # one failing backend must not hide the others
                out[key] = _err(e)
    return out


def equality_check(s: Setup) -> dict[str, Any]:
    dev = s.device
    net = build(s, with_v_head=False).eval()
    noise, y = _inputs(net, 4, dev)
    cond = dict(guidance_scale=2.0, guidance_interval=(0.1, 0.7), noise=noise)

    def one_step(n: PixelMeanFlow, precision: str = "fp32", z: torch.Tensor = noise) -> torch.Tensor:
        return sample_pmf(n, y, precision=precision, **{**cond, "noise": z}).images

    with tf32(False):
        ref = one_step(net)
        out: dict[str, Any] = {}
        net.attn_backend = "math"
        out["math_vs_sdpa_fp32"] = _compare(one_step(net), ref)
        net.attn_backend = "auto"
        out["bf16_autocast"] = _compare(one_step(net, "bf16"), ref)
        if dev.type == "cuda":
            with tf32(True):
                out["tf32"] = _compare(one_step(net), ref)
        else:
            out["tf32"] = "n/a: TF32 is a CUDA setting"
        cl = to_channels_last(build(s, with_v_head=False).eval())
        out["channels_last_fp32"] = _compare(one_step(cl, z=noise.contiguous(memory_format=torch.channels_last)), ref)
        if dev.type == "cuda":
            fast = OneStepSampler(net, 4, precision="fp32", cuda_graph=True, **{k: cond[k] for k in (
                "guidance_scale", "guidance_interval")})
            out["cuda_graph_fp32"] = _compare(fast(y, noise=noise).images, ref)
        else:
            out["cuda_graph_fp32"] = "n/a: CUDA graphs need CUDA"
        # The MeanFlow JVP must run in fp32 under a bf16-autocast training step.
        t, r = torch.full((4,), 0.8, device=dev), torch.full((4,), 0.3, device=dev)
        om, lo, hi = torch.full((4,), 2.0, device=dev), torch.zeros(4, device=dev), torch.ones(4, device=dev)
        jvp_fp32 = du_dt(net, noise, t, r, noise.flip(0), y, om, lo, hi)
        with autocast(dev, "bf16"):
            jvp_bf16 = du_dt(net, noise, t, r, noise.flip(0), y, om, lo, hi)
        out["jvp_under_bf16_autocast_max_abs_diff"] = float((jvp_bf16 - jvp_fp32).abs().max())
        out["jvp_runs_in_fp32"] = bool(torch.equal(jvp_bf16, jvp_fp32))
    return out


def sampling_check(s: Setup) -> dict[str, Any]:
    dev = s.device
    net = build(s, with_v_head=False).eval()
    variants: dict[str, dict[str, Any]] = {
        "fp32": dict(precision="fp32"),
        "bf16": dict(precision="bf16"),
        "bf16+channels_last": dict(precision="bf16", channels_last=True),
    }
    if dev.type == "cuda":
        variants["bf16+cuda_graph"] = dict(precision="bf16", cuda_graph=True)
    out: dict[str, Any] = {"batch": s.sample_batch}
    cl_net = None
    for name, opt in variants.items():
        res: dict[str, Any] = {}
        try:
            n = net
            if opt.get("channels_last"):
                cl_net = cl_net or to_channels_last(build(s, with_v_head=False).eval())
                n = cl_net
            for batch, key in ((1, "latency_ms_b1"), (s.sample_batch, "img_per_s")):
                noise, y = _inputs(n, batch, dev)
                if opt.get("channels_last"):
                    noise = noise.contiguous(memory_format=torch.channels_last)
                fast = OneStepSampler(n, batch, precision=opt["precision"],
                                      cuda_graph=opt.get("cuda_graph", False), guidance_scale=2.0)
                ms = time_ms(lambda: fast(y, noise=noise), dev, s.warmup, s.iters * (4 if batch == 1 else 1))
                res[key] = round(ms, 3) if batch == 1 else round(batch / ms * 1e3, 1)
                del fast
        except Exception as e:
            res["result"] = _err(e)
        out[name] = res
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    out["targets"] = _targets(out)
    return out


def _targets(section: dict[str, Any]) -> dict[str, Any]:
    """Best bf16 variant against the one-step targets."""
    lat = {k: v["latency_ms_b1"] for k, v in section.items()
           if isinstance(v, dict) and "bf16" in k and "latency_ms_b1" in v}
    thr = {k: v["img_per_s"] for k, v in section.items() if isinstance(v, dict) and "img_per_s" in v}
    res: dict[str, Any] = {}
    if lat:
        best = min(lat, key=lat.get)
        res["latency_ms_b1_bf16"] = {"best": lat[best], "variant": best, "target": LATENCY_TARGET_MS,
                                     "met": lat[best] <= LATENCY_TARGET_MS}
    if thr:
        best = max(thr, key=thr.get)
        res["img_per_s"] = {"best": thr[best], "variant": best, "target": THROUGHPUT_TARGET,
                            "met": thr[best] >= THROUGHPUT_TARGET}
    return res


def _train_objects(s: Setup, objective: str):
    net = build(s, with_v_head=objective == "pmf").train()
    opts = build_optimizers(net, TrainConfig())
    g = torch.Generator().manual_seed(2)
    c = net.cfg
    x = (torch.rand(s.train_batch, c.in_channels, c.image_size, c.image_size, generator=g) * 2 - 1).to(s.device)
    y = torch.randint(0, c.num_classes, (s.train_batch,), generator=g).to(s.device)
    return net, opts, x, y


def _step_fn(net, opts, x, y, objective: str, grad_net=None) -> Callable[[], float]:
    """One optimizer step (bf16 autocast) of ``objective``; its counter seeds the draws."""
    counter = [0]
    dev = x.device

    def step() -> float:
        g = torch.Generator().manual_seed(counter[0])
        counter[0] += 1
        with autocast(dev, "bf16"):
            if objective == "pmf":
                cfg = MeanFlowConfig()
                extra = {} if grad_net is None else {"grad_net": grad_net}
                loss, _ = pmf_loss_given(net, x, y, draw_batch(x, cfg, g), cfg, **extra)
            elif grad_net is None:
                loss, _ = fm_loss(net, x, y, FlowMatchingConfig(), g)
            else:
                from core.meanflow import draw_fm_batch, fm_loss_given  # with grad_net support

                loss, _ = fm_loss_given(net, x, y, draw_fm_batch(x, FlowMatchingConfig(), g), grad_net=grad_net)
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
        return float(loss.detach())

    return step


def train_check(s: Setup) -> dict[str, Any]:
    dev = s.device
    out: dict[str, Any] = {"batch": s.train_batch, "precision": "bf16 autocast (JVP fp32)",
                           "tf32": dev.type == "cuda"}
    with tf32(True):
        for objective in ("fm", "pmf"):
            net, opts, x, y = _train_objects(s, objective)
            step = _step_fn(net, opts, x, y, objective)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            ms = time_ms(step, dev, s.warmup, s.train_iters)
            res = {"ms_per_step": round(ms, 2), "img_per_s": round(s.train_batch / ms * 1e3, 1),
                   "loss_finite": bool(torch.isfinite(torch.tensor(step())))}
            if dev.type == "cuda":
                res["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
            out[objective] = res
            del net, opts
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        out["pmf_breakdown_ms"] = _breakdown(s)
    ratio = out["pmf"]["ms_per_step"] / out["fm"]["ms_per_step"]
    out["ratio_pmf_over_fm"] = {"value": round(ratio, 3), "goal": TRAIN_RATIO_GOAL, "met": ratio <= TRAIN_RATIO_GOAL}
    return out


def _breakdown(s: Setup) -> dict[str, float]:
    """Median ms of the phases of one pMF step (those of core.meanflow.pmf_loss_given)."""
    dev = s.device
    net, _, x, y = _train_objects(s, "pmf")
    cfg = MeanFlowConfig()
    phases: dict[str, list[float]] = {"guidance_forwards": [], "jvp": [], "grad_forward": [], "backward": []}

    def clock(name: str, fn: Callable[[], Any]) -> Any:
        _sync(dev)
        t0 = time.perf_counter()
        res = fn()
        _sync(dev)
        phases[name].append((time.perf_counter() - t0) * 1e3)
        return res

    for i in range(s.warmup + s.train_iters):
        b = draw_batch(x, cfg, torch.Generator().manual_seed(i))
        z = (1 - b.t.view(-1, 1, 1, 1)) * x + b.t.view(-1, 1, 1, 1) * b.e
        ones, null = torch.ones_like(b.t), torch.full_like(y, net.null_class)
        mf = b.t > b.r
        with autocast(dev, "bf16"):
            with torch.no_grad():
                v_c = clock("guidance_forwards", lambda: net(
                    torch.cat([z, z]), torch.cat([b.t, b.t]), torch.cat([b.t, b.t]), torch.cat([y, null]),
                    torch.cat([b.omega, ones]), heads="v").chunk(2)[0])
            clock("jvp", lambda: du_dt(net, z[mf], b.t[mf], b.r[mf], v_c[mf], y[mf], b.omega[mf],
                                       b.t_min[mf], b.t_max[mf]))
            u, v = clock("grad_forward", lambda: net(z, b.t, b.r, y, b.omega, b.t_min, b.t_max, heads="uv"))
        clock("backward", lambda: (u.float().square().sum() + v.float().square().sum()).backward())
        if i < s.warmup:
            for k in phases:
                phases[k].clear()
    return {k: round(statistics.median(v), 2) for k, v in phases.items()}


def _ddp_worker(rank: int, world: int, s: Setup, result_file: str) -> None:
    """One rank of the DDP check: ``world`` processes, the grad forward through DDP."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    dist.init_process_group("nccl" if s.device.type == "cuda" else "gloo", rank=rank, world_size=world)
    try:
        dev = torch.device("cuda", rank) if s.device.type == "cuda" else torch.device("cpu")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        s_rank = replace(s, device=dev)
        net, opts, x, y = _train_objects(s_rank, "pmf")
        x = x.roll(rank, 0)  # each rank a different shard of the (same-seeded) batch
        if grad_net_supported():
            # The JVP and guidance passes use the bare module; only the grad forward needs DDP.
            grad_net = DDP(net, device_ids=[rank] if dev.type == "cuda" else None)
            step = _step_fn(net, opts, x, y, "pmf", grad_net=grad_net)
            how = "DistributedDataParallel on the grad forward (core.meanflow grad_net)"
        else:
            base = _step_fn(net, [], x, y, "pmf")

            def step() -> float:  # the hand-written average of core/train.py
                for o in opts:
                    o.zero_grad(set_to_none=True)
                loss = base()
                for p in net.parameters():
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= world
                for o in opts:
                    o.step()
                return loss

            how = "all_reduce after backward (core.meanflow has no grad_net yet)"
        with tf32(True):
            ms = time_ms(step, dev, s.warmup, s.train_iters)
        flat = torch.cat([p.detach().float().flatten() for p in net.parameters()])
        spread = flat.clone()
        dist.all_reduce(spread, op=dist.ReduceOp.MAX)
        lowest = flat.clone()
        dist.all_reduce(lowest, op=dist.ReduceOp.MIN)
        if rank == 0:
            Path(result_file).write_text(json.dumps({
                "world_size": world, "backend": dist.get_backend(), "gradient": how,
                "batch_per_gpu": s.train_batch, "ms_per_step": round(ms, 2),
                "img_per_s_per_gpu": round(s.train_batch / ms * 1e3, 1),
                "weights_identical_across_ranks": bool((spread - lowest).abs().max() == 0),
            }))
    finally:
        dist.destroy_process_group()


def ddp_check(s: Setup, force_cpu: bool) -> dict[str, Any]:
    world = torch.cuda.device_count() if s.device.type == "cuda" else (2 if force_cpu else 0)
    if world < 2:
        return {"skipped": f"needs >= 2 GPUs, {world} visible" if s.device.type == "cuda"
                else "CPU smoke run (pass --ddp-cpu to run it on 2 gloo processes)"}
    world = 2
    os.environ["MASTER_PORT"] = str(29500 + os.getpid() % 1000)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "ddp.json"
        torch.multiprocessing.spawn(_ddp_worker, args=(world, s, str(result)), nprocs=world, join=True)
        return json.loads(result.read_text())


def compile_check(s: Setup) -> dict[str, Any]:
    """torch.compile of the one-step sampler (with a CUDA graph on CUDA) and of the grad forward."""
    dev = s.device
    out: dict[str, Any] = {"backend": s.compile_backend}
    net = build(s, with_v_head=False).eval()
    graph = dev.type == "cuda"
    for batch in (1, s.sample_batch):
        noise, y = _inputs(net, batch, dev)
        key = "latency_ms_b1" if batch == 1 else "img_per_s"
        try:
            t0 = time.perf_counter()
            fast = OneStepSampler(net, batch, precision="bf16", compile=True, compile_backend=s.compile_backend,
                                  cuda_graph=graph, guidance_scale=2.0)
            got = fast(y, noise=noise).images
            res = {"compile_s": round(time.perf_counter() - t0, 1),
                   "vs_eager_bf16": _compare(got, sample_pmf(net, y, noise=noise, guidance_scale=2.0,
                                                             precision="bf16").images)}
            ms = time_ms(lambda: fast(y, noise=noise), dev, s.warmup, s.iters * (4 if batch == 1 else 1))
            res[key] = round(ms, 3) if batch == 1 else round(batch / ms * 1e3, 1)
        except Exception as e:
            res = {"result": _err(e)}
        out[f"sampler_bf16{'+cuda_graph' if graph else ''}_b{batch}"] = res
    out["targets"] = _targets({k: v for k, v in out.items() if isinstance(v, dict)})
    out["train_grad_forward"] = _compiled_train(s)
    return out


def _compiled_train(s: Setup) -> dict[str, Any]:
    """pMF and FM steps with the grad forward compiled, against the same steps in eager mode."""
    if not grad_net_supported():
        return {"skipped": "core.meanflow's losses take no grad_net yet (the module of the grad forward)"}
    dev = s.device
    out: dict[str, Any] = {}
    with tf32(True):
        for objective in ("fm", "pmf"):
            try:
                net, opts, x, y = _train_objects(s, objective)
                eager_loss = _step_fn(net, [], x, y, objective)()  # no optimizer: weights unchanged
                compiled = torch.compile(net, backend=s.compile_backend)
                step = _step_fn(net, opts, x, y, objective, grad_net=compiled)
                t0 = time.perf_counter()
                first = step()  # same draws (counter 0) as the eager loss above
                res = {"compile_s": round(time.perf_counter() - t0, 1),
                       "loss_rel_diff_vs_eager": abs(first - eager_loss) / max(abs(eager_loss), 1e-12)}
                ms = time_ms(step, dev, s.warmup, s.train_iters)
                res.update(ms_per_step=round(ms, 2), img_per_s=round(s.train_batch / ms * 1e3, 1))
            except Exception as e:
                res = {"result": _err(e)}
            out[objective] = res
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    if all("ms_per_step" in out[k] for k in ("fm", "pmf")):
        ratio = out["pmf"]["ms_per_step"] / out["fm"]["ms_per_step"]
        out["ratio_pmf_over_fm"] = {"value": round(ratio, 3), "goal": TRAIN_RATIO_GOAL, "met": ratio <= TRAIN_RATIO_GOAL}
    return out


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny net on the CPU: check that every section runs")
    ap.add_argument("--ddp-cpu", action="store_true", help="with --cpu-smoke: run the DDP section on 2 gloo processes")
    ap.add_argument("--budget-s", type=float, default=280.0, help="skip the sections left after this many seconds")
    ap.add_argument("--train-batch", type=int, default=32, help="per-GPU batch of the pMF-B/16 training step")
    ap.add_argument("--sample-batch", type=int, default=256, help="batch of the one-step throughput measurement")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: "
                    "attention,equality,sampling,train,ddp,compile")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    report: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if not torch.cuda.is_available() and not args.cpu_smoke:
        report["skipped"] = "no CUDA device visible; nothing to check on CPU (see --cpu-smoke)"
    else:
        s = smoke_setup(args) if args.cpu_smoke else gpu_setup(args)
        report.update(mode="cpu-smoke" if args.cpu_smoke else "gpu", preset=s.preset,
                      image_size=build_model(s.preset, **s.overrides).cfg.image_size,
                      device=torch.cuda.get_device_name(s.device) if s.device.type == "cuda" else "cpu",
                      gpus=torch.cuda.device_count(), xformers=xformers_available(),
                      grad_net_supported=grad_net_supported())
        sections: dict[str, Callable[[], dict[str, Any]]] = {
            "attention": lambda: attention_check(s),
            "equality": lambda: equality_check(s),
            "sampling": lambda: sampling_check(s),
            "train": lambda: train_check(s),
            "ddp": lambda: ddp_check(s, args.ddp_cpu),
            "compile": lambda: compile_check(s),
        }
        skip = set(filter(None, args.skip.split(",")))
        start = time.perf_counter()
        for name, fn in sections.items():
            if name in skip:
                report[name] = "skipped: --skip"
                continue
            if time.perf_counter() - start > s.budget_s:
                report[name] = f"skipped: time budget of {s.budget_s:.0f} s spent"
                continue
            t0 = time.perf_counter()
            try:
                report[name] = fn()
            except Exception as e:  # one failing section must not hide the others
                report[name] = _err(e)
            report[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
        report["total_seconds"] = round(time.perf_counter() - start, 1)
    line = json.dumps(report)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)
    return report


if __name__ == "__main__":
    main()
