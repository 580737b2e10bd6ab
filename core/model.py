"""The pixel MeanFlow network (pMF, arXiv 2601.22158, section 5 of PMF_SPEC.md).

A plain ViT on raw pixels with in-context conditioning and x-prediction:

    tokens = [class | omega | t_min | t_max | h | image patches]    (prefix P tokens + N image tokens)
    shared blocks -> u-head blocks -> u final layer -> x_u (an image)
                  -> v-head blocks -> v final layer -> x_v (an image; auxiliary, training only)
                  -> b-head blocks -> b final layer -> e_b (optional backward head, r > t rows)
    u = (z_t - x_u) / clip(t, t_clip, 1),   v = (z_t - x_v) / clip(t, t_clip, 1)
    backward rows (r > t): u = (s e_b - z_t) / clip(1 - t, t_clip, 1)    ("noise" parameterisation)

The average velocity is defined for r > t as well: z_r = z_t - (t - r) u is then a jump toward
noise, and a network with the backward head inverts an image in one evaluation,
z_1 = x + u(x, r=1, t=0). Rows are routed by the sign of h = t - r, which the network also sees.

The network never sees t itself, only h = t - r (plus the guidance scale omega, embedded as
1 - 1/omega, and the guidance interval [t_min, t_max]); t enters through the 1/t conversion, which
lives inside ``forward`` so that ``torch.func.jvp`` differentiates through it.

Convention (shared with core/meanflow.py): t = 1 is noise, t = 0 is data, z_t = (1 - t) x + t s e.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Callable, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from core import checks
from core.attention import Backend, attention

Heads = Literal["u", "v", "uv"]
# An attention processor replaces the attention of one Attention layer for the calls made while it is
# set (``Attention.processor``): it receives the projected, qk-normed, RoPE-rotated q, k, v
# (B, nh, L, hd) and the backend, and returns the attention output (B, nh, L, hd). The projections,
# norms, RoPE and output projection stay the layer's own, so a change to them reaches every processor.
AttentionProcessor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Backend], torch.Tensor]


@dataclass(frozen=True)
class PMFConfig:
    """Architecture of one pMF network. Everything a checkpoint needs to rebuild it."""

    image_size: int = 32  # square input resolution H = W
    in_channels: int = 1  # 1 (grayscale) or 3 (RGB)
    patch_size: int = 4  # p; the image becomes (H/p)^2 tokens
    width: int = 192  # D, token width
    depth: int = 8  # blocks on the u path = shared blocks + head_depth (the paper's "depth")
    head_depth: int = 2  # blocks in each head (u and v); the paper uses 8
    num_heads: int = 3  # nh; head dim hd = D / nh (must be divisible by 4 for 2D RoPE)
    bottleneck: int = 64  # d' of the bottleneck patch embedding (paper: 128 for B/L, 256 for H)
    mlp_hidden: int = 0  # SwiGLU hidden width; 0 means int(D * 8 / 3)
    num_classes: int = 10  # class labels 0..num_classes-1; index num_classes is the null class
    class_tokens: int = 8  # prefix tokens per condition (paper: 8 / 4 / 2 / 2 / 4)
    omega_tokens: int = 4
    interval_tokens: int = 2  # for t_min and for t_max each
    h_tokens: int = 4
    freq_dim: int = 256  # sinusoidal frequencies of the scalar embedders
    rope_theta: float = 10000.0
    noise_scale: float = 1.0  # s in z_t = (1 - t) x + t s e (paper: image size / 256, min 1)
    t_clip: float = 0.05  # u = (z - x) / clip(t, t_clip, 1); keeps u bounded near t = 0
    init_std: float = 0.32  # transformer linears ~ N(0, init_std^2 / fan_in)
    backward_head: bool = False  # build a head for r > t (the average velocity toward noise)
    cond_channels: int = 0  # condition channels concatenated to z_t at the patch embedding (e.g. the two
    #   warped frames of the VFI model); the output keeps in_channels. 0: an ordinary generator
    backward_param: str = "noise"  # its output: "noise" (the t=1 endpoint e, u = (s e - z)/clip(1-t))
    #   or "data" (the same x-prediction as the forward head, u = (z - x)/clip(t))
    backward_from: str = "any"  # where the backward head was trained: "any" t (the MeanFlow identity,
    #   --backward-ratio) or "data" only, t = 0 (the inverse of the generator, --objective invert)

    def __post_init__(self) -> None:
        # Sizes first (a zero or NaN passes the divisibility tests below and fails later inside torch).
        for name in ("image_size", "patch_size", "width", "depth", "head_depth", "num_heads", "bottleneck",
                     "freq_dim"):
            checks.integer(getattr(self, name), name, lo=1)
        for name in ("mlp_hidden", "cond_channels", "num_classes", "class_tokens", "omega_tokens", "interval_tokens", "h_tokens"):
            checks.integer(getattr(self, name), name, lo=0)
        for name in ("rope_theta", "noise_scale", "t_clip", "init_std"):
            checks.real(getattr(self, name), name, lo=0.0, lo_open=True)
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}"
            )
        if self.width % self.num_heads or (self.width // self.num_heads) % 4:
            raise ValueError(
                f"width {self.width} / num_heads {self.num_heads} must give a head dim divisible "
                "by 4 (2D RoPE splits it into row and column pairs)"
            )
        if not 1 <= self.head_depth <= self.depth:
            raise ValueError(f"head_depth must be in [1, depth={self.depth}], got {self.head_depth}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.backward_param not in ("noise", "data"):
            raise ValueError(f"backward_param must be 'noise' or 'data', got {self.backward_param!r}")
        if self.backward_from not in ("any", "data"):
            raise ValueError(f"backward_from must be 'any' or 'data', got {self.backward_from!r}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2

    @property
    def num_prefix(self) -> int:
        return self.class_tokens + self.omega_tokens + 2 * self.interval_tokens + self.h_tokens

    @property
    def hidden(self) -> int:
        return self.mlp_hidden or int(self.width * 8 / 3)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PMFConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown PMFConfig fields {sorted(unknown)}")
        return cls(**d)


# ------------------------------------------------------------------------------------------------
# Building blocks


class RMSNorm(nn.Module):
    """RMSNorm with a learnable scale; statistics in fp32 (safe under bf16 autocast)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # fp32 at least, fp64 stays fp64
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.to(x.dtype) * self.weight


