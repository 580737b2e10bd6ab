"""GPU speed paths checked on the CPU: bf16 autocast (fp32 JVP), TF32 switch, channels-last,
torch.compile (traced with the "aot_eager" backend, no code generation), the one-step sampler,
and benchmarks/gpu_check.py --cpu-smoke."""
import json

import pytest
import torch

from core.attention import forward_ad_safe
from core.meanflow import du_dt
from core.model import build_model
from core.onestep import OneStepSampler
from core.precision import (
    autocast, check_precision, fast_inference_copy, resolve_precision, set_default_precision, set_tf32, tf32,
    to_channels_last,
)
from core.sampling import sample_flow_matching, sample_pmf


def perturbed(**kw):
    torch.manual_seed(0)
    net = build_model("pMF-T/4", with_v_head=False, **kw).eval()
    with torch.no_grad():
        for p in net.parameters():  # off the zero init, so every block and the head contribute
            p.add_(torch.randn_like(p) * 0.05)
    return net


@pytest.fixture(scope="module")
def net():
    return perturbed(in_channels=3)


def noise(n=3, c=3):
    return torch.randn(n, c, 32, 32, generator=torch.Generator().manual_seed(1))


def test_precision_names_checked_and_default_round_trips():
    with pytest.raises(ValueError, match="precision must be one of"):
        check_precision("fp16")
    with pytest.raises(ValueError, match="precision"):
        sample_pmf(perturbed(), [1], precision="half")
    old = set_default_precision("bf16")
    try:
        assert resolve_precision(None) == "bf16" and resolve_precision("fp32") == "fp32"
    finally:
        assert set_default_precision(old) == "bf16"


def test_sampler_bf16_is_autocast_and_close_to_fp32(net):
    z = noise()
    ref = sample_pmf(net, [1, 2, 3], guidance_scale=2.0, noise=z, precision="fp32").images
    low = sample_pmf(net, [1, 2, 3], guidance_scale=2.0, noise=z, precision="bf16").images
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        outer = sample_pmf(net, [1, 2, 3], guidance_scale=2.0, noise=z).images  # None: caller's autocast kept
    assert low.dtype == torch.float32  # the state stays fp32; only the matmuls run in bf16
    assert torch.equal(low, outer)
    diff = (low - ref).abs().max().item()
    assert 0 < diff < 0.05 * ref.abs().max().item(), diff  # bf16 really ran, and stayed close


def test_explicit_fp32_switches_an_enclosing_autocast_off(net):
    z = noise()
    ref = sample_pmf(net, [1, 2, 3], noise=z, precision="fp32").images
    with torch.autocast("cpu", dtype=torch.bfloat16):
        again = sample_pmf(net, [1, 2, 3], noise=z, precision="fp32").images
    assert torch.equal(ref, again)


def test_flow_matching_sampler_takes_precision(net):
    z = noise(2)
    ref = sample_flow_matching(net, [0, 1], num_steps=3, noise=z, precision="fp32").images
    low = sample_flow_matching(net, [0, 1], num_steps=3, noise=z, precision="bf16").images
    assert 0 < (low - ref).abs().max() < 0.05 * ref.abs().max()


def test_jvp_stays_fp32_under_bf16_autocast(net):
    z, dz = noise(2), noise(2).flip(0)
    t, r = torch.tensor([0.9, 0.6]), torch.tensor([0.2, 0.1])
    y, om, lo, hi = torch.tensor([1, 2]), torch.full((2,), 2.0), torch.zeros(2), torch.ones(2)
    ref = du_dt(net, z, t, r, dz, y, om, lo, hi)
    with autocast("cpu", "bf16"):
        low = du_dt(net, z, t, r, dz, y, om, lo, hi)
    assert ref.dtype == low.dtype == torch.float32 and torch.equal(ref, low)


def test_tf32_switch_sets_and_restores_the_flags():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with tf32(True):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with tf32(False):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    previous = set_tf32(True)
    assert set_tf32(previous) is True


