"""Style transfer: "this picture, in that style", and the baselines it is measured against.

    transfer.py    ``style_transfer`` through the pMF velocity field (the style branch reaches the
                   content through the attention-processor hook of ``core.model.Attention``)
    texture.py     the style image's own texture placed by correspondence at full resolution (the
                   detail a 32x32 network cannot draw; ``style_transfer(texture=...)``)
    baselines.py   Reinhard colour transfer, Gatys optimisation, and the style/content metrics

Example:
    >>> from pmf_edit.style import style_transfer
    >>> out = style_transfer(net, content01, style01, strength=0.6)
"""
from __future__ import annotations

from pmf_edit.style import transfer
from pmf_edit.style.baselines import GatysConfig, gatys_transfer, reinhard_transfer, style_scores
from pmf_edit.style.transfer import (DEFAULT_ATTENTION_TEMPERATURE, DEFAULT_INJECT_FROM, DEFAULT_INJECTION_WEIGHT,
                                     DEFAULT_METHOD, DEFAULT_RESIDUAL, DEFAULT_STRENGTH, DEFAULT_TEXTURE,
                                     StyleResult, resolve_style_class, style_transfer)
from pmf_edit.style.texture import TextureConfig, synthesize_texture

__all__ = [
    "StyleResult", "style_transfer", "resolve_style_class", "reinhard_transfer", "gatys_transfer", "GatysConfig",
    "style_scores", "DEFAULT_STRENGTH", "DEFAULT_METHOD", "DEFAULT_RESIDUAL", "DEFAULT_INJECT_FROM",
    "DEFAULT_INJECTION_WEIGHT", "DEFAULT_ATTENTION_TEMPERATURE", "DEFAULT_TEXTURE", "TextureConfig",
    "synthesize_texture",
]


def __getattr__(name: str):
    # Every other name of the former flat module pmf_edit/style.py (now transfer.py) still resolves here.
    try:
        return getattr(transfer, name)
    except AttributeError:
        raise AttributeError(f"module 'pmf_edit.style' has no attribute {name!r}") from None
