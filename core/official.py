"""Convert checkpoints of the authors' PyTorch pMF (``Lyy-iiis/pMF@torch``, ``models/pmfDiT.py``).

The official inference model ``pmfDiT`` computes exactly our ``PixelMeanFlow`` (same token order,
2D RoPE, qk-RMSNorm, SwiGLU, gates, x-prediction); only the parameter names differ:

    official (pmfDiT)                                      ours (PixelMeanFlow)
    x_embedder.proj{1,2}.{weight,bias}                     patch_embed.proj{1,2}.*
    h_embedder.mlp.{0,2}._flax_linear.{weight,bias}        h_embed.mlp.{0,2}.*
    omega_embedder / cfg_t_start_embedder / cfg_t_end_...  omega_embed / t_min_embed / t_max_embed
    y_embedder.embedding_table._flax_embedding.weight      class_embed.weight     (K + 1 rows)
    time_tokens / class_tokens / omega_tokens / t_m*_tokens h_tokens / class_tokens / ...
    {shared_blocks,u_heads,v_heads}.i.attn.q_proj._flax_linear.weight  {shared,u,v}_blocks.i.attn.q.weight
    ....attn.{q,k}_norm.weight, norm{1,2}.weight           same
    ....mlp.w{1,2,3}._flax_linear.weight                   same without ``_flax_linear``
    ....attn_scale / mlp_scale                             attn_gate / mlp_gate
    {u,v}_final_layer.norm.weight / .linear._flax_linear.*  {u,v}_final.norm.weight / .linear.*
    rope_freqs (complex buffer, persistent)                dropped after checking it equals our tables

How the released files look: ``evaluate.py`` does ``torch.load(path)`` then
``pixelMeanFlow.load_state_dict(ckpt, strict=False)``, and ``pixelMeanFlow`` holds the network as
``self.net``. So a released ``pMF-B-16.pt`` is a flat state dict whose keys start with ``net.`` and
that lacks the v-head (``eval_mode=True`` builds none); extra keys would be silently ignored by the
official loader. We also accept training-style files: ``{"model": sd, "ema": sd, ...}``, several EMA
copies (``ema_500`` / ``ema_1000`` / ``ema_2000``), and ``module.`` / ``_orig_mod.`` prefixes.

Noise scale and sampling defaults are not stored in the file; they are per model in the official code
(``pmf.py::pixelMeanFlow.noise_scale``) and in the paper (PMF_SPEC section 7), see ``OFFICIAL_MODELS``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping

import torch

from core.checkpoint import load_weights_into
from core.class_names import default_class_names
from core.model import PRESETS, PixelMeanFlow, PMFConfig, rope_tables

# ------------------------------------------------------------------------------------------------
# Official model sizes: noise scale (official pmf.py), best guidance + EMA (PMF_SPEC section 7).


@dataclass(frozen=True)
class OfficialModel:
    """Per-model settings that the official code hard-codes rather than stores in the checkpoint."""

    preset: str  # our preset with the same architecture
    noise_scale: float  # s in z_1 = s * e (official pmf.py)
    guidance_scale: float  # omega for 1-NFE sampling (paper's best FID)
    guidance_interval: tuple[float, float]  # [t_min, t_max]
    best_ema: str  # EMA half-life (kimg) with the best FID; used to pick among several copies


OFFICIAL_MODELS: dict[str, OfficialModel] = {
    "pmfDiT_B_16": OfficialModel("pMF-B/16", 1.0, 8.5, (0.1, 0.7), "2000"),
    "pmfDiT_B_32": OfficialModel("pMF-B/32", 2.0, 6.5, (0.1, 0.7), "2000"),
    "pmfDiT_L_16": OfficialModel("pMF-L/16", 1.0, 7.0, (0.2, 0.7), "1000"),
    "pmfDiT_L_32": OfficialModel("pMF-L/32", 4.0, 7.5, (0.2, 0.6), "2000"),
    "pmfDiT_H_16": OfficialModel("pMF-H/16", 2.0, 7.0, (0.2, 0.6), "1000"),
    "pmfDiT_H_32": OfficialModel("pMF-H/32", 4.0, 5.5, (0.1, 0.6), "500"),
}

# The torch branch's evaluate.py default (used for its README FID 3.15 of B/16); the JAX eval
# (FID 3.12) used 8.5 [0.1, 0.7], which we recommend above.
TORCH_BRANCH_B16_DEFAULTS = {"guidance_scale": 7.5, "guidance_interval": [0.1, 0.8]}

# ------------------------------------------------------------------------------------------------
# Key mapping. Each rule is (official template, our template); {name} is a placeholder whose
# allowed values are listed in _PLACEHOLDERS. The same table drives both directions.

_PLACEHOLDERS = {
    "i": r"\d+",
    "p": r"weight|bias",
    "j": r"[12]",
    "m": r"[02]",  # Linear layers inside nn.Sequential(Linear, SiLU, Linear)
    "qkvo": r"q|k|v|out",
    "qk": r"q|k",
    "w": r"w1|w2|w3",
    "tok": r"class|omega|t_min|t_max",
    "uv": r"u|v",
}

_TOP_RULES: list[tuple[str, str]] = [
    ("x_embedder.proj{j}.{p}", "patch_embed.proj{j}.{p}"),
    ("h_embedder.mlp.{m}._flax_linear.{p}", "h_embed.mlp.{m}.{p}"),
    ("omega_embedder.mlp.{m}._flax_linear.{p}", "omega_embed.mlp.{m}.{p}"),
    ("cfg_t_start_embedder.mlp.{m}._flax_linear.{p}", "t_min_embed.mlp.{m}.{p}"),
    ("cfg_t_end_embedder.mlp.{m}._flax_linear.{p}", "t_max_embed.mlp.{m}.{p}"),
    ("y_embedder.embedding_table._flax_embedding.weight", "class_embed.weight"),
    ("time_tokens", "h_tokens"),
    ("{tok}_tokens", "{tok}_tokens"),
    ("pos_embed", "pos_embed"),
    ("{uv}_final_layer.norm.weight", "{uv}_final.norm.weight"),
    ("{uv}_final_layer.linear._flax_linear.{p}", "{uv}_final.linear.{p}"),
]
_BLOCK_GROUPS = {"shared_blocks": "shared_blocks", "u_heads": "u_blocks", "v_heads": "v_blocks"}
_BLOCK_RULES: list[tuple[str, str]] = [
    ("norm{j}.weight", "norm{j}.weight"),
    ("attn.{qkvo}_proj._flax_linear.weight", "attn.{qkvo}.weight"),
    ("attn.{qk}_norm.weight", "attn.{qk}_norm.weight"),
    ("mlp.{w}._flax_linear.weight", "mlp.{w}.weight"),
    ("attn_scale", "attn_gate"),
    ("mlp_scale", "mlp_gate"),
]
for _off, _ours in list(_BLOCK_GROUPS.items()):
    _TOP_RULES += [(f"{_off}.{{i}}.{a}", f"{_ours}.{{i}}.{b}") for a, b in _BLOCK_RULES]

# Buffers of pmfDiT that are not parameters of ours (checked, then dropped).
_OFFICIAL_BUFFERS = ("rope_freqs",)
# Wrapper prefixes: pixelMeanFlow.net, DDP's module., torch.compile's _orig_mod.
_WRAPPER_PREFIXES = ("net.", "module.", "_orig_mod.", "model.")


def _compile(template: str) -> re.Pattern:
    parts = re.split(r"(\{\w+\})", template)
    rx = "".join(
        f"(?P<{p[1:-1]}>{_PLACEHOLDERS[p[1:-1]]})" if p.startswith("{") else re.escape(p)
        for p in parts
    )
    return re.compile(rx)


_TO_OURS = [(_compile(a), b) for a, b in _TOP_RULES]
_TO_OFFICIAL = [(_compile(b), a) for a, b in _TOP_RULES]


def _translate(key: str, rules: list[tuple[re.Pattern, str]]) -> str | None:
    for rx, template in rules:
        m = rx.fullmatch(key)
        if m:
            return template.format(**m.groupdict())
    return None


def official_to_ours_key(key: str) -> str:
    """Our parameter name for an official ``pmfDiT`` parameter name (wrapper prefixes removed).

    Example:
        >>> official_to_ours_key("shared_blocks.3.attn.q_proj._flax_linear.weight")
        'shared_blocks.3.attn.q.weight'

    Raises:
        KeyError: the name is not a ``pmfDiT`` parameter.
    """
    out = _translate(key, _TO_OURS)
    if out is None:
        raise KeyError(f"{key!r} is not a parameter name of the official pmfDiT")
    return out


def ours_to_official_key(key: str) -> str:
    """Inverse of ``official_to_ours_key``.

    Example:
        >>> ours_to_official_key("u_blocks.0.attn_gate")
        'u_heads.0.attn_scale'
    """
    out = _translate(key, _TO_OFFICIAL)
    if out is None:
        raise KeyError(f"{key!r} is not a parameter name of PixelMeanFlow")
    return out


def _strip_wrappers(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Remove prefixes shared by every key (``net.``, ``module.``, ...), repeatedly."""
    sd = dict(sd)
    changed = True
    while changed and sd:
        changed = False
        for pre in _WRAPPER_PREFIXES:
            if all(k.startswith(pre) for k in sd):
                sd = {k[len(pre):]: v for k, v in sd.items()}
                changed = True
    return sd


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def checkpoint_format(sd: Mapping[str, torch.Tensor]) -> str:
    """``"official"`` (pmfDiT names), ``"ours"`` (PixelMeanFlow names) or ``"unknown"``."""
    keys = _strip_wrappers(sd).keys()
    if "x_embedder.proj1.weight" in keys:
        return "official"
    if "patch_embed.proj1.weight" in keys:
        return "ours"
    return "unknown"