def test_channels_last_gives_the_same_output(net):
    cl = to_channels_last(perturbed(in_channels=3))
    assert cl.patch_embed.proj1.weight.is_contiguous(memory_format=torch.channels_last)
    z = noise()
    ref = sample_pmf(net, [1, 2, 3], noise=z).images
    out = sample_pmf(cl, [1, 2, 3], noise=z.contiguous(memory_format=torch.channels_last)).images
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_compiled_forward_is_one_graph_and_honours_forward_ad_safe(net):
    """No graph break at the attention's forward-AD probes, and a call inside forward_ad_safe()
    gets its own graph with the math attention (no fused SDPA kernel)."""
    graphs = []

    def record(gm, inputs):
        graphs.append(any("scaled_dot_product" in str(n.target) for n in gm.graph.nodes))
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(net, backend=record, dynamic=False)
    z, one = noise(2), torch.ones(2)
    with torch.no_grad():
        eager = net(z, one, 0 * one)
        out = compiled(z, one, 0 * one)
        with forward_ad_safe():
            safe = compiled(z, one, 0 * one)
    assert graphs == [True, False]  # one graph each, fused SDPA only outside forward_ad_safe
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(safe, eager, rtol=1e-5, atol=1e-5)


def test_one_step_sampler_equals_sample_pmf(net):
    z, labels = noise(5), [0, 1, 2, 3, 4]
    ref = sample_pmf(net, labels, guidance_scale=2.0, guidance_interval=(0.1, 0.7), noise=z).images
    same = OneStepSampler(net, 5, guidance_scale=2.0, guidance_interval=(0.1, 0.7))(labels, noise=z)
    assert same.nfe == 1 and torch.equal(same.images, ref)
    chunked = OneStepSampler(net, 2, guidance_scale=2.0, guidance_interval=(0.1, 0.7))(labels, noise=z)
    torch.testing.assert_close(chunked.images, ref, rtol=1e-5, atol=1e-5)  # 2 + 2 + (1 padded)
    drawn = OneStepSampler(net, 4)(labels, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(drawn.images, sample_pmf(net, labels, generator=torch.Generator().manual_seed(3)).images,
                               rtol=1e-5, atol=1e-5)
    low = OneStepSampler(net, 5, precision="bf16", guidance_scale=2.0, guidance_interval=(0.1, 0.7))(labels, noise=z)
    assert torch.equal(low.images, sample_pmf(net, labels, guidance_scale=2.0, guidance_interval=(0.1, 0.7),
                                              noise=z, precision="bf16").images)


def test_one_step_sampler_compiled_matches_eager(net):
    torch._dynamo.reset()
    z, labels = noise(2), [3, 4]
    fast = OneStepSampler(net, 2, compile=True, compile_backend="aot_eager")
    torch.testing.assert_close(fast(labels, noise=z).images, sample_pmf(net, labels, noise=z).images,
                               rtol=1e-5, atol=1e-5)


def test_one_step_sampler_errors(net):
    with pytest.raises(ValueError, match="cuda_graph=True needs the network on CUDA"):
        OneStepSampler(net, 2, cuda_graph=True)
    with pytest.raises(ValueError, match="batch_size"):
        OneStepSampler(net, 0)
    with pytest.raises(ValueError, match="noise must be"):
        OneStepSampler(net, 2)([1, 2], noise=torch.zeros(2, 1, 32, 32))


def test_gpu_check_cpu_smoke_runs_every_section(tmp_path):
    from benchmarks import gpu_check

    report = gpu_check.main(["--cpu-smoke", "--out", str(tmp_path / "r.json")])
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(report))
    for section in ("attention", "equality", "sampling", "train", "compile"):
        assert isinstance(report[section], dict), (section, report[section])
    assert report["equality"]["jvp_runs_in_fp32"] is True
    assert report["equality"]["bf16_autocast"]["psnr_db"] > 40
    assert report["equality"]["channels_last_fp32"]["max_abs_diff"] < 1e-5
    assert report["compile"]["sampler_bf16_b1"]["vs_eager_bf16"]["max_abs_diff"] < 1e-5
    assert report["train"]["pmf"]["loss_finite"] and report["train"]["fm"]["loss_finite"]
    assert set(report["sampling"]["targets"]) == {"latency_ms_b1_bf16", "img_per_s"}


