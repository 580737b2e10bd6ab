"""One-GPU sanity and speed check for pMF (about 1-3 minutes on an H100). Prints one JSON line.

    python benchmarks/gpu_check.py [--train-batch 32] [--tf32] [--out report.json]

(a) attention: xformers / SDPA / math at pMF-B/16 shapes (B=32, nh=12, N=276, hd=64), fp32 and bf16:
    max error against an fp64 reference and forward+backward time;
(b) one bf16-autocast training step of pMF-B/16 (v-head included) through ``core.meanflow.pmf_loss``
    when that module exists ("skipped: reason" otherwise);
(c) 1-step sampling of pMF-B/16 at 256x256: latency (batch 1) and throughput (batch 64) per attention
    backend, fp32 and bf16 autocast, plus each backend's max difference to the math backend.

Without CUDA it prints {"cuda": false, "skipped": "no CUDA ..."} and exits 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script from anywhere

from core.attention import attention, xformers_available  # noqa: E402
from core.model import build_model  # noqa: E402


def cuda_time_ms(fn: Callable[[], Any], warmup: int = 3, iters: int = 10) -> float:
    """Mean wall time of ``fn`` in ms, bracketed by ``torch.cuda.synchronize``."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters * 1e3


def _err(e: BaseException) -> str:
    return f"error: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"


def attention_check(dev: torch.device) -> dict[str, Any]:
    B, nh, N, hd = 32, 12, 276, 64
    g = torch.Generator(device=dev).manual_seed(0)
    q, k, v = (torch.randn(B, nh, N, hd, device=dev, generator=g, dtype=torch.float64) for _ in range(3))
    q = q * 2  # somewhat peaked softmax, like trained qk-normed logits
    ref = torch.softmax(q @ k.transpose(-2, -1) / hd**0.5, -1) @ v  # fp64 reference
    backends = ["math", "sdpa"] + (["xformers"] if xformers_available() else [])
    out: dict[str, Any] = {"shape": [B, nh, N, hd]}
    if not xformers_available():
        out["xformers"] = "skipped: xformers not importable"
    for dtype in (torch.float32, torch.bfloat16):
        for be in backends:
            key = f"{be}/{str(dtype).split('.')[-1]}"
            try:
                qd, kd, vd = (x.to(dtype).requires_grad_(True) for x in (q, k, v))
                with torch.no_grad():
                    o = attention(qd, kd, vd, backend=be)
                grad = torch.randn_like(o)

                def step() -> None:
                    attention(qd, kd, vd, backend=be).backward(grad)

                out[key] = {
                    "max_abs_err_vs_fp64": (o.double() - ref).abs().max().item(),
                    "fwd_ms": round(cuda_time_ms(lambda: attention(qd, kd, vd, backend=be)), 3),
                    "fwd_bwd_ms": round(cuda_time_ms(step), 3),
                }
            except Exception as e:  # one failing backend must not hide the others
                out[key] = _err(e)
    return out


def train_step_check(dev: torch.device, batch: int) -> dict[str, Any]:
    try:
        from core.meanflow import MeanFlowConfig, pmf_loss  # planned API; imported lazily
    except Exception as e:
        return {"skipped": f"core.meanflow unavailable ({type(e).__name__}: {e})"}
    try:
        torch.manual_seed(0)
        net = build_model("pMF-B/16", with_v_head=True).to(dev).train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, betas=(0.9, 0.95))
        gd = torch.Generator(device=dev).manual_seed(0)
        x = torch.rand(batch, 3, 256, 256, device=dev, generator=gd) * 2 - 1  # data in [-1, 1]
        y = torch.randint(0, 1000, (batch,), device=dev, generator=gd)
        # core.meanflow draws (t, r, omega, noise, ...) on the CPU from this generator, then moves
        # them to x.device, so that results do not depend on the device.
        g = torch.Generator().manual_seed(0)
        info: dict[str, Any] = {}

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss, stats = pmf_loss(net, x, y, cfg=MeanFlowConfig(), generator=g)
            loss.backward()
            opt.step()
            info["loss"], info["stats"] = float(loss.detach()), {
                k: float(v) for k, v in stats.items()
                if isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)}

        torch.cuda.reset_peak_memory_stats()
        ms = cuda_time_ms(step, warmup=2, iters=5)
        return {"batch": batch, "ms_per_step": round(ms, 1), "img_per_s": round(batch / ms * 1e3, 1),
                "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                "loss_finite": bool(torch.isfinite(torch.tensor(info["loss"]))), **info}
    except Exception as e:
        return {"batch": batch, "result": _err(e)}
    finally:
        torch.cuda.empty_cache()


def sampling_check(dev: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    net = build_model("pMF-B/16", with_v_head=False).to(dev).eval()
    with torch.no_grad():  # trained-like weights: move the zero-init gates / final layer off zero
        for name, p in net.named_parameters():
            if not p.any():
                p.normal_(0, 0.3 if p.ndim == 1 else 0.02)
    backends = ["math", "sdpa"] + (["xformers"] if xformers_available() else [])
    out: dict[str, Any] = {}
    for precision in ("fp32", "bf16-autocast"):
        outputs: dict[str, torch.Tensor] = {}
        for be in backends:
            key = f"{be}/{precision}"
            try:
                res: dict[str, Any] = {}
                for batch, iters in ((1, 20), (64, 5)):
                    g = torch.Generator(device=dev).manual_seed(0)
                    z = torch.randn(batch, 3, 256, 256, device=dev, generator=g)
                    one = torch.ones(batch, device=dev)
                    y = torch.arange(batch, device=dev) % 1000

                    @torch.no_grad()
                    def sample() -> torch.Tensor:  # 1-NFE: x = z_1 - u(z_1, r=0, t=1)
                        with torch.autocast("cuda", dtype=torch.bfloat16,
                                            enabled=precision != "fp32"):
                            u = net(z, one, 0 * one, y, 8.5 * one, 0.1 * one, 0.7 * one, backend=be)
                        return z - u.float()

                    ms = cuda_time_ms(sample, warmup=3, iters=iters)
                    if batch == 1:
                        res["latency_ms_b1"] = round(ms, 2)
                    else:
                        res["img_per_s_b64"] = round(batch / ms * 1e3, 1)
                        outputs[be] = sample()
                if be != "math" and "math" in outputs:
                    res["max_abs_diff_vs_math"] = (outputs[be] - outputs["math"]).abs().max().item()
                out[key] = res
            except Exception as e:
                out[key] = _err(e)
        torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-batch", type=int, default=32, help="batch of the pMF-B/16 train step")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls (default: off)")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: attn,train,sample")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    report: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if not torch.cuda.is_available():
        report["skipped"] = "no CUDA device visible; nothing to check on CPU"
    else:
        dev = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        report.update(device=torch.cuda.get_device_name(dev), tf32=args.tf32,
                      xformers=xformers_available())
        skip = set(filter(None, args.skip.split(",")))
        sections = {"attention": ("attn", lambda: attention_check(dev)),
                    "train_step_B16_bf16": ("train", lambda: train_step_check(dev, args.train_batch)),
                    "sampling_B16_256": ("sample", lambda: sampling_check(dev))}
        for name, (tag, fn) in sections.items():
            if tag in skip:
                report[name] = "skipped: --skip"
                continue
            t0 = time.perf_counter()
            try:
                report[name] = fn()
            except Exception as e:
                report[name] = _err(e)
            report[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
    line = json.dumps(report)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)
    return report


if __name__ == "__main__":
    main()
