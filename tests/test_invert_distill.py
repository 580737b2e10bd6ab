"""The inversion-distillation objective (core/invert_distill.py, ``pmf train --objective invert``) and the
seeded solver it feeds (``velocity.invert_seeded``, ``method="seeded"``).

The loss's formulas are checked on the exact Gaussian flow (tests/gaussian_flow.py), whose backward
field is the exact inverse of its generator: both terms vanish there and not for a perturbed inverse.
"""
from __future__ import annotations

import json

import pytest
import torch

import pmf_edit
from core.checkpoint import load_model, save_model
from core.data import load_dataset
from core.invert_distill import (InvertDistillConfig, draw_invert_rows, invert_distill_loss_given,
                                 trainable_parameters)
from core.model import build_model
from core.train import TrainConfig, train
from pmf_edit import velocity as vf
from tests.gaussian_flow import GaussianMeanFlow, gaussian_flow


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_draws_do_not_depend_on_how_the_batch_is_split():
    x = torch.zeros(8, 1, 16, 16)
    cfg = InvertDistillConfig(endpoint_prob=0.5, r_min=0.3)
    whole = draw_invert_rows(x, cfg, 10, seed=3, start=0, global_batch=8)
    half = draw_invert_rows(x[5:], cfg, 10, seed=3, start=5, global_batch=8)
    for name in ("e", "generated", "r", "omega", "y_gen", "drop"):
        assert torch.equal(getattr(whole, name)[5:], getattr(half, name)), name
    big = draw_invert_rows(torch.zeros(4000, 1, 2, 2), cfg, 10, seed=0, start=0, global_batch=4000)
    assert big.r.min() >= 0.3 and big.r.max() <= 1.0
    assert 0.45 < float((big.r == 1).float().mean()) < 0.55  # endpoint_prob
    assert 0.45 < float(big.generated.float().mean()) < 0.55  # generated_share 0.5
    assert big.omega.min() >= 1.0 and big.omega.max() <= 8.0 and big.y_gen.max() <= 9
    with pytest.raises(ValueError, match="outside"):
        draw_invert_rows(x, cfg, 10, seed=0, start=4, global_batch=8)


@pytest.mark.parametrize("bad", [dict(generated_share=1.5), dict(r_min=0.0), dict(latent_weight=-1.0),
                                 dict(latent_weight=0.0, roundtrip_weight=0.0), dict(endpoint_prob=float("nan"))])
def test_config_refuses_bad_values_by_name(bad):
    with pytest.raises(ValueError, match=next(iter(bad)) if "weight=0" not in str(bad) else "weight"):
        InvertDistillConfig(**bad)


class _WrongInverse(GaussianMeanFlow):
    """The exact flow with its backward field 10% too long: a wrong inverse."""

    def forward(self, z, t, r, y=None, omega=None, **kw):
        u = super().forward(z, t, r, y, omega, **kw)
        return torch.where((t < r).view(-1, 1, 1, 1), 1.1 * u, u)


