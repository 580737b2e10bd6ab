"""The inverse-head edit's target guidance g, source guidance sg, regeneration jumps K and (optionally)
the start t_min of the target guidance interval [t_min, 1], swept on MNIST digits: SSIM to the source where
the strength curve crosses 90% target accuracy (one JSON line per setting; the curves by
``bench_bidirectional.edit_curve``).

    OMP_NUM_THREADS=1 python benchmarks/edit_steps_sweep.py train 100 "[3,4,5]" "[1,2]" "[1,2]"
    OMP_NUM_THREADS=1 python benchmarks/edit_steps_sweep.py test 500 "[4]" "[1]" "[1,2,4]"
    OMP_NUM_THREADS=1 python benchmarks/edit_steps_sweep.py train 100 "[4,6]" "[1]" "[1,4]" "[0,0.2,0.4]"
"""
import itertools
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_bidirectional import digits, edit_curve  # noqa: E402
from core.checkpoint import bundled_model_dir  # noqa: E402
from pmf_edit import editing  # noqa: E402

torch.set_num_threads(1)
split, n = sys.argv[1], int(sys.argv[2])
net, cfg = editing.from_pretrained(bundled_model_dir("mnist"))
t_max = float(cfg["sampling"].get("guidance_interval", (0, 1))[1])
t_mins = json.loads(sys.argv[6]) if len(sys.argv) > 6 else [float(cfg["sampling"].get("guidance_interval", (0, 1))[0])]
x01, y = digits(split, n)
tgt, x = (y + 1) % 10, x01 * 2 - 1  # class swap y -> y + 1; the source in [-1, 1]
strengths = [0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
for g, sg, K, t_min in itertools.product(*(json.loads(a) for a in sys.argv[3:6]), t_mins):
    interval = (float(t_min), t_max)
    res = edit_curve(lambda s: editing.edit(net, x01, labels=tgt, source_labels=y, strength=s, guidance_scale=g,
                                            guidance_interval=interval, source_guidance_scale=sg, method="backward",
                                            num_refinements=0, num_steps=K), strengths, x, tgt,
                     f"g{g}_sg{sg}_K{K}_tmin{t_min}", echo=False)
    a = res["at_90"]
    print(json.dumps({"g": g, "sg": sg, "K": K, "t_min": t_min, "at90_ssim": None if a is None else round(a["ssim"], 4),
                      "at90_strength": None if a is None else round(a["strength"], 3),
                      "nfe": res["curve"][0]["nfe"]}), flush=True)
