"""`pmf export`: a model folder from a training run's latest checkpoint, while it runs or after it stopped.

    pmf export runs/mnist runs/mnist/peek                      # the longest EMA (what model/ gets at the end)
    pmf export runs/mnist runs/mnist/peek-ema5 --ema 0         # the first EMA half-life of --ema-halflife-kimg
    pmf export runs/mnist peek --guidance-scale 2.5            # with a chosen sampling default
    pmf sample --model runs/mnist/peek --outdir peek_samples
"""
from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help="export a run's latest checkpoint (one EMA) as a model folder",
        description="Write the EMA weights of a training run's latest checkpoint as a model folder that "
                    "`pmf sample/edit/stylize --model` and `core.checkpoint.load_model` read, without "
                    "resuming or disturbing the run (safe while it trains). The files are written atomically.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run", help="the run folder (pmf train --out-dir)")
    p.add_argument("output", help="model folder to write")
    p.add_argument("--ema", type=int, default=-1,
                   help="which EMA, an index into the run's --ema-halflife-kimg list (-1: the last, longest)")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="sampling default written into the folder's config (default: the run's)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from core.checkpoint import read_config
    from core.train import export_checkpoint

    if args.guidance_scale is not None and not args.guidance_scale >= 0:  # the flag's name in the message
        raise ValueError(f"--guidance-scale must be >= 0, got {args.guidance_scale}")
    out = export_checkpoint(args.run, args.output, ema_index=args.ema, guidance_scale=args.guidance_scale)
    cfg = read_config(out)
    print(json.dumps({"model": str(out), "train_steps": cfg.get("train_steps"),
                      "ema_halflife_kimg": cfg.get("ema_halflife_kimg"), "sampling": cfg.get("sampling")}))
    return 0