def _linear(fan_in: int, fan_out: int, std: float, bias: bool = False) -> nn.Linear:
    layer = nn.Linear(fan_in, fan_out, bias=bias)
    nn.init.normal_(layer.weight, std=std / math.sqrt(fan_in))
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def rope_tables(grid: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of the 2D RoPE, each (N, hd/2) for N = grid^2 image tokens.

    The hd/2 rotary pairs are split in half: the first hd/4 rotate with the row index, the last
    hd/4 with the column index, each with frequencies 1 / theta^(2i / (hd/2)), i < hd/4.
    """
    quarter = head_dim // 4
    freqs = 1.0 / theta ** (torch.arange(quarter, dtype=torch.float64) * 2 / (head_dim // 2))
    pos = torch.arange(grid, dtype=torch.float64)
    rows = (pos[:, None] * freqs[None]).unsqueeze(1).expand(grid, grid, quarter)  # (g, g, hd/4)
    cols = (pos[:, None] * freqs[None]).unsqueeze(0).expand(grid, grid, quarter)  # (g, g, hd/4)
    angles = torch.cat([rows, cols], dim=-1).reshape(grid * grid, head_dim // 2)  # (N, hd/2)
    return angles.cos(), angles.sin()  # fp64; apply_rope casts to the compute dtype (>= fp32)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the last N tokens of x (B, nh, P + N, hd); channel pairs (2i, 2i+1) are interleaved.

    Written with real arithmetic (no complex views) so it runs under bf16 and forward-mode AD.
    """
    n = cos.shape[0]
    prefix, img = x[:, :, :-n], x[:, :, -n:]
    img = img.to(torch.promote_types(x.dtype, torch.float32))
    cos, sin = cos.to(img.dtype), sin.to(img.dtype)
    a, b = img.unflatten(-1, (-1, 2)).unbind(-1)  # each (B, nh, N, hd/2)
    rotated = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)  # (B,nh,N,hd)
    return torch.cat([prefix, rotated.to(x.dtype)], dim=2)


