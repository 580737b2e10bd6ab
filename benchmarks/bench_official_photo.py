"""CPU cost of the photo commands with an official-format pMF checkpoint (default pMF-B/16 at 256x256).

Writes a randomly initialised network of the preset in the official file format (``net.`` + official
key names, as the released ``pMF-B-16.pt``) and a 256x256 photo (skimage ``astronaut``) to a
temporary folder, then runs each command once through ``apps.cli.main`` in this process and reports,
per command, the CPU seconds of the whole call (loading the checkpoint included), the network
evaluations (NFE) it reported and CPU seconds per NFE (load included), and the CPU seconds of the
load alone (``from_pretrained``, measured once). Random weights cost the same as trained ones; the outputs are noise.
With several ``--precisions`` (``pmf --precision``; "auto" is the default) each command runs once per
precision per round, interleaved, and the median per-round ratio of CPU seconds per NFE to the first
precision is reported.

    OMP_NUM_THREADS=1 python benchmarks/bench_official_photo.py --out /tmp/official_photo.json
    OMP_NUM_THREADS=2 python benchmarks/bench_official_photo.py --precisions fp32,auto --rounds 3

One JSON object is printed (and written to --out). CPU seconds are ``time.process_time`` deltas (all
threads of this process); run it on a quiet machine, or compare numbers from the same run only.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from apps.cli import main  # noqa: E402
from core.model import build_model  # noqa: E402
from core.official import to_official_state_dict  # noqa: E402
from core.pretrained import from_pretrained  # noqa: E402


def _timed(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def main_bench() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="pMF-B/16", help="architecture (an official size: its file format and defaults)")
    p.add_argument("--commands", default="edit-invert,edit-sdedit,edit-flow,inpaint,stylize,invert",
                   help="comma-separated subset of the commands below")
    p.add_argument("--precisions", default="auto", help="comma list of `pmf --precision` values, run side by side")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds of every command and precision")
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args()
    precisions = args.precisions.split(",")

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        net = build_model(args.preset, with_v_head=False)
        S = net.cfg.image_size
        ckpt = os.path.join(d, "model.pt")
        torch.save({"net." + k: v for k, v in to_official_state_dict(net.state_dict()).items()}, ckpt)
        del net
        from skimage import data
        from skimage.transform import resize

        photo = os.path.join(d, "photo.png")
        iio.imwrite(photo, (resize(data.astronaut(), (S, S), anti_aliasing=True) * 255).round().astype(np.uint8))
        mask = os.path.join(d, "mask.png")
        m = np.zeros((S, S), np.uint8)
        m[S // 3 : 2 * S // 3, S // 4 : 3 * S // 4] = 255
        iio.imwrite(mask, m)
        out = os.path.join(d, "out.png")
        argv = {
            "edit-invert": ["edit", photo, "--target", "golden retriever", "--method", "invert", "--out", out],
            "edit-sdedit": ["edit", photo, "--target", "golden retriever", "--method", "sdedit", "--out", out],
            "edit-flow": ["edit", photo, "--target", "golden retriever", "--method", "flow", "--out", out],
            "inpaint": ["inpaint", photo, "--mask", mask, "--label", "tabby", "--out", out],
            "stylize": ["stylize", photo, "class:goldfish", "-o", out],
            "invert": ["invert", photo, "--out", os.path.join(d, "z.npy")],
        }
        (_, meta), load_cpu, load_wall = _timed(lambda: from_pretrained(ckpt))
        runs: dict = {name: {p: [] for p in precisions} for name in args.commands.split(",")}
        for _ in range(args.rounds):
            for name in runs:
                for precision in precisions:
                    buf = io.StringIO()
                    with contextlib.redirect_stdout(buf), warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        rc, cpu, wall = _timed(lambda: main(["--precision", precision, *argv[name], "--model", ckpt]))
                    if rc != 0:
                        raise SystemExit(f"{name} ({precision}) failed with exit code {rc}")
                    rep = json.loads(buf.getvalue().strip().splitlines()[-1])
                    runs[name][precision].append({
                        "nfe": int(rep["nfe"]), "cpu_s": cpu, "wall_s": wall, "weights": rep.get("precision"),
                        "warnings": sorted({str(w.message).split(":")[0] for w in caught})})
        results: dict = {}
        for name, by_precision in runs.items():
            results[name] = {}
            for precision, rs in by_precision.items():
                cpu = statistics.median(r["cpu_s"] for r in rs)
                results[name][precision] = {
                    # NFE can differ between runs where invert stops a diverging iteration (random weights).
                    "nfe": sorted({r["nfe"] for r in rs}), "weights": rs[0]["weights"], "cpu_s": round(cpu, 2),
                    "wall_s": round(statistics.median(r["wall_s"] for r in rs), 2),
                    # The load inside the call is not separable; load_cpu_s below is a separate measurement.
                    "cpu_s_per_nfe_incl_load": round(statistics.median(r["cpu_s"] / r["nfe"] for r in rs), 3),
                    "warnings": rs[0]["warnings"],
                }
                if precision != precisions[0]:
                    base = by_precision[precisions[0]]
                    results[name][precision]["speedup_per_nfe_vs_" + precisions[0]] = round(statistics.median(
                        (b["cpu_s"] / b["nfe"]) / (r["cpu_s"] / r["nfe"]) for r, b in zip(rs, base)), 3)
            if len(precisions) == 1:
                results[name] = results[name][precisions[0]]
    summary = {
        "preset": args.preset, "image_size": S, "batch": 1, "threads": torch.get_num_threads(),
        "rounds": args.rounds, "auto_loads": meta["precision"],
        "load_cpu_s": round(load_cpu, 2), "load_wall_s": round(load_wall, 2),
        "loadavg": [round(x, 2) for x in os.getloadavg()], "commands": results,
    }
    text = json.dumps(summary)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main_bench()
