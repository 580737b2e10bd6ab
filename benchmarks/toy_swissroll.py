"""Toy of the pMF paper's Fig. 2 (PMF_SPEC.md 8.4): x-prediction vs u-prediction when a 2-D Swiss
roll is embedded in D dimensions.

Data: s = a 2-D Swiss roll (the (x, z) plane of sklearn's roll, written out parametrically and scaled
to about [-1, 1]); x = P s with P a fixed random (D, 2) column-orthonormal matrix. A 7-layer ReLU MLP
(256 wide) is trained with the project's own pMF loss, ``core.meanflow.pmf_loss``, unchanged: a D-dim
point is a (B, D, 1, 1) "image", unconditional (cfg_max = 0 so omega = 1, no label drop). Two heads
(u and the auxiliary v), each either

    x-prediction:  the head outputs a point x_hat,  u = (z - x_hat) / clip(t, 0.05, 1)   (our default)
    u-prediction:  the head outputs the velocity directly.

One-step samples x = z_1 - u(z_1, r=0, t=1), z_1 ~ N(0, I_D), are compared with the data in the roll's
plane: project with P^T to 2-D, then (a) the mean distance from each sample to its nearest point of a
dense data set, (b) a symmetric Chamfer distance and a sliced Wasserstein-1 distance to an independent
data sample of the same size, (c) the off-plane norm ||(I - P P^T) x|| (zero for a perfect sample).
A data-vs-data row gives the floor of (a)/(b) for that sample size.

    OMP_NUM_THREADS=1 python benchmarks/toy_swissroll.py --dims 2 512 \
        --out benchmarks/results/toy_swissroll.json --plot benchmarks/results/toy_swissroll.png

Prints one JSON line: {"config": ..., "cells": [{"dim", "prediction", "loss_u", ..., "off_plane"}],
"floor": {...}, "wall_s": ...}.

Unlike the ImageNet network (which never sees t, PMF_SPEC 1.2), the toy MLP is given t as well as
h = t - r (``--cond th``, default): in 2-D the noise level cannot be read off z. ``--cond h`` drops t.

Time features must be smooth in t. The MeanFlow target contains (t - r) du/dt, a JVP along
(v, 1, 0), so every sin/cos(w t) feature contributes w times its weight to du/dt. The first
version fed sin/cos(2^k pi s) for k < 8 (w up to 128 pi ~ 400): after 1500 steps the correction
(t - r) du/dt had an rms of ~11 against ~0.8 for u itself, L_u stayed 15-25x L_v (27 vs 1.4),
and with the plain-MSE loss (adaptive_p = 0) L_u went to ~760; the one-step samples collapsed
onto the inner arcs at any training length. The default is now the raw scalars t and h
(``--freqs 0``), which gives L_u ~= L_v.

Two loss settings differ from the image recipe (both are MeanFlowConfig fields; core is unchanged):
  * (t, r) uniform on 0 <= r <= t <= 1 (``--uniform-tr 1``). The image default P_mean = 0.8
    almost never draws the one-step pair (t, r) ~ (1, 0) and leaves t < 0.2 untrained; even the
    long recipe (P_mean = 0, 10% uniform pairs) draws h = t - r > 0.9 for ~0.05% of the rows.
  * plain per-sample squared error (``--adaptive-p 0``) instead of w(L) = L / sg(L + 0.01).
    With p = 1 each sample's gradient is scaled by 1/(L + eps), i.e. the fit minimises
    E log(L + eps): a robust, mode-seeking estimate instead of the conditional mean. In 2-D,
    L varies by orders of magnitude between samples and the one-step samples collapse onto the
    inner arcs (3000 steps, D = 2, x-pred, uniform (t, r): 0% of samples beyond radius 0.9 with
    p = 1 vs 25% with p = 0, data 36%; with p = 1 and the long-recipe sampler, 0.7% after 10k
    steps). On images L is a sum over ~10^5 pixels and varies far less between samples at a
    given t, so the weighting should bend the estimate much less there (not measured here).

``outer_frac`` is the share of projected samples with radius > 0.9 (the outer turn; ~0.36 for
data): nn_dist alone rewards samples that sit on only part of the roll.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from core.meanflow import MeanFlowConfig, pmf_loss  # noqa: E402


# ------------------------------------------------------------------------------------------------
# Data


def swiss_roll_2d(n: int, generator: torch.Generator) -> torch.Tensor:
    """n points of the 2-D Swiss roll, (n, 2), roughly in [-1, 1]^2.

    Same curve as sklearn's ``make_swiss_roll`` (its x and z coordinates, noise 0):
    a = 1.5 pi (1 + 2 u), s = (a cos a, a sin a), u ~ U(0, 1); divided by 12 (max |a| = 4.5 pi ~ 14.1,
    so the extreme outer arc reaches ~1.18; the bulk is within [-1, 1]).
    """
    a = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    return (torch.stack([a * torch.cos(a), a * torch.sin(a)], 1) / 12.0).float()


def random_projection(dim: int, generator: torch.Generator) -> torch.Tensor:
    """A fixed random column-orthonormal matrix P, (dim, 2): P^T P = I_2."""
    q, _ = torch.linalg.qr(torch.randn(dim, 2, generator=generator, dtype=torch.float64))
    return q.float()


# ------------------------------------------------------------------------------------------------
# Network with the interface pmf_loss expects


@dataclass(frozen=True)
class ToyConfig:
    """What ``pmf_loss`` reads from ``net.cfg``, plus the MLP's own settings."""

    dim: int = 2  # D, the ambient dimension
    prediction: Literal["x", "u"] = "x"  # what each head outputs
    width: int = 256  # hidden width
    layers: int = 7  # linear layers in all: input + (layers - 2) hidden + output head
    cond: Literal["th", "h"] = "th"  # time inputs embedded: (t, h = t - r) or h only
    freqs: int = 0  # Fourier features per time input: sin/cos(2^k pi s), k < freqs (0: raw t, h;
    # high frequencies make the JVP du/dt, and so the MeanFlow target, explode: see the docstring)
    noise_scale: float = 1.0  # s in z_t = (1 - t) x + t s e
    t_clip: float = 0.05  # u = (z - x_hat) / clip(t, t_clip, 1)


