"""CPU speed of the big model: pMF-B/16 at 256x256, the bare network and every pmf_edit API,
fp32 vs bf16 autocast vs channels-last vs torch.compile, batch 1 and 8, side by side in one run;
then the bf16-vs-fp32 agreement (PSNR) of every API on the bundled TRAINED models. One JSON line.

    python benchmarks/bench_cpu_speed.py --threads 2 --out benchmarks/results/cpu_speed.json \
        --plot benchmarks/results/cpu_speed.png

About 100 network evaluations of pMF-B/16 plus one compilation: 2-3 CPU minutes on a quiet 2-core
machine, several times that under load (CPU time itself grows under contention). ``--skip-bare`` /
``--skip-apis`` / ``--no-compile`` / ``--skip-agreement`` split it into smaller runs. ``--weights``
adds the default path for big networks (bf16 weights, uncompiled: what ``from_pretrained``'s
``precision="auto"`` loads on a CPU with native bf16) against fp32, bare and through every API:

    python benchmarks/bench_cpu_speed.py --threads 2 --skip-bare --no-compile --skip-apis --weights \
        --rounds 5 --big-rounds 2 --api-rounds 3 --out benchmarks/results/cpu_speed_bf16_weights.json

Speed: random pMF-B/16 weights (speed does not depend on the values; the zero-initialised gates
and final layers are moved off zero so that no work is skipped). Every variant is measured in the
same rounds, interleaved (fp32, bf16, ... then again), so that the load of a shared machine hits them
alike; ratios are taken within a round, then the median over rounds. "cpu_s" is this process's
CPU time (all its threads; torch.compile's code generation also counts its worker processes), per
network evaluation and per image. The APIs run with their step counts cut to 1-2 (the cost per
evaluation is the point, ``nfe`` is reported); their bf16 rows pass ``precision="bf16"``.

"Both branches in one call": flow_edit evaluates a target and a source branch per step; it already
batches them into one forward of 2B rows. The bare-network rows "b2_one_call" and "b1_two_calls"
measure what that batching saves against two separate forwards.

Agreement: pMF-B/16 trained weights are not available offline, so the PSNR of bf16 against fp32
outputs is measured on the bundled trained models (core/assets/pmf-photos, pmf-mnist; 32x32,
pMF-S/4 size), on their own one-step samples as inputs, in [0, 1] units. The decision rule of
issue 14 for making bf16 the default: every API >= 40 dB on a trained model and the bare network
>= 2x faster than fp32 at batch 1 and 8.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pmf_edit  # noqa: E402
from core.checkpoint import load_model  # noqa: E402
from core.eval.metrics import psnr  # noqa: E402
from core.model import PixelMeanFlow, build_model  # noqa: E402
from core.precision import autocast, fast_inference_copy, to_channels_last  # noqa: E402
from core.sampling import sample_pmf  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "core" / "assets"
PSNR_BAR_DB = 40.0
SPEEDUP_BAR = 2.0


def cpu_seconds() -> float:
    """CPU time of this process (all threads) plus its finished children (compile workers)."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(cpu_s, wall_s, result) of one call."""
    c0, w0 = cpu_seconds(), time.perf_counter()
    out = fn()
    return cpu_seconds() - c0, time.perf_counter() - w0, out


def trained_like(net: PixelMeanFlow) -> PixelMeanFlow:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim == 1 else 0.02))
    return net


def _forward_fn(net, batch: int, precision: str, channels_last: bool = False) -> Callable[[], torch.Tensor]:
    c = net.cfg
    g = torch.Generator().manual_seed(batch)
    z = torch.randn(batch, c.in_channels, c.image_size, c.image_size, generator=g)
    if channels_last:
        z = z.contiguous(memory_format=torch.channels_last)
    one = torch.ones(batch)
    y = torch.arange(batch) % c.num_classes

    @torch.no_grad()
    def run() -> torch.Tensor:
        with autocast("cpu", precision):
            return net(z, one, 0 * one, y, 2 * one)

    return run