def convert_official_state_dict(
    sd: Mapping[str, torch.Tensor], *, with_v_head: bool = False
) -> dict[str, torch.Tensor]:
    """Rename an official ``pmfDiT`` state dict to ``PixelMeanFlow`` names.

    Args:
        sd: the official state dict (flat, tensors; ``net.`` / ``module.`` prefixes allowed).
        with_v_head: keep the auxiliary v-head (``v_heads.*``, ``v_final_layer.*``) when present;
            otherwise it is dropped (inference never uses it).

    Returns:
        A new dict with our names (tensors are shared, not copied). ``rope_freqs`` is dropped.

    Raises:
        ValueError: keys that are not ``pmfDiT`` parameters (all of them are listed), or
            ``with_v_head`` asked of a file without v-head weights.

    Example:
        >>> ours = convert_official_state_dict(torch.load("pMF-B-16.pt", weights_only=True))
    """
    sd = _strip_wrappers(sd)
    out, unknown = {}, []
    for key, value in sd.items():
        if key in _OFFICIAL_BUFFERS:
            continue
        new = _translate(key, _TO_OURS)
        if new is None:
            unknown.append(key)
        elif with_v_head or not new.startswith(("v_blocks.", "v_final.")):
            out[new] = value
    if unknown:
        raise ValueError(
            f"{len(unknown)} keys are not parameters of the official pmfDiT: {sorted(unknown)[:10]}"
            + (" ..." if len(unknown) > 10 else "")
        )
    if with_v_head and not any(k.startswith("v_blocks.") for k in out):
        raise ValueError(
            "with_v_head=True but the checkpoint has no v-head (v_heads.*): released inference "
            "checkpoints are saved from eval_mode=True, which builds none"
        )
    return out


