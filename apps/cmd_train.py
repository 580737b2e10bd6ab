"""`pmf train`: train (or resume) a pMF or flow-matching model.

    pmf train --out-dir runs/mnist --dataset mnist --preset pMF-S/4 --steps 4000
    pmf train --out-dir runs/mnist-inv --objective invert --init-from core/assets/pmf-mnist  # one-step inversion
    torchrun --nproc_per_node 2 -m apps.cli train --out-dir runs/ddp ...   # several processes (DDP)
    torchrun --nproc_per_node 8 -m apps.cli train --parallel fsdp --grad-accum 2 ...  # FSDP2, large presets
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

from core.invert_distill import InvertDistillConfig
from core.meanflow import FlowMatchingConfig, MeanFlowConfig
from core.model import PRESETS
from core.train import OBJECTIVES, TrainConfig


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    d = TrainConfig()
    m = MeanFlowConfig()
    i = InvertDistillConfig()
    p = sub.add_parser(
        "train",
        help="train or resume a model (pMF or flow matching)",
        description="Train a pMF (or flow-matching baseline) network. Re-running the same command "
        "with the same --out-dir resumes from the latest checkpoint exactly.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out-dir", default=d.out_dir, help="run folder: checkpoints, log.jsonl, samples/, model/")
    p.add_argument("--dataset", default=d.dataset,
                   help="built-in data set (mnist, digits, photos), a folder of class subfolders, a file "
                        "list (lines 'path [label]', streamed) or a folder written by `pmf pack-dataset`")
    p.add_argument("--stream", action="store_true",
                   help="read the class folder lazily in DataLoader workers with ADM's centre crop "
                        "(ImageNet-size sets) instead of loading it into memory; needs --resolution")
    p.add_argument("--data-workers", type=int, default=d.data_workers,
                   help="DataLoader processes per rank decoding streamed sets (0: in the training process)")
    p.add_argument("--hflip", action="store_true",
                   help="random horizontal flips (deterministic per seed, epoch and image; the official "
                        "pMF ImageNet recipe uses none)")
    p.add_argument("--resolution", type=int, default=None, help="image side in pixels (default: the data set's)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None, help="1 or 3 (default: the data set's)")
    p.add_argument("--preset", default=d.preset, choices=sorted(PRESETS), help="network size")
    p.add_argument("--model-override", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a PMFConfig field, e.g. width=96 (repeatable)")
    p.add_argument("--objective", choices=OBJECTIVES, default=d.objective,
                   help="pmf (MeanFlow, one-step), fm (flow-matching baseline) or invert (train only the "
                   "backward head as the inverse of the --init-from pMF generator, which stays frozen: "
                   "one-step inversion)")
    p.add_argument("--steps", type=int, default=d.steps, help="total optimizer steps")
    p.add_argument("--max-minutes", type=float, default=d.max_minutes,
                   help="also stop after this many minutes of training (0: no limit)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="global batch size of one optimizer step (all processes and micro-batches)")
    p.add_argument("--grad-accum", type=int, default=d.grad_accum,
                   help="micro-batches per step and process; each is batch-size / (processes x this)")
    p.add_argument("--parallel", choices=("ddp", "fsdp"), default=d.parallel,
                   help="engine under torchrun: ddp (replicated weights) or fsdp (FSDP2: weights, "
                   "gradients and optimizer state sharded; for the large presets)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (and Muon's unless --muon-lr)")
    p.add_argument("--muon-lr", type=float, default=d.muon_lr, help="Muon learning rate (default: --lr)")
    p.add_argument("--ema-rampup", type=float, default=d.ema_rampup,
                   help="EMA half-life <= this share of the images seen so far (EDM); 0: the full half-lives "
                   "from step 1 (e.g. a warm start, whose EMA starts from already good weights)")
    p.add_argument("--lr-cooldown-steps", type=int, default=d.lr_cooldown_steps,
                   help="the last N steps before --steps lower both rates linearly toward 0 (0: constant)")
    p.add_argument("--ema-halflife-kimg", type=float, nargs="+", default=list(d.ema_halflife_kimg),
                   help="EMA half-lives in thousands of images; the last one is exported")
    p.add_argument("--P-mean", type=float, default=m.P_mean, help="logit-normal mean of t (t=1 is noise)")
    p.add_argument("--P-std", type=float, default=m.P_std, help="logit-normal std of t")
    p.add_argument("--cfg-max", type=float, default=m.cfg_max, help="guidance scales trained: [1, 1 + cfg_max]")
    p.add_argument("--perceptual-weight", type=float, default=m.perceptual_weight,
                   help="weight of the perceptual term on the image field (0: off)")
    p.add_argument("--perceptual-net", default=d.perceptual_net,
                   help="'mobilenet' (offline ImageNet MobileNetV2) or a path to MobileNetV2 weights")
    p.add_argument("--perceptual-size", type=int, default=d.perceptual_size,
                   help="input side of the perceptual network")
    p.add_argument("--perceptual-max-t", type=float, default=m.perceptual_max_t,
                   help="perceptual term only where t < this")
    p.add_argument("--fm-ratio", type=float, default=m.fm_ratio, help="share of each batch with r = t")
    p.add_argument("--backward-ratio", type=float, default=m.backward_ratio,
                   help="share of the r < t rows trained backward (r > t, toward noise): one-step "
                   "inversion; > 0 builds the backward head")
    p.add_argument("--backward-endpoint-prob", type=float, default=m.backward_endpoint_prob,
                   help="share of the backward rows that jump to the noise end r = 1 from t ~ U(0, 1)")
    p.add_argument("--invert-generated-share", type=float, default=i.generated_share,
                   help="invert: share of rows that invert the generator's own samples (known latent)")
    p.add_argument("--invert-latent-weight", type=float, default=i.latent_weight,
                   help="invert: weight of the latent-matching term on generated rows")
    p.add_argument("--invert-roundtrip-weight", type=float, default=i.roundtrip_weight,
                   help="invert: weight of the round-trip term (generator(inverse(x)) = x) on all rows")
    p.add_argument("--invert-adaptive-p", type=float, default=i.adaptive_p,
                   help="invert: adaptive weight power of both terms (1: each term's gradient is its log's, "
                   "so the small round-trip error dominates; 0: plain squared errors)")
    p.add_argument("--init-from", default=None, metavar="MODEL_DIR",
                   help="start a new run from a model folder's weights (e.g. core/assets/pmf-mnist); "
                   "missing heads are copied from its u-head")
    p.add_argument("--jvp", choices=("nograd", "fused"), default=m.jvp, help="JVP strategy of the pMF loss")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of weights, data order and noise")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:N")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--threads", type=int, default=d.threads, help="CPU threads (0: torch default)")
    p.add_argument("--log-every", type=int, default=d.log_every, help="steps between log.jsonl lines")
    p.add_argument("--sample-every", type=int, default=d.sample_every, help="steps between sample grids (0: never)")
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every, help="steps between checkpoints")
    p.add_argument("--guidance-scale", type=float, default=d.guidance_scale,
                   help="guidance scale of the sample grids and the exported model's default")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    p.set_defaults(func=run)
    return p


def _parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--model-override expects FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    mf = replace(MeanFlowConfig(), P_mean=args.P_mean, P_std=args.P_std, cfg_max=args.cfg_max, jvp=args.jvp,
                 fm_ratio=args.fm_ratio, backward_ratio=args.backward_ratio,
                 backward_endpoint_prob=args.backward_endpoint_prob,
                 perceptual_weight=args.perceptual_weight, perceptual_max_t=args.perceptual_max_t)
    fm = replace(FlowMatchingConfig(), P_mean=args.P_mean, P_std=args.P_std)
    inv = replace(InvertDistillConfig(), generated_share=args.invert_generated_share,
                  latent_weight=args.invert_latent_weight, roundtrip_weight=args.invert_roundtrip_weight,
                  adaptive_p=args.invert_adaptive_p,
                  cfg_max=args.cfg_max)
    return TrainConfig(
        out_dir=args.out_dir, dataset=args.dataset, resolution=args.resolution, channels=args.channels,
        stream=args.stream, data_workers=args.data_workers, hflip=args.hflip,
        preset=args.preset, model_overrides=_parse_overrides(args.model_override),
        objective=args.objective, meanflow=mf, flow_matching=fm, invert=inv, batch_size=args.batch_size,
        grad_accum=args.grad_accum, parallel=args.parallel,
        steps=args.steps, max_minutes=args.max_minutes, lr=args.lr, muon_lr=args.muon_lr,
        lr_cooldown_steps=args.lr_cooldown_steps, ema_rampup=args.ema_rampup,
        ema_halflife_kimg=tuple(args.ema_halflife_kimg), seed=args.seed, device=args.device,
        bf16=args.bf16, threads=args.threads, log_every=args.log_every,
        sample_every=args.sample_every, ckpt_every=args.ckpt_every,
        guidance_scale=args.guidance_scale, progress=not args.no_progress,
        perceptual_net=args.perceptual_net, perceptual_size=args.perceptual_size, init_from=args.init_from,
    )


def _as_flag(message: str, args: argparse.Namespace) -> str:
    """A TrainConfig message names its field ("log_every must ..."); the user typed the flag."""
    word, _, rest = message.partition(" ")
    field = word.rstrip(":")
    if field == "model_overrides":
        return f"--model-override{word[len(field):]} {rest}"
    if field in vars(args):
        return f"--{field.replace('_', '-')}{word[len(field):]} {rest}"
    return message


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except (TypeError, ValueError) as err:
        raise type(err)(_as_flag(str(err), args)) from err
    if args.dry_run:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from core.train import train

    summary = train(cfg)
    print(json.dumps(summary))
    return 0