def _rounds(fns: dict[str, Callable[[], Any]], rounds: int, per_call: int) -> dict[str, Any]:
    """Interleaved rounds of every fn after one warm-up call each; cpu/wall seconds per image-eval
    (``per_call`` image-evaluations per call) and, per round, the ratio to the first fn."""
    for fn in fns.values():
        fn()
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            c, w, _ = measure(fn)
            cpu[k].append(c / per_call)
            wall[k].append(w / per_call)
    base = next(iter(fns))
    out: dict[str, Any] = {}
    for k in fns:
        out[k] = {"cpu_s_per_image_eval": _stats(cpu[k]), "wall_s_per_image_eval": _stats(wall[k])}
        if k != base:
            out[k]["speedup_vs_" + base] = round(statistics.median(
                b / a for a, b in zip(cpu[k], cpu[base])), 3)
    return out


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 4), "min": round(min(xs), 4), "n": len(xs)}


def bare_network(net: PixelMeanFlow, args: argparse.Namespace) -> dict[str, Any]:
    """The bare forward: precisions and memory formats at batch 1 and 8, and the edit batching."""
    cl = to_channels_last(trained_like(build_model("pMF-B/16", with_v_head=False)).eval())
    cl.load_state_dict(net.state_dict())
    out: dict[str, Any] = {}
    out["batch1"] = _rounds({
        "fp32": _forward_fn(net, 1, "fp32"), "bf16": _forward_fn(net, 1, "bf16"),
        "fp32+channels_last": _forward_fn(cl, 1, "fp32", True),
        "bf16+channels_last": _forward_fn(cl, 1, "bf16", True),
    }, args.rounds, 1)
    b = args.big_batch
    out[f"batch{b}"] = _rounds({"fp32": _forward_fn(net, b, "fp32"), "bf16": _forward_fn(net, b, "bf16")},
                               args.big_rounds, b)
    for k, v in out[f"batch{b}"].items():
        v["images_per_s_cpu"] = round(1.0 / v["cpu_s_per_image_eval"]["median"], 3)
        v["images_per_s_wall"] = round(1.0 / v["wall_s_per_image_eval"]["median"], 3)
    # Both branches of an edit step: one forward of 2 rows against two forwards of 1 row.
    for precision in ("fp32", "bf16"):
        two = _forward_fn(net, 1, precision)
        out[f"edit_branches_{precision}"] = _rounds({
            "b1_two_calls": lambda two=two: (two(), two()),
            "b2_one_call": _forward_fn(net, 2, precision),
        }, args.rounds, 2)
    return out


def compiled_network(net: PixelMeanFlow, args: argparse.Namespace) -> dict[str, Any]:
    """torch.compile (inductor) of the forward, batch 1, bf16 and fp32, against eager."""
    out: dict[str, Any] = {}
    compiled = torch.compile(net, dynamic=False)
    for precision in args.compile_precisions.split(","):
        fn = _forward_fn(compiled, 1, precision)
        c, w, got = measure(fn)
        ref = _forward_fn(net, 1, precision)()
        res = {"compile_cpu_s": round(c, 1), "compile_wall_s": round(w, 1),
               "max_abs_diff_vs_eager": float((got - ref).abs().max())}
        res.update(_rounds({"eager": _forward_fn(net, 1, precision), "compiled": fn}, args.rounds, 1))
        out[precision] = res
    return out


