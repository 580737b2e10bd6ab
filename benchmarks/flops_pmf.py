"""FLOPs per image of one pMF training step and of one-step generation, counted and derived.

Two independent numbers for each pass:
- `counted`: torch.utils.flop_counter.FlopCounterMode around the real calls of core.meanflow's
  pMF loss (guidance forward of the v path on [z; z], the no-grad JVP of the u path on the r < t
  rows, the grad forward of both heads, its backward) on the network of `--preset`, one image on
  the CPU (B/16 at 256: about a minute; the meta device cannot run the model's data-dependent
  head routing);
- `analytic`: the same passes from the architecture alone (PMFConfig): per token and block,
  4 D^2 (q, k, v, out) + 3 D H (SwiGLU) multiply-accumulates, plus 2 L D for attention scores and
  their weighted sum over L = prefix + image tokens, plus the patch embedding and final layer.
  A backward costs two forwards. A JVP needs at least the primal plus one tangent matmul per
  linear layer and two per attention product (`jvp_minimum`), but torch's forward-AD rule for mm
  also multiplies by the weight's (zero) tangent: it runs three matmuls per linear layer, so the
  JVP costs three forwards (`jvp`, which is what the counter sees).
FLOPs = 2 x multiply-accumulates (the paper's "GFLOPs" column counts MACs, PMF_SPEC 5.6).

    python -m benchmarks.flops_pmf --preset pMF-B/16 > benchmarks/results/flops_pmf_b16.json
"""
from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from core.attention import forward_ad_safe
from core.meanflow import MeanFlowConfig, du_dt
from core.model import PMFConfig, build_model


def analytic_macs(cfg: PMFConfig) -> dict[str, float]:
    """Multiply-accumulates per image of one block pass, the embedding and the final layer."""
    D, Hd, N, L = cfg.width, cfg.hidden, cfg.num_patches, cfg.num_prefix + cfg.num_patches
    linear = L * (4 * D * D + 3 * D * Hd)  # q, k, v, out + SwiGLU w1, w3, w2, every token
    attn = 2 * L * L * D  # Q K^T and A V, all heads together
    p2c = cfg.patch_size**2 * cfg.in_channels
    embed = N * (p2c * cfg.bottleneck + cfg.bottleneck * D)
    final = N * D * p2c
    return {"block_linear": linear, "block_attn": attn, "embed": embed, "final": final}


def count(fn) -> float:
    # The matmul attention path everywhere: FlopCounterMode has no rule for the CPU flash kernel
    # and would leave attention out of the passes that use SDPA.
    with forward_ad_safe(), FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="pMF-B/16")
    ap.add_argument("--fm-ratio", type=float, default=MeanFlowConfig().fm_ratio,
                    help="share of rows with r = t (no JVP for them)")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = build_model(args.preset, with_v_head=True)
    cfg = net.cfg
    B = 1
    z = torch.randn(B, cfg.in_channels, cfg.image_size, cfg.image_size, device="cpu")
    t, r = torch.full((B,), 0.7, device="cpu"), torch.full((B,), 0.2, device="cpu")
    y = torch.zeros(B, dtype=torch.long, device="cpu")
    w, lo, hi = torch.full((B,), 3.0, device="cpu"), torch.zeros(B, device="cpu"), torch.ones(B, device="cpu")

    def cat2(a):
        return torch.cat([a, a])

    with torch.no_grad():
        infer = count(lambda: net(z, t, torch.zeros_like(t), y, w, lo, hi, heads="u"))
        guidance = count(lambda: net(cat2(z), cat2(t), cat2(t), cat2(y), cat2(w), cat2(lo), cat2(hi), heads="v"))
    jvp = count(lambda: du_dt(net, z, t, r, z, y, w, lo, hi))
    holder = {}

    def grad_forward():
        u, v = net(z, t, r, y, w, lo, hi, heads="uv")
        holder["loss"] = (u.pow(2).sum() + v.pow(2).sum())

    fwd = count(grad_forward)
    bwd = count(lambda: holder["loss"].backward())
    mf_share = 1.0 - args.fm_ratio
    step = guidance + mf_share * jvp + fwd + bwd

    def fm_forward():  # the flow-matching baseline on the same network: u path only, with grad
        holder["fm"] = net(z, t, t, y, heads="u").pow(2).sum()

    fm_step = count(fm_forward)
    fm_step += count(lambda: holder["fm"].backward())

    a = analytic_macs(cfg)
    shared = cfg.depth - cfg.head_depth
    block = a["block_linear"] + a["block_attn"]
    u_path = a["embed"] + cfg.depth * block + a["final"]  # trunk + u-head
    uv_path = a["embed"] + (cfg.depth + cfg.head_depth) * block + 2 * a["final"]  # trunk + u + v heads
    # Minimum: primal + one tangent product per linear, two per attention product.
    jvp_min = 2 * a["embed"] + cfg.depth * (2 * a["block_linear"] + 3 * a["block_attn"]) + 2 * a["final"]
    analytic = {
        "inference": 2 * u_path,
        "guidance": 2 * 2 * (a["embed"] + (shared + cfg.head_depth) * block + a["final"]),  # v path on 2 rows
        "jvp": 2 * 3 * u_path,  # as torch runs it: three matmuls per linear and per attention product
        "jvp_minimum": 2 * jvp_min,
        "grad_forward": 2 * uv_path,
        "backward": 2 * 2 * uv_path,
    }
    analytic["train_step"] = (analytic["guidance"] + mf_share * analytic["jvp"] + analytic["grad_forward"]
                              + analytic["backward"])
    analytic["fm_train_step"] = 3 * analytic["inference"]
    counted = {"inference": infer, "guidance": guidance, "jvp": jvp, "grad_forward": fwd, "backward": bwd,
               "train_step": step, "fm_train_step": fm_step}
    print(json.dumps({
        "bench": "flops_pmf",
        "preset": args.preset,
        "image_size": cfg.image_size,
        "tokens": cfg.num_prefix + cfg.num_patches,
        "params_inference": net.num_params(),
        "params_train_with_v_head": net.num_params(include_v_head=True),
        "fm_ratio": args.fm_ratio,
        "gflop_per_image_counted": {k: round(v / 1e9, 2) for k, v in counted.items()},
        "gflop_per_image_analytic": {k: round(v / 1e9, 2) for k, v in analytic.items()},
        "gmac_inference_counted": round(infer / 2e9, 2),
        "train_step_over_inference": round(step / infer, 2),
        "train_step_over_fm_step": round(step / fm_step, 2),
        "note": "FLOPs = 2 x MACs; train_step = guidance + (1 - fm_ratio) x jvp + grad_forward + backward "
                "(no perceptual networks); conditioning embedders and norms are not matmuls and not counted",
    }))


if __name__ == "__main__":
    main()