def to_official_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a ``PixelMeanFlow`` state dict to official ``pmfDiT`` names (for export and tests).

    The official ``rope_freqs`` buffer is not added (``pmfDiT`` recomputes it at construction).
    """
    return {ours_to_official_key(k): v for k, v in sd.items()}


# ------------------------------------------------------------------------------------------------
# Config inference


def _count(sd: Mapping[str, torch.Tensor], group: str) -> int:
    idx = {int(k.split(".")[1]) for k in sd if k.startswith(group + ".")}
    if idx and idx != set(range(max(idx) + 1)):
        raise ValueError(f"{group} indices are not contiguous: {sorted(idx)}")
    return len(idx)


def identify_official_model(cfg: PMFConfig) -> str | None:
    """The official model name (e.g. ``"pmfDiT_B_16"``) with ``cfg``'s architecture, or None."""
    fields = ("image_size", "in_channels", "patch_size", "width", "depth", "head_depth",
              "num_heads", "bottleneck", "hidden")
    for name, info in OFFICIAL_MODELS.items():
        ref = PRESETS[info.preset]
        if all(getattr(cfg, f) == getattr(ref, f) for f in fields):
            return name
    return None


def infer_config(sd: Mapping[str, torch.Tensor], noise_scale: float | None = None) -> PMFConfig:
    """Rebuild the ``PMFConfig`` of a state dict with our names from its tensor shapes.

    Everything is read from shapes: patch size and channels from ``proj1`` (bottleneck, C, p, p),
    width from ``proj2``, token counts from the token blocks, image size from the length of
    ``pos_embed`` minus the prefix, head dim from ``q_norm`` (so heads = width / head dim), SwiGLU
    width from ``w1``, classes from the embedding table (K + 1 rows: the last is the null class).
    The noise scale is not stored: the official per-model value when the architecture is an
    official one, otherwise the paper's rule max(1, image_size / 256), unless given.

    Raises:
        ValueError: a required tensor is missing (not a pMF state dict) or shapes are inconsistent.
    """
    need = ["patch_embed.proj1.weight", "patch_embed.proj2.weight", "pos_embed", "class_tokens",
            "omega_tokens", "t_min_tokens", "t_max_tokens", "h_tokens", "class_embed.weight",
            "h_embed.mlp.0.weight", "u_blocks.0.attn.q_norm.weight", "u_blocks.0.mlp.w1.weight"]
    missing = [k for k in need if k not in sd]
    if missing:
        raise ValueError(f"not a pMF state dict: missing {missing}")
    bottleneck, channels, p, p2 = sd["patch_embed.proj1.weight"].shape
    width = sd["patch_embed.proj2.weight"].shape[0]
    ntok = {k: sd[f"{k}_tokens"].shape[1] for k in ("class", "omega", "t_min", "t_max", "h")}
    if ntok["t_min"] != ntok["t_max"]:
        raise ValueError(f"t_min_tokens ({ntok['t_min']}) and t_max_tokens ({ntok['t_max']}) differ")
    n_img = sd["pos_embed"].shape[1] - sum(ntok.values())
    grid = math.isqrt(max(n_img, 0))
    if p != p2 or n_img <= 0 or grid * grid != n_img:
        raise ValueError(
            f"pos_embed {tuple(sd['pos_embed'].shape)} minus {sum(ntok.values())} prefix tokens "
            f"is not a square grid of patches (proj1 kernel {p}x{p2})"
        )
    head_dim = sd["u_blocks.0.attn.q_norm.weight"].shape[0]
    hidden = sd["u_blocks.0.mlp.w1.weight"].shape[0]
    head_depth = _count(sd, "u_blocks")
    cfg = PMFConfig(
        image_size=grid * p,
        in_channels=channels,
        patch_size=p,
        width=width,
        depth=_count(sd, "shared_blocks") + head_depth,
        head_depth=head_depth,
        num_heads=width // head_dim,
        bottleneck=bottleneck,
        mlp_hidden=0 if hidden == int(width * 8 / 3) else hidden,
        num_classes=sd["class_embed.weight"].shape[0] - 1,
        class_tokens=ntok["class"],
        omega_tokens=ntok["omega"],
        interval_tokens=ntok["t_min"],
        h_tokens=ntok["h"],
        freq_dim=sd["h_embed.mlp.0.weight"].shape[1],
    )
    name = identify_official_model(cfg)
    if noise_scale is None:
        noise_scale = OFFICIAL_MODELS[name].noise_scale if name else max(1.0, cfg.image_size / 256)
    return replace(cfg, noise_scale=float(noise_scale))