def _api_calls(net: PixelMeanFlow, batch: int) -> dict[str, Callable[[str], Any]]:
    """Each API once, at the model's size, with step counts cut to 1-2 (see ``nfe``)."""
    c = net.cfg
    g = torch.Generator().manual_seed(3)
    images = torch.rand(batch, c.in_channels, c.image_size, c.image_size, generator=g)
    style = torch.rand(1, c.in_channels, c.image_size, c.image_size, generator=g)
    labels = [i % c.num_classes for i in range(batch)]
    target = [(i + 1) % c.num_classes for i in range(batch)]
    mask = torch.zeros(batch, 1, c.image_size, c.image_size, dtype=torch.bool)
    mask[..., c.image_size // 2:, :] = True
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    calls: dict[str, Callable[[str], Any]] = {
        "sample": lambda p: sample_pmf(net, labels, guidance_scale=2.0, generator=gen(), precision=p),
        "invert": lambda p: pmf_edit.invert(net, images, labels=labels, num_steps=1, num_iterations=2, precision=p),
        "edit": lambda p: pmf_edit.edit(net, images, source_labels=labels, labels=target, num_iterations=2,
                                      generator=gen(), precision=p),
        "sdedit": lambda p: pmf_edit.sdedit(net, images, labels=target, generator=gen(), precision=p),
        "flow_edit": lambda p: pmf_edit.flow_edit(net, images, source_labels=labels, labels=target,
                                                num_steps=2, generator=gen(), precision=p),
        "inpaint": lambda p: pmf_edit.inpaint(net, images, mask, labels=labels, num_steps=2, num_resample=1,
                                            generator=gen(), precision=p),
    }
    if c.in_channels == 3:
        calls["style_transfer"] = lambda p: pmf_edit.style_transfer(net, images, style, size_mode="native",
                                                                  generator=gen(), precision=p)
    return calls


def apis(net: PixelMeanFlow, args: argparse.Namespace) -> dict[str, Any]:
    """CPU seconds per network evaluation through each API, fp32 then bf16, side by side."""
    out: dict[str, Any] = {}
    for name, call in _api_calls(net, 1).items():
        res: dict[str, Any] = {}
        try:
            for precision in ("fp32", "bf16"):
                c, w, r = measure(lambda: call(precision))
                nfe = r.nfe if hasattr(r, "nfe") else 1
                res[precision] = {"nfe": nfe, "cpu_s_per_eval": round(c / nfe, 4), "wall_s_per_eval": round(w / nfe, 4)}
            res["speedup_bf16"] = round(res["fp32"]["cpu_s_per_eval"] / res["bf16"]["cpu_s_per_eval"], 3)
        except Exception as e:  # report and go on: one failing API must not hide the others
            res["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        out[name] = res
    return out


def fast_path(net: PixelMeanFlow, args: argparse.Namespace) -> dict[str, Any]:
    """``fast_inference_copy`` (bf16 weights, compiled) against the fp32 network: the bare forward at
    batch 1 and the big batch (with bf16 autocast and the uncompiled bf16-weight copy alongside), then
    each API at batch 1; every first call of a compiled copy is timed on its own (the compilation)."""
    out: dict[str, Any] = {}
    fast_eager = fast_inference_copy(net, compile=False)
    for batch, rounds in ((1, args.rounds), (args.big_batch, args.big_rounds)):
        fast = fast_inference_copy(net)  # a fresh copy per batch size: its compilation is measured here
        # The bare copies run under bf16 autocast, which casts the fp32 input (its weights are bf16
        # already, so there are no per-call weight casts); the tasks cast their inputs themselves.
        compiled = _forward_fn(fast, batch, "bf16")
        c, w, got = measure(compiled)
        ref = _forward_fn(net, batch, "fp32")()
        res = _rounds({"fp32": _forward_fn(net, batch, "fp32"), "bf16_autocast": _forward_fn(net, batch, "bf16"),
                       "bf16_weights": _forward_fn(fast_eager, batch, "bf16"), "bf16_weights_compiled": compiled},
                      rounds, batch)
        res["compile_cpu_s"], res["compile_wall_s"] = round(c, 1), round(w, 1)
        res["rel_rms_diff_vs_fp32"] = float((got.float() - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())
        out[f"batch{batch}"] = res
    fast = fast_inference_copy(net)
    plain, quick = _api_calls(net, 1), _api_calls(fast, 1)
    apis_out: dict[str, Any] = {}
    for name in plain:
        try:
            c, w, r = measure(lambda: quick[name]("fp32"))  # compiles what this API's calls need
            nfe = r.nfe if hasattr(r, "nfe") else 1
            res = {"nfe": nfe, "first_call_cpu_s": round(c, 1)}
            res.update(_rounds({"fp32": lambda: plain[name]("fp32"), "fast_copy": lambda: quick[name]("fp32")},
                               args.api_rounds, nfe))
        except Exception as e:  # report and go on
            res = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        apis_out[name] = res
    out["apis"] = apis_out
    return out


def weights_path(net: PixelMeanFlow, args: argparse.Namespace) -> dict[str, Any]:
    """The bf16-weight network that ``from_pretrained(precision="auto")`` loads for big networks on a
    CPU with native bf16, uncompiled, against the fp32 network: the bare forward at batch 1 and the big
    batch, then each API at batch 1, in interleaved rounds."""
    low = fast_inference_copy(net, compile=False)
    out: dict[str, Any] = {}
    for batch, rounds in ((1, args.rounds), (args.big_batch, args.big_rounds)):
        out[f"batch{batch}"] = _rounds({"fp32": _forward_fn(net, batch, "fp32"),
                                        "bf16_weights": _forward_fn(low, batch, "bf16")}, rounds, batch)
    plain, quick = _api_calls(net, 1), _api_calls(low, 1)
    apis_out: dict[str, Any] = {}
    for name in plain:
        try:
            nfe = plain[name]("fp32")
            nfe = nfe.nfe if hasattr(nfe, "nfe") else 1
            both = {"fp32": lambda: plain[name]("fp32"), "bf16_weights": lambda: quick[name]("fp32")}
            apis_out[name] = {"nfe": nfe, **_rounds(both, args.api_rounds, nfe)}
        except Exception as e:  # report and go on
            apis_out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    out["apis"] = apis_out
    return out


# ------------------------------------------------------------------------------------------------
# Agreement on the trained models


def agreement(model_dir: Path, n: int, variant: str = "autocast") -> dict[str, Any]:
    """PSNR (dB) of each API's bf16 output against its fp32 output on a trained model. ``variant``:
    "autocast" (bf16 autocast of the fp32 network), "weights" (a bf16-weight copy: what
    ``from_pretrained(precision="auto")`` loads for big networks) or "compiled" (``fast_inference_copy``)."""
    net, _ = load_model(model_dir)
    net.eval()
    other = {"autocast": lambda: net, "weights": lambda: fast_inference_copy(net, compile=False),
             "compiled": lambda: fast_inference_copy(net)}[variant]()
    other_precision = "bf16" if variant == "autocast" else "fp32"  # a copy's weights are bf16 already
    c = net.cfg
    labels = [i % c.num_classes for i in range(n)]
    target = [(i + 1) % c.num_classes for i in range(n)]
    sample_fp32 = sample_pmf(net, labels, guidance_scale=2.0, generator=torch.Generator().manual_seed(0)).images
    images = ((sample_fp32 + 1) / 2).clamp(0, 1)  # the model's own images as inputs, [0, 1]
    mask = torch.zeros(n, 1, c.image_size, c.image_size, dtype=torch.bool)
    mask[..., c.image_size // 2:, :] = True
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    calls: dict[str, Callable[..., torch.Tensor]] = {
        "sample": lambda p, net=net: ((sample_pmf(net, labels, guidance_scale=2.0, generator=gen(), precision=p).images + 1) / 2).clamp(0, 1),
        "reconstruct": lambda p, net=net: pmf_edit.reconstruct(net, images, labels=labels, precision=p).images,
        "edit": lambda p, net=net: pmf_edit.edit(net, images, source_labels=labels, labels=target, generator=gen(), precision=p).images,
        "sdedit": lambda p, net=net: pmf_edit.sdedit(net, images, labels=target, generator=gen(), precision=p).images,
        "flow_edit": lambda p, net=net: pmf_edit.flow_edit(net, images, source_labels=labels, labels=target,
                                                generator=gen(), precision=p).images,
        "inpaint": lambda p, net=net: pmf_edit.inpaint(net, images, mask, labels=labels, generator=gen(), precision=p).images,
    }
    if c.in_channels == 3:
        style = images.roll(1, 0)
        calls["style_transfer"] = lambda p, net=net: pmf_edit.style_transfer(net, images, style, generator=gen(), precision=p).images
    out: dict[str, Any] = {}
    for name, call in calls.items():
        try:
            a, b = call("fp32"), call(other_precision, net=other)
            out[name] = round(float(psnr(b.float().clamp(0, 1), a.float().clamp(0, 1), data_range=1.0).mean()), 2)
        except Exception as e:
            out[name] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    numbers = [v for v in out.values() if isinstance(v, float)]
    out["min_db"] = min(numbers) if numbers else None
    return out


def _plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    b1 = res["bare"]["batch1"]
    names = list(b1)
    axes[0].bar(names, [b1[k]["cpu_s_per_image_eval"]["median"] for k in names], color="tab:blue")
    if "compile" in res and isinstance(res["compile"], dict) and "bf16" in res["compile"]:
        cb = res["compile"]["bf16"]["compiled"]["cpu_s_per_image_eval"]["median"]
        axes[0].bar(["bf16+compile"], [cb], color="tab:green")
    axes[0].set_ylabel("CPU s per evaluation (batch 1)")
    axes[0].set_title("pMF-B/16 256x256, bare network")
    axes[0].tick_params(axis="x", rotation=30)
    api = {k: v for k, v in res["apis"].items() if "fp32" in v}
    x = range(len(api))
    axes[1].bar([i - 0.2 for i in x], [v["fp32"]["cpu_s_per_eval"] for v in api.values()], 0.4, label="fp32")
    axes[1].bar([i + 0.2 for i in x], [v["bf16"]["cpu_s_per_eval"] for v in api.values()], 0.4, label="bf16")
    axes[1].set_xticks(list(x), list(api), rotation=30)
    axes[1].set_ylabel("CPU s per network evaluation")
    axes[1].set_title("through each API (batch 1)")
    axes[1].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds at batch 1 and 2")
    ap.add_argument("--big-batch", type=int, default=8, help="the batched measurement's batch size")
    ap.add_argument("--big-rounds", type=int, default=1, help="interleaved rounds at the big batch")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (its code generation "
                    "costs minutes of CPU)")
    ap.add_argument("--compile-precisions", default="bf16", help="precisions to compile (comma list)")
    ap.add_argument("--skip-bare", action="store_true", help="skip the bare-network timings")
    ap.add_argument("--skip-apis", action="store_true", help="skip the API timings")
    ap.add_argument("--skip-agreement", action="store_true", help="skip the PSNR check on the trained models")
    ap.add_argument("--agreement-n", type=int, default=16, help="images per API in the PSNR check")
    ap.add_argument("--fast-path", action="store_true", help="also time fast_inference_copy (bf16 weights, "
                    "compiled) against fp32, bare and through the APIs, and its agreement on the trained models")
    ap.add_argument("--weights", action="store_true", help="also time the bf16-weight network (what "
                    "from_pretrained's precision='auto' loads for big networks; uncompiled) against fp32, bare "
                    "and through the APIs, and its agreement on the trained models")
    ap.add_argument("--api-rounds", type=int, default=3, help="--fast-path / --weights: interleaved rounds per API")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--plot", type=Path, default=None, help="write a bar chart here (PNG)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    res: dict[str, Any] = {"torch": torch.__version__, "threads": args.threads, "loadavg_at_start": load,
                           "model": "pMF-B/16 256x256, random weights (speed only)"}
    t0, c0 = time.perf_counter(), cpu_seconds()
    torch.manual_seed(0)
    net = trained_like(build_model("pMF-B/16", with_v_head=False)).eval()
    if not args.skip_bare:
        res["bare"] = bare_network(net, args)
    if not args.no_compile:
        try:
            res["compile"] = compiled_network(net, args)
        except Exception as e:
            res["compile"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    if not args.skip_apis:
        res["apis"] = apis(net, args)
    if args.weights:
        res["weights"] = weights_path(net, args)
    if args.fast_path:
        res["fast_path"] = fast_path(net, args)
    del net
    if not args.skip_agreement:
        res["agreement_psnr_db_bf16_vs_fp32"] = {name: agreement(ASSETS / name, args.agreement_n)
                                                 for name in ("pmf-photos", "pmf-mnist")}
    if args.fast_path and not args.skip_agreement:
        agree = {name: agreement(ASSETS / name, args.agreement_n, "compiled") for name in ("pmf-photos", "pmf-mnist")}
        res["agreement_psnr_db_fast_copy_vs_fp32"] = agree
        fp = res["fast_path"]
        b1 = fp["batch1"]["bf16_weights_compiled"]["speedup_vs_fp32"]
        bb = fp[f"batch{args.big_batch}"]["bf16_weights_compiled"]["speedup_vs_fp32"]
        worst = min(v["min_db"] for v in agree.values() if v["min_db"] is not None)
        res["fast_copy_decision"] = {
            "speedup_b1": b1, f"speedup_b{args.big_batch}": bb, "worst_api_psnr_db": worst,
            "compile_cpu_s_b1": fp["batch1"]["compile_cpu_s"],
            "meets_speed_and_psnr_bars": bool(b1 >= SPEEDUP_BAR and bb >= SPEEDUP_BAR and worst >= PSNR_BAR_DB),
        }
    if args.weights and not args.skip_agreement:
        agree = {name: agreement(ASSETS / name, args.agreement_n, "weights") for name in ("pmf-photos", "pmf-mnist")}
        res["agreement_psnr_db_bf16_weights_vs_fp32"] = agree
        w = res["weights"]
        res["bf16_weights_summary"] = {
            "speedup_b1": w["batch1"]["bf16_weights"]["speedup_vs_fp32"],
            f"speedup_b{args.big_batch}": w[f"batch{args.big_batch}"]["bf16_weights"]["speedup_vs_fp32"],
            "speedup_apis": {k: v["bf16_weights"]["speedup_vs_fp32"] for k, v in w["apis"].items()
                             if "bf16_weights" in v},
            "worst_api_psnr_db": min(v["min_db"] for v in agree.values() if v["min_db"] is not None),
        }
    if "bare" in res and "agreement_psnr_db_bf16_vs_fp32" in res:
        b1 = res["bare"]["batch1"]["bf16"]["speedup_vs_fp32"]
        bb = res["bare"][f"batch{args.big_batch}"]["bf16"]["speedup_vs_fp32"]
        worst = min(v["min_db"] for v in res["agreement_psnr_db_bf16_vs_fp32"].values() if v["min_db"] is not None)
        res["bf16_default_decision"] = {
            "speedup_b1": b1, f"speedup_b{args.big_batch}": bb, "worst_api_psnr_db": worst,
            "rule": f">= {SPEEDUP_BAR}x at batch 1 and {args.big_batch}, >= {PSNR_BAR_DB} dB on every API",
            "make_default": bool(b1 >= SPEEDUP_BAR and bb >= SPEEDUP_BAR and worst >= PSNR_BAR_DB),
        }
    res["total_cpu_s"] = round(cpu_seconds() - c0, 1)
    res["total_wall_s"] = round(time.perf_counter() - t0, 1)
    with open("/proc/loadavg") as f:
        res["loadavg_at_end"] = f.read().split()[:3]
    line = json.dumps(res)
    print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1) + "\n")
    if args.plot and "bare" in res and "apis" in res:
        _plot(res, args.plot)
    return res


if __name__ == "__main__":
    main()
