"""Frame interpolation by moving pixels along optical flow (optionally with a small learned correction).

Optical flow is a velocity field: a pixel at x in frame 0 sits at x + t * f01(x) at time t. The
default method:
1. bidirectional DIS flow f01, f10 on half-size copies of the frames (long side at most 512 px), with
   DIS's patch search running down to that size (preset FAST with finest_scale 0): the same flow
   detail as DIS MEDIUM on the full frame, and steps 1-2 work on a quarter of the pixels;
2. flow reversal: splat both flows to time t (softmax splatting, weighted by brightness constancy and
   forward-backward consistency, so the foreground wins where two pixels land on one spot) to get the
   flows F_t0, F_t1 from the unknown frame back to each input; holes fall back to t-scaled opposite flows
   (on a further half-size copy of the flows, up-sampled after: `splat_scale`);
3. backward-warp both full-size frames with bicubic `cv2.remap` (uint8 frames stay uint8);
4. blend with weights (1 - t) and t, a sample that falls outside the picture down-weighted so the
   other frame fills it (optionally also samples that forward-backward consistency marks as occluded:
   `visibility=True`, which measured no better than the splatting's own occlusion handling);
5. in a video, where the neighbouring source pairs' flows are known (`PairInterpolator.use_neighbours`,
   `interpolate_video` does it at no extra flow cost), the motion of each pixel is a parabola through
   its positions in four frames (-1, 0, 1, 2) instead of a straight line (quadratic video interpolation,
   Xu et al. 2019), the acceleration limited where it is unreliable (`accel_rel`, `accel_fb`);
6. optionally (`refine=True`, preset "flow-refine") a 22k-weight CNN corrects the blend
   (`pmf_edit.video.refine`), or (`select=True`, preset "flow-select") a 41k-weight CNN chooses the
   shares of the two warped frames from them and the flow stage's evidence (`PairInterpolator.evidence`,
   `pmf_edit.video.select`): it removes ghosts where one frame's content is occluded in the other.

Each frame pair's flows are computed once and reused for every requested t.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch

from core import checks
from pmf_edit.boundary import check_images
from pmf_edit.video.refine import refine
from pmf_edit.video.flow import (DIS_PRESETS, REMAP_MODES, backward_warp, dis_flows, fb_consistency, pixel_grid, splat,
                           to_gray_u8)


@dataclass(frozen=True)
class InterpolationConfig:
    """How `interpolate_frames` builds an in-between frame. Defaults chosen by `benchmarks/bench_vfi.py`."""

    method: Literal["flow", "linear"] = "flow"  # "linear" is a plain cross-fade (a baseline)
    preset: str = "fast"  # DIS preset: "ultrafast", "fast" or "medium" (patch stride, iterations)
    finest_scale: int | None = 0  # DIS finest pyramid level on the flow image (0 = its own size); None: the preset's
    # DIS variational refinement passes; None keeps the preset's (five for "fast"). Two measured as good as
    # five on the development frames of the larger clips (bikes 320x136 flow: +0.00 dB, BBB 512x288: +0.04)
    # for 9-13% less CPU per pair; on the reported frames -0.06 / -0.01 dB (docs/interpolation.md).
    variational_iters: int | None = 2
    # Small frames are dominated by fixed per-pair costs, and there one variational pass measured as good
    # as the preset's five (carphone 176x144 +0.00 dB, bikes at 176x76 +0.01, BBB at 256x144 +0.11) for
    # 1.2 ms less per pair; on bikes 640x272 (320x136 flow) it lost 0.09 dB, so larger frames keep more.
    # Eleventh session: none at all on those (development frames: carphone 34.83 vs 34.84 dB with one)
    # takes 11-16% off the CPU per rebuilt frame, 7% off a whole small-frame conversion (0.64x -> 0.71x
    # of minterpolate's fps; docs/interpolation.md, "small-frame speed"); on larger flow images no pass
    # costs more (bikes' 320x136 -0.03 dB, BBB's 512x288 -0.07), which is why the size rule stays.
    small_flow_pixels: int = 16384  # flow images of at most this many pixels (h * w) use small_variational_iters
    small_variational_iters: int | None = 0  # variational passes on those; None: as variational_iters
    flow_scale: float = 0.5  # flow (and splatting) run on frames scaled by this; only the final warp is full size
    max_flow_side: int = 512  # ... and on at most this many pixels along the long side, so 4K stays cheap
    reverse_flow: bool = True  # splat flows to time t (else approximate F_t0 by t * f10, F_t1 by (1-t) * f01)
    splat_scale: float = 0.5  # flow reversal (splatting) at this fraction of the flow resolution, then up-sampled
    visibility: bool = False  # also down-weight samples marked occluded by forward-backward consistency (measured: no gain)
    alpha: float = 20.0  # softmax-splatting sharpness on the brightness-constancy error (images in [0, 1])
    beta: float = 0.05  # weight per pixel of forward-backward inconsistency (splatting and visibility)
    remap: str = "cubic"  # backward-warp kernel: "linear", "cubic" or "lanczos"
    band_rows: int = 512  # output rows warped at once, bounding peak memory on 4K frames
    parallel_flows: bool = True  # the two DIS flows of a pair in two threads (off: one thread per pair)
    acceleration: bool = True  # quadratic motion from the neighbouring pairs' flows, when given (use_neighbours)
    # Each pixel's acceleration a = f01 + f0,-1 is limited to |a| <= accel_rel |f01| + accel_slack flow
    # pixels and damped by exp(-accel_fb * forward-backward inconsistency) of the flows it came from;
    # chosen on the other half of the benchmark clips' frames (docs/interpolation.md, "Acceleration").
    accel_rel: float = 1.0
    accel_slack: float = 0.5
    accel_fb: float = 0.2
    refine: bool = False  # correct the blend with the small learned network of pmf_edit/video/refine.py
    generative: bool = False  # draw a correction with the conditional pMF (pmf_edit/video/generative.py)
    #   on the tiles where the two warped frames disagree by more than gen_threshold levels
    gen_threshold: float = 8.0  # chosen on development frames (benchmarks/tune_vfi_generative.py)
    gen_model: str | None = None  # folder of the VFI network (core.checkpoint.save_model); None: the bundled one
    gen_lattices: int = 2  # tile lattices averaged, moved by fractions of a patch (the patch mesh fades; cost x n)
    select: bool = False  # choose between the two warped frames with the learned selector (pmf_edit/video/select.py)
    select_model: str | None = None  # its weights (safetensors); None: the bundled ones

    def __post_init__(self) -> None:
        if self.method not in ("flow", "linear"):
            raise ValueError(f"method must be 'flow' or 'linear', got {self.method!r}")
        if self.preset not in DIS_PRESETS:
            raise ValueError(f"preset must be one of {sorted(DIS_PRESETS)}, got {self.preset!r}")
        if self.remap not in REMAP_MODES:
            raise ValueError(f"remap must be one of {sorted(REMAP_MODES)}, got {self.remap!r}")
        checks.real(self.splat_scale, "splat_scale", lo=0.0, hi=1.0, lo_open=True)
        checks.real(self.flow_scale, "flow_scale", lo=0.0, hi=4.0, lo_open=True)
        # NaN passes plain comparisons (and alpha/beta had none): the shared checks test finiteness.
        checks.integer(self.max_flow_side, "max_flow_side", lo=16)
        checks.integer(self.band_rows, "band_rows", lo=1)
        if self.finest_scale is not None:
            checks.integer(self.finest_scale, "finest_scale", lo=0, hi=4)
        if self.variational_iters is not None:
            checks.integer(self.variational_iters, "variational_iters", lo=0)
        if self.small_variational_iters is not None:
            checks.integer(self.small_variational_iters, "small_variational_iters", lo=0)
        checks.integer(self.small_flow_pixels, "small_flow_pixels", lo=0)
        checks.real(self.alpha, "alpha", lo=0.0)
        checks.real(self.beta, "beta", lo=0.0)
        checks.real(self.gen_threshold, "gen_threshold", lo=0.0)
        checks.real(self.accel_rel, "accel_rel", lo=0.0)
        checks.real(self.accel_slack, "accel_slack", lo=0.0)
        checks.real(self.accel_fb, "accel_fb", lo=0.0)
        checks.integer(self.gen_lattices, "gen_lattices", lo=1, hi=32)
        if self.refine + self.generative + self.select > 1:
            raise ValueError("refine, generative and select are alternative corrections; choose one")
        if self.select and not self.reverse_flow:
            raise ValueError("select=True reads the flow splatting's evidence: it needs reverse_flow=True")

    @property
    def learned(self) -> bool:
        """True when a learned stage (refine, generative, select) finishes the frame: it works on RGB frames."""
        return self.refine or self.generative or self.select

    def variational_iters_at(self, h: int, w: int) -> int | None:
        """DIS variational passes for an (h, w) flow image: `small_variational_iters` when h * w is at most
        `small_flow_pixels` (and that is not None), else `variational_iters` (None: the preset's).

        Example:
            >>> InterpolationConfig().variational_iters_at(72, 88), InterpolationConfig().variational_iters_at(136, 320)
            (0, 2)
        """
        if self.small_variational_iters is not None and h * w <= self.small_flow_pixels:
            return self.small_variational_iters
        return self.variational_iters


# The previous default (DIS MEDIUM on the full-size frame up to 1024 px, its patch search ending at
# half size; splatting on the full flow grid): 1.5x the CPU time of today's default for +0.15 dB on
# bikes and the same PSNR on carphone (docs/interpolation.md).
_FULL_MEDIUM = dict(preset="medium", finest_scale=None, flow_scale=1.0, max_flow_side=1024, variational_iters=None)

# Presets by name, so benchmarks and the CLI can pick a method by a short string.
CONFIGS: dict[str, InterpolationConfig] = {
    "flow": InterpolationConfig(),
    "flow-linear": InterpolationConfig(acceleration=False),  # straight-line motion (the default before acceleration)
    "flow-medium": InterpolationConfig(**_FULL_MEDIUM),  # the previous default
    # no splatting; straight-line motion: without the splatting the acceleration can only be read at the
    # target pixel, which measured worse on the development frames of two of three clips (docs)
    "flow-fast": InterpolationConfig(preset="medium", finest_scale=None, reverse_flow=False, acceleration=False,
                                     variational_iters=None),
    # the textbook baseline: straight lines (given neighbours, acceleration=True would bend them too)
    "plain-warp": InterpolationConfig(**_FULL_MEDIUM, reverse_flow=False, remap="linear", acceleration=False),
    "flow-refine": InterpolationConfig(refine=True),  # the default plus the learned correction
    "flow-gen": InterpolationConfig(generative=True),  # the default plus the generative pMF where flow fails
    "flow-select": InterpolationConfig(select=True),  # the default with the learned choice between the warps
    "linear": InterpolationConfig(method="linear"),
}


class PairInterpolator:
    """Flows for one frame pair, computed once; `render(t)` makes the frame at any time t.

    Works on numpy (H, W, C) images, float32 in [0, 1] or uint8 in [0, 255] (the video path: no
    float copies of the full-size frames); `render` returns the input's dtype. `interpolate_frames` is
    the tensor front end and `pmf_edit.video.files` uses this class directly so each pair's flows are shared
    by every t.
    """

    def __init__(self, img0: np.ndarray, img1: np.ndarray, config: InterpolationConfig,
                 chroma0: np.ndarray | None = None, chroma1: np.ndarray | None = None) -> None:
        if img0.dtype not in (np.float32, np.uint8) or img0.dtype != img1.dtype or img0.shape != img1.shape:
            raise ValueError(f"expected two (H, W, C) float32 or uint8 images of one shape, got "
                             f"{img0.dtype} {img0.shape} and {img1.dtype} {img1.shape}")
        if (chroma0 is None) != (chroma1 is None):
            raise ValueError("chroma0 and chroma1 must be given together")
        if chroma0 is not None:
            if img0.ndim != 3 or img0.shape[-1] != 1 or chroma0.shape != chroma1.shape or chroma0.ndim != 3 \
                    or chroma0.dtype != img0.dtype or chroma1.dtype != img0.dtype:
                raise ValueError(f"planar input needs (H, W, 1) luma and two (h, w, 2) chroma planes of its dtype, "
                                 f"got {img0.shape} {img0.dtype}, {chroma0.shape} {chroma0.dtype}, "
                                 f"{chroma1.shape} {chroma1.dtype}")
            if config.learned:
                raise ValueError("refine, generative and select work on RGB frames, not on luma/chroma planes")
        self.img0, self.img1, self.cfg = img0, img1, config
        # Planes warped with the same flows: the image (or luma), then the chroma planes at their own size.
        self.planes = [(img0, img1)] + ([(chroma0, chroma1)] if chroma0 is not None else [])
        self.H, self.W = img0.shape[:2]
        if config.method == "linear":
            return
        scale = min(config.flow_scale, config.max_flow_side / max(self.H, self.W))
        self.h, self.w = max(8, round(self.H * scale)), max(8, round(self.W * scale))
        (s0, g0), (s1, g1) = (_flow_inputs(img, self.w, self.h, c)
                              for img, c in ((img0, chroma0), (img1, chroma1)))  # (h, w, C'), (h, w)
        self.f01, self.f10 = dis_flows(g0, g1, config.preset, config.variational_iters_at(self.h, self.w),
                                       config.parallel_flows, config.finest_scale)  # (h, w, 2)
        self.c0 = self.c1 = None  # (h, w) forward-backward inconsistency, computed when something needs it
        if config.reverse_flow or config.visibility:
            self.consistency()  # (h, w) occlusion evidence in frame 0 and in frame 1
        if config.reverse_flow:
            # Brightness-constancy error of each pixel against its match: the softmax-splatting metric.
            z0 = _splat_weight(s0, backward_warp(s1, self.f01), self.c0, config)
            z1 = _splat_weight(s1, backward_warp(s0, self.f10), self.c1, config)
            # The flow reversal may run on a coarser grid (the flows are smooth; splatting is the costly step).
            self.hs, self.ws = max(4, round(self.h * config.splat_scale)), max(4, round(self.w * config.splat_scale))
            g01, g10 = (_resize_flow(f, self.ws, self.hs) for f in (self.f01, self.f10))  # (hs, ws, 2)
            z0, z1 = (cv2.resize(z, (self.ws, self.hs), interpolation=cv2.INTER_AREA) if (self.hs, self.ws) != z.shape
                      else z for z in (z0, z1))
            # Both sources stacked for one splat pass per t: (2, hs, ws, 2) flows, (2, hs, ws) weights.
            self.rev_flows, self.rev_weights = np.stack([g01, g10]), np.stack([z0, z1])
            self.rev_values = np.stack([-g01, g10])  # signs: the splat's sum is then n1 - n0 (below)
        # Accelerations of frame-0 / frame-1 pixels (use_neighbours), (2,)-vectors at the resolution the
        # path reads them: the splatting grid (hs, ws) with reverse_flow, else the flow grid (h, w).
        self.acc0 = self.acc1 = None

    def consistency(self) -> tuple[np.ndarray, np.ndarray]:
        """(c0, c1): (h, w) forward-backward inconsistency of frame-0 and frame-1 pixels, in flow pixels;
        computed on first use (at construction already with reverse_flow or visibility)."""
        if self.c0 is None:
            self.c0, self.c1 = fb_consistency(self.f01, self.f10), fb_consistency(self.f10, self.f01)
        return self.c0, self.c1

    def use_neighbours(self, before: PairInterpolator | None, after: PairInterpolator | None) -> None:
        """Bend the motion: each pixel moves on a parabola through four frames instead of a line.

        `before` is the pair (frame -1, frame 0) and `after` the pair (frame 1, frame 2) of the same
        video, both with this pair's settings and sizes (None where there is none: the video's ends, a
        scene cut, a pair whose flows were not computed). A frame-0 pixel with flows f01 (to frame 1)
        and f0,-1 (= before.f10) has velocity (f01 - f0,-1) / 2 and acceleration a0 = f01 + f0,-1, so at
        time t it has moved t f01 + a0 (t^2 - t) / 2, which is f01 at t = 1 (the same for frame-1
        pixels with f10 and f12 = after.f01, backwards in time). Without neighbours, or with
        `acceleration=False`, the motion stays linear. No new flow is computed.

        Example:
            >>> frames = [np.random.rand(48, 64, 3).astype(np.float32) for _ in range(4)]  # one video, (H, W, C)
            >>> pairs = [PairInterpolator(frames[i], frames[i + 1], InterpolationConfig()) for i in range(3)]
            >>> pairs[1].use_neighbours(pairs[0], pairs[2])
            >>> pairs[1].render(0.5).shape
            (48, 64, 3)
        """
        if self.cfg.method != "flow" or not self.cfg.acceleration:
            return
        for other in (before, after):
            if other is not None and (other.cfg.method != "flow" or other.f01.shape != self.f01.shape):
                raise ValueError(f"neighbouring pairs must be flow pairs of one video at one size, got flows "
                                 f"{getattr(other, 'f01', np.empty(0)).shape} and {self.f01.shape}")
        # before.c1: inconsistency of before.f10 seen from this frame 0; after.c0 likewise for frame 1.
        for pair in (self, before, after):
            if pair is not None:
                pair.consistency()
        self.acc0 = None if before is None else self._acceleration(self.f01, before.f10, self.c0 + before.c1)
        self.acc1 = None if after is None else self._acceleration(self.f10, after.f01, self.c1 + after.c0)

    def _acceleration(self, f: np.ndarray, f_back: np.ndarray, inconsistency: np.ndarray) -> np.ndarray:
        """a = f + f_back, limited and damped (config): (hs, ws, 2) with reverse_flow, else (h, w, 2)."""
        a = f + f_back  # (h, w, 2): f and f_back are one frame's flows to the next and previous frames
        size = cv2.magnitude(a[..., 0], a[..., 1])
        cap = np.float32(self.cfg.accel_rel) * cv2.magnitude(f[..., 0], f[..., 1]) + np.float32(self.cfg.accel_slack)
        k = np.minimum(np.float32(1), cap / np.maximum(size, np.float32(1e-6)))
        k *= np.exp(np.float32(-self.cfg.accel_fb) * inconsistency)
        a *= k[..., None]
        return _resize_flow(a, self.ws, self.hs) if self.cfg.reverse_flow else a

    def _flows_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """F_t0, F_t1: (h, w, 2) flows from the frame at time t back to frames 0 and 1."""
        f01, f10 = self.f01, self.f10
        if not self.cfg.reverse_flow:
            ft0, ft1 = t * f10, (1 - t) * f01
            # Quadratic motion (use_neighbours): the same approximation, F_t0 ~ f10 - d1 and F_t1 ~ f01 - d0
            # with the displacements d of `_curved_flows_at`, read at the target pixel.
            if self.acc1 is not None:
                ft0 = ft0 - np.float32((t * t - t) / 2) * self.acc1  # ((1-t)^2 - (1-t)) = (t^2 - t)
            if self.acc0 is not None:
                ft1 = ft1 - np.float32((t * t - t) / 2) * self.acc0
            return ft0, ft1
        # A frame-0 pixel x0 lands at x0 + t f01 and carries F_t0 = -t f01, F_t1 = (1-t) f01;
        # a frame-1 pixel x1 lands at x1 + (1-t) f10 and carries F_t0 = t f10, F_t1 = -(1-t) f10.
        # Both carried flows are multiples of the splatted one, so splat f01 / f10 once (2 channels each).
        g01, g10 = self.rev_flows  # at the splatting resolution (hs, ws)
        if self.acc0 is not None or self.acc1 is not None:
            return self._curved_flows_at(t)
        # One pass for both sources: the splat of frame 0 carrying -f01 plus that of frame 1 carrying f10
        # is g = n1 - n0 in the numerator and d0 + d1 in the denominator.
        tt = np.float32([t, 1 - t])  # each source's share of its flow (and the other's of the weight)
        g, den = splat(self.rev_values, self.rev_flows * tt[:, None, None, None],
                       self.rev_weights * tt[::-1, None, None])
        hole = den < 1e-3
        g /= np.maximum(den, 1e-6)[..., None]  # (hs, ws, 2): F_t0 / t where something landed
        ft0, ft1 = t * g, (t - 1) * g
        ft0[hole] = t * g10[hole]  # holes fall back to the t-scaled opposite flows
        ft1[hole] = (1 - t) * g01[hole]
        return _resize_flow(ft0, self.w, self.h), _resize_flow(ft1, self.w, self.h)

    def _displacements(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(hs, ws, 2) displacements of frame-0 pixels from time 0 to t and of frame-1 pixels from time 1
        back to t, on the splatting grid (straight, or on a parabola with use_neighbours)."""
        g01, g10 = self.rev_flows
        s = 1 - t
        d0 = t * g01
        if self.acc0 is not None:
            d0 = d0 + np.float32((t * t - t) / 2) * self.acc0
        d1 = s * g10
        if self.acc1 is not None:
            d1 = d1 + np.float32((s * s - s) / 2) * self.acc1
        return d0, d1

    def densities(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """How many frame-0 and frame-1 pixels land on each point of the splatting grid at time t: two (hs, ws)
        float32 maps, ~1 where a frame's pixels spread evenly, ~0 where none of them land (not visible in it)."""
        d0, d1 = self._displacements(t)
        ones, weight = np.ones(d0.shape[:2] + (1,), np.float32), np.ones(d0.shape[:2], np.float32)
        return splat(ones, d0, weight)[1], splat(ones, d1, weight)[1]

    def evidence(self, t: float, small: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """What the flow stage knows about each warped frame at time t: (h, w, 6) float32 at the flow resolution.

        Channels (the input of `pmf_edit.video.select`): log(1 + forward-backward inconsistency) of the
        frame-1 source of b (high: that content is hidden in frame 0, so a is wrong there) and of the
        frame-0 source of a; the splatting confidence (log, / 10) at the source of a and of b; the
        density of frame-0 and of frame-1 pixels landing at time t (capped at 2; ~0 where no pixel of
        that frame lands: not visible in it). `small`: `_flows_at(t)` if already computed. Needs
        reverse_flow (the splatting).
        """
        if self.cfg.method != "flow" or not self.cfg.reverse_flow:
            raise ValueError("evidence() needs method='flow' with reverse_flow=True")
        ft0, ft1 = small or self._flows_at(t)  # (h, w, 2) each
        c0, c1 = self.consistency()
        n0, n1 = (cv2.resize(np.minimum(n, np.float32(2)), (self.w, self.h), interpolation=cv2.INTER_LINEAR)
                  for n in self.densities(t))  # (h, w) each
        z0, z1 = (cv2.resize(np.log(np.maximum(z, np.float32(1e-6))), (self.w, self.h),
                             interpolation=cv2.INTER_LINEAR) for z in self.rev_weights)
        maps = [np.log1p(backward_warp(c1, ft1)), np.log1p(backward_warp(c0, ft0)),
                backward_warp(z0, ft0) * np.float32(0.1), backward_warp(z1, ft1) * np.float32(0.1), n0, n1]
        return np.stack(maps, -1).astype(np.float32)

    def _curved_flows_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """`_flows_at` with quadratic motion (use_neighbours): the carried flows are no longer multiples
        of the splatted displacement, so both (F_t0, F_t1) are splatted, 4 channels per source."""
        g01, g10 = self.rev_flows  # (hs, ws, 2)
        s = 1 - t
        d0, d1 = self._displacements(t)
        # A frame-0 pixel lands at x0 + d0 and carries F_t0 = -d0, F_t1 = f01 - d0; a frame-1 pixel lands
        # at x1 + d1 and carries F_t0 = f10 - d1, F_t1 = -d1.
        values = np.stack([np.concatenate([-d0, g01 - d0], -1), np.concatenate([g10 - d1, -d1], -1)])  # (2, hs, ws, 4)
        tt = np.float32([t, s])
        g, den = splat(values, np.stack([d0, d1]), self.rev_weights * tt[::-1, None, None])
        hole = den < 1e-3
        g /= np.maximum(den, 1e-6)[..., None]  # (hs, ws, 4)
        ft0, ft1 = g[..., :2], g[..., 2:]
        ft0[hole] = t * g10[hole]  # holes fall back to the t-scaled opposite flows, as in the linear case
        ft1[hole] = s * g01[hole]
        return (_resize_flow(np.ascontiguousarray(ft0), self.w, self.h),
                _resize_flow(np.ascontiguousarray(ft1), self.w, self.h))

    def _full_flows(self, t: float, size: tuple[int, int] | None = None, small: tuple | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """F_t0, F_t1 up-sampled to (H, W, 2) (or to `size` = (H', W') for a chroma plane), and the
        visibility factors (None unless `visibility`). `small`: `_flows_at(t)` if already computed."""
        H, W = size or (self.H, self.W)
        ft0, ft1 = small or self._flows_at(t)
        v0 = v1 = None
        if self.cfg.visibility:
            # c0 high where the frame-0 source is hidden in frame 1: the frame-1 sample there is wrong.
            v0 = np.exp(-self.cfg.beta * backward_warp(self.c1, ft1))
            v1 = np.exp(-self.cfg.beta * backward_warp(self.c0, ft0))
            v0, v1 = (cv2.resize(v, (W, H), interpolation=cv2.INTER_LINEAR) for v in (v0, v1))
        return _resize_flow(ft0, W, H), _resize_flow(ft1, W, H), v0, v1

    def warps(self, t: float, small: tuple[np.ndarray, np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Both frames warped to time t in (0, 1) and their blend weights, full size (for a refiner).

        Returns:
            (a, b, wa, wb): a, b (H, W, C) in the input's dtype, frame 0 / frame 1 moved to time t;
            wa, wb (H, W) float32 > 0, the blend weights: (1 - t) and t, times 100 where the sample's
            source lies inside the picture. `render(t)` is (wa a + wb b) / (wa + wb).
        """
        if self.cfg.method != "flow":
            raise ValueError("warps() needs method='flow'")
        ft0, ft1, v0, v1 = self._full_flows(t, None, small)
        a, wa = self._warp(self.img0, ft0, 1 - t, v0, 0, self.H)
        b, wb = self._warp(self.img1, ft1, t, v1, 0, self.H)
        return a, b, wa, wb

    def _warp(self, img: np.ndarray, flow: np.ndarray, w: float, vis: np.ndarray | None,
              r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows r0:r1 of `img` backward-warped along its full-size `flow`, and their blend weight (w, x100 inside)."""
        H, W = img.shape[:2]
        m = flow[r0:r1] + pixel_grid(r1 - r0, W)  # (h_band, W, 2) absolute sample positions
        if r0:
            m[..., 1] += r0
        mode = REMAP_MODES[self.cfg.remap]
        if img.ndim == 3 and img.shape[-1] == 2:
            # The interleaved chroma pair: OpenCV's 2-channel remap has no fast path (bicubic uint8 measured
            # 1.6-1.7x the time of two 1-channel remaps at 320x136 and 640x360); same values per channel.
            out = cv2.merge([cv2.remap(c, m, None, mode, borderMode=cv2.BORDER_REPLICATE) for c in cv2.split(img)])
        else:
            out = cv2.remap(img, m, None, mode, borderMode=cv2.BORDER_REPLICATE)
        out = out.reshape((r1 - r0, W, -1))  # remap drops a singleton channel
        # 100 where the sample lies inside the picture, 1 outside (the other frame should fill it); the
        # floor of 1 (not 0) keeps the sum of both weights >= 1, far above blendLinear's 1e-5 epsilon.
        inside = cv2.inRange(m, (-0.5, -0.5), (W - 0.5, H - 0.5))  # uint8 0 / 255
        wt = np.multiply(inside, np.float32(99.0 / 255.0 * w), dtype=np.float32)
        wt += np.float32(w)
        if vis is not None:
            wt *= vis[r0:r1]
        return out, wt

    def render(self, t: float) -> np.ndarray:
        """The frame at time t in [0, 1]: (H, W, C) in the input's dtype; t = 0 / 1 return the inputs exactly.

        With chroma planes this is the luma plane only; `render_planes` returns all of them."""
        if self.cfg.learned and 0.0 < t < 1.0 and self.cfg.method == "flow":
            return self._refined(t)
        return self.render_planes(t)[0]

    def render_planes(self, t: float) -> tuple[np.ndarray, ...]:
        """Every plane at time t in [0, 1]: (image,) or (luma (H, W, 1), chroma (h, w, 2)), input dtype.

        The flows to time t are splatted once and resized to each plane's size.
        """
        if t <= 0.0 or t >= 1.0:
            return tuple(p[0 if t <= 0.0 else 1].copy() for p in self.planes)
        if self.cfg.method == "linear":
            return tuple(cv2.addWeighted(a, 1 - t, b, t, 0.0).reshape(a.shape) if a.dtype == np.uint8
                         else (1 - t) * a + t * b for a, b in self.planes)
        if self.cfg.learned:
            return (self._refined(t),)
        small = self._flows_at(t)  # (h, w, 2) each, at the flow resolution
        return tuple(self._blend(a, b, t, *self._full_flows(t, a.shape[:2], small)) for a, b in self.planes)

    def _blend(self, img0: np.ndarray, img1: np.ndarray, t: float, ft0: np.ndarray, ft1: np.ndarray,
               v0: np.ndarray | None, v1: np.ndarray | None) -> np.ndarray:
        """Both planes warped along their full-size flows and blended, in bands of `band_rows` rows."""
        H = img0.shape[0]
        out = np.empty_like(img0)
        for r in range(0, H, self.cfg.band_rows):
            r1 = min(H, r + self.cfg.band_rows)
            a, wa = self._warp(img0, ft0, 1 - t, v0, r, r1)  # (h_band, W, C), (h_band, W)
            b, wb = self._warp(img1, ft1, t, v1, r, r1)
            # (wa a + wb b) / (wa + wb) in one pass; on uint8 it rounds and saturates.
            blend = cv2.blendLinear(a, b, wa, wb).reshape(a.shape)
            if out.dtype == np.uint8:
                out[r:r1] = blend
            else:
                np.clip(blend, 0.0, 1.0, out=out[r:r1])  # bicubic overshoots
        return out

    def _refined(self, t: float) -> np.ndarray:
        """`render(t)` through the learned refinement, the generative correction or the learned selection
        (grey frames go through each as three equal channels)."""
        small = self._flows_at(t)
        a, b, wa, wb = self.warps(t, small)
        grey = a.shape[-1] == 1
        if grey:
            a, b = np.repeat(a, 3, axis=-1), np.repeat(b, 3, axis=-1)
        if self.cfg.generative:
            from pmf_edit.video.generative import GenerativeConfig, cached_generative, correct

            out = correct(a, b, wa, wb, net=cached_generative(self.cfg.gen_model),
                          config=GenerativeConfig(threshold=self.cfg.gen_threshold,
                                                  lattices=self.cfg.gen_lattices))  # (H, W, 3)
        elif self.cfg.select:
            from pmf_edit.video.select import load_selector, select

            out = select(a, b, wa, wb, self.evidence(t, small), net=load_selector(self.cfg.select_model),
                         band_rows=self.cfg.band_rows)  # (H, W, 3)
        else:
            out = refine(a, b, wa, wb, band_rows=self.cfg.band_rows)  # (H, W, 3)
        if grey:
            mean = out.mean(axis=-1, keepdims=True, dtype=np.float32)
            out = (mean + 0.5).astype(np.uint8) if out.dtype == np.uint8 else mean
        return out


def _resize_flow(flow: np.ndarray, w: int, h: int) -> np.ndarray:
    """(h0, w0, 2) flow resampled to (h, w), vectors rescaled to the new pixel size; as-is if the size matches."""
    h0, w0 = flow.shape[:2]
    if (h0, w0) == (h, w):
        return flow
    interp = cv2.INTER_AREA if h < h0 else cv2.INTER_LINEAR
    # Resizing is linear, so rescale the vectors on the smaller side of the resize (fewer pixels to touch).
    scale = np.float32([w / w0, h / h0])
    if h * w > h0 * w0:
        return cv2.resize(flow * scale, (w, h), interpolation=interp)
    return cv2.resize(flow, (w, h), interpolation=interp) * scale


def _flow_inputs(img: np.ndarray, w: int, h: int, chroma: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The flow-resolution copies of a full-size (H, W, C) frame: ((h, w, C) float32 in [0, 1], (h, w) uint8 grey).

    With `chroma` ((H', W', 2) Cb, Cr planes of a luma `img`), the float copy is (h, w, 3) RGB made from
    the luma and chroma at the flow size (it only feeds the splatting weight, whose `alpha` is set for RGB
    errors: on Y, Cb, Cr the chroma errors are small and the weight too soft, -0.14 dB on bikes; the
    BT.601 full-range formulas are close enough for a weight), and the grey image is the luma itself."""
    img = _shrink(img, w, h)
    if chroma is None:
        small = img.astype(np.float32) * np.float32(1 / 255) if img.dtype == np.uint8 else img
        return small, to_gray_u8(img)
    c = _shrink(chroma, w, h)
    ycrcb = cv2.merge([img, c[..., 1], c[..., 0]])  # (h, w, 3) in OpenCV's Y, Cr, Cb order
    if ycrcb.dtype == np.uint8:
        ycrcb = ycrcb.astype(np.float32) * np.float32(1 / 255)
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB), to_gray_u8(img)


def _shrink(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """(H, W, C) image resized to (h, w, C); as-is when the size matches."""
    if img.shape[:2] == (h, w):
        return img
    # INTER_AREA when shrinking avoids aliasing that DIS would read as motion.
    interp = cv2.INTER_AREA if h < img.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp).reshape(h, w, -1)


def _splat_weight(src: np.ndarray, matched: np.ndarray, fb: np.ndarray, cfg: InterpolationConfig) -> np.ndarray:
    """exp(-alpha |src - matched| - beta fb): (h, w) float32 softmax-splatting weight of each source pixel.

    `src` and `matched` are (h, w, C) images (the pixel and its flow match in the other frame), the
    brightness error is averaged over channels; `fb` is the forward-backward inconsistency in pixels.
    """
    err = cv2.absdiff(src, matched.reshape(src.shape))
    if src.shape[-1] > 1:
        err = cv2.transform(err, np.full((1, src.shape[-1]), -cfg.alpha / src.shape[-1], np.float32))
    else:
        err = err.reshape(src.shape[:2]) * np.float32(-cfg.alpha)
    return cv2.exp(cv2.scaleAdd(fb, -cfg.beta, err))


def _check_frames(frame0: torch.Tensor, frame1: torch.Tensor) -> None:
    for name, f in (("frame0", frame0), ("frame1", frame1)):
        _check_frame(name, f)
    if frame0.shape != frame1.shape:
        raise ValueError(f"frame0 and frame1 must have the same shape, got {tuple(frame0.shape)} "
                         f"and {tuple(frame1.shape)}")


def _check_frame(name: str, f: torch.Tensor) -> None:
    """One frame argument: (C, H, W) or (B, C, H, W), C in {1, 3, 4}, at least 2x2, float32/float64 in
    [0, 1]: the image rule of every pmf_edit function (``boundary.check_images``), a single frame allowed."""
    shape = tuple(f.shape) if isinstance(f, torch.Tensor) else None
    if shape is not None and len(shape) == 3:
        f = f[None]  # (1, C, H, W)
    check_images(f, name, min_side=2)
    if f.shape[1] not in (1, 3, 4):
        raise ValueError(f"{name} must be (B, C, H, W) or (C, H, W) with C in {{1, 3, 4}} (grey, RGB, RGBA), "
                         f"got shape {shape}")


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """(..., 4) RGBA with straight alpha, uint8 or float in [0, 1] -> float32 in [0, 1] with the colour
    multiplied by the alpha: what is warped and blended, so a transparent pixel's colour never leaks."""
    x = rgba.astype(np.float32) * np.float32(1 / 255) if rgba.dtype == np.uint8 else rgba.astype(np.float32)
    x[..., :3] *= x[..., 3:]
    return x


def unpremultiply(x: np.ndarray) -> np.ndarray:
    """`premultiply`'s inverse: float32 in [0, 1], the colour 0 where the alpha is 0."""
    a = x[..., 3:]
    rgb = np.divide(x[..., :3], a, out=np.zeros_like(x[..., :3]), where=a > 1e-6)
    return np.clip(np.concatenate([rgb, a], axis=-1), 0.0, 1.0)


def _is_scalar_time(times: object) -> bool:
    """One time: a Python number, a numpy scalar or a 0-d tensor (not a sequence of times)."""
    return isinstance(times, (int, float)) or getattr(times, "ndim", None) == 0


def _check_times(times: float | Sequence[float]) -> list[float]:
    if _is_scalar_time(times):
        ts = [times]
    elif isinstance(times, (str, bytes)) or not hasattr(times, "__iter__"):
        raise TypeError(f"times must be a number in [0, 1] or a sequence of them, got {type(times).__name__}")
    else:
        ts = list(times)
    if not ts:
        raise ValueError("times must hold at least one time, got an empty sequence")
    return [checks.real(t, "times (each time t)", lo=0.0, hi=1.0, hint=" (0 and 1 return the inputs)") for t in ts]


@checks.checked
def interpolate_frames(
    frame0: torch.Tensor,
    frame1: torch.Tensor,
    times: float | Sequence[float] = 0.5,
    config: InterpolationConfig | None = None,
    before: torch.Tensor | None = None,
    after: torch.Tensor | None = None,
) -> torch.Tensor:
    """Frames between `frame0` (t=0) and `frame1` (t=1), one per requested time.

    Args:
        frame0: (B, C, H, W) or (C, H, W) float32 or float64 tensor in [0, 1], C = 1 (grayscale), 3 (RGB)
            or 4 (RGBA, straight alpha: warped and blended premultiplied, `premultiply`); any H, W (at least 2
            pixels).
        frame1: same shape as `frame0`.
        times: one time or several, each in [0, 1]; 0 and 1 return the inputs exactly.
        config: method settings; `InterpolationConfig()` (bidirectional DIS flow, flow splatting,
            occlusion-aware blending) by default.
        before, after: optional frames of the same video just before `frame0` and just after `frame1`
            (same shape): each pixel then moves on a parabola through the four frames instead of a
            straight line (`PairInterpolator.use_neighbours`; one more flow pair for each given).

    Returns:
        For a single float `times`: a tensor shaped like `frame0`. For a sequence of T times:
        (T, *frame0.shape). Same dtype and device as `frame0`, values in [0, 1].

    Raises:
        ValueError: non-tensor input, wrong rank or channels, non-float dtype, values outside [0, 1],
            mismatched shapes, or a time outside [0, 1].

    Example:
        >>> f0, f1 = torch.rand(3, 48, 64), torch.rand(3, 48, 64)
        >>> interpolate_frames(f0, f1, [0.25, 0.5, 0.75]).shape
        torch.Size([3, 3, 48, 64])
        >>> f_prev, f_next = torch.rand(3, 48, 64), torch.rand(3, 48, 64)
        >>> interpolate_frames(f0, f1, 0.5, before=f_prev, after=f_next).shape   # motion on a parabola
        torch.Size([3, 48, 64])
    """
    _check_frames(frame0, frame1)
    for name, f in (("before", before), ("after", after)):
        if f is not None:
            _check_frame(name, f)
            if f.shape != frame0.shape:
                raise ValueError(f"{name} must have frame0's shape {tuple(frame0.shape)}, got {tuple(f.shape)}")
    ts = _check_times(times)
    cfg = checks.config(config, InterpolationConfig)
    batched = frame0.ndim == 4
    x0 = frame0 if batched else frame0.unsqueeze(0)  # (B, C, H, W)
    x1 = frame1 if batched else frame1.unsqueeze(0)

    def hwc(x: torch.Tensor | None) -> np.ndarray | None:  # (B, H, W, C) float32 numpy
        if x is None:
            return None
        x = x if batched else x.unsqueeze(0)
        return x.detach().to("cpu", torch.float32).clamp(0, 1).permute(0, 2, 3, 1).numpy()

    a, b, am, bp = hwc(frame0), hwc(frame1), hwc(before), hwc(after)
    rgba = a.shape[-1] == 4
    if rgba:
        a, b, am, bp = (None if x is None else premultiply(x) for x in (a, b, am, bp))
    out = np.empty((len(ts),) + a.shape, np.float32)  # (T, B, H, W, C)
    for i in range(a.shape[0]):
        ai, bi = np.ascontiguousarray(a[i]), np.ascontiguousarray(b[i])
        pair = PairInterpolator(ai, bi, cfg)
        if (am is not None or bp is not None) and cfg.method == "flow":
            pair.use_neighbours(None if am is None else PairInterpolator(np.ascontiguousarray(am[i]), ai, cfg),
                                None if bp is None else PairInterpolator(bi, np.ascontiguousarray(bp[i]), cfg))
        for j, t in enumerate(ts):
            out[j, i] = unpremultiply(pair.render(t)) if rgba else pair.render(t)
    res = torch.from_numpy(out).permute(0, 1, 4, 2, 3).to(frame0.device, frame0.dtype)  # (T, B, C, H, W)
    # Endpoints come back bit-exact (no float32 round trip for float64 inputs).
    for j, t in enumerate(ts):
        if t == 0.0:
            res[j] = x0
        elif t == 1.0:
            res[j] = x1
    if not batched:
        res = res[:, 0]  # (T, C, H, W)
    return res[0] if _is_scalar_time(times) else res
