"""Where the bf16 network's time goes at pMF-B/16 256x256, and what eager-mode changes buy.

The default for big networks on a bf16 CPU is bf16 weights, uncompiled (README "CPU speed of the big
model"). This probe times, in one process with interleaved rounds, the fp32 network against the bf16
network as shipped and with each candidate change patched in (nothing here changes the library):

    norm       RMSNorm through torch's fused ``F.rms_norm`` in bf16 (statistics still accumulated in fp32)
    rope       RoPE applied in bf16 (the library promotes to fp32)
    block      residual gates as one ``addcmul`` each, SwiGLU's product in place
    attention  attention as matmul -> softmax -> matmul in bf16 (the library: SDPA's CPU flash kernel)

Each variant's output is compared with fp32 (PSNR of the x-prediction, random weights with non-zero
gates and final layer so that the blocks matter). One JSON line.

    OMP_NUM_THREADS=2 python benchmarks/probe_bf16_eager.py --batch 1 --rounds 5
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import core.model as M  # noqa: E402

ORIGINAL = {"norm": M.RMSNorm.forward, "rope": M.apply_rope, "attention": M.Attention.forward,
            "block": M.Block.forward, "mlp": M.SwiGLU.forward}


def _norm(self, x):
    if x.dtype != torch.bfloat16:
        return ORIGINAL["norm"](self, x)
    return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def _rope(x, cos, sin):
    if x.dtype != torch.bfloat16:
        return ORIGINAL["rope"](x, cos, sin)
    n = cos.shape[0]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    a, b = x[:, :, -n:].unflatten(-1, (-1, 2)).unbind(-1)  # each (B, nh, N, hd/2)
    rotated = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
    return torch.cat([x[:, :, :-n], rotated], dim=2)


def _block(self, x, cos, sin, backend):
    if x.dtype != torch.bfloat16:
        return ORIGINAL["block"](self, x, cos, sin, backend)
    x = torch.addcmul(x, self.attn_gate, self.attn(self.norm1(x), cos, sin, backend))
    return torch.addcmul(x, self.mlp_gate, self.mlp(self.norm2(x)))


def _mlp(self, x):
    if x.dtype != torch.bfloat16:
        return ORIGINAL["mlp"](self, x)
    return self.w2(F.silu(self.w1(x)).mul_(self.w3(x)))


def _attention(self, x, cos, sin, backend):
    if x.dtype != torch.bfloat16:
        return ORIGINAL["attention"](self, x, cos, sin, backend)
    B, L, D = x.shape
    q, k, v = (lin(x).view(B, L, self.num_heads, -1).transpose(1, 2) for lin in (self.q, self.k, self.v))
    q, k = M.apply_rope(self.q_norm(q), cos, sin), M.apply_rope(self.k_norm(k), cos, sin)
    w = torch.matmul(q * (1.0 / math.sqrt(q.shape[-1])), k.transpose(-2, -1)).softmax(-1)  # (B, nh, L, L) bf16
    return self.out(torch.matmul(w, v).transpose(1, 2).reshape(B, L, D))


VARIANTS = {
    "bf16": {},
    "bf16+norm": {"norm": _norm},
    "bf16+norm+rope": {"norm": _norm, "rope": _rope},
    "bf16+norm+rope+block": {"norm": _norm, "rope": _rope, "block": _block, "mlp": _mlp},
    "bf16+all+attention": {"norm": _norm, "rope": _rope, "block": _block, "mlp": _mlp, "attention": _attention},
}


def _apply(patch: dict) -> None:
    fns = {**ORIGINAL, **patch}
    M.RMSNorm.forward, M.apply_rope, M.Attention.forward = fns["norm"], fns["rope"], fns["attention"]
    M.Block.forward, M.SwiGLU.forward = fns["block"], fns["mlp"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = M.build_model("pMF-B/16", with_v_head=False).eval()
    with torch.no_grad():  # trained-like: the gates and the final layer start at zero
        for name, p in net.named_parameters():
            if name.endswith("gate"):
                p.normal_(0, 0.1)
            if name.endswith("final.linear.weight"):
                p.normal_(0, 0.02)
    low = copy.deepcopy(net).to(torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    B = args.batch
    z, t, r = torch.randn(B, 3, 256, 256, generator=g), torch.full((B,), 0.7), torch.zeros(B)
    y = torch.zeros(B, dtype=torch.long)

    def x_pred(m) -> torch.Tensor:  # x = z - t u: the network's image, where the blocks show
        with torch.no_grad():
            return (z - t.view(-1, 1, 1, 1) * m(z, t, r, y)).double()

    _apply({})
    ref = x_pred(net)
    times: dict[str, list[float]] = {"fp32": [], **{k: [] for k in VARIANTS}}
    psnr = {}
    for k, patch in VARIANTS.items():  # warm-up and agreement
        _apply(patch)
        out = x_pred(low)
        psnr[k] = round(float(10 * torch.log10(ref.pow(2).mean() / (out - ref).pow(2).mean())), 2)
    for _ in range(args.rounds):
        for k, patch in [("fp32", {}), *VARIANTS.items()]:
            _apply(patch)
            c = time.process_time()
            x_pred(net if k == "fp32" else low)
            times[k].append((time.process_time() - c) / B)
    _apply({})
    f = statistics.median(times["fp32"])
    res = {"batch": B, "threads": args.threads, "rounds": args.rounds,
           "cpu_s_per_image": {k: round(statistics.median(v), 4) for k, v in times.items()},
           "speedup_vs_fp32": {k: round(f / statistics.median(v), 3) for k, v in times.items()},
           "psnr_db_vs_fp32": psnr}
    line = json.dumps(res)
    print(line)
    if args.out:
        Path(args.out).write_text(line + "\n")
    return res


if __name__ == "__main__":
    main()
