"""`pmf sample`: generate images with a trained model (the bundled MNIST pMF by default).

    pmf sample --outdir samples/                      # 8 per class, one step, bundled model
    pmf sample --model runs/mnist/model --classes 3,7 --num-per-class 16 --steps 2 --seed 1
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sample",
        help="generate images (one step by default) with a trained model",
        description="Generate class-conditional samples. Writes one PNG per image, samples.json "
        "(file, class label, class name per image) and grid.png into --outdir.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default=None,
                   help="model folder (config.json + model.safetensors) or an official pMF .pt file; "
                   "default: the bundled MNIST pMF model")
    p.add_argument("--model-config", default=None, metavar="JSON",
                   help="architecture (PMFConfig fields, a JSON file or inline JSON) of an official-format "
                   "checkpoint that is not a released size; such files are refused without it")
    p.add_argument("--outdir", default="samples", help="output folder (created)")
    p.add_argument("--classes", default=None,
                   help="comma-separated class indices or names (default: every class)")
    p.add_argument("--num-per-class", type=int, default=8, help="images per class")
    p.add_argument("--steps", type=int, default=None,
                   help="network evaluations (pMF jumps, or ODE steps for flow-matching models); "
                   "default: the model's own (1 for pMF)")
    p.add_argument("--method", choices=("euler", "heun"), default="heun",
                   help="ODE solver for flow-matching models (ignored for pMF)")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="guidance scale >= 1 (default: the model's recommended value)")
    p.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("T_MIN", "T_MAX"),
                   help="times in which guidance applies (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    p.add_argument("--batch-size", type=int, default=64, help="images per network call")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.set_defaults(func=run)
    return p


def _resolve_classes(spec: str | None, names: list[str]) -> list[int]:
    if spec is None:
        return list(range(len(names)))
    from core.class_names import resolve_class

    # Indices or names (case-insensitive, any synonym; ImageNet names for the official checkpoints).
    return [resolve_class(item.strip(), names) for item in spec.split(",")]


def _model_config(spec: str | None) -> dict:
    """{"config": PMFConfig} from --model-config (a JSON file or inline JSON), or {}."""
    if spec is None:
        return {}
    from core.model import PMFConfig

    try:
        text = spec if spec.lstrip().startswith("{") else Path(spec).read_text()  # inline JSON, or a file
        fields = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"--model-config must be a JSON file or inline JSON of PMFConfig fields: {err}") from err
    if not isinstance(fields, dict):
        raise ValueError(f"--model-config must hold a JSON object of PMFConfig fields, got {type(fields).__name__}")
    return {"config": PMFConfig.from_dict(fields)}


def run(args: argparse.Namespace) -> int:
    from core.checkpoint import bundled_model_dir
    from core.pretrained import from_pretrained  # model folders and official .pt files
    from core.images import make_grid, save_png, to_model_range, to_uint8
    from pmf_edit.generation import sample

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model_path = Path(args.model) if args.model else bundled_model_dir("mnist")
    net, meta = from_pretrained(model_path, device=device, precision=getattr(args, "precision", None) or "auto",
                                **_model_config(args.model_config))
    names = meta.get("class_names") or [str(i) for i in range(net.cfg.num_classes)]
    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size),
                        ("--num-per-class", args.num_per_class)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    classes = _resolve_classes(args.classes, names)
    labels = [c for c in classes for _ in range(args.num_per_class)]

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = sample(net, labels, num_steps=args.steps, guidance_scale=args.guidance_scale,  # the model's own where None
                 guidance_interval=args.guidance_interval, method=args.method, batch_size=args.batch_size,
                 generator=torch.Generator().manual_seed(args.seed))
    elapsed = time.perf_counter() - t0
    images_t = to_model_range(res.images.cpu())  # the grid and file helpers take the model range
    records = []
    for i, (arr, label) in enumerate(zip(to_uint8(images_t), labels)):
        name = f"{i:05d}_class{label}.png"
        save_png(out / name, arr)
        records.append({"file": name, "label": label, "class_name": names[label]})
    save_png(out / "grid.png", make_grid(images_t, nrow=args.num_per_class))
    summary = {
        "model": str(model_path), "objective": net.objective, "num_steps": res.num_steps, "nfe_per_image": res.nfe,
        "guidance_scale": res.guidance_scale, "guidance_interval": list(res.guidance_interval), "seed": args.seed,
        "precision": meta["precision"], "images": records, "seconds": round(elapsed, 3),
    }
    (out / "samples.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {len(records)} images ({res.nfe} network evaluation(s) each, {meta['precision']} weights, "
          f"{elapsed:.2f} s) to {out}/")
    return 0
