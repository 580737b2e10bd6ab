"""The hybrid inversion (method="hybrid"): fixed-point solver on [0, switch * t], backward jumps to t.

Checked on the exact Gaussian flow (tests/gaussian_flow.py), whose backward field is exact, so every
loss of accuracy comes from the method itself.
"""
from __future__ import annotations

import pytest
import torch

import pmf_edit
from core.model import build_model
from pmf_edit import velocity as vf
from tests.gaussian_flow import GaussianMeanFlow, gaussian_flow


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _flow_images(net, n: int, seed: int, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(noise e, the exact flow's image of e in [-1, 1]): an exact latent exists for each image."""
    e = 0.3 * torch.randn(n, 1, 32, 32, generator=_gen(seed), dtype=torch.float64)  # images stay inside [-1, 1]
    x = vf.jump(net, e, 1.0, 0.0, labels)
    assert x.min() > -1 and x.max() < 1
    return e, x


def test_switch_zero_is_the_backward_jump_itself():
    net = gaussian_flow().double()
    y = torch.tensor([0, 3, 9])
    _, x = _flow_images(net, 3, 0, y)
    for t_end, K in ((1.0, 1), (0.7, 2)):
        hyb = vf.invert_hybrid(net, x, t_end, y, switch=0.0, num_iterations=5, num_jumps=K)
        bwd = vf.invert_backward(net, x, t_end, y, num_steps=K, num_refinements=0)
        assert hyb.nfe == K  # no solver interval: the updates are not spent
        assert torch.equal(hyb.latents, bwd.latents)
        assert hyb.residual != hyb.residual  # NaN: no solver ran


def test_hybrid_recovers_the_exact_noise_and_counts_evaluations():
    net = gaussian_flow().double()
    y = torch.tensor([1, 4, 7])
    e, x = _flow_images(net, 3, 1, y)
    inv = vf.invert_hybrid(net, x, 1.0, y, switch=0.4, num_iterations=25, num_jumps=2)
    assert inv.nfe == 25 + 2
    assert inv.residual < 1e-10  # the solver converged on [0, 0.4]
    assert (inv.latents - e).abs().max() < 1e-8  # ... and the exact backward jumps carried it to the noise
    # Few updates: an approximate z_{0.4}, so a larger miss, but the same shape and dtype.
    rough = vf.invert_hybrid(net, x, 1.0, y, switch=0.4, num_iterations=1)
    assert rough.latents.shape == x.shape and rough.latents.dtype == x.dtype and rough.nfe == 2
    assert (rough.latents - e).abs().max() > (inv.latents - e).abs().max()


def test_hybrid_through_the_tasks_shapes_ranges_and_nfe():
    net = gaussian_flow().double()
    y = torch.tensor([2, 5])
    _, x = _flow_images(net, 2, 2, y)
    images = (x + 1) / 2
    inv = pmf_edit.invert(net, images, labels=y, method="hybrid")
    assert inv.nfe == vf.HYBRID_ITERATIONS + 1 and inv.latents.shape == images.shape
    assert inv.latents.dtype == images.dtype and inv.t == 1.0
    rec = pmf_edit.reconstruct(net, images, labels=y, method="hybrid", num_iterations=25, switch=0.5)
    assert rec.nfe == 25 + 1 + 1
    assert rec.images.shape == images.shape and rec.images.min() >= 0 and rec.images.max() <= 1
    assert (rec.images - images).abs().max() < 1e-6  # exact flow: the round trip closes
    # The fixed-point default is unchanged by num_iterations=None (7 updates).
    assert pmf_edit.invert(net, images, labels=y, method="fixed-point").nfe == vf.DEFAULT_ITERATIONS


def test_hybrid_edit_swaps_the_class_on_the_exact_flow():
    net = gaussian_flow().double()
    src, tgt = torch.tensor([2, 5]), torch.tensor([8, 0])
    e, x_src = _flow_images(net, 2, 3, src)
    x_tgt = vf.jump(net, e, 1.0, 0.0, tgt)  # what the exact latent regenerates under the target class
    to01 = lambda z: (z + 1) / 2  # noqa: E731
    out = pmf_edit.edit(net, to01(x_src), source_labels=src, labels=tgt, guidance_scale=1.0, method="hybrid",
                        switch=0.5, num_iterations=25, generator=_gen(0), change_gate=None)  # the exact edit
    assert out.nfe == 25 + 1 + 1
    assert (out.images - to01(x_tgt).clamp(0, 1)).abs().max() < 1e-6


@pytest.mark.parametrize("switch", [1.0, -0.1, float("nan"), 1.5])
def test_bad_switch_is_refused_by_name(switch):
    net = gaussian_flow().double()
    images = torch.full((1, 1, 32, 32), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match="switch"):
        pmf_edit.invert(net, images, labels=1, method="hybrid", switch=switch)
    with pytest.raises(ValueError, match="switch"):
        vf.invert_hybrid(net, images * 2 - 1, 1.0, 1, switch=switch)


def test_hybrid_needs_a_backward_head():
    plain = GaussianMeanFlow(build_model("pMF-T/4", with_v_head=False).cfg, with_v_head=False).eval()
    images = torch.full((1, 1, 32, 32), 0.5)
    with pytest.raises(ValueError, match="backward head"):
        pmf_edit.reconstruct(plain, images, labels=1, method="hybrid")
    with pytest.raises(ValueError, match="backward head"):
        vf.invert_hybrid(plain, images * 2 - 1)
    with pytest.raises(ValueError, match="num_jumps"):
        vf.invert_hybrid(gaussian_flow(), images * 2 - 1, num_jumps=0)


def test_auto_is_the_hybrid_for_edits_only_and_only_with_a_backward_head():
    net = gaussian_flow().double()
    src, tgt = torch.tensor([2, 5]), torch.tensor([8, 0])
    _, x_src = _flow_images(net, 2, 4, src)
    images = (x_src + 1) / 2
    kw = dict(source_labels=src, labels=tgt, guidance_scale=1.0, num_iterations=3)
    auto = pmf_edit.edit(net, images, generator=_gen(1), **kw)
    hybrid = pmf_edit.edit(net, images, generator=_gen(1), method="hybrid", **kw)
    fixed = pmf_edit.edit(net, images, generator=_gen(1), method="fixed-point", **kw)
    assert auto.nfe == hybrid.nfe == 3 + 1 + 1 and fixed.nfe == 3 + 1
    assert torch.equal(auto.images, hybrid.images)
    # the round trip's "auto" stays the solver (measured better there), also on this network
    assert pmf_edit.invert(net, images, labels=src, num_iterations=3).nfe == 3
    plain = GaussianMeanFlow(build_model("pMF-T/4", with_v_head=False).cfg, with_v_head=False).double().eval()
    assert pmf_edit.edit(plain, images, generator=_gen(1), **kw).nfe == 3 + 1  # no backward head: the solver


def test_cli_inversion_flag(tmp_path, capsys):
    import json

    import imageio.v3 as iio
    import numpy as np

    from apps.cli import main
    from core.checkpoint import save_model

    torch.manual_seed(0)
    dirs = {}
    for name, head in (("bidir", True), ("plain", False)):
        dirs[name] = tmp_path / name
        save_model(dirs[name], build_model("pMF-T/4", with_v_head=False, backward_head=head).eval(), objective="pmf",
                   class_names=[f"c{i}" for i in range(10)])
    img = str(tmp_path / "in.png")
    iio.imwrite(img, (np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8))
    capsys.readouterr()
    assert main(["invert", img, "--model", str(dirs["bidir"]), "--label", "1", "--inversion", "hybrid",
                 "--switch", "0.5", "--iterations", "1", "--out", str(tmp_path / "inv.npy"),
                 "--reconstruction", str(tmp_path / "rec.png")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["nfe"] == 1 + 1 + 1 and report["inversion"] == "hybrid"  # update + jump + regeneration
    assert np.load(tmp_path / "inv.npy").shape == (1, 32, 32) and iio.imread(tmp_path / "rec.png").shape == (32, 32)
    assert main(["edit", img, "--model", str(dirs["bidir"]), "--target", "3", "--source", "1",
                 "--out", str(tmp_path / "e.png")]) == 0  # auto on a backward-head model: the hybrid
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["nfe"] == 2 + 1 + 1
    assert main(["invert", img, "--model", str(dirs["plain"]), "--inversion", "hybrid",
                 "--out", str(tmp_path / "inv2.npy")]) != 0
    assert "backward head" in capsys.readouterr().err
    assert main(["invert", img, "--model", str(dirs["bidir"]), "--inversion", "hybrid", "--switch", "1",
                 "--out", str(tmp_path / "inv3.npy")]) != 0
    assert "switch" in capsys.readouterr().err
