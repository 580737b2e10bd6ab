"""Photos through an official-format ImageNet checkpoint: `pmf edit|inpaint|stylize|invert --model X.pt`
with ImageNet classes by name or index, end to end at 256x256.

The checkpoint is a randomly initialised, official-format (``net.`` + official key names, no v-head)
1000-class network at 256x256 with a tiny width and depth (the loader infers any size from shapes),
so the whole file runs in seconds; the cost of the real pMF-B/16 is measured in docs/editing.md.
"""
from __future__ import annotations

import json
import re

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from apps.cli import main
from core.class_names import imagenet_class_names, resolve_class
from core.model import PixelMeanFlow, PMFConfig
from core.pretrained import from_pretrained
from tests.test_model import perturb
from tests.test_official import official_sd

# An official-format ImageNet network at 256x256, small enough for CPU tests: 8x8 patches of 32 px.
TINY_256 = PMFConfig(image_size=256, in_channels=3, patch_size=32, width=64, depth=2, head_depth=1,
                     num_heads=2, bottleneck=16, num_classes=1000)
# Not a released size: the loaders refuse it unless its architecture is named (--model-config / config=).
TINY_JSON = json.dumps(TINY_256.to_dict())


def _checkpoint(path, trained_like: bool) -> str:
    torch.manual_seed(0)
    net = PixelMeanFlow(TINY_256, with_v_head=False)
    if trained_like:  # off the zero init, so every path contributes
        perturb(net)
    torch.save(official_sd(net), path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    photo = np.ascontiguousarray(data.astronaut()[::2, ::2])  # 256x256 RGB
    iio.imwrite(d / "photo.jpg", photo, quality=95)
    mask = np.zeros((256, 256), np.uint8)
    mask[96:160, 64:192] = 255
    iio.imwrite(d / "mask.png", mask)
    return {"dir": d, "photo": str(d / "photo.jpg"), "mask": str(d / "mask.png"),
            "model": _checkpoint(d / "pMF-tiny-256.pt", trained_like=True),
            "degenerate": _checkpoint(d / "pMF-init-256.pt", trained_like=False)}


def _json_line(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------
# The shipped class names


def test_imagenet_names_are_the_standard_order():
    names = imagenet_class_names()
    assert len(names) == 1000
    known = {0: "tench", 1: "goldfish", 207: "golden retriever", 281: "tabby", 388: "giant panda",
             409: "analog clock", 817: "sports car", 948: "Granny Smith", 967: "espresso", 999: "toilet tissue"}
    assert {i: names[i] for i in known} == known


def test_imagenet_names_agree_with_the_offline_mobilenet():
    # An independent check of the index order: the offline ImageNet MobileNetV2's top class of two
    # sample photos, read through the shipped names.
    import torch.nn.functional as F
    from skimage import data

    from core.eval.perceptual import load_mobilenet_v2

    net = load_mobilenet_v2()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = torch.cat([F.interpolate(torch.from_numpy(a()).permute(2, 0, 1)[None].float() / 255, size=(224, 224),
                                 mode="bilinear", antialias=True) for a in (data.chelsea, data.coffee)])
    with torch.no_grad():
        top = net((x - mean) / std).argmax(-1)
    names = imagenet_class_names()
    assert "cat" in names[int(top[0])] and names[int(top[1])] == "espresso"


@pytest.mark.parametrize("spec, index", [
    ("golden retriever", 207), ("Golden_Retriever", 207), ("  GOLDEN   retriever ", 207), ("207", 207), (207, 207),
    ("Cardigan Welsh corgi", 264), ("Cardigan", 264), ("cardigan", 474), ("granny smith", 948),
])
def test_resolve_imagenet_class(spec, index):
    assert resolve_class(spec, imagenet_class_names()) == index


@pytest.mark.parametrize("spec, match", [
    ("golden retreiver", r"unknown class 'golden retreiver'; close matches: 'golden retriever' \(207\)"),
    ("retriever", r"close matches: .*'Labrador retriever' \(208\)"),
    ("1000", r"class 1000 is outside this model's classes 0..999"),
    ("-3", r"class -3 is outside"),
    ("qwxzv", r"no close match among the 1000 class names"),
])
def test_resolve_errors_name_close_matches(spec, match):
    with pytest.raises(ValueError, match=match):
        resolve_class(spec, imagenet_class_names())


def test_resolve_synonyms_and_ambiguity_in_a_small_model():
    names = ["cat, kitty", "dog", "Dog"]
    assert resolve_class("KITTY", names) == 0 and resolve_class("Dog", names) == 2
    with pytest.raises(ValueError, match=r"'DOG' is ambiguous: 1: 'dog', 2: 'Dog'"):
        resolve_class("DOG", names)
    with pytest.raises(ValueError, match=r"this model's classes are \['cat, kitty', 'dog', 'Dog'\]"):
        resolve_class("bird", names)


# ------------------------------------------------------------------------------------------------
# End to end through the command line


def test_official_checkpoint_carries_imagenet_names(files):
    net, cfg = from_pretrained(files["model"], config=TINY_256)
    assert net.cfg.image_size == 256 and net.cfg.num_classes == 1000
    assert cfg["source"]["format"] == "official" and cfg["class_names"][207] == "golden retriever"


def test_sample_an_official_checkpoint_by_imagenet_name(files):
    """pmf_edit.sample on an official file: ImageNet names, its recommended one-step guidance and interval."""
    import pmf_edit

    net, cfg = pmf_edit.from_pretrained(files["model"], config=TINY_256)
    out = pmf_edit.sample(net, ["golden retriever", "tabby"], generator=torch.Generator().manual_seed(0))
    s = cfg["sampling"]
    assert out.labels.tolist() == [207, 281] and out.images.shape == (2, 3, 256, 256)
    assert (out.nfe, out.guidance_scale, out.guidance_interval) == (1, s["guidance_scale"],
                                                                     tuple(s["guidance_interval"]))
    assert 0 <= float(out.images.min()) <= float(out.images.max()) <= 1


@pytest.mark.parametrize("method", ["invert", "flow", "sdedit"])
def test_pmf_edit_with_imagenet_names(files, capsys, method):
    out = files["dir"] / f"edit_{method}.png"
    rc = main(["edit", files["photo"], "--model", files["model"], "--model-config", TINY_JSON, "--target", "Golden Retriever",
               "--source", "281", "--method", method, "--out", str(out)])
    assert rc == 0
    rep = _json_line(capsys)
    assert (rep["target"], rep["source"], rep["method"]) == (207, 281, method)
    img = iio.imread(out)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8 and img.std() > 0


def test_pmf_inpaint_keeps_unmasked_pixels(files, capsys):
    out = files["dir"] / "inpainted.png"
    assert main(["inpaint", files["photo"], "--model", files["model"], "--model-config", TINY_JSON, "--mask", files["mask"],
                 "--label", "tabby", "--out", str(out)]) == 0
    assert _json_line(capsys)["masked_pixels"] == 64 * 128
    src, res = iio.imread(files["photo"]), iio.imread(out)
    keep = iio.imread(files["mask"]) <= 127
    assert np.array_equal(res[keep], src[keep]) and not np.array_equal(res[~keep], src[~keep])


def test_pmf_stylize_with_an_imagenet_class(files, capsys):
    out = files["dir"] / "stylized.png"
    assert main(["stylize", files["photo"], "class:goldfish", "--model", files["model"], "--model-config", TINY_JSON, "-o", str(out),
                 "--strength", "0.5"]) == 0
    rep = _json_line(capsys)
    assert rep["size_mode"] == "native" and rep["size"] == [256, 256]
    assert iio.imread(out).shape == (256, 256, 3)


def test_unknown_imagenet_name_is_a_clear_cli_error(files, capsys):
    out = files["dir"] / "never.png"
    assert main(["edit", files["photo"], "--model", files["model"], "--model-config", TINY_JSON, "--target", "golden retreiver",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown class 'golden retreiver'; close matches: 'golden retriever' (207)" in err
    assert not out.exists()


def test_invert_warns_when_the_iteration_diverges(files, capsys):
    # At its zero init a pMF network predicts x = 0, so u(z, 0, 1) = z and the inversion's fixed
    # point z = x + u(z) does not exist: Anderson-accelerated updates run away (the issue saw 8e4).
    out = files["dir"] / "noise.npy"
    # The CLI prints warnings as one line each ("pmf invert: warning: ...") on stderr.
    assert main(["invert", files["photo"], "--model", files["degenerate"], "--model-config", TINY_JSON,
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert re.search(r"pmf invert: warning: .*the fixed-point iteration diverged .* latent RMS .*"
                     r"randomly initialised checkpoint", captured.err), captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["diverged"] is True
    # The perturbed network, with 2 updates, stays in range: no warning, diverged False.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert main(["invert", files["photo"], "--model", files["model"], "--model-config", TINY_JSON, "--out", str(out),
                     "--iterations", "2"]) == 0
    assert _json_line(capsys)["diverged"] is False
