"""What the inverse of a one-step generator can recover: the latents of a backward head trained with
``pmf train --objective invert`` (issue 9).

For digits of ``--split``, the backward jump from the image to t = r gives z_r = (1 - r) x + r s e_b;
the noise estimate e_b is the encoder's guess of the generator's noise. Printed per r:
  rms      RMS of e_b (1 for a real noise sample; the posterior mean E[e | x] is smaller by the share
           of the noise the image does not determine)
  edits    the class swap y -> y + 1 from z_r, regenerated under the target class in one jump, with
           e_b as is ("mean"), or topped up with fresh noise to unit RMS ("sample") or half of that
           ("half"): target accuracy and SSIM to the source at each strength, and the SSIM where the
           curve reaches 90% accuracy (linear in between)

    OMP_NUM_THREADS=1 python benchmarks/probe_inverse_latents.py --model runs/mnist-invert/model \
        --split train --out benchmarks/results/inverse_latents_train.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_bidirectional import digits  # noqa: E402
from benchmarks.bench_editing import _at_accuracy  # noqa: E402
from core.eval.evaluation import evaluate_digits  # noqa: E402
from core.eval.metrics import ssim  # noqa: E402
from pmf_edit import editing  # noqa: E402
from pmf_edit.boundary import noise_of_state  # noqa: E402
from pmf_edit import velocity as vf  # noqa: E402


@torch.no_grad()
def noise_estimate(net, x: torch.Tensor, y: torch.Tensor, r: float, guidance: float) -> torch.Tensor:
    """e_b (B, C, H, W): the backward jump 0 -> r written as noise, z_r = (1 - r) x + r s e_b."""
    return noise_of_state(vf.jump(net, x, 0.0, r, y, guidance), x, r, float(net.cfg.noise_scale))


@torch.no_grad()
def edit_curve(net, x, y, tgt, strengths, mode: str, source_guidance: float, target_guidance: float,
               seed: int) -> dict:
    xi = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    rows = []
    for s in strengths:
        e = noise_estimate(net, x, y, s, source_guidance)
        if mode != "mean":  # top the estimate up to unit RMS with fresh noise (per sample)
            c = (1 - e.flatten(1).pow(2).mean(1)).clamp(min=0).sqrt().view(-1, 1, 1, 1)
            e = e + (0.5 if mode == "half" else 1.0) * c * xi
        z = (1 - s) * x + s * float(net.cfg.noise_scale) * e
        out = vf.jump(net, z, s, 0.0, tgt, target_guidance).clamp(-1, 1)
        rows.append({"strength": s, "target_accuracy": round(evaluate_digits(out, tgt)["class_accuracy"], 4),
                     "ssim": round(float(ssim(out, x).mean()), 4), "psnr": float("nan"), "nfe": 2})
    at = _at_accuracy(rows, 0.9)
    return {"curve": rows, "at_90": None if at is None else {"strength": at["strength"], "ssim": at["ssim"]}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder with a backward head (--objective invert)")
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--num-images", type=int, default=100)
    p.add_argument("--strengths", default="0.5,0.6,0.7,0.8,0.85,0.9,0.95,1.0")
    p.add_argument("--source-guidance", type=float, default=1.0)
    p.add_argument("--target-guidance", type=float, default=editing.EDIT_GUIDANCE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    net, _ = editing.from_pretrained(args.model)
    if not vf.has_backward_field(net):
        raise SystemExit(f"{args.model} has no backward head")
    x01, y = digits(args.split, args.num_images)
    x, tgt = x01 * 2 - 1, (y + 1) % 10
    strengths = [float(s) for s in args.strengths.split(",")]
    report: dict = {"bench": "inverse_latents", "model": args.model, "split": args.split,
                    "num_images": len(x), "source_guidance": args.source_guidance,
                    "target_guidance": args.target_guidance, "rms": {}, "edits": {}}
    for r in (1.0, 0.9, 0.8):
        e = noise_estimate(net, x, y, r, args.source_guidance)
        rms = e.flatten(1).pow(2).mean(1).sqrt()
        report["rms"][str(r)] = {"mean": round(float(e.pow(2).mean().sqrt()), 4),
                                 "min": round(float(rms.min()), 4), "max": round(float(rms.max()), 4)}
        print(json.dumps({"r": r, **report["rms"][str(r)]}), flush=True)
    for mode in ("mean", "half", "sample"):
        report["edits"][mode] = edit_curve(net, x, y, tgt, strengths, mode, args.source_guidance,
                                           args.target_guidance, args.seed)
        print(json.dumps({"mode": mode, "at_90": report["edits"][mode]["at_90"]}), flush=True)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