class Attention(nn.Module):
    """Multi-head self-attention: no biases, qk-RMSNorm per head, 2D RoPE on image tokens.

    ``processor`` (None by default) is the one hook for editing methods that change what the
    queries attend to (e.g. style transfer sharing keys/values across a batch): see
    ``AttentionProcessor``. It is a plain attribute, not part of the weights.
    """

    def __init__(self, width: int, num_heads: int, init_std: float):
        super().__init__()
        self.num_heads = num_heads
        hd = width // num_heads
        self.q = _linear(width, width, init_std)
        self.k = _linear(width, width, init_std)
        self.v = _linear(width, width, init_std)
        self.out = _linear(width, width, init_std)
        self.q_norm = RMSNorm(hd)
        self.k_norm = RMSNorm(hd)
        self.processor: AttentionProcessor | None = None

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, backend: Backend
    ) -> torch.Tensor:
        B, L, D = x.shape
        q = self.q(x).view(B, L, self.num_heads, -1).transpose(1, 2)  # (B, nh, L, hd)
        k = self.k(x).view(B, L, self.num_heads, -1).transpose(1, 2)  # (B, nh, L, hd)
        v = self.v(x).view(B, L, self.num_heads, -1).transpose(1, 2)  # (B, nh, L, hd)
        q = apply_rope(self.q_norm(q), cos, sin)
        k = apply_rope(self.k_norm(k), cos, sin)
        if self.processor is None:
            o = attention(q, k, v, backend=backend)  # (B, nh, L, hd)
        else:
            o = self.processor(q, k, v, backend)  # (B, nh, L, hd)
        return self.out(o.transpose(1, 2).reshape(B, L, D))


class SwiGLU(nn.Module):
    """W2(SiLU(W1 x) * W3 x), no biases."""

    def __init__(self, width: int, hidden: int, init_std: float):
        super().__init__()
        self.w1 = _linear(width, hidden, init_std)
        self.w3 = _linear(width, hidden, init_std)
        self.w2 = _linear(hidden, width, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """Pre-norm block with zero-initialised per-channel residual gates (identity at init)."""

    def __init__(self, cfg: PMFConfig):
        super().__init__()
        self.norm1 = RMSNorm(cfg.width)
        self.attn = Attention(cfg.width, cfg.num_heads, cfg.init_std)
        self.norm2 = RMSNorm(cfg.width)
        self.mlp = SwiGLU(cfg.width, cfg.hidden, cfg.init_std)
        self.attn_gate = nn.Parameter(torch.zeros(cfg.width))
        self.mlp_gate = nn.Parameter(torch.zeros(cfg.width))

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, backend: Backend
    ) -> torch.Tensor:
        x = x + self.attn_gate * self.attn(self.norm1(x), cos, sin, backend)
        return x + self.mlp_gate * self.mlp(self.norm2(x))


class ScalarEmbedder(nn.Module):
    """Sinusoid of the raw scalar (cos half, then sin half; no x1000) -> Linear -> SiLU -> Linear."""

    def __init__(self, width: int, freq_dim: int):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(
            _linear(freq_dim, width, 1.0, bias=True), nn.SiLU(), _linear(width, width, 1.0, bias=True)
        )

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        dtype = torch.promote_types(self.mlp[0].weight.dtype, torch.float32)
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=s.device, dtype=dtype) / half)
        args = s.to(dtype)[:, None] * freqs[None]  # (B, freq_dim/2)
        emb = torch.cat([args.cos(), args.sin()], dim=-1)  # (B, freq_dim)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))  # (B, D)


