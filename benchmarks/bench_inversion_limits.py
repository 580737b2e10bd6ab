"""Where the one-step inversion's round trip stops, and why (the issue-4 round-trip target).

The round trip "invert to t = 1, jump back" regenerates ``x' = x_theta(z, 0, 1)``: whatever the
inversion, the output is the network's one-step image of some latent z. This script measures how
close any latent gets, on two kinds of images:

  held-out   test digits the model never saw (the benchmark's images);
  generated  the model's own one-step samples: an exact latent exists (the noise that made them),
             so a shortfall there is the solver's, not the model's range.

and with two solvers:

  fixed-point  ``pmf_edit.velocity.invert`` (1 interval, state seed, Anderson m = 3), J updates
               (NFE = J + 1 with the regeneration);
  gradient     Adam on ||x_theta(z, 0, 1) - x||^2 from the 7-update fixed point (one forward + one
               backward per step, about 3 NFE each): how far the one-step map can reach at all.

    OMP_NUM_THREADS=1 python benchmarks/bench_inversion_limits.py --num-images 30 \
        --out benchmarks/results/inversion_limits.json

Prints one JSON object (also written to --out).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.report import write_report
from core.checkpoint import bundled_model_dir
from core.data import load_dataset
from core.eval.metrics import psnr
from pmf_edit import velocity as vf
from pmf_edit.editing import from_pretrained


def _psnr(x_model: torch.Tensor, ref_model: torch.Tensor) -> float:
    """Mean PSNR (dB) of model-range images, compared on [0, 1] as the editing benchmark does."""
    a = ((x_model.clamp(-1, 1) + 1) / 2).float()
    b = ((ref_model.clamp(-1, 1) + 1) / 2).float()
    return round(float(psnr(a, b, data_range=1.0).mean()), 3)


def fixed_point_curve(net, x, y, iterations: list[int], noise: torch.Tensor | None = None) -> list[dict]:
    rows = []
    for J in iterations:
        inv = vf.invert(net, x, 1.0, labels=y, num_intervals=1, num_iterations=J, init="state")
        rec = vf.jump(net, inv.latents, 1.0, 0.0, y)
        row = {"updates": J, "nfe": inv.nfe + 1, "psnr": _psnr(rec, x), "residual": round(inv.residual, 6)}
        if noise is not None:  # distance of the found latent to the latent that made the image
            row["latent_mae"] = round(float((inv.latents - noise).abs().mean()), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def gradient_curve(net, x, y, steps: list[int], lr: float) -> list[dict]:
    z = vf.invert(net, x, 1.0, labels=y, num_intervals=1, num_iterations=7, init="state").latents.clone()
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    cond = vf.condition(net, x.shape[0], y, 1.0, (0.0, 1.0), x.device)
    ones, zeros = torch.ones(x.shape[0]), torch.zeros(x.shape[0])
    rows, done = [], 0
    for target in steps:
        for _ in range(target - done):
            rec = z - net(z, ones, zeros, **cond)  # x_theta(z, 0, 1) = z - (1 - 0) u(z, 0, 1)
            loss = (rec - x).square().sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        done = target
        with torch.no_grad():
            row = {"adam_steps": target, "nfe_equiv": 7 + 3 * target + 1,
                   "psnr": _psnr(vf.jump(net, z.detach(), 1.0, 0.0, y), x)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="pMF model folder (default: the bundled MNIST pMF)")
    ap.add_argument("--num-images", type=int, default=30)
    ap.add_argument("--iterations", default="1,3,7,15,30", help="fixed-point updates to try")
    ap.add_argument("--adam-steps", default="50,100,300")
    ap.add_argument("--adam-lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    net, _ = from_pretrained(Path(args.model) if args.model else bundled_model_dir("mnist"))
    net.eval().requires_grad_(False)
    test = load_dataset("mnist", split="test")
    idx = torch.linspace(0, len(test.images) - 1, args.num_images).long()  # the editing benchmark's spread
    x, y = test.images[idx].float(), test.labels[idx]
    J = [int(v) for v in args.iterations.split(",")]

    g = torch.Generator().manual_seed(args.seed)
    e = net.cfg.noise_scale * torch.randn(x.shape, generator=g)
    y_gen = torch.arange(args.num_images) % net.cfg.num_classes
    x_gen = vf.jump(net, e, 1.0, 0.0, y_gen)  # the model's own samples, unclamped: exactly in its range

    print("held-out digits, fixed point", flush=True)
    held = fixed_point_curve(net, x, y, J)
    print("generated samples, fixed point", flush=True)
    gen = fixed_point_curve(net, x_gen, y_gen, J, noise=e)
    print("held-out digits, gradient descent", flush=True)
    grad = gradient_curve(net, x, y, [int(v) for v in args.adam_steps.split(",")], args.adam_lr)
    report = {"benchmark": "inversion_limits", "num_images": args.num_images, "threads": args.threads,
              "held_out_fixed_point": held, "generated_fixed_point": gen, "held_out_gradient": grad}
    return write_report(report, args.out)


if __name__ == "__main__":
    main()