def _gaussian_batch(net, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.randint(0, 10, (n,), generator=_gen(seed))
    x = vf.jump(net, 0.3 * torch.randn(n, 1, 32, 32, generator=_gen(seed + 1), dtype=torch.float64), 1.0, 0.0, y)
    return x, y


def test_both_terms_vanish_for_the_exact_inverse_and_not_for_a_wrong_one():
    net = gaussian_flow().double()
    x, y = _gaussian_batch(net, 16, 0)
    cfg = InvertDistillConfig(endpoint_prob=0.5)
    draws = draw_invert_rows(x, cfg, 10, seed=1, start=0, global_batch=16)
    assert bool(draws.generated.any()) and bool((~draws.generated).any()) and bool((draws.r < 1).any())
    _, exact = invert_distill_loss_given(net, x, y, draws, cfg)
    assert exact["loss_latent"] < 1e-20 and exact["loss_roundtrip"] < 1e-20
    wrong = _WrongInverse(net.cfg, with_v_head=False).double().eval()
    _, off = invert_distill_loss_given(wrong, x, y, draws, cfg)
    assert off["loss_latent"] > 1e-4 and off["loss_roundtrip"] > 1e-4 and off["roundtrip_data"] > 1e-4


def test_seeded_solver_on_the_exact_flow_recovers_the_noise_and_counts_evaluations():
    net = gaussian_flow().double()
    y = torch.tensor([1, 4, 7])
    e = 0.3 * torch.randn(3, 1, 32, 32, generator=_gen(2), dtype=torch.float64)
    x = vf.jump(net, e, 1.0, 0.0, y)
    inv = vf.invert_seeded(net, x, 1.0, y, num_iterations=1)
    assert inv.nfe == 2 and (inv.latents - e).abs().max() < 1e-10  # the exact jump: nothing left to solve
    images = (x + 1) / 2
    rec = pmf_edit.reconstruct(net, images, labels=y, method="seeded")
    assert rec.nfe == 1 + vf.SEEDED_ITERATIONS + 1 and (rec.images - images).abs().max() < 1e-8
    # At t < 1 the seed is the exact state too: the class-swap edit regenerates the target's image.
    src, tgt = torch.tensor([2, 5]), torch.tensor([8, 0])
    e2 = 0.3 * torch.randn(2, 1, 32, 32, generator=_gen(3), dtype=torch.float64)
    x_src = vf.jump(net, e2, 1.0, 0.0, src)
    out = pmf_edit.edit(net, (x_src + 1) / 2, source_labels=src, labels=tgt, guidance_scale=1.0, method="seeded",
                        num_iterations=2, change_gate=None)  # the exact edit, not gated toward the source
    assert out.nfe == 1 + 2 + 1
    assert (out.images - ((vf.jump(net, e2, 1.0, 0.0, tgt) + 1) / 2).clamp(0, 1)).abs().max() < 1e-8


def test_seeded_solver_improves_a_wrong_seed_and_needs_a_backward_head():
    wrong = _WrongInverse(gaussian_flow().cfg, with_v_head=False).double().eval()
    y = torch.tensor([3, 6])
    e = 0.3 * torch.randn(2, 1, 32, 32, generator=_gen(4), dtype=torch.float64)
    x = vf.jump(wrong, e, 1.0, 0.0, y)
    seed_only = vf.jump(wrong, x, 0.0, 1.0, y)
    solved = vf.invert_seeded(wrong, x, 1.0, y, num_iterations=6).latents
    assert (solved - e).abs().max() < 0.1 * (seed_only - e).abs().max()
    plain = GaussianMeanFlow(build_model("pMF-T/4", with_v_head=False).cfg, with_v_head=False).eval()
    with pytest.raises(ValueError, match="backward head"):
        pmf_edit.invert(plain, torch.full((1, 1, 32, 32), 0.5), labels=1, method="seeded")
    with pytest.raises(ValueError, match="num_iterations"):
        vf.invert_seeded(gaussian_flow(), x.float(), 1.0, y, num_iterations=0)


@pytest.fixture(scope="module")
def mnist_small():
    ds = load_dataset("mnist")
    return ds.subset(torch.arange(0, len(ds), 45))  # 100 images, every class


def test_invert_run_trains_only_the_backward_head(tmp_path, mnist_small):
    torch.manual_seed(0)
    gen = build_model("pMF-T/4", with_v_head=False)
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_model(tmp_path / "gen", gen, objective="pmf", class_names=[str(i) for i in range(10)],
               sampling={"guidance_scale": 3.5, "guidance_interval": [0.0, 1.0], "num_steps": 1})
    run = tmp_path / "run"
    cfg = TrainConfig(out_dir=str(run), dataset="mnist", preset="pMF-T/4", objective="invert",
                      init_from=str(tmp_path / "gen"), steps=3, batch_size=8, lr=1e-3, log_every=1, sample_every=0,
                      ckpt_every=3, progress=False, threads=1, ema_halflife_kimg=(0.001,), ema_rampup=0.0)
    train(cfg, dataset=mnist_small)
    out, meta = load_model(run / "model")
    assert out.cfg.backward_head and out.cfg.backward_from == "data" and meta["objective"] == "pmf"
    assert meta["sampling"]["guidance_scale"] == 3.5  # the frozen generator's recommended guidance
    heads = set(trainable_parameters(out))
    src = gen.state_dict()
    for k, v in out.state_dict().items():
        if k in heads:
            continue
        assert torch.equal(v, src[k]), f"{k} changed: the generator must stay frozen"
    assert any(not torch.equal(out.state_dict()[k], torch.zeros_like(out.state_dict()[k]))
               for k in heads if k.startswith("b_final."))  # the zero-initialised noise head moved
    log = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    assert [d["step"] for d in log] == [1, 2, 3] and all("loss_roundtrip" in d for d in log)
    with pytest.raises(ValueError, match="init_from"):
        TrainConfig(out_dir=str(tmp_path / "x"), objective="invert")


def test_a_few_steps_on_one_batch_lower_the_round_trip(tmp_path):
    torch.manual_seed(0)
    net = build_model("pMF-T/4", with_v_head=False, backward_head=True)
    with torch.no_grad():  # away from the zero-initialised output layers: a generator that depends on z
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    names = set(trainable_parameters(net))
    for k, p in net.named_parameters():
        p.requires_grad_(k in names)
    x = load_dataset("mnist").images[:16].float()
    y = load_dataset("mnist").labels[:16].long()
    cfg = InvertDistillConfig()
    draws = draw_invert_rows(x, cfg, 10, seed=0, start=0, global_batch=16)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(25):
        loss, stats = invert_distill_loss_given(net, x, y, draws, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = stats if first is None else first
    assert stats["loss_roundtrip"] < 0.5 * first["loss_roundtrip"]
    assert stats["loss_latent"] < first["loss_latent"]


def test_a_head_trained_from_data_only_is_not_jumped_from_noise_and_auto_edits_with_it():
    from dataclasses import replace

    exact = gaussian_flow().double()
    net = GaussianMeanFlow(replace(exact.cfg, backward_from="data"), with_v_head=False).double().eval()
    assert vf.backward_from_data_only(net) and not vf.backward_from_data_only(exact)
    src, tgt = torch.tensor([2, 5]), torch.tensor([8, 0])
    e = 0.3 * torch.randn(2, 1, 32, 32, generator=_gen(5), dtype=torch.float64)
    x = vf.jump(net, e, 1.0, 0.0, src)
    with pytest.raises(ValueError, match="clean images only"):
        vf.invert_hybrid(net, x, 1.0, src, switch=0.5)
    with pytest.raises(ValueError, match="clean images only"):
        vf.invert_backward(net, x, 1.0, src, num_steps=2)
    with pytest.raises(ValueError, match="clean images only"):
        pmf_edit.edit(net, (x + 1) / 2, source_labels=src, labels=tgt, method="hybrid")
    assert vf.invert_hybrid(net, x, 1.0, src, switch=0.0).nfe == 1  # one jump from the image is allowed
    kw = dict(source_labels=src, labels=tgt, guidance_scale=1.0, num_refinements=0, strength=1.0,
              change_gate=None)  # the exact edit, not gated toward the source
    auto = pmf_edit.edit(net, (x + 1) / 2, generator=_gen(0), **kw)
    backward = pmf_edit.edit(net, (x + 1) / 2, method="backward", **kw)
    # one backward jump + EDIT_STEPS_INVERSE regeneration jumps
    assert auto.nfe == backward.nfe == 1 + pmf_edit.editing.EDIT_STEPS_INVERSE
    assert torch.equal(auto.images, backward.images)
    default = pmf_edit.edit(net, (x + 1) / 2, source_labels=src, labels=tgt, guidance_scale=1.0, change_gate=None)
    assert default.nfe == 1 + pmf_edit.editing.EDIT_STEPS_INVERSE  # no refinement on an inverse head by default
    at_default = pmf_edit.edit(net, (x + 1) / 2, source_labels=src, labels=tgt, guidance_scale=1.0,
                               strength=pmf_edit.editing.EDIT_STRENGTH_INVERSE, change_gate=None)
    assert torch.equal(default.images, at_default.images)  # and its own default strength (EDIT_STRENGTH_INVERSE)
    # the exact flow's one backward jump is exact: the edit is the target class's image of the same noise
    assert (auto.images - ((vf.jump(net, e, 1.0, 0.0, tgt) + 1) / 2).clamp(0, 1)).abs().max() < 1e-8
    with pytest.raises(ValueError, match="backward_from"):
        build_model("pMF-T/4", backward_head=True, backward_from="noise")


def test_warm_start_from_a_model_with_an_inverse_head(tmp_path):
    from core.train import warm_start

    torch.manual_seed(0)
    src = build_model("pMF-T/4", with_v_head=False, backward_head=True, backward_from="data")
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_model(tmp_path / "m", src)
    plain = build_model("pMF-T/4")  # a MeanFlow run without a backward head: the inverse head is dropped
    warm_start(plain, tmp_path / "m")
    assert torch.equal(plain.u_final.linear.weight, src.u_final.linear.weight)
    inverse = build_model("pMF-T/4", with_v_head=False, backward_head=True, backward_from="data")
    warm_start(inverse, tmp_path / "m")  # another inverse run continues from the head
    assert torch.equal(inverse.b_final.linear.weight, src.b_final.linear.weight)
    bidir = build_model("pMF-T/4", backward_head=True)  # a MeanFlow head: from the u-head, not the inverse
    warm_start(bidir, tmp_path / "m")
    assert bidir.b_final.linear.weight.abs().sum() == 0
    for a, b in zip(bidir.b_blocks.parameters(), src.u_blocks.parameters()):
        assert torch.equal(a, b)
