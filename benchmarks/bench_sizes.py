"""Cost of the size policy: CPU seconds per call of every image API at a photo size, per size_mode.

Runs each task once per size mode (after one burn-in call at the model's size) on one H x W image
with the bundled 32x32 models: the MNIST pMF for the editing tasks (gray), the photos pMF for style
transfer (RGB). Reports process CPU time (the machine is shared; wall time includes waiting) and the
network-size inputs per image (tiles).

    OMP_NUM_THREADS=1 python benchmarks/bench_sizes.py --size 512 --out benchmarks/results/sizes_512.json

Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.report import write_report
from core.checkpoint import bundled_model_dir
from pmf_edit.images import SIZE_MODES


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    ap.add_argument("--modes", default=",".join(SIZE_MODES))
    ap.add_argument("--tasks", default="invert,reconstruct,edit,sdedit,flow_edit,inpaint,style_transfer")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import pmf_edit

    H, W = args.size
    gray, _ = pmf_edit.from_pretrained(bundled_model_dir("mnist"))
    rgb, meta = pmf_edit.from_pretrained(bundled_model_dir("photos"))
    g = torch.Generator().manual_seed(0)
    x1 = torch.rand(1, 1, H, W, generator=g)
    x3 = torch.rand(1, 3, H, W, generator=g)
    style = torch.rand(1, 3, 64, 64, generator=g)
    mask = torch.zeros(1, 1, H, W, dtype=torch.bool)
    mask[..., H // 3: 2 * H // 3, W // 3: 2 * W // 3] = True
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    calls = {
        "invert": lambda x, m: pmf_edit.invert(gray, x, labels=1, size_mode=m),
        "reconstruct": lambda x, m: pmf_edit.reconstruct(gray, x, labels=1, size_mode=m),
        "edit": lambda x, m: pmf_edit.edit(gray, x, labels=2, source_labels=1, generator=gen(), size_mode=m),
        "sdedit": lambda x, m: pmf_edit.sdedit(gray, x, labels=2, generator=gen(), size_mode=m),
        "flow_edit": lambda x, m: pmf_edit.flow_edit(gray, x, labels=2, source_labels=1, generator=gen(), size_mode=m),
        "inpaint": lambda x, m: pmf_edit.inpaint(gray, x, mask if x.shape[-1] == W else mask[..., :32, :32],
                                                 labels=1, generator=gen(), size_mode=m),
        "style_transfer": lambda x, m: pmf_edit.style_transfer(rgb, x, style, size_mode=m),
    }
    rows = []
    for task in args.tasks.split(","):
        fn = calls[task]
        x = x3 if task == "style_transfer" else x1
        fn(x[..., :32, :32], "fit")  # burn-in at the model's size
        for mode in args.modes.split(","):
            c0, t0 = time.process_time(), time.perf_counter()
            out = fn(x, mode)
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            rows.append({"task": task, "size_mode": mode, "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                         "nfe": out.nfe, "tiles": out.num_tiles})
            print(json.dumps(rows[-1]), flush=True)
    report = {"benchmark": "sizes", "size": [H, W], "threads": args.threads, "rows": rows}
    return write_report(report, args.out)


if __name__ == "__main__":
    main()