def _task_calls(net):
    import pmf_edit

    g = torch.Generator().manual_seed(5)
    images = torch.rand(2, 3, 32, 32, generator=g)
    style = torch.rand(1, 3, 32, 32, generator=g)
    mask = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    mask[..., 16:, :] = True
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    return {
        "invert": lambda **kw: pmf_edit.invert(net, images, labels=[1, 2], num_steps=1, num_iterations=2, **kw).latents,
        "reconstruct": lambda **kw: pmf_edit.reconstruct(net, images, labels=[1, 2], num_steps=1, **kw).images,
        "edit": lambda **kw: pmf_edit.edit(net, images, source_labels=[1, 2], labels=[3, 4], generator=gen(), **kw).images,
        "sdedit": lambda **kw: pmf_edit.sdedit(net, images, labels=[3, 4], generator=gen(), **kw).images,
        "flow_edit": lambda **kw: pmf_edit.flow_edit(net, images, source_labels=[1, 2], labels=[3, 4], num_steps=2,
                                                     generator=gen(), **kw).images,
        "inpaint": lambda **kw: pmf_edit.inpaint(net, images, mask, labels=[1, 2], num_steps=2, generator=gen(),
                                                 **kw).images,
        "style_transfer": lambda **kw: pmf_edit.style_transfer(net, images, style, generator=gen(), **kw).images,
    }


@pytest.mark.parametrize("task", ["invert", "reconstruct", "edit", "sdedit", "flow_edit", "inpaint", "style_transfer"])
def test_every_pmf_edit_task_takes_precision(net, task):
    call = _task_calls(net)[task]
    ref = call()
    assert torch.equal(call(precision="fp32"), ref)  # the default is fp32 and "fp32" is the same
    low = call(precision="bf16")
    assert low.dtype == ref.dtype == torch.float32
    diff = (low - ref).abs().max().item()
    assert 0 < diff < 0.1 * max(ref.abs().max().item(), 1.0), diff  # bf16 ran, and stayed close
    with pytest.raises(ValueError, match="precision must be one of"):
        call(precision="fp16")


def test_task_signature_and_docs_name_precision():
    import inspect

    import pmf_edit

    for name in ("invert", "reconstruct", "edit", "sdedit", "flow_edit", "inpaint", "style_transfer"):
        fn = getattr(pmf_edit, name)
        assert inspect.signature(fn).parameters["precision"].default is None, name
        assert "precision:" in fn.__doc__ and fn.__doc__.index("precision:") < fn.__doc__.index("Returns:"), name


def test_compiled_grad_forward_gives_the_same_loss_and_gradients():
    """torch.compile of the forward of the grad pass (core.meanflow's ``grad_net``; the JVP and the
    guidance passes stay on the bare module) changes neither the loss nor the gradients."""
    import inspect

    from core.meanflow import MeanFlowConfig, draw_batch, pmf_loss_given

    if "grad_net" not in inspect.signature(pmf_loss_given).parameters:
        pytest.skip("core.meanflow.pmf_loss_given has no grad_net yet (issue 13 item 1 adds it)")
    torch.manual_seed(0)
    net = build_model("pMF-T/4")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 1, 32, 32, generator=g) * 2 - 1, torch.randint(0, 10, (6,), generator=g)
    cfg = MeanFlowConfig()
    b = draw_batch(x, cfg, torch.Generator().manual_seed(1))
    loss, _ = pmf_loss_given(net, x, y, b, cfg)
    ref = torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)
    torch._dynamo.reset()
    compiled = torch.compile(net, backend="aot_eager")
    loss_c, _ = pmf_loss_given(net, x, y, b, cfg, grad_net=compiled)
    got = torch.autograd.grad(loss_c, list(net.parameters()), allow_unused=True)
    torch.testing.assert_close(loss_c, loss, rtol=1e-5, atol=1e-6)
    for a, e in zip(got, ref):
        if e is not None:
            torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-6)


