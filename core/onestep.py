"""Fast batched one-step generation: x = z_1 - u(z_1, r=0, t=1), one network evaluation.

``sample_pmf(num_steps=1)`` is the reference; ``OneStepSampler`` computes the same thing for a
fixed batch size with the per-call overheads removed:
  * ``precision="bf16"``: bf16 autocast (core/precision.py);
  * ``compile=True``: ``torch.compile`` of the forward (fuses the elementwise work around the
    matmuls: RMSNorm, RoPE, SwiGLU, the x -> u conversion);
  * ``cuda_graph=True`` (CUDA only): the whole evaluation captured once into a CUDA graph and
    replayed, so a batch-1 call costs one graph launch instead of ~600 kernel launches.
Requests of any size are served in chunks of ``batch_size`` (the last one padded), so the compiled
or captured shapes never change.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from core.model import PixelMeanFlow
from core.precision import autocast, resolve_precision
from core.sampling import SampleResult, _check_guidance, _labels, draw_noise


class OneStepSampler:
    """One-step pMF generation for a fixed batch size, optionally compiled and CUDA-graphed.

    Args:
        net: a pMF network in eval mode (the v-head is not used).
        batch_size: rows per network call; requests are split / padded to it.
        guidance_scale: omega >= 1 (a network input).
        guidance_interval: (t_min, t_max), network inputs.
        precision: "fp32", "bf16", or None for the session default (core.precision).
        compile: wrap the forward in ``torch.compile``.
        compile_backend: ``torch.compile`` backend ("inductor"; "aot_eager" traces without
            generating code, which the CPU tests use).
        cuda_graph: capture the evaluation into a CUDA graph (needs the net on CUDA).

    Example:
        >>> fast = OneStepSampler(net, batch_size=64, precision="bf16", compile=True, cuda_graph=True)
        >>> out = fast([207] * 64, generator=torch.Generator().manual_seed(0))
        >>> out.images.shape                              # (64, 3, 256, 256) in [-1, 1]
    """

    def __init__(
        self,
        net: PixelMeanFlow,
        batch_size: int,
        *,
        guidance_scale: float = 1.0,
        guidance_interval: tuple[float, float] = (0.0, 1.0),
        precision: str | None = None,
        compile: bool = False,
        compile_backend: str = "inductor",
        cuda_graph: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        _check_guidance(guidance_scale, guidance_interval)
        self.device = next(net.parameters()).device
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs the network on CUDA, it is on {self.device}")
        self.net, self.batch_size = net, batch_size
        self.precision = resolve_precision(precision)
        cfg = net.cfg
        self.shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
        B, dev = batch_size, self.device
        full = lambda v: torch.full((B,), float(v), device=dev)  # noqa: E731
        # Fixed inputs of every call (t = 1, r = 0, the guidance), and the varying ones as buffers
        # that a captured graph reads from.
        self._t, self._r = full(1.0), full(0.0)
        self._omega, self._lo, self._hi = full(guidance_scale), full(guidance_interval[0]), full(guidance_interval[1])
        self._z = torch.zeros(B, *self.shape, device=dev)
        self._y = torch.full((B,), net.null_class, dtype=torch.long, device=dev)
        forward: Callable[..., torch.Tensor] = net
        if compile:
            forward = torch.compile(net, backend=compile_backend, dynamic=False)
        self._forward = forward
        self._graph: torch.cuda.CUDAGraph | None = None
        self._out: torch.Tensor | None = None
        if cuda_graph:
            self._capture()

    @torch.no_grad()
    def _evaluate(self) -> torch.Tensor:
        """x = z - (t - r) u with t - r = 1 exactly (the same arithmetic as ``sample_pmf``)."""
        with autocast(self.device, self.precision):
            u = self._forward(self._z, self._t, self._r, self._y, self._omega, self._lo, self._hi)
            return self._z - (self._t - self._r).view(-1, 1, 1, 1) * u

    def _capture(self) -> None:
        # Warm-up on a side stream (compilation, cuDNN/cuBLAS heuristics, allocator pools), then
        # capture one evaluation; replays reuse its memory and its kernels.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._evaluate()
        torch.cuda.current_stream().wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._out = self._evaluate()

    def _run_chunk(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        n = y.shape[0]
        self._z.zero_()
        self._y.fill_(self.net.null_class)
        self._z[:n].copy_(z)  # (n, C, H, W) into the (batch_size, C, H, W) buffer
        self._y[:n].copy_(y)
        if self._graph is not None:
            self._graph.replay()
            return self._out[:n].clone()  # the graph overwrites its output on the next replay
        return self._evaluate()[:n]

    @torch.no_grad()
    def __call__(
        self,
        labels: torch.Tensor | Sequence[int] | None = None,
        *,
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> SampleResult:
        """Images for ``labels`` (or ``num_samples`` null-class samples), as ``sample_pmf`` with
        ``num_steps=1``: same noise draws, same arithmetic.

        Args:
            labels: (n,) class indices; None for the null class (then give ``num_samples``).
            num_samples: n when ``labels`` is None.
            generator: the caller's generator for the noise (drawn sample by sample).
            noise: (n, C, H, W) standard normal z_1 / s instead of drawing it.

        Returns:
            ``SampleResult`` with images (n, C, H, W) in [-1, 1] (fp32) and nfe = 1.
        """
        n = len(labels) if labels is not None else (num_samples or (noise.shape[0] if noise is not None else 1))
        y = _labels(labels, n, self.net, self.device)
        if noise is None:
            noise = draw_noise(n, self.shape, generator, self.device)
        elif tuple(noise.shape) != (n, *self.shape):
            raise ValueError(f"noise must be {(n, *self.shape)}, got {tuple(noise.shape)}")
        z = self.net.cfg.noise_scale * noise.to(self.device)
        chunks = [self._run_chunk(y[i : i + self.batch_size], z[i : i + self.batch_size])
                  for i in range(0, n, self.batch_size)]
        return SampleResult(images=torch.cat(chunks), nfe=1)


__all__ = ["OneStepSampler"]
