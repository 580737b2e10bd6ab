"""Tiny networks shared by several test modules."""
from __future__ import annotations

import torch

from core.model import PixelMeanFlow, build_model


def tiny_rgb_net(num_classes: int = 5) -> PixelMeanFlow:
    """pMF-T/4, RGB, no v-head, seed 0, with its residual gates and output layer moved off zero:
    at init the gates are zero and every block is the identity, so attention (and any injection
    into it) would change nothing."""
    torch.manual_seed(0)
    m = build_model("pMF-T/4", in_channels=3, num_classes=num_classes, with_v_head=False).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("_gate") or name.startswith("u_final.linear"):
                p.normal_(0.0, 0.1)
    return m