class ToyMeanFlow(nn.Module):
    """ReLU MLP on [z, time features] with a u head and an auxiliary v head (PixelMeanFlow's call)."""

    null_class = 0  # unconditional: labels are ignored

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        n_time = 2 if cfg.cond == "th" else 1
        d_in = cfg.dim + n_time * (1 + 2 * cfg.freqs)
        trunk: list[nn.Module] = [nn.Linear(d_in, cfg.width), nn.ReLU()]
        for _ in range(cfg.layers - 2):
            trunk += [nn.Linear(cfg.width, cfg.width), nn.ReLU()]
        self.trunk = nn.Sequential(*trunk)
        self.head_u = nn.Linear(cfg.width, cfg.dim)  # the trunk + one head = `layers` linear layers
        self.head_v = nn.Linear(cfg.width, cfg.dim)
        self.register_buffer("freq", math.pi * 2.0 ** torch.arange(cfg.freqs), persistent=False)

    def _time_features(self, s: torch.Tensor) -> torch.Tensor:
        a = s[:, None] * self.freq  # (B, freqs)
        return torch.cat([s[:, None], torch.sin(a), torch.cos(a)], 1)  # (B, 1 + 2 freqs)

    def forward(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        r: torch.Tensor,
        y: torch.Tensor | None = None,
        omega: torch.Tensor | None = None,
        t_min: torch.Tensor | None = None,
        t_max: torch.Tensor | None = None,
        heads: str = "u",
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """u(z, r, t) and/or v(z, t) as (B, D, 1, 1); z is (B, D, 1, 1), t and r (B,).

        y, omega, t_min, t_max are accepted for pmf_loss's call and ignored (unconditional, omega = 1).
        """
        B = z.shape[0]
        feats = [z.reshape(B, -1)]  # (B, D)
        if self.cfg.cond == "th":
            feats.append(self._time_features(t))
        feats.append(self._time_features(t - r))
        hidden = self.trunk(torch.cat(feats, 1))  # (B, width)
        tc = t.clamp(self.cfg.t_clip, 1.0).view(B, 1, 1, 1)
        out = []
        for name, head in (("u", self.head_u), ("v", self.head_v)):
            if name in heads:
                o = head(hidden).view_as(z)
                out.append((z - o) / tc if self.cfg.prediction == "x" else o)
        return tuple(out) if heads == "uv" else out[0]


@torch.no_grad()
def sample_one_step(net: ToyMeanFlow, n: int, generator: torch.Generator) -> torch.Tensor:
    """x = z_1 - u(z_1, r=0, t=1), z_1 ~ N(0, s^2 I); returns (n, D)."""
    D = net.cfg.dim
    z = net.cfg.noise_scale * torch.randn(n, D, 1, 1, generator=generator)
    ones, zeros = torch.ones(n), torch.zeros(n)
    return (z - net(z, ones, zeros, heads="u")).view(n, D)


# ------------------------------------------------------------------------------------------------
# Metrics


def nearest_distance(a: torch.Tensor, b: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """For each row of a (n, 2), the distance to its nearest row of b (m, 2); returns (n,)."""
    return torch.cat([torch.cdist(a[i:i + chunk].double(), b.double()).min(1).values
                      for i in range(0, len(a), chunk)]).float()


def sliced_w1(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator, n_dir: int = 512) -> float:
    """Sliced Wasserstein-1 between equal-size point sets a, b (n, 2): mean over random directions."""
    theta = 2 * math.pi * torch.rand(n_dir, generator=generator, dtype=torch.float64)
    dirs = torch.stack([torch.cos(theta), torch.sin(theta)], 0)  # (2, n_dir)
    pa, _ = (a.double() @ dirs).sort(0)
    pb, _ = (b.double() @ dirs).sort(0)
    return (pa - pb).abs().mean().item()


OUTER_RADIUS = 0.9  # roll radius a / 12 is uniform on [0.39, 1.18]: 36% of the data lies beyond 0.9


def set_metrics(s2: torch.Tensor, dense: torch.Tensor, ref: torch.Tensor,
                generator: torch.Generator) -> dict[str, float]:
    """Distances of 2-D points s2 (n, 2) to the roll: dense (m, 2) data, ref (n, 2) data sample."""
    nn_s = nearest_distance(s2, dense)
    outer = (s2.norm(dim=1) > OUTER_RADIUS).float().mean().item()
    chamfer = 0.5 * (nearest_distance(s2, ref).mean() + nearest_distance(ref, s2).mean()).item()
    return {
        "nn_dist": nn_s.mean().item(),  # (a) sample -> nearest data point (dense set)
        "nn_dist_median": nn_s.median().item(),
        "chamfer": chamfer,  # (b) symmetric, vs an independent sample of the same size
        "sliced_w1": sliced_w1(s2, ref, generator),  # (b)
        "outer_frac": outer,  # share on the outer turn (data ~0.36): low = collapse onto inner arcs
    }


# ------------------------------------------------------------------------------------------------
# One (D, prediction) cell


def run_cell(dim: int, prediction: str, steps: int, batch_size: int, lr: float, seed: int,
             n_eval: int, cond: str = "th", width: int = 256, layers: int = 7,
             P_mean: float = 0.0, uniform_tr: float = 1.0, freqs: int = 0,
             adaptive_p: float = 0.0) -> dict:
    """Train one toy model and evaluate its one-step samples. Returns metrics and 2-D samples."""
    g_data = torch.Generator().manual_seed(seed)  # projection + training data
    P = random_projection(dim, g_data)  # (D, 2), the same for both predictions at a given seed
    torch.manual_seed(seed)  # network init (same for x and u: only the head semantics differ)
    net = ToyMeanFlow(ToyConfig(dim=dim, prediction=prediction, width=width, layers=layers, cond=cond,
                                freqs=freqs))
    # Unconditional (omega = 1). With the image default P_mean = 0.8 both t and r sit near 0.7, so
    # the one-step pair (t, r) = (1, 0) is almost never trained; uniform (t, r) pairs (the default
    # here, uniform_tr = 1) cover it. adaptive_p = 0: plain squared error (see the docstring).
    mf_cfg = MeanFlowConfig(cfg_max=0.0, label_drop=0.0, P_mean=P_mean, uniform_tr_prob=uniform_tr,
                            adaptive_p=adaptive_p)
    g_loss = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    hist: dict[str, list[float]] = {"loss": [], "loss_u": [], "loss_v": []}
    t0 = time.perf_counter()
    for _ in range(steps):
        x = (swiss_roll_2d(batch_size, g_data) @ P.T).view(batch_size, dim, 1, 1)  # (B, D, 1, 1)
        loss, stats = pmf_loss(net, x, None, mf_cfg, g_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        for k in hist:
            hist[k].append(stats[k])
    train_s = time.perf_counter() - t0
    tail = max(1, steps // 10)  # "final" loss = mean over the last 10% of steps

    g_eval = torch.Generator().manual_seed(10_000 + seed)
    net.eval()
    xs = sample_one_step(net, n_eval, g_eval)  # (n, D)
    s2 = xs @ P  # (n, 2), coordinates in the roll's plane
    off = (xs - s2 @ P.T).norm(dim=1)  # (n,) ||(I - P P^T) x||
    dense, ref = swiss_roll_2d(20_000, g_eval), swiss_roll_2d(n_eval, g_eval)
    out = {
        "dim": dim, "prediction": prediction,
        **{f"final_{k}": sum(v[-tail:]) / tail for k, v in hist.items()},
        **set_metrics(s2, dense, ref, g_eval),
        "off_plane": off.mean().item(),  # (c)
        "finite": bool(torch.isfinite(xs).all()),
        "train_s": round(train_s, 1),
    }
    return {"metrics": out, "samples_2d": s2, "loss_curve": hist["loss_u"]}


def floor_metrics(n_eval: int, seed: int) -> dict[str, float]:
    """(a)/(b) for a fresh data sample in place of the model's samples: the best reachable values."""
    g = torch.Generator().manual_seed(20_000 + seed)
    s2 = swiss_roll_2d(n_eval, g)
    return set_metrics(s2, swiss_roll_2d(20_000, g), swiss_roll_2d(n_eval, g), g)


def plot(results: list[dict], dims: list[int], preds: list[str], path: str, seed: int) -> None:
    """Grid: rows = D, columns = prediction; data (grey) vs projected one-step samples."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = swiss_roll_2d(3000, torch.Generator().manual_seed(30_000 + seed))
    fig, axes = plt.subplots(len(dims), len(preds), figsize=(3.2 * len(preds), 3.2 * len(dims)),
                             squeeze=False)
    by_key = {(r["metrics"]["dim"], r["metrics"]["prediction"]): r for r in results}
    for i, dim in enumerate(dims):
        for j, pred in enumerate(preds):
            ax, res = axes[i][j], by_key[(dim, pred)]
            m, s2 = res["metrics"], res["samples_2d"]
            ax.scatter(data[:, 0], data[:, 1], s=1, c="0.75", label="data")
            ax.scatter(s2[:, 0], s2[:, 1], s=1, c="tab:red" if pred == "u" else "tab:blue",
                       label="1-step samples")
            out = ((s2.abs() > 1.6).any(1)).float().mean().item()
            ax.set_xlim(-1.6, 1.6)
            ax.set_ylim(-1.6, 1.6)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"D={dim}, {pred}-pred", fontsize=10)
            ax.text(0.02, 0.02, f"nn {m['nn_dist']:.3f}  SW {m['sliced_w1']:.3f}  "
                    f"outer {m['outer_frac']:.2f}\n"
                    f"off-plane {m['off_plane']:.3f}" + (f"  ({out:.0%} off-axes)" if out else ""),
                    transform=ax.transAxes, fontsize=7, va="bottom")
    axes[0][0].legend(loc="upper left", fontsize=6, markerscale=4)
    fig.suptitle("pMF toy: 2-D Swiss roll in D dims, projected back with P^T", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 512])
    p.add_argument("--predictions", nargs="+", default=["x", "u"], choices=["x", "u"])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--P-mean", type=float, default=0.0, help="logit-normal mean of t and r")
    p.add_argument("--uniform-tr", type=float, default=1.0, help="share of uniform (t, r) pairs")
    p.add_argument("--adaptive-p", type=float, default=0.0,
                   help="adaptive loss weight L / sg((L + eps)^p); 0: plain squared error")
    p.add_argument("--freqs", type=int, default=0, help="Fourier features per time input (0: raw)")
    p.add_argument("--cond", default="th", choices=["th", "h"], help="time inputs: (t, t-r) or t-r only")
    p.add_argument("--n-eval", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="results JSON path")
    p.add_argument("--plot", default=None, help="PNG path")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    results = []
    for dim in args.dims:
        for pred in args.predictions:
            res = run_cell(dim, pred, args.steps, args.batch_size, args.lr, args.seed, args.n_eval,
                           cond=args.cond, P_mean=args.P_mean, uniform_tr=args.uniform_tr,
                           freqs=args.freqs, adaptive_p=args.adaptive_p)
            results.append(res)
            print(json.dumps(res["metrics"]), file=sys.stderr, flush=True)
    report = {
        "config": {**{k: v for k, v in vars(args).items() if k not in ("out", "plot")},
                   "model": asdict(ToyConfig()) | {"dim": None, "prediction": None, "cond": args.cond,
                                                   "freqs": args.freqs},
                   "loss": f"core.meanflow.pmf_loss, MeanFlowConfig(cfg_max=0, label_drop=0, "
                           f"P_mean={args.P_mean}, uniform_tr_prob={args.uniform_tr}, "
                           f"adaptive_p={args.adaptive_p})",
                   "optimizer": "Adam, cosine decay to 0"},
        "cells": [r["metrics"] for r in results],
        "floor": floor_metrics(args.n_eval, args.seed),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    if args.plot:
        plot(results, args.dims, args.predictions, args.plot, args.seed)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
