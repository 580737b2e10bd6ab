"""One-step FD-digits of several MNIST pMF models against TRAIN digits, with enough samples to rank them.

The held-out protocol of `bench_generation.py` / `bench_bidirectional.py` compares 500 samples with
the 500 held-out digits; between neighbouring checkpoints of one run that number moves by up to 0.1,
more than the differences being looked for. This compares N samples per model (same labels, same
noise seed for every model) with N random TRAIN digits, per guidance scale: a validation number for
choosing a run, a checkpoint and a scale. Report the held-out protocol for the chosen one.

    OMP_NUM_THREADS=1 python benchmarks/bench_fd_models.py --models core/assets/pmf-mnist runs/x/model \
        --guidance 2.5 3 3.5 --per-class 200 --out fd.json

Prints one JSON object: per model, per scale, FD and class accuracy of the samples.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_generation import generate, reference_stats  # noqa: E402
from core.checkpoint import load_model  # noqa: E402
from core.eval.evaluation import classifier_features  # noqa: E402
from core.eval.metrics import frechet_distance  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", required=True, help="pMF model folders")
    p.add_argument("--guidance", type=float, nargs="+", default=[2.5, 3.0, 3.5])
    p.add_argument("--per-class", type=int, default=200, help="samples per class (10 classes)")
    p.add_argument("--steps", type=int, default=1, help="sampling steps (1: the one-step generator)")
    p.add_argument("--sample-seed", type=int, default=20_000)
    p.add_argument("--reference-seed", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the JSON here too")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    labels = [c for c in range(10) for _ in range(args.per_class)]
    ref = reference_stats(len(labels), args.reference_seed)
    target = torch.tensor(labels)
    result: dict = {"per_class": args.per_class, "steps": args.steps, "reference": f"{len(labels)} train digits, seed {args.reference_seed}",
                    "sample_seed": args.sample_seed, "models": {}}
    for folder in args.models:
        net, meta = load_model(folder)
        net.eval()
        rows = {}
        for w in args.guidance:
            t0 = time.perf_counter()
            with torch.no_grad():
                imgs, nfe, _ = generate(net, meta.get("objective", "pmf"), labels, args.steps, w, (0.0, 1.0),
                                        seed=args.sample_seed, batch_size=args.batch_size)
            feats, logits = classifier_features(imgs)
            rows[str(w)] = {"fd": round(frechet_distance(feats, ref), 4),
                            "accuracy": round((logits.argmax(1) == target).float().mean().item(), 4),
                            "nfe": nfe, "seconds": round(time.perf_counter() - t0, 1)}
            print(folder, w, rows[str(w)], file=sys.stderr, flush=True)
        best = min(rows, key=lambda k: rows[k]["fd"])
        result["models"][folder] = {"train_steps": meta.get("train_steps"), "by_guidance": rows, "best_guidance": float(best)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