# ------------------------------------------------------------------------------------------------
# Picking one state dict out of a checkpoint file


def _candidates(obj: Any) -> dict[str, dict[str, torch.Tensor]]:
    """Every flat pMF state dict in ``obj`` (top level or one/two dict levels down), by path."""
    found: dict[str, dict[str, torch.Tensor]] = {}

    def visit(o: Any, path: str, depth: int) -> None:
        if _is_state_dict(o):
            if checkpoint_format(o) != "unknown":
                found[path or "<top level>"] = dict(o)
        elif isinstance(o, Mapping) and depth < 2:
            for k, v in o.items():
                visit(v, f"{path}.{k}" if path else str(k), depth + 1)

    visit(obj, "", 0)
    return found


def select_state_dict(obj: Any, ema: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Pick the weights to load from a loaded checkpoint object.

    Args:
        obj: what ``torch.load`` returned: a flat state dict, or a dict holding several (e.g.
            ``{"model": ..., "ema": ...}`` or ``{"ema_500": ..., "ema_1000": ..., "ema_2000": ...}``).
        ema: which entry: its exact path (``"model"``, ``"ema.ema_2000"``) or a unique substring
            (``"2000"``). None: the only one; else the only EMA entry; else the EMA with the
            paper's best half-life for this model size (PMF_SPEC section 6).

    Returns:
        (state dict, entry path).

    Raises:
        ValueError: no pMF weights in ``obj`` (lists what is there), or the choice is ambiguous
            (lists the entries so the caller can pass ``ema=``).
    """
    cands = _candidates(obj)
    if not cands:
        what = sorted(map(str, obj.keys()))[:20] if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(
            "not a pMF checkpoint: no state dict with pMF parameter names (x_embedder.proj1.weight "
            f"or patch_embed.proj1.weight) found; top level holds {what}"
        )
    names = sorted(cands)
    if ema is not None:
        hits = [n for n in names if n == ema] or [n for n in names if ema in n]
        if len(hits) != 1:
            raise ValueError(f"ema={ema!r} matches {hits or 'nothing'}; entries are {names}")
        return cands[hits[0]], hits[0]
    if len(names) == 1:
        return cands[names[0]], names[0]
    emas = [n for n in names if "ema" in n.lower()]
    if len(emas) == 1:
        return cands[emas[0]], emas[0]
    if emas:
        sd = _to_ours(cands[emas[0]], with_v_head=False)
        model = identify_official_model(infer_config(sd))
        if model:
            best = [n for n in emas if re.search(rf"(?<!\d){OFFICIAL_MODELS[model].best_ema}(?!\d)", n)]
            if len(best) == 1:
                return cands[best[0]], best[0]
    raise ValueError(f"checkpoint holds several weight sets {names}; choose one with ema=...")


def _to_ours(sd: Mapping[str, torch.Tensor], with_v_head: bool = True) -> dict[str, torch.Tensor]:
    if checkpoint_format(sd) == "official":
        return convert_official_state_dict(sd, with_v_head=with_v_head)
    sd = _strip_wrappers(sd)
    if not with_v_head:
        sd = {k: v for k, v in sd.items() if not k.startswith(("v_blocks.", "v_final."))}
    return sd


# ------------------------------------------------------------------------------------------------
# Building the network


def _check_rope(rope: torch.Tensor, cfg: PMFConfig) -> None:
    """The official complex RoPE table must equal our (cos, sin) tables; else the math differs."""
    cos, sin = rope_tables(cfg.grid, cfg.width // cfg.num_heads, cfg.rope_theta)
    if rope.shape != cos.shape or not rope.is_complex():
        raise ValueError(f"rope_freqs: checkpoint {tuple(rope.shape)} vs model {tuple(cos.shape)}")
    err = max((rope.real - cos).abs().max().item(), (rope.imag - sin).abs().max().item())
    if err > 1e-4:  # fp32 round-off of angles up to grid-1 radians is ~1e-6
        raise ValueError(f"rope_freqs differs from our 2D RoPE tables by {err:.2e} (other theta?)")


def load_official(
    obj: Any,
    *,
    device: str | torch.device = "cpu",
    ema: str | None = None,
    with_v_head: bool = False,
    noise_scale: float | None = None,
    config: PMFConfig | None = None,
    source: str = "checkpoint",
) -> tuple[PixelMeanFlow, dict[str, Any]]:
    """Build a ``PixelMeanFlow`` from a loaded official (or our-named) checkpoint object.

    Args:
        obj: what ``torch.load`` returned (see ``select_state_dict``).
        device: where the network lives.
        ema: which weight set when the file holds several (see ``select_state_dict``).
        with_v_head: keep the auxiliary v-head (only training-mode files have one).
        noise_scale: override the inferred noise scale.
        config: use this architecture instead of inferring it; shapes are then checked against it.
        source: a name for error messages (the file path).

    Returns:
        (network in eval mode, config dict) where the dict has ``"model"`` (PMFConfig fields),
        ``"objective"``, ``"sampling"`` (recommended guidance_scale, guidance_interval, num_steps,
        noise_scale), ``"source"`` (file, entry, official model name) and, for 1000-class
        (ImageNet) networks, ``"class_names"`` (``core.class_names.imagenet_class_names``).

    Raises:
        ValueError: not a pMF checkpoint, unknown keys, or a shape mismatch (names the key in both
            conventions and both shapes).

    Example:
        >>> net, info = load_official(torch.load("pMF-B-16.pt", weights_only=True))
        >>> info["sampling"]["guidance_scale"]
        8.5
    """
    raw, entry = select_state_dict(obj, ema)
    fmt = checkpoint_format(raw)
    sd = _to_ours(raw, with_v_head=with_v_head)
    if with_v_head and not any(k.startswith("v_blocks.") for k in sd):
        raise ValueError(f"{source}: with_v_head=True but entry {entry!r} has no v-head weights")
    inferred = infer_config(sd, noise_scale)
    cfg = config if config is not None else inferred
    if config is not None and noise_scale is not None:
        cfg = replace(cfg, noise_scale=float(noise_scale))

    # Build without random init (a 1B-parameter init takes seconds), then fill every tensor.
    with torch.device("meta"):
        net = PixelMeanFlow(cfg, with_v_head=with_v_head)
    own = net.state_dict()
    name_in_file = (lambda k: ours_to_official_key(k)) if fmt == "official" else (lambda k: k)
    bad = [f"{name_in_file(k)} (ours: {k}): checkpoint {tuple(v.shape)} vs model "
           f"{tuple(own[k].shape)}" for k, v in sd.items() if k in own and v.shape != own[k].shape]
    if bad:
        raise ValueError(f"{source}: {len(bad)} shape mismatches, e.g. " + "; ".join(bad[:3]))
    # to_empty leaves memory uninitialised, so every tensor must come from the file (including
    # the v-head when asked for, which load_weights_into tolerates missing).
    missing = [k for k in own if k not in sd]
    if missing:
        raise ValueError(f"{source}: entry {entry!r} lacks {len(missing)} tensors, e.g. "
                         f"{[name_in_file(k) for k in missing[:5]]}")
    net = net.to_empty(device=device)
    load_weights_into(net, sd, source)  # strict: names every missing/unexpected key
    cos, sin = rope_tables(cfg.grid, cfg.width // cfg.num_heads, cfg.rope_theta)
    net.rope_cos.copy_(cos)
    net.rope_sin.copy_(sin)
    rope = _strip_wrappers(raw).get("rope_freqs")
    if rope is not None:
        _check_rope(rope, cfg)

    name = identify_official_model(cfg)
    info = OFFICIAL_MODELS.get(name) if name else None
    sampling: dict[str, Any] = {"num_steps": 1, "noise_scale": cfg.noise_scale}
    if info:
        sampling.update(guidance_scale=info.guidance_scale,
                        guidance_interval=list(info.guidance_interval))
        if name == "pmfDiT_B_16":
            sampling["torch_branch_defaults"] = dict(TORCH_BRANCH_B16_DEFAULTS)
    else:  # not an official size: unguided is the only safe default
        sampling.update(guidance_scale=1.0, guidance_interval=[0.0, 1.0])
    config_dict = {
        "model": cfg.to_dict(),
        "objective": "pmf",
        "sampling": sampling,
        "source": {"file": source, "entry": entry, "format": fmt, "official_model": name},
    }
    # The official checkpoints are ImageNet-1k models: name their classes from the shipped list.
    class_names = default_class_names(cfg.num_classes)
    if class_names is not None:
        config_dict["class_names"] = class_names
    return net.eval(), config_dict
