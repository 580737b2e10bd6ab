"""Suite-wide settings.

Tiny models run fastest on one thread, and a shared or loaded machine makes torch's intra-op
threads wait on each other (a 40-step test took 7 minutes with 2 threads under load, 10 s with 1).
"""
import pytest
import torch

from core.model import PixelMeanFlow, build_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def net() -> PixelMeanFlow:
    """The editing tests' network: a random grey pMF-T/4 (10 classes, 32x32) whose output layer is moved
    off its zero init, so images depend on noise and class. A module that defines its own ``net`` uses that."""
    torch.manual_seed(0)
    m = build_model("pMF-T/4", with_v_head=False).eval()
    with torch.no_grad():
        m.u_final.linear.weight.normal_(0, 0.05)
        m.u_final.linear.bias.normal_(0, 0.05)
    return m
