"""benchmarks/style_quality.py: the folded-gradient excess finds a mesh of the folded period only,
and the lightness-std ratio measures lost contrast."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmarks.style_quality import folded_gradient_excess, folded_gradient_ratio, lightness_std_ratio


def _smooth_image(h: int = 128, w: int = 160, seed: int = 0) -> torch.Tensor:
    """A picture-like image: smooth random colour field with edges at random places."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return F.interpolate(lo, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def test_excess_is_one_for_the_content_and_finds_a_mesh_of_its_period():
    c = _smooth_image()
    assert float(folded_gradient_excess(c, c, 4)) == pytest.approx(1.0)
    mesh = c.clone()
    mesh[..., ::4] = (mesh[..., ::4] * 0.92)  # a faint dark line every 4 columns
    assert float(folded_gradient_excess(mesh, c, 4)) > 1.2
    # Not periodic at 7: folding at another period sees (almost) no excess.
    assert float(folded_gradient_excess(mesh, c, 7)) < 1.05
    # A change everywhere (brightness) is not a mesh.
    assert float(folded_gradient_excess((c * 0.8 + 0.1), c, 4)) == pytest.approx(1.0, abs=0.01)
    assert float(folded_gradient_ratio(c, 4)) >= 1.0


def test_lightness_std_ratio():
    c = _smooth_image()
    assert float(lightness_std_ratio(c, c)) == pytest.approx(1.0)
    flat = 0.5 + 0.25 * (c - 0.5)
    assert 0.15 < float(lightness_std_ratio(flat, c)) < 0.4


def test_bad_inputs():
    c = _smooth_image()
    with pytest.raises(ValueError, match="period must be an integer >= 2"):
        folded_gradient_excess(c, c, 1)
    with pytest.raises(ValueError, match="too small to fold at period 100"):
        folded_gradient_excess(c, c, 100)
    with pytest.raises(ValueError, match="must have one shape"):
        folded_gradient_excess(c, c[..., :64], 4)