class BottleneckPatchEmbed(nn.Module):
    """Conv p x p (C -> d') then 1x1 conv (d' -> D), both with bias (JiT's bottleneck embedding)."""

    def __init__(self, cfg: PMFConfig):
        super().__init__()
        p = cfg.patch_size
        c_in = cfg.in_channels + cfg.cond_channels  # z_t, then the condition channels (if any)
        self.proj1 = nn.Conv2d(c_in, cfg.bottleneck, kernel_size=p, stride=p)
        self.proj2 = nn.Conv2d(cfg.bottleneck, cfg.width, kernel_size=1)
        # Xavier-uniform as for the equivalent linear layers, zero bias.
        for conv, fan_in, fan_out in (
            (self.proj1, p * p * c_in, cfg.bottleneck),
            (self.proj2, cfg.bottleneck, cfg.width),
        ):
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(conv.weight, -limit, limit)
            nn.init.zeros_(conv.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.proj2(self.proj1(z))  # (B, D, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class FinalLayer(nn.Module):
    """RMSNorm then a zero-initialised Linear to p*p*C pixels per token."""

    def __init__(self, cfg: PMFConfig):
        super().__init__()
        self.norm = RMSNorm(cfg.width)
        self.linear = nn.Linear(cfg.width, cfg.patch_size**2 * cfg.in_channels)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


def _tracing_or_capturing() -> bool:
    """True while torch.compile traces or a CUDA graph is being captured."""
    return torch.compiler.is_compiling() or (torch.cuda.is_available() and torch.cuda.is_current_stream_capturing())


# ------------------------------------------------------------------------------------------------
# The network


class PixelMeanFlow(nn.Module):
    """pMF network: x-prediction ViT whose forward returns velocities u (and the auxiliary v).

    Args:
        cfg: architecture.
        with_v_head: build the auxiliary v-head (needed for training only).
        attn_backend: default attention backend for plain forwards ("auto", "sdpa", "xformers",
            "math"); the MeanFlow JVP always runs the forward-AD-safe path regardless.
    """

    def __init__(self, cfg: PMFConfig, with_v_head: bool = True, attn_backend: Backend = "auto"):
        super().__init__()
        self.cfg = cfg
        self.attn_backend: Backend = attn_backend
        # The checkpoint's recommended guidance, {"guidance_scale": w, "guidance_interval": (t_min,
        # t_max)}, set by core.pretrained.from_pretrained for official checkpoints; pmf_edit tasks use
        # it where the caller passes no guidance. A plain attribute, not part of the weights.
        self.recommended_guidance: dict | None = None
        # The model's class names (a model folder's config.json, the ImageNet list for official checkpoints),
        # set by from_pretrained: pmf_edit tasks then take classes by name. Not part of the weights.
        self.class_names: list[str] | None = None
        # How to generate with this model, set by from_pretrained from its folder / official file: the
        # objective it was trained with ("pmf", or "fm" for flow matching, sampled by an ODE) and its own
        # sampling settings ({"num_steps", "guidance_scale", "guidance_interval"}), which pmf_edit.sample
        # uses where the caller passes none. Not part of the weights.
        self.objective: str = "pmf"
        self.recommended_sampling: dict | None = None
        D = cfg.width
        self.patch_embed = BottleneckPatchEmbed(cfg)
        self.h_embed = ScalarEmbedder(D, cfg.freq_dim)
        self.omega_embed = ScalarEmbedder(D, cfg.freq_dim)
        self.t_min_embed = ScalarEmbedder(D, cfg.freq_dim)
        self.t_max_embed = ScalarEmbedder(D, cfg.freq_dim)
        self.class_embed = nn.Embedding(cfg.num_classes + 1, D)  # last row: the null class
        nn.init.normal_(self.class_embed.weight, std=1.0 / math.sqrt(D))

        def tokens(n: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(1, n, D) / math.sqrt(D))

        self.class_tokens = tokens(cfg.class_tokens)
        self.omega_tokens = tokens(cfg.omega_tokens)
        self.t_min_tokens = tokens(cfg.interval_tokens)
        self.t_max_tokens = tokens(cfg.interval_tokens)
        self.h_tokens = tokens(cfg.h_tokens)
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.num_prefix + cfg.num_patches, D) * 0.02)

        shared = cfg.depth - cfg.head_depth
        self.shared_blocks = nn.ModuleList(Block(cfg) for _ in range(shared))
        self.u_blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.head_depth))
        self.u_final = FinalLayer(cfg)
        if cfg.backward_head:
            self.b_blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.head_depth))
            self.b_final = FinalLayer(cfg)
        self.has_v_head = with_v_head
        if with_v_head:
            self.v_blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.head_depth))
            self.v_final = FinalLayer(cfg)
        cos, sin = rope_tables(cfg.grid, cfg.width // cfg.num_heads, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    @property
    def null_class(self) -> int:
        return self.cfg.num_classes

    def num_params(self, include_v_head: bool = False) -> int:
        """Parameter count; the paper's tables exclude the v-head (it is not used at inference)."""
        n = sum(p.numel() for p in self.parameters())
        if self.has_v_head and not include_v_head:
            n -= sum(p.numel() for p in self.v_blocks.parameters())
            n -= sum(p.numel() for p in self.v_final.parameters())
        return n

    def _unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        B, g, p, C = x.shape[0], self.cfg.grid, self.cfg.patch_size, self.cfg.in_channels
        x = x.view(B, g, g, p, p, C)  # (B, gh, gw, p, p, C): pixel order (row, col, channel)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(B, C, g * p, g * p)  # (B, C, H, W)

    def _sequence(self, z, h, omega, t_min, t_max, y, cond=None) -> torch.Tensor:
        if self.cfg.cond_channels or cond is not None:
            z = torch.cat([z, self._check_cond(cond, z)], dim=1)  # (B, C + C_cond, H, W)

        def group(tok: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
            return tok + emb[:, None, :]  # (B, n, D)

        seq = torch.cat(
            [
                group(self.class_tokens, self.class_embed(y)),
                group(self.omega_tokens, self.omega_embed(1.0 - 1.0 / omega)),
                group(self.t_min_tokens, self.t_min_embed(t_min)),
                group(self.t_max_tokens, self.t_max_embed(t_max)),
                group(self.h_tokens, self.h_embed(h)),
                self.patch_embed(z),
            ],
            dim=1,
        )  # (B, P + N, D)
        return seq + self.pos_embed

    def predict_images(
        self,
        z: torch.Tensor,
        h: torch.Tensor,
        y: torch.Tensor,
        omega: torch.Tensor,
        t_min: torch.Tensor,
        t_max: torch.Tensor,
        heads: Heads = "u",
        backend: Backend | None = None,
        cond: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The raw x-predictions (x_u, x_v), each (B, C, H, W) or None when its head is skipped."""
        backend = backend or self.attn_backend
        cos, sin = self.rope_cos, self.rope_sin
        x = self._sequence(z, h, omega, t_min, t_max, y, cond)
        for blk in self.shared_blocks:
            x = blk(x, cos, sin, backend)
        P = self.cfg.num_prefix
        x_u = x_v = None
        if "u" in heads:
            bwd = h < 0  # (B,) rows with r > t go through the backward head
            if not self.cfg.backward_head:
                # The check reads a value back from the device, which a torch.compile graph (a graph
                # break) or a CUDA-graph capture (an error) cannot do: those skip it.
                if not _tracing_or_capturing() and bool(bwd.any()):
                    raise ValueError(
                        "r > t (a jump toward noise) needs a network trained with a backward head "
                        "(PMFConfig.backward_head=True); this one has none"
                    )
                x_u = self._head(x, self.u_blocks, self.u_final, backend)
            elif not bool(bwd.any()):
                x_u = self._head(x, self.u_blocks, self.u_final, backend)
            elif bool(bwd.all()):
                x_u = self._head(x, self.b_blocks, self.b_final, backend)
            else:  # mixed batch (training): each row through its own head, rows in their order
                fwd_rows, bwd_rows = (~bwd).nonzero(as_tuple=True)[0], bwd.nonzero(as_tuple=True)[0]
                out_f = self._head(x[fwd_rows], self.u_blocks, self.u_final, backend)
                out_b = self._head(x[bwd_rows], self.b_blocks, self.b_final, backend)
                x_u = torch.cat([out_f, out_b])[torch.cat([fwd_rows, bwd_rows]).argsort()]
        if "v" in heads:
            if not self.has_v_head:
                raise RuntimeError("this network was built without the v-head (inference only)")
            xv = x
            for blk in self.v_blocks:
                xv = blk(xv, cos, sin, backend)
            x_v = self._unpatchify(self.v_final(xv[:, P:]))
        return x_u, x_v

    def _check_cond(self, cond: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """The condition (B, cond_channels, H, W) of a conditional network, checked against z."""
        k = self.cfg.cond_channels
        if k == 0:
            raise ValueError("cond was given, but this network has no condition channels (cond_channels=0)")
        if cond is None:
            raise ValueError(f"this network is conditional: pass cond=(B, {k}, H, W) with every call")
        want = (z.shape[0], k, *z.shape[2:])
        if tuple(cond.shape) != want:
            raise ValueError(f"cond must be {want} to go with z {tuple(z.shape)}, got {tuple(cond.shape)}")
        return cond.to(z.dtype)

    def _head(self, x: torch.Tensor, blocks: nn.ModuleList, final: FinalLayer, backend: Backend) -> torch.Tensor:
        """Head blocks + final layer on trunk tokens (B, P + N, D) -> an image (B, C, H, W)."""
        for blk in blocks:
            x = blk(x, self.rope_cos, self.rope_sin, backend)
        return self._unpatchify(final(x[:, self.cfg.num_prefix :]))

    def forward(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        r: torch.Tensor,
        y: torch.Tensor | None = None,
        omega: torch.Tensor | None = None,
        t_min: torch.Tensor | None = None,
        t_max: torch.Tensor | None = None,
        heads: Heads = "u",
        backend: Backend | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Average velocity u(z_t, r, t) (heads="u"), the auxiliary v (heads="v"), or both.

        Args:
            z: (B, C, H, W) noisy state z_t, data in [-1, 1] scale.
            t, r: (B,) times in [0, 1] (t = 1 is noise); r <= t jumps toward data, r > t toward
                noise (needs ``cfg.backward_head``). Only h = t - r is embedded.
            y: (B,) int64 labels in [0, num_classes]; num_classes (the null class) when None.
            omega: (B,) guidance scale >= 1 (1 = unguided); 1 when None.
            t_min, t_max: (B,) guidance interval; [0, 1] when None.
            heads: "u", "v" or "uv" (returns the tuple (u, v)).
            backend: attention backend override for this call.
            cond: (B, cfg.cond_channels, H, W) condition of a conditional network (None otherwise);
                a constant of the map: a JVP takes tangents on z, t, r only.

        Returns:
            u and/or v, each (B, C, H, W) in z's dtype: (z - x_pred) / clip(t, t_clip, 1).
        """
        B = z.shape[0]
        ones = torch.ones(B, device=z.device, dtype=t.dtype)
        y = torch.full((B,), self.null_class, device=z.device, dtype=torch.long) if y is None else y
        omega = ones if omega is None else omega
        t_min = ones * 0 if t_min is None else t_min
        t_max = ones if t_max is None else t_max
        h = t - r  # built here so that a tangent on t reaches the h-embedding (dh/dt = 1)
        # A network stored in another float type (bf16 weights for CPU inference) computes in it and
        # returns u in the caller's dtype, with z - x_pred taken at the caller's precision.
        w = self.pos_embed.dtype
        zw, cw = (z, cond) if z.dtype == w else (z.to(w), None if cond is None else cond.to(w))
        x_u, x_v = self.predict_images(zw, h, y, omega, t_min, t_max, heads, backend, cw)
        x_u, x_v = (None if x is None else x.to(z.dtype) for x in (x_u, x_v))
        tc = t.clamp(self.cfg.t_clip, 1.0).view(B, 1, 1, 1).to(z.dtype)
        u = None if x_u is None else (z - x_u) / tc
        if u is not None and self.cfg.backward_head and self.cfg.backward_param == "noise":
            # Backward rows predicted the noise endpoint e: u = (s e - z) / clip(1 - t), so that a
            # jump to r = 1 lands on s e exactly. torch.where keeps the JVP's tangents row-wise.
            sc = (1 - t).clamp(self.cfg.t_clip, 1.0).view(B, 1, 1, 1).to(z.dtype)
            u_b = (self.cfg.noise_scale * x_u - z) / sc
            u = torch.where((h < 0).view(B, 1, 1, 1), u_b, u)
        v = None if x_v is None else (z - x_v) / tc
        if heads == "uv":
            return u, v
        return u if heads == "u" else v


# ------------------------------------------------------------------------------------------------
# Presets. Paper sizes (Tab. 5-7): depth counts the u path (shared + 8-block u-head); /16 at 256^2
# and /32 at 512^2 both give a 16x16 token grid. Small presets train on a CPU.

_PAPER = dict(num_classes=1000, in_channels=3, head_depth=8, bottleneck=128)
PRESETS: dict[str, PMFConfig] = {
    "pMF-B/16": PMFConfig(**_PAPER, image_size=256, patch_size=16, width=768, depth=16, num_heads=12),
    "pMF-B/32": PMFConfig(**{**_PAPER, "noise_scale": 2.0}, image_size=512, patch_size=32,
                          width=768, depth=16, num_heads=12),
    "pMF-L/16": PMFConfig(**_PAPER, image_size=256, patch_size=16, width=1024, depth=32, num_heads=16),
    "pMF-L/32": PMFConfig(**{**_PAPER, "noise_scale": 4.0}, image_size=512, patch_size=32,
                          width=1024, depth=32, num_heads=16),
    "pMF-H/16": PMFConfig(**{**_PAPER, "bottleneck": 256, "noise_scale": 2.0}, image_size=256,
                          patch_size=16, width=1280, depth=48, num_heads=16, mlp_hidden=3416),
    "pMF-H/32": PMFConfig(**{**_PAPER, "bottleneck": 256, "noise_scale": 4.0}, image_size=512,
                          patch_size=32, width=1280, depth=48, num_heads=16, mlp_hidden=3416),
    # CPU sizes. Fewer prefix tokens: at 64 image tokens the paper's 20 would be a third of the
    # sequence.
    "pMF-T/4": PMFConfig(image_size=32, patch_size=4, width=64, depth=4, head_depth=1, num_heads=2,
                         bottleneck=32, class_tokens=2, omega_tokens=1, interval_tokens=1,
                         h_tokens=1, freq_dim=64),
    "pMF-S/4": PMFConfig(image_size=32, patch_size=4, width=128, depth=6, head_depth=2,
                         num_heads=2, bottleneck=48, class_tokens=2, omega_tokens=1,
                         interval_tokens=1, h_tokens=1, freq_dim=64),
}


def build_model(
    preset: str | PMFConfig = "pMF-S/4", with_v_head: bool = True, **overrides
) -> PixelMeanFlow:
    """Build a network from a preset name (or a config) with optional field overrides.

    Example:
        >>> net = build_model("pMF-T/4", in_channels=3, num_classes=13)
        >>> net(torch.randn(2, 3, 32, 32), torch.ones(2), torch.zeros(2)).shape
        torch.Size([2, 3, 32, 32])
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        cfg = PRESETS[preset]
    else:
        cfg = preset
    return PixelMeanFlow(replace(cfg, **overrides), with_v_head=with_v_head)
