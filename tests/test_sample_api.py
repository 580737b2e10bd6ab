"""pmf_edit.sample: generation in the public API's shape ([0, 1] images, classes by name) with the model's own
sampling settings, for pMF and flow-matching models; `pmf sample` runs it."""
import numpy as np
import pytest
import torch

import pmf_edit
from core.checkpoint import bundled_model_dir
from core.images import from_model_range
from core.model import build_model
from core.sampling import sample_flow_matching, sample_pmf


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def mnist():
    return pmf_edit.from_pretrained(bundled_model_dir("mnist"))


def test_one_step_with_the_models_own_guidance(mnist):
    net, cfg = mnist
    out = pmf_edit.sample(net, [3, 7, 7], generator=g())
    want = cfg["sampling"]["guidance_scale"]  # tuned for one-step FD; the tasks' defaults are their own
    ref = sample_pmf(net, [3, 7, 7], guidance_scale=want, generator=g())
    assert out.images.shape == (3, 1, 32, 32) and out.images.dtype == torch.float32
    assert (out.nfe, out.num_steps, out.guidance_scale, out.guidance_interval) == (1, 1, want, (0.0, 1.0))
    assert torch.equal(out.images, from_model_range(ref.images)) and 0 <= out.images.min() <= out.images.max() <= 1
    assert out.labels.tolist() == [3, 7, 7]
    # Memory-sized batches change nothing but float rounding (the noise is drawn per image).
    assert torch.allclose(pmf_edit.sample(net, [3, 7, 7], generator=g(), batch_size=2).images, out.images, atol=1e-5)
    two = pmf_edit.sample(net, 7, num_samples=2, num_steps=2, guidance_scale=1.0, generator=g())
    assert (two.nfe, two.guidance_scale, two.labels.tolist()) == (2, 1.0, [7, 7])
    assert pmf_edit.sample(net, np.array([3, 7, 7]), generator=g()).images.shape[0] == 3  # arrays count too
    null = pmf_edit.sample(net, num_samples=2, generator=g())
    assert null.labels is None and null.images.shape == (2, 1, 32, 32)


def test_classes_by_name_and_flow_matching_models():
    net, _ = pmf_edit.from_pretrained(bundled_model_dir("photos"))
    named = pmf_edit.sample(net, ["coffee", "Chelsea"], generator=g())
    assert named.labels.tolist() == [2, 1] and named.images.shape == (2, 3, 32, 32)
    fm, cfg = pmf_edit.from_pretrained(bundled_model_dir("mnist-fm"))
    assert fm.objective == "fm"
    out = pmf_edit.sample(fm, [1], num_steps=3, method="euler", generator=g())
    ref = sample_flow_matching(fm, [1], num_steps=3, method="euler", guidance_scale=cfg["sampling"]["guidance_scale"],
                               generator=g())
    assert out.nfe == ref.nfe == 6 and torch.equal(out.images, from_model_range(ref.images))  # CFG: 2 per step
    assert pmf_edit.sample(fm, [1], generator=g(), num_steps=None, method="euler").num_steps == cfg["sampling"]["num_steps"]


def test_a_bare_network_and_bad_arguments(mnist):
    bare = build_model("pMF-T/4", with_v_head=False).eval()  # no folder: one step, no guidance
    out = pmf_edit.sample(bare, [0], generator=g())
    assert (out.num_steps, out.guidance_scale) == (1, 1.0)
    net, _ = mnist
    for kwargs, match in (({}, "give labels .* or num_samples"),
                          ({"labels": [1, 2], "num_samples": 3}, r"one int or \(3,\)"),
                          ({"labels": 1, "num_steps": 0}, "num_steps"),
                          ({"labels": 1, "batch_size": 0}, "batch_size"),
                          ({"labels": 1, "guidance_scale": 0.5}, ">= 1"),
                          ({"labels": 1, "method": "rk4"}, "method must be")):
        with pytest.raises(ValueError, match=match):
            pmf_edit.sample(net, **kwargs)
