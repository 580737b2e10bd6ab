"""Choose the editors' change gate (``pmf_edit.editing.ChangeGate``) on MNIST class swaps y -> y + 1:
for each editor and gate setting, the SSIM to the source where the strength curve crosses 90% target
accuracy (``bench_bidirectional.edit_curve``), at each editor's other defaults. One JSON line per setting.

Each editor runs once per strength with no gate; every gate is then applied to those same outputs
(``gate_change`` is what the editors apply to their plain output, tested), so the sweep costs one
curve per editor.

    OMP_NUM_THREADS=1 python benchmarks/edit_gate_sweep.py --split train --num-images 100 \\
        --thresholds 0.3,0.4,0.5,0.6,0.7,0.8 --sigmas 1.5,2,3 > benchmarks/results/edit_gate_sweep_train.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_bidirectional import digits, edit_curve  # noqa: E402
from core.checkpoint import bundled_model_dir  # noqa: E402
from pmf_edit import editing  # noqa: E402
from pmf_edit.editing import ChangeGate, EditResult, gate_change  # noqa: E402

STRENGTHS = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--num-images", type=int, default=100)
    p.add_argument("--editors", default="edit,flow_edit,sdedit")
    p.add_argument("--thresholds", default="0.4,0.5,0.6,0.7,0.8")
    p.add_argument("--sigmas", default="1.5,2,3", help="Gaussian sigmas in pixels of the 32-px network input")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    net, _ = editing.from_pretrained(bundled_model_dir("mnist"))
    x01, y = digits(args.split, args.num_images)
    tgt, x = (y + 1) % 10, x01 * 2 - 1
    side = net.cfg.image_size
    gen = lambda: torch.Generator().manual_seed(args.seed)  # noqa: E731
    editors = {
        # 1 regeneration jump: the gate was chosen first, then the jumps with it (edit_steps_sweep.py)
        "edit": lambda s: editing.edit(net, x01, labels=tgt, source_labels=y, strength=s, num_steps=1,
                                       change_gate=None),
        "flow_edit": lambda s: editing.flow_edit(net, x01, labels=tgt, source_labels=y, strength=s,
                                                 generator=gen(), change_gate=None),
        "sdedit": lambda s: editing.sdedit(net, x01, labels=tgt, strength=s, generator=gen(), change_gate=None),
    }
    gates = [None] + [ChangeGate(threshold=float(t), sigma=float(s) / side)
                      for s in args.sigmas.split(",") for t in args.thresholds.split(",")]
    for name in args.editors.split(","):
        plain = {s: editors[name](s) for s in STRENGTHS}
        for gate in gates:
            res = edit_curve(lambda s: EditResult(gate_change(plain[s].images, x01, gate), plain[s].nfe),
                             STRENGTHS, x, tgt, name, echo=False)
            a = res["at_90"]
            print(json.dumps({"editor": name, "split": args.split, "n": args.num_images,
                              "threshold": None if gate is None else gate.threshold,
                              "sigma_px": None if gate is None else round(gate.sigma * side, 3),
                              "at90_ssim": None if a is None else round(a["ssim"], 4),
                              "at90_strength": None if a is None else round(a["strength"], 3),
                              "nfe": res["curve"][0]["nfe"]}), flush=True)


if __name__ == "__main__":
    main()