def test_cli_precision_flag_sets_the_default_for_the_command_only(tmp_path, monkeypatch):
    import pmf_edit.generation
    from apps.cli import main
    from core.checkpoint import save_model

    seen = []
    real = pmf_edit.generation.sample_pmf  # what `pmf sample` runs, through pmf_edit.sample

    def spy(*args, **kwargs):
        seen.append(resolve_precision(kwargs.get("precision")))
        return real(*args, **kwargs)

    monkeypatch.setattr(pmf_edit.generation, "sample_pmf", spy)
    d = tmp_path / "model"
    save_model(d, perturbed(), objective="pmf", class_names=[f"c{i}" for i in range(10)],
               sampling={"guidance_scale": 2.0, "guidance_interval": [0.0, 1.0], "num_steps": 1})
    argv = ["sample", "--model", str(d), "--outdir", str(tmp_path / "s"), "--classes", "1", "--num-per-class", "1"]
    assert main(["--precision", "bf16", *argv]) == 0 and main(argv) == 0
    assert seen == ["bf16", "fp32"] and resolve_precision(None) == "fp32"


def test_fast_inference_copy_is_a_bf16_network_every_task_takes():
    """The copy: bf16 weights, the original untouched, the tasks run on it and return the caller's dtype
    close to fp32 (>= 40 dB on the bundled trained model, the bar of issue 14); with a compiled forward
    (dynamo traced, "eager" backend: no code generation in the test) the same outputs as uncompiled."""
    import pmf_edit
    from core.checkpoint import bundled_model_dir
    from core.eval.metrics import psnr
    from pmf_edit.editing import from_pretrained

    net, _ = from_pretrained(bundled_model_dir("mnist"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    plain = fast_inference_copy(net, compile=False)
    traced = fast_inference_copy(net, backend="eager")
    assert all(p.dtype == torch.bfloat16 for p in plain.parameters())
    assert all(torch.equal(v, net.state_dict()[k]) and v.dtype == torch.float32 for k, v in before.items())
    z = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    ref = sample_pmf(net, [1, 2, 3, 4], guidance_scale=2.0, noise=z).images
    low = sample_pmf(plain, [1, 2, 3, 4], guidance_scale=2.0, noise=z).images
    assert low.dtype == torch.float32 and not torch.equal(low, ref)  # bf16 really ran
    assert float(psnr((low + 1) / 2, (ref + 1) / 2, data_range=1.0).mean()) >= 40.0
    assert torch.equal(sample_pmf(traced, [1, 2, 3, 4], guidance_scale=2.0, noise=z).images, low)
    x01 = ((ref + 1) / 2).clamp(0, 1)
    rec = pmf_edit.reconstruct(traced, x01, labels=[1, 2, 3, 4]).images
    assert rec.dtype == torch.float32
    assert float(psnr(rec, pmf_edit.reconstruct(net, x01, labels=[1, 2, 3, 4]).images, data_range=1.0).mean()) >= 40.0


def test_inference_precision_auto_picks_bf16_weights_only_for_big_networks_on_native_bf16(monkeypatch):
    import core.precision as precision

    tiny = perturbed()
    assert precision.inference_precision(tiny, "fp32") == "fp32"
    assert precision.inference_precision(tiny, "bf16") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.inference_precision(tiny, "fp16")
    assert precision.inference_precision(tiny) == "fp32"  # 0.1M parameters: below the threshold everywhere
    monkeypatch.setattr(precision, "AUTO_BF16_MIN_PARAMS", 1000)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.inference_precision(tiny) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # emulated bf16 would be slower
    assert precision.inference_precision(tiny) == "fp32"


def test_cpu_has_native_bf16_reads_torch_probes(monkeypatch):
    import core.precision as precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert precision.cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert precision.cpu_has_native_bf16() is True
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert precision.cpu_has_native_bf16() is False  # a torch build without the probes: fp32


def test_from_pretrained_precision_loads_bf16_weights_that_take_fp32_inputs(monkeypatch, tmp_path):
    """precision= of from_pretrained: "bf16" stores the weights in bf16; the network then takes fp32
    inputs and returns fp32 u (computed in bf16, >= 40 dB from fp32 on the trained model), and the
    tasks return float32 images; "auto" stays fp32 for the small bundled model, and picks bf16 where
    the rule says so (except for a training-mode load with the v-head)."""
    import core.precision as precision
    import pmf_edit
    from core.checkpoint import bundled_model_dir
    from core.eval.metrics import psnr
    from core.official import to_official_state_dict
    from core.pretrained import from_pretrained

    ref, meta = from_pretrained(bundled_model_dir("mnist"))
    assert meta["precision"] == "fp32" and next(ref.parameters()).dtype == torch.float32
    low, meta = pmf_edit.from_pretrained(bundled_model_dir("mnist"), precision="bf16")
    assert meta["precision"] == "bf16" and all(p.dtype == torch.bfloat16 for p in low.parameters())
    z = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    one, y = torch.ones(4), torch.tensor([1, 2, 3, 4])
    with torch.no_grad():
        a, b = ref(z, one, 0 * one, y, 2 * one), low(z, one, 0 * one, y, 2 * one)
    assert b.dtype == torch.float32 and not torch.equal(a, b)
    assert float(psnr(((z - b) + 1) / 2, ((z - a) + 1) / 2, data_range=1.0).mean()) >= 40.0
    out = pmf_edit.edit(low, ((z.clamp(-1, 1) + 1) / 2), source_labels=y, labels=y.roll(1)).images
    assert out.dtype == torch.float32 and out.shape == (4, 1, 32, 32)
    with pytest.raises(ValueError, match="precision must be one of"):
        from_pretrained(tmp_path / "missing", precision="half")  # checked before the path
    monkeypatch.setattr(precision, "AUTO_BF16_MIN_PARAMS", 1000)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    auto, meta = from_pretrained(bundled_model_dir("mnist"))
    assert meta["precision"] == "bf16" and next(auto.parameters()).dtype == torch.bfloat16
    full = build_model("pMF-T/4")  # with the v-head, saved in the official (training-mode) format
    torch.save({"net." + k: v for k, v in to_official_state_dict(full.state_dict()).items()}, tmp_path / "w.pt")
    train_mode, meta = from_pretrained(tmp_path / "w.pt", with_v_head=True, config=full.cfg)
    assert meta["precision"] == "fp32" and next(train_mode.parameters()).dtype == torch.float32


def test_cli_precision_flag_sets_the_weights_and_reports_them(tmp_path, capsys, monkeypatch):
    import json

    import core.precision as precision
    from apps.cli import main
    from core.images import save_png

    digit = tmp_path / "d.png"
    save_png(digit, (torch.rand(32, 32, 1, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy())
    seen = {}
    for flag in ([], ["--precision", "bf16"], ["--precision", "fp32"], ["--precision", "auto"]):
        capsys.readouterr()
        assert main([*flag, "edit", str(digit), "--target", "3", "--out", str(tmp_path / "e.png")]) == 0
        seen[" ".join(flag)] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["precision"]
    assert seen == {"": "fp32", "--precision bf16": "bf16", "--precision fp32": "fp32", "--precision auto": "fp32"}
    # After the command name too; there it wins over the global flag.
    assert main(["--precision", "bf16", "edit", str(digit), "--target", "3", "--out", str(tmp_path / "e.png"),
                 "--precision", "fp32"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["precision"] == "fp32"
    monkeypatch.setattr(precision, "AUTO_BF16_MIN_PARAMS", 1000)  # as for a big network on this kind of CPU
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert main(["edit", str(digit), "--target", "3", "--out", str(tmp_path / "e.png")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["precision"] == "bf16"
    assert main(["--precision", "fp32", "edit", str(digit), "--target", "3", "--out", str(tmp_path / "e.png")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["precision"] == "fp32"


def test_a_bf16_network_keeps_the_tasks_states_in_float32():
    """Images, noise, solver iterates and samples stay float32 around a bf16 network (it casts its
    input and returns float32 u), so its only rounding is the network's own."""
    from core.precision import state_dtype
    from pmf_edit import velocity as vf
    from pmf_edit.boundary import to_model

    low = perturbed().to(torch.bfloat16)
    assert state_dtype(low) == torch.float32 and state_dtype(perturbed().double()) == torch.float64
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert to_model(low, x).dtype == torch.float32
    assert sample_pmf(low, [1, 2], generator=torch.Generator().manual_seed(0)).images.dtype == torch.float32
    inv = vf.invert(low, 2 * x - 1, 1.0, None, 1.0, (0.0, 1.0), 1, 2)
    assert inv.latents.dtype == torch.float32
