"""pmf_edit's layout: capability subpackages on shared modules, old import paths kept, one set of rules."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import torch

import pmf_edit
from core.attention import attention
from core.model import build_model
from tests.tiny_nets import tiny_rgb_net

ROOT = Path(pmf_edit.__file__).parent


@pytest.mark.parametrize("old, new", [
    ("pmf_edit.flow", "pmf_edit.video.flow"),
    ("pmf_edit.interpolate", "pmf_edit.video.interpolate"),
    ("pmf_edit.vfi_refine", "pmf_edit.video.refine"),
    ("pmf_edit.style_baselines", "pmf_edit.style.baselines"),
    ("core.classifier", "core.eval.classifier"),
    ("core.metrics", "core.eval.metrics"),
    ("core.perceptual", "core.eval.perceptual"),
    ("core.evaluation", "core.eval.evaluation"),
    ("core.edit_metrics", "core.eval.edit_metrics"),
])
def test_former_flat_modules_are_the_moved_modules(old, new):
    # The same module object, so attributes (and monkeypatches) seen through either name agree.
    assert importlib.import_module(old) is importlib.import_module(new)


EVAL_MODULES = ("classifier", "metrics", "perceptual", "evaluation", "edit_metrics")


def test_evaluation_is_a_layer_of_its_own():
    # core/eval/ holds what measures models; the former flat files are only the redirects above,
    # and the package is picked up by setup.cfg's `packages = find:` (include core.*).
    import setuptools

    core = Path(importlib.import_module("core").__file__).parent
    for name in EVAL_MODULES:
        assert (core / "eval" / f"{name}.py").is_file(), name
        assert "sys.modules[__name__] = _moved" in (core / f"{name}.py").read_text(), name
    assert "core.eval" in setuptools.find_packages(str(core.parent), include=["core", "core.*"])
    # Sampling and training do not depend on it (the optional perceptual loss imports it lazily).
    for f in ("sampling.py", "onestep.py", "meanflow.py", "model.py", "train.py"):
        evals = ("core.eval",) + tuple(f"core.{m}" for m in EVAL_MODULES)
        top = {m for m in _top_level_imports(core / f) if any(m == e or m.startswith(e + ".") for e in evals)}
        assert not top, f"core/{f} imports {top} at module level"


def test_public_names_resolve():
    for name in pmf_edit.__all__:
        assert callable(getattr(pmf_edit, name)), name
    from pmf_edit.editing import EDIT_GUIDANCE, edit, from_pretrained, invert  # noqa: F401
    from pmf_edit.style import DEFAULT_METHOD, _inject, resolve_style_class, style_transfer  # noqa: F401
    from pmf_edit.video import CONFIGS, cut_score, has_audio, interpolate_video  # noqa: F401
    assert pmf_edit.edit is edit and pmf_edit.style_transfer is style_transfer
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pmf_edit.editing.nope  # noqa: B018


def _imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
    return mods


def _top_level_imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
            mods.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
    return mods


@pytest.mark.parametrize("pkg", ["editing", "style", "video"])
def test_capabilities_never_import_each_other(pkg):
    # Shared pieces live one level up (boundary, velocity); a capability never imports another.
    others = {f"pmf_edit.{p}" for p in ("editing", "style", "video", "flow", "interpolate", "vfi_refine",
                                        "style_baselines") if p != pkg}
    for f in (ROOT / pkg).glob("*.py"):
        bad = {m for m in _imports(f) if any(m == o or m.startswith(o + ".") for o in others)}
        assert not bad, f"{f.name} imports {bad}"


# ------------------------------------------------------------------------------------------------
# One rule for every task (pmf_edit.boundary)


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    gray = build_model("pMF-T/4", with_v_head=False).eval()
    rgb = build_model("pMF-T/4", in_channels=3, num_classes=5, with_v_head=False).eval()
    return gray, rgb


def test_same_image_rule_and_words_everywhere(nets):
    gray, rgb = nets
    half_g, half_c = torch.rand(1, 1, 32, 32).half(), torch.rand(1, 3, 32, 32).half()
    calls = [
        lambda: pmf_edit.sdedit(gray, half_g),
        lambda: pmf_edit.style_transfer(rgb, half_c, torch.rand(1, 3, 32, 32)),
        lambda: pmf_edit.reinhard_transfer(half_c, torch.rand(1, 3, 32, 32)),
    ]
    for call in calls:  # float16 was accepted by the baselines and refused by the others
        with pytest.raises(ValueError, match=r"must be float32 or float64 in \[0, 1\], got dtype torch.float16"):
            call()
    for call in (lambda: pmf_edit.sdedit(gray, [[0.5]]), lambda: pmf_edit.reinhard_transfer([[0.5]], None)):
        with pytest.raises(TypeError, match=r"must be a torch.Tensor \(B, [13], H, W\) in \[0, 1\]"):
            call()


@pytest.mark.parametrize("bad,kind,hint", [
    (lambda: torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8), ValueError, r"convert with \.float\(\) / 255"),
    (lambda: torch.rand(1, 3, 32, 32).half(), ValueError, r"convert with \.float\(\)$"),
    (lambda: torch.rand(32, 32, 3).numpy(), TypeError, r"got ndarray; from an \(H, W, C\) uint8 array or PIL image"),
    (lambda: torch.rand(1, 32, 32, 3), ValueError, r"looks like channels last \(B, H, W, C\): content\.permute"),
    (lambda: torch.rand(3, 32, 32), ValueError, r"one image \(C, H, W\) is a batch of one: content\[None\]"),
    (lambda: torch.rand(1, 3, 32, 32) * 255, ValueError, r"8-bit values\? divide by 255"),
    (lambda: torch.rand(1, 3, 32, 32) * 2 - 1, ValueError, r"map them with \(x \+ 1\) / 2"),
    (lambda: torch.full((1, 3, 32, 32), float("nan")), ValueError, r"holds NaN or infinite values"),
])
def test_image_errors_say_how_to_fix_the_common_mistakes(nets, bad, kind, hint):
    """What a caller most often passes by mistake gets the one-line fix in the message."""
    _, rgb = nets
    with pytest.raises(kind, match=hint):
        pmf_edit.style_transfer(rgb, bad(), torch.rand(1, 3, 32, 32))


def test_null_class_is_none_at_the_public_api(nets):
    gray, _ = nets
    x = torch.rand(2, 1, 32, 32)
    null = gray.null_class
    for call in (lambda: pmf_edit.sdedit(gray, x, labels=null), lambda: pmf_edit.invert(gray, x, labels=null)):
        with pytest.raises(ValueError, match=rf"\[{null}\] outside the model's classes 0..9 \(None = the null class\)"):
            call()
    g = torch.Generator().manual_seed(0)
    assert pmf_edit.sdedit(gray, x, labels=None, generator=g).images.shape == x.shape


def test_guidance_checked_before_any_work(nets):
    gray, _ = nets
    x = torch.rand(1, 1, 32, 32)
    with pytest.raises(ValueError, match=r"source_guidance_scale must be >= 1"):
        pmf_edit.flow_edit(gray, x, labels=1, source_guidance_scale=0.5)
    with pytest.raises(ValueError, match=r"guidance_interval must satisfy"):
        pmf_edit.inpaint(gray, x, torch.ones(32, 32), guidance_interval=(0.8, 0.2))


# ------------------------------------------------------------------------------------------------
# The attention-processor hook (core.model.Attention.processor) that style transfer uses


def _rgb_net():
    return tiny_rgb_net()


def test_processor_hook_is_called_and_plain_processor_is_identity():
    net = _rgb_net()
    blocks = list(net.shared_blocks) + list(net.u_blocks)
    z, t, r = torch.randn(2, 3, 32, 32), torch.full((2,), 0.6), torch.zeros(2)
    with torch.no_grad():
        plain = net(z, t, r)
        seen = []

        def proc(q, k, v, backend):
            seen.append(tuple(q.shape))
            return attention(q, k, v, backend=backend)

        for b in blocks:
            b.attn.processor = proc
        try:
            hooked = net(z, t, r)
        finally:
            for b in blocks:
                b.attn.processor = None
    assert len(seen) == len(blocks) and torch.equal(hooked, plain)
    assert "processor" not in net.state_dict() and all(b.attn.processor is None for b in blocks)


def test_kv_replace_with_identical_halves_is_the_plain_forward():
    # With the style half equal to the content half, "kv_replace" hands the content queries
    # [own prefix + (identical) image tokens]: exactly the keys/values of a plain forward.
    from pmf_edit.style import _inject

    net = _rgb_net()
    z1 = torch.randn(1, 3, 32, 32)
    z, t, r = torch.cat([z1, z1]), torch.full((2,), 0.6), torch.zeros(2)
    with torch.no_grad():
        plain = net(z, t, r)
        with _inject(net, "kv_replace", 0, 1.0):
            mixed = net(z, t, r)
        with _inject(net, "kv", 0, 1.0):
            shared = net(z, t, r)
    torch.testing.assert_close(mixed, plain, atol=1e-5, rtol=0)
    assert not torch.allclose(shared[:1], plain[:1], atol=1e-4)  # "kv" doubles the image tokens' weight
    torch.testing.assert_close(shared[1:], plain[1:], atol=1e-5, rtol=0)


def test_classes_by_name_at_the_python_api():
    """from_pretrained puts the model's class names on the network; every task then takes names (any case,
    any synonym), style transfer included; a network without names takes index strings and says why a
    name cannot work; a file path given as a style says how to pass an image."""
    from core.checkpoint import bundled_model_dir

    net, cfg = pmf_edit.from_pretrained(bundled_model_dir("photos"))
    assert net.class_names == cfg["class_names"] and net.class_names[7] == "brick"
    x, g = torch.rand(2, 3, 40, 40), lambda: torch.Generator().manual_seed(0)  # noqa: E731
    by_name = pmf_edit.sdedit(net, x, labels=["Brick", "coffee"], generator=g()).images
    assert torch.equal(by_name, pmf_edit.sdedit(net, x, labels=[7, 2], generator=g()).images)
    assert torch.equal(pmf_edit.style_transfer(net, x, "brick", generator=g()).images,
                       pmf_edit.style_transfer(net, x, 7, generator=g()).images)
    with pytest.raises(ValueError, match="unknown labels 'zebra'; this model's classes are"):
        pmf_edit.sdedit(net, x, labels="zebra")
    raw = build_model("pMF-T/4", with_v_head=False).eval()
    assert raw.class_names is None
    pmf_edit.sdedit(raw, torch.rand(1, 1, 32, 32), labels="3")  # an index as text
    with pytest.raises(ValueError, match="carries no class names .* pass class indices"):
        pmf_edit.sdedit(raw, torch.rand(1, 1, 32, 32), labels="three")
    with pytest.raises(ValueError, match=r"is an image file: read it with pmf_edit.open_image\(path\).pixels"):
        pmf_edit.style_transfer(net, x, __file__)
