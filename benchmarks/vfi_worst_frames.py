"""Side-by-side pictures of the frames where flow interpolation does worst (for docs/interpolation.md).

For a clip, every odd frame is rebuilt from its two neighbours by each method (as `interpolate_video`
does: neighbouring pairs bend the motion, `bench_vfi.rebuild`); the `--count` frames with
the lowest PSNR of the first method are written as one PNG each: ground truth | each method, with a
crop around the worst 96-px window enlarged 3x underneath (nearest neighbour, so no smoothing hides a
tear). Prints one JSON object with the per-frame PSNR of every method on those frames. `--frames 53,13`
draws those rebuilt (odd) frames instead of the worst ones, with the window where the first two methods
differ most (where one method changes the other's picture).

    OMP_NUM_THREADS=1 python benchmarks/vfi_worst_frames.py --clip bikes.mp4 \
        --methods flow,flow-gen,plain-warp --out docs/images/vfi_worst
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vfi import clip_dir, cut_free_pairs, load_clip, rebuild, score  # noqa: E402

from pmf_edit.video.interpolate import CONFIGS  # noqa: E402

WIN = 96  # side of the enlarged window


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def worst_window(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """(top, left) of the WIN x WIN window where ``pred`` (H, W, 3) is furthest from ``gt`` (mean |error|)."""
    err = cv2.blur(np.abs(pred.astype(np.float32) - gt).mean(-1), (WIN, WIN))  # window means at centres
    H, W = gt.shape[:2]
    cy, cx = np.unravel_index(np.argmax(err[WIN // 2:H - WIN // 2, WIN // 2:W - WIN // 2]), (H - WIN, W - WIN))
    return int(cy), int(cx)


def zoom_strip(images: list[np.ndarray], cy: int, cx: int) -> np.ndarray:
    """The window at (cy, cx) of each image, enlarged 3x (nearest: no smoothing hides a tear), side by side."""
    return np.concatenate([cv2.resize(x[cy:cy + WIN, cx:cx + WIN], None, fx=3, fy=3,
                                      interpolation=cv2.INTER_NEAREST) for x in images], axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", default="bikes.mp4")
    p.add_argument("--methods", default="flow,flow-gen,plain-warp")
    p.add_argument("--count", type=int, default=2)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--frames", default=None, help="comma list of odd frame numbers to draw instead of the worst")
    p.add_argument("--out", default="docs/images/vfi_worst", help="PNG prefix")
    args = p.parse_args()
    cv2.setNumThreads(1)
    frames = load_clip(os.path.join(clip_dir(), args.clip), args.max_frames)
    names = args.methods.split(",")
    idx = list(range(0, len(frames) - 2, 2))
    linked = cut_free_pairs(frames, idx)
    every = {names[0]: dict(rebuild(frames, CONFIGS[names[0]], idx, linked))}
    base = [score(every[names[0]][k], frames[k + 1])[0] for k in idx]
    if args.frames:
        worst = [int(f) - 1 for f in args.frames.split(",")]
        if any(k not in every[names[0]] for k in worst):
            raise SystemExit(f"--frames takes rebuilt (odd) frame numbers below {len(frames) - 1}, got {args.frames}")
    else:
        worst = [idx[i] for i in np.argsort(base)[: args.count]]
    for n in names[1:]:
        every[n] = {k: pred for k, pred in rebuild(frames, CONFIGS[n], idx, linked) if k in worst}
    report = {}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    for k in worst:
        gt = frames[k + 1]
        preds = {n: every[n][k] for n in names}
        cy, cx = worst_window(preds[names[0]], preds[names[1]] if args.frames and len(names) > 1 else gt)
        rows = [np.concatenate([label(gt, "truth")] + [label(preds[n], f"{n} {score(preds[n], gt)[0]:.2f} dB")
                                                       for n in names], axis=1)]
        strip = zoom_strip([gt] + [preds[n] for n in names], cy, cx)
        pad = np.zeros((strip.shape[0], rows[0].shape[1] - strip.shape[1], 3), np.uint8) if \
            strip.shape[1] < rows[0].shape[1] else None
        rows.append(strip if pad is None else np.concatenate([strip, pad], axis=1))
        width = max(r.shape[1] for r in rows)
        rows = [r if r.shape[1] == width else np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
        path = f"{args.out}_{os.path.splitext(args.clip)[0]}_{k + 1:04d}.png"
        cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
        report[path] = {n: score(preds[n], gt)[0] for n in names} | {"window_yx": [int(cy), int(cx)]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
