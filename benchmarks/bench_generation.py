"""One-step pMF against the same network trained as flow matching, sampled with many steps.

For pMF at 1 and 2 steps and flow matching (FM) at 1, 2, 4, 8, 16, 32, 50 Euler steps (optionally
Heun), on class-conditional MNIST (50 samples per class = 500, the size of the held-out split):
  * FD-digits: Frechet distance of the project classifier's features to the 500 held-out digits,
  * class accuracy of the samples under that classifier,
  * network evaluations (NFE) per image (CFG's conditional + unconditional pair counts 2 for FM;
    pMF takes guidance as an input, so its NFE is its step count),
  * milliseconds per image (batch --batch-size, --threads CPU threads, same process for all).

Guidance scales are chosen per model on a validation set, never on the test split: with
``--tune-guidance``, each model's scale is the one with the best FD against 500 TRAIN digits (pMF at
1 step, FM at 16 Euler steps), from --guidance-grid.

    python benchmarks/bench_generation.py --tune-guidance --out benchmarks/results/generation.json \
        --plot benchmarks/results/generation.png
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.checkpoint import bundled_model_dir, load_model  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.eval.evaluation import classifier_features, evaluate_digits  # noqa: E402
from core.eval.metrics import FeatureStats, frechet_distance  # noqa: E402
from core.sampling import sample_flow_matching, sample_pmf  # noqa: E402


def generate(net, objective: str, labels: list[int], steps: int, scale: float, interval, seed: int,
             batch_size: int, method: str = "euler") -> tuple[torch.Tensor, int, float]:
    """(images in [-1, 1], NFE per image, seconds) for the given labels."""
    g = torch.Generator().manual_seed(seed)
    out, nfe = [], 0
    t0 = time.perf_counter()
    for i in range(0, len(labels), batch_size):
        chunk = labels[i : i + batch_size]
        if objective == "pmf":
            res = sample_pmf(net, chunk, num_steps=steps, guidance_scale=scale, guidance_interval=interval, generator=g)
        else:
            res = sample_flow_matching(net, chunk, num_steps=steps, method=method, guidance_scale=scale,
                                       guidance_interval=interval, generator=g)
        out.append(res.images)
        nfe = res.nfe
    return torch.cat(out).clamp(-1, 1), nfe, time.perf_counter() - t0


def reference_stats(count: int, seed: int) -> FeatureStats:
    """Classifier-feature statistics of `count` random TRAIN digits (a fixed seed: the same set for every model)."""
    train = load_dataset("mnist", split="train")
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:count]
    return FeatureStats.from_features(classifier_features(train.images[idx])[0])


def tune(net, objective: str, grid: list[float], interval, steps: int, batch_size: int, per_class: int) -> dict:
    """Best guidance scale by FD against TRAIN digits (validation), with its FD per scale."""
    ref = reference_stats(500, seed=0)
    labels = [c for c in range(10) for _ in range(per_class)]
    scores = {}
    for w in grid:
        imgs, _, _ = generate(net, objective, labels, steps, w, interval, seed=10_000, batch_size=batch_size)
        scores[w] = frechet_distance(classifier_features(imgs)[0], ref)
    best = min(scores, key=scores.get)
    return {"best": best, "fd_by_scale": scores, "steps": steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pmf-model", default=None, help="pMF model folder (default: bundled mnist)")
    p.add_argument("--fm-model", default=None, help="flow-matching model folder (default: bundled mnist-fm)")
    p.add_argument("--per-class", type=int, default=50, help="samples per class (10 classes)")
    p.add_argument("--pmf-steps", type=int, nargs="+", default=[1, 2])
    p.add_argument("--fm-steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 50])
    p.add_argument("--fm-method", choices=("euler", "heun"), default="euler")
    p.add_argument("--pmf-guidance", type=float, default=None, help="default: the model's")
    p.add_argument("--fm-guidance", type=float, default=None, help="default: the model's")
    p.add_argument("--tune-guidance", action="store_true", help="choose each model's scale on train digits")
    p.add_argument("--guidance-grid", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the JSON here too")
    p.add_argument("--plot", default=None, help="PNG of FD and accuracy against NFE")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    pmf, pmf_meta = load_model(args.pmf_model or bundled_model_dir("mnist"))
    fm, fm_meta = load_model(args.fm_model or bundled_model_dir("mnist-fm"))
    res: dict = {"threads": args.threads, "batch_size": args.batch_size, "n": 10 * args.per_class,
                 "fm_method": args.fm_method, "torch": torch.__version__}
    interval = (0.0, 1.0)
    scales = {"pmf": args.pmf_guidance or pmf_meta["sampling"]["guidance_scale"],
              "fm": args.fm_guidance or fm_meta["sampling"]["guidance_scale"]}
    if args.tune_guidance:
        res["tuning"] = {
            "pmf": tune(pmf, "pmf", args.guidance_grid, interval, 1, args.batch_size, 20),
            "fm": tune(fm, "fm", args.guidance_grid, interval, 16, args.batch_size, 20),
        }
        scales = {k: v["best"] for k, v in res["tuning"].items()}
    res["guidance_scale"] = scales
    labels = [c for c in range(10) for _ in range(args.per_class)]
    y = torch.tensor(labels)
    rows = []
    for name, net, steps_list in (("pmf", pmf, args.pmf_steps), ("fm", fm, args.fm_steps)):
        for steps in steps_list:
            imgs, nfe, sec = generate(net, name, labels, steps, scales[name], interval, args.seed,
                                      args.batch_size, args.fm_method)
            ev = evaluate_digits(imgs, y)
            rows.append({"model": name, "steps": steps, "nfe": nfe, "fd_digits": ev["fd_digits"],
                         "class_accuracy": ev["class_accuracy"], "ms_per_image": 1e3 * sec / len(labels)})
            print(json.dumps(rows[-1]), file=sys.stderr)
    res["results"] = rows
    print(json.dumps(res))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for name, marker in (("fm", "o-"), ("pmf", "s")):
            pts = [r for r in rows if r["model"] == name]
            label = "pMF (one/two-step)" if name == "pmf" else f"flow matching ({args.fm_method}, CFG)"
            axes[0].plot([r["nfe"] for r in pts], [r["fd_digits"] for r in pts], marker, label=label, ms=8)
            axes[1].plot([r["nfe"] for r in pts], [100 * r["class_accuracy"] for r in pts], marker, label=label, ms=8)
        for ax, ylab in zip(axes, ("FD-digits (lower is better)", "class accuracy % (higher is better)")):
            ax.set_xscale("log")
            ax.set_xlabel("network evaluations per image")
            ax.set_ylabel(ylab)
            ax.grid(alpha=0.3)
            ax.legend()
        axes[0].set_yscale("log")
        fig.suptitle(f"MNIST 32x32, {len(labels)} samples vs 500 held-out digits")
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)


if __name__ == "__main__":
    main()
