"""The inverse-head edit with the noise part of its latent scaled by alpha (issue 9 probe).

The inverse head's latent z_t = (1 - t) x + t s e_hat carries the posterior mean e_hat = E[e | x], whose
RMS is about 0.16 instead of 1 (docs/editing.md). Does a deterministic rescale e_hat -> alpha e_hat (or to
unit RMS per image) keep more of the source at equal target accuracy? One JSON line per setting: SSIM to
the source where the strength curve crosses 90% target accuracy (``bench_bidirectional.edit_curve``),
class swap y -> y + 1 on MNIST digits, the bundled model, ``edit``'s defaults otherwise.

    OMP_NUM_THREADS=1 python benchmarks/probe_latent_scale.py train 100 '[0, 0.5, 0.75, 1, 1.5, 2, 3, "unit"]' '[1]'
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
from pmf_edit import velocity as vf  # noqa: E402

torch.set_num_threads(1)
split, n = sys.argv[1], int(sys.argv[2])
alphas, steps = json.loads(sys.argv[3]), json.loads(sys.argv[4])
net, _ = editing.from_pretrained(bundled_model_dir("mnist"))
x01, y = digits(split, n)
tgt, x = (y + 1) % 10, x01 * 2 - 1  # class swap y -> y + 1; the source in [-1, 1]
s = net.cfg.noise_scale
invert_backward = vf.invert_backward
setting = {"alpha": 1}


def scaled(net_, xm, t_end=1.0, *args, **kwargs):
    inv = invert_backward(net_, xm, t_end, *args, **kwargs)
    alpha = setting["alpha"]
    e = (inv.latents - (1 - t_end) * xm) / (t_end * s)  # the noise part, (B, C, H, W)
    e = e / e.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() if alpha == "unit" else e * alpha
    inv.latents = (1 - t_end) * xm + t_end * s * e
    return inv


vf.invert_backward = scaled  # edit() looks the function up in the module at call time
strengths = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
for alpha, K in itertools.product(alphas, steps):
    setting["alpha"] = alpha
    res = edit_curve(lambda st: editing.edit(net, x01, labels=tgt, source_labels=y, strength=st, method="backward",
                                             num_refinements=0, num_steps=K), strengths, x, tgt, f"a{alpha}", echo=False)
    a = res["at_90"]
    print(json.dumps({"alpha": alpha, "K": K, "at90_ssim": None if a is None else round(a["ssim"], 4),
                      "at90_strength": None if a is None else round(a["strength"], 3),
                      "curve": [[c["strength"], c["target_accuracy"], c["ssim"]] for c in res["curve"]]}), flush=True)
