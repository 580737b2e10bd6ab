"""pmf_edit editing: inversion round trips, shapes/ranges/dtypes, determinism, batch-size invariance,
bit-identical inpainting outside the mask, clear errors, and the `pmf invert/edit/inpaint` CLI.

A randomly initialised pMF network is not invertible (its zero-initialised output layer makes every
sample the same image), so the inversion tests use ``GaussianMeanFlow``: the tiny pMF-T/4 network with
its forward replaced by the exact average velocity of class-conditional Gaussian data, a smooth,
nonlinear-in-time flow map whose noise is known. The other tests run the real (random) pMF-T/4.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

import pmf_edit
from core.checkpoint import bundled_model_dir, save_model
from core.model import PixelMeanFlow, build_model
from pmf_edit import velocity as vf
from pmf_edit.editing import EditResult, InversionResult


class GaussianMeanFlow(PixelMeanFlow):
    """Exact u(z_t, r, t) for x ~ N(mu_y, sigma^2 I), z_t = (1 - t) x + t e.

    Trajectories are z_t = (1 - t) mu + a_t xi with a_t = sqrt((1 - t)^2 sigma^2 + t^2), so
    z_r = (1 - r) mu + (a_r / a_t) (z_t - (1 - t) mu) and u = (z_t - z_r) / (t - r) (the limit r -> t
    for the instantaneous velocity).
    """

    sigma = 0.5

    def forward(self, z, t, r, y=None, omega=None, t_min=None, t_max=None, heads="u", backend=None):
        B = z.shape[0]
        y = torch.full((B,), self.null_class, dtype=torch.long) if y is None else y
        mu = (y.to(z.dtype) / self.cfg.num_classes - 0.5).view(B, 1, 1, 1) * torch.linspace(
            -1, 1, z.shape[-1], dtype=z.dtype)
        t4, r4 = t.view(B, 1, 1, 1).to(z.dtype), r.view(B, 1, 1, 1).to(z.dtype)
        a = lambda s: torch.sqrt((1 - s) ** 2 * self.sigma**2 + s**2)  # noqa: E731
        da = lambda s: (-(1 - s) * self.sigma**2 + s) / a(s)  # noqa: E731
        xi = (z - (1 - t4) * mu) / a(t4)
        h = t4 - r4
        safe = torch.where(h > 1e-6, h, torch.ones_like(h))
        avg = (z - ((1 - r4) * mu + a(r4) * xi)) / safe
        inst = -mu + da(t4) * xi  # dz/dt
        return torch.where(h > 1e-6, avg, inst)


@pytest.fixture(scope="module")
def gauss() -> GaussianMeanFlow:
    return GaussianMeanFlow(build_model("pMF-T/4", with_v_head=False).cfg, with_v_head=False).eval()


def _images(n: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------
# Inversion


@pytest.mark.parametrize("anderson", [0, 3])
@pytest.mark.parametrize("init", ["velocity", "state", "carry"])
@pytest.mark.parametrize("num_intervals,num_iterations", [(1, 12), (2, 8), (4, 4)])
def test_inversion_recovers_noise_of_generated_sample(gauss, num_intervals, num_iterations, init, anderson):
    e = torch.randn(3, 1, 32, 32, generator=_gen(1), dtype=torch.float64)
    y = torch.tensor([1, 4, 8])
    x = vf.jump(gauss.double(), e, 1.0, 0.0, y)  # a generated sample, one jump
    inv = vf.invert(gauss, x, 1.0, y, num_intervals=num_intervals, num_iterations=num_iterations, init=init,
                    anderson=anderson)
    assert inv.nfe == num_intervals * (num_iterations + (init == "velocity"))
    assert (inv.latents - e).abs().max() < 1e-2
    # The round trip through the same grid reconstructs the sample.
    back, nfe = vf.generate(gauss, inv.latents, 1.0, num_intervals, y)
    assert nfe == num_intervals and (back - x).abs().max() < 1e-2


def test_inversion_to_intermediate_time_matches_noised_trajectory(gauss):
    e = torch.randn(2, 1, 32, 32, generator=_gen(2), dtype=torch.float64)
    y = torch.tensor([2, 9])
    g = gauss.double()
    z_half = vf.jump(g, e, 1.0, 0.5, y)
    x = vf.jump(g, z_half, 0.5, 0.0, y)
    inv = vf.invert(g, x, 0.5, y, num_intervals=2, num_iterations=8, anderson=0)
    assert inv.t == 0.5 and (inv.latents - z_half).abs().max() < 1e-3


def test_public_invert_and_reconstruct_round_trip(gauss):
    e = 0.3 * torch.randn(2, 1, 32, 32, generator=_gen(3), dtype=torch.float64)  # images inside [-1, 1]
    y = torch.tensor([3, 6])
    x01 = ((vf.jump(gauss.double(), e, 1.0, 0.0, y) + 1) / 2).clamp(0, 1)
    inv = pmf_edit.invert(gauss, x01, labels=y, num_steps=2, num_iterations=8)
    assert isinstance(inv, InversionResult) and inv.latents.dtype == torch.float64 and inv.nfe == 16
    rec = pmf_edit.reconstruct(gauss, x01, labels=y, num_steps=2, num_iterations=8)
    assert rec.nfe == 18 and (rec.images - x01).abs().max() < 1e-3


def test_jump_and_image_field_agree(net):
    z = torch.randn(2, 1, 32, 32, generator=_gen(4))
    a = vf.jump(net, z, 0.7, 0.0, [1, 2], 2.0)
    b = vf.image_field(net, z, 0.7, 0.0, [1, 2], 2.0)
    torch.testing.assert_close(a, b)


# ------------------------------------------------------------------------------------------------
# Every task: shapes, ranges, dtypes, determinism, batch-size invariance


def _tasks():
    mask = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    mask[..., 10:22, 8:24] = True
    return {
        "reconstruct": lambda net, x, g: pmf_edit.reconstruct(net, x, labels=1),
        "edit": lambda net, x, g: pmf_edit.edit(net, x, labels=2, source_labels=1, generator=g),
        "sdedit": lambda net, x, g: pmf_edit.sdedit(net, x, labels=2, strength=0.6, generator=g),
        "flow_edit": lambda net, x, g: pmf_edit.flow_edit(net, x, labels=2, source_labels=1, generator=g),
        "inpaint": lambda net, x, g: pmf_edit.inpaint(net, x, mask, labels=1, generator=g),
    }


@pytest.mark.parametrize("task", list(_tasks()))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_task_shape_range_dtype(net, task, dtype):
    x = _images(3, dtype=dtype)
    out = _tasks()[task](net, x, _gen())
    assert isinstance(out, EditResult) and out.nfe >= 1
    assert out.images.shape == x.shape and out.images.dtype == dtype
    assert out.images.min() >= 0 and out.images.max() <= 1


@pytest.mark.parametrize("task", list(_tasks()))
def test_task_deterministic_and_batch_size_independent(net, task):
    x = _images(4, seed=5)
    full = _tasks()[task](net, x, _gen(7)).images
    again = _tasks()[task](net, x, _gen(7)).images
    assert torch.equal(full, again)
    first2 = _tasks()[task](net, x[:2], _gen(7)).images
    torch.testing.assert_close(first2, full[:2], atol=1e-5, rtol=0)


def test_nfe_counts():
    cfg = build_model("pMF-T/4", with_v_head=False)
    calls = {"n": 0}
    orig = cfg.forward

    def counting(*a, **k):
        calls["n"] += 1
        return orig(*a, **k)

    cfg.forward = counting  # count calls per batch = NFE per image (each call is batched)
    x = _images(2)
    for fn, kw in [
        (pmf_edit.reconstruct, dict(labels=1, num_steps=3, num_iterations=2)),
        (pmf_edit.edit, dict(labels=2, num_steps=2, num_inversion_steps=2, num_iterations=1)),
        (pmf_edit.sdedit, dict(labels=2, num_steps=3)),
        (pmf_edit.flow_edit, dict(labels=2, num_steps=3)),
    ]:
        calls["n"] = 0
        out = fn(cfg, x, **kw)
        expected = calls["n"] * (2 if fn is pmf_edit.flow_edit else 1)  # flow_edit batches src + tgt
        assert out.nfe == expected, fn.__name__
    calls["n"] = 0
    out = pmf_edit.inpaint(cfg, x, torch.ones(32, 32), num_steps=3, num_resample=2)
    assert out.nfe == calls["n"] == 6


def test_inpaint_keeps_unmasked_pixels_bit_identical(net):
    x = _images(3, seed=9, dtype=torch.float64)
    mask = torch.rand(3, 1, 32, 32, generator=_gen(1)) > 0.6
    out = pmf_edit.inpaint(net, x, mask, labels=[0, 1, 2], generator=_gen())
    keep = ~mask.expand_as(x)
    assert torch.equal(out.images[keep], x[keep])
    assert not torch.equal(out.images[~keep], x[~keep])


# ------------------------------------------------------------------------------------------------
# Any size in, the same size out (the size policy: pmf_edit.images)


def _sized_tasks(h: int, w: int):
    mask = torch.zeros(1, 1, h, w, dtype=torch.bool)
    mask[..., h // 3: 2 * h // 3, w // 4: w // 2] = True
    return {
        "reconstruct": lambda net, x, g, m: pmf_edit.reconstruct(net, x, labels=1, num_iterations=2, size_mode=m),
        "edit": lambda net, x, g, m: pmf_edit.edit(net, x, labels=2, source_labels=1, generator=g, size_mode=m),
        "sdedit": lambda net, x, g, m: pmf_edit.sdedit(net, x, labels=2, strength=0.6, generator=g, size_mode=m),
        "flow_edit": lambda net, x, g, m: pmf_edit.flow_edit(net, x, labels=2, num_steps=2, generator=g, size_mode=m),
        "inpaint": lambda net, x, g, m: pmf_edit.inpaint(net, x, mask, labels=1, num_steps=2, num_resample=1,
                                                         generator=g, size_mode=m),
    }


@pytest.mark.parametrize("size_mode", ["fit", "crop", "tile"])
@pytest.mark.parametrize("task", list(_sized_tasks(8, 8)))
def test_task_any_size_returns_the_input_size(net, task, size_mode):
    for h, w in ((45, 70), (20, 33)):
        x = torch.rand(2, 1, h, w, generator=_gen(h), dtype=torch.float64)
        out = _sized_tasks(h, w)[task](net, x, _gen(), size_mode)
        assert out.images.shape == x.shape and out.images.dtype == x.dtype
        assert out.images.min() >= 0 and out.images.max() <= 1
        assert out.num_tiles == (1 if size_mode != "tile" else {(45, 70): 6, (20, 33): 2}[(h, w)])
        native = _sized_tasks(32, 32)[task](net, _images(1), _gen(), size_mode)
        assert out.nfe == native.nfe * out.num_tiles  # every tile counted


@pytest.mark.parametrize("task", list(_sized_tasks(8, 8)))
def test_every_size_mode_is_the_plain_task_at_the_model_size(net, task):
    x = _images(2, seed=3)
    outs = [_sized_tasks(32, 32)[task](net, x, _gen(4), m).images for m in ("fit", "crop", "tile")]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("size_mode", ["fit", "crop", "tile"])
def test_inpaint_any_size_keeps_unmasked_pixels_bit_identical(net, size_mode):
    x = torch.rand(2, 1, 50, 90, generator=_gen(2))
    mask = torch.zeros(2, 1, 50, 90, dtype=torch.bool)
    mask[0, :, 10:30, 20:45] = True
    mask[1, :, 5:25, 50:70] = True
    out = pmf_edit.inpaint(net, x, mask, labels=[1, 2], generator=_gen(), size_mode=size_mode).images
    keep = ~mask
    assert torch.equal(out[keep], x[keep])
    assert float((out[~keep] - x[~keep]).abs().mean()) > 0.05  # the holes were refilled


def test_any_size_tiles_are_batch_size_independent(net):
    x = torch.rand(3, 1, 40, 60, generator=_gen(8))
    full = pmf_edit.sdedit(net, x, labels=1, generator=_gen(5), size_mode="tile").images
    first = pmf_edit.sdedit(net, x[:1], labels=1, generator=_gen(5), size_mode="tile").images
    torch.testing.assert_close(first, full[:1], atol=1e-5, rtol=0)


def test_invert_any_size_gives_latents_per_network_input(net):
    x = torch.rand(2, 1, 45, 70, generator=_gen(1))
    inv = pmf_edit.invert(net, x, labels=1, num_iterations=1, size_mode="tile")
    assert inv.num_tiles == 6 and inv.latents.shape == (12, 1, 32, 32) and inv.nfe == 6
    fit = pmf_edit.invert(net, x, labels=1, num_iterations=1)
    assert fit.num_tiles == 1 and fit.latents.shape == (2, 1, 32, 32)


def test_from_pretrained_round_trip(tmp_path, net):
    save_model(tmp_path / "m", net, objective="pmf", class_names=[str(i) for i in range(10)])
    loaded, cfg = pmf_edit.from_pretrained(tmp_path / "m")
    assert cfg["objective"] == "pmf"
    x = _images(1)
    torch.testing.assert_close(pmf_edit.edit(loaded, x, labels=3, generator=_gen()).images,
                               pmf_edit.edit(net, x, labels=3, generator=_gen()).images)


# ------------------------------------------------------------------------------------------------
# Bad inputs


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda n: pmf_edit.edit(n, _images(2)[:, :, :1, :1], labels=1), r"images is 1x1 .*at least 8 pixels"),
        (lambda n: pmf_edit.sdedit(n, torch.zeros(1, 1, 40000, 8)), r"images is 40000x8 .*at most 16384 pixels"),
        (lambda n: pmf_edit.flow_edit(n, _images(1), labels=1, size_mode="resize"), r"size_mode must be one of 'fit', 'crop', 'tile'"),
        (lambda n: pmf_edit.inpaint(n, torch.rand(1, 1, 40, 200), torch.ones(40, 200), size_mode="crop"), r"mask reaches outside the 40x40 square"),
        (lambda n: pmf_edit.edit(n, torch.rand(2, 3, 32, 32), labels=1), r"3 channels but the model takes 1"),
        (lambda n: pmf_edit.edit(n, torch.rand(1, 32, 32), labels=1), r"\(B, C, H, W\).*got shape \(1, 32, 32\)"),
        (lambda n: pmf_edit.edit(n, _images(2) * 2, labels=1), r"must lie in \[0, 1\], got values in"),
        (lambda n: pmf_edit.edit(n, _images(2) * float("nan"), labels=1), r"must lie in \[0, 1\]"),
        (lambda n: pmf_edit.edit(n, _images(2).half(), labels=1), r"float32 or float64.*float16"),
        (lambda n: pmf_edit.edit(n, (_images(2) * 255).to(torch.uint8), labels=1), r"dtype torch.uint8"),
        (lambda n: pmf_edit.edit(n, _images(2), labels=10), r"\[10\] outside the model's classes 0..9"),
        (lambda n: pmf_edit.edit(n, _images(2), labels=[1, -1]), r"\[-1\] outside the model's classes"),
        (lambda n: pmf_edit.edit(n, _images(2), labels=[1, 2, 3]), r"one int or \(2,\)"),
        (lambda n: pmf_edit.edit(n, _images(2), labels=None), r"labels is required"),
        (lambda n: pmf_edit.edit(n, _images(2), labels=1, source_labels=11), r"source_labels \[11\] outside"),
        (lambda n: pmf_edit.edit(n, _images(2), labels=1, strength=-0.1), r"strength must lie in \[0, 1\], got -0.1"),
        (lambda n: pmf_edit.sdedit(n, _images(2), strength=1.5), r"strength must lie in \[0, 1\], got 1.5"),
        (lambda n: pmf_edit.sdedit(n, _images(2), num_steps=0), r"num_steps must be an integer >= 1, got 0"),
        (lambda n: pmf_edit.sdedit(n, _images(2), guidance_scale=0.5), r"guidance_scale must be >= 1"),
        (lambda n: pmf_edit.invert(n, _images(2), num_iterations=0), r"num_iterations must be an integer >= 1"),
        (lambda n: pmf_edit.inpaint(n, _images(2), torch.ones(2, 1, 16, 16)), r"mask shape \(2, 1, 16, 16\) does not match images \(2, 1, 32, 32\)"),
        (lambda n: pmf_edit.inpaint(n, _images(2), torch.ones(3, 1, 32, 32)), r"mask shape \(3, 1, 32, 32\) does not match"),
        (lambda n: pmf_edit.inpaint(n, _images(2), torch.full((32, 32), 0.5)), r"mask must hold only 0 and 1"),
        (lambda n: pmf_edit.inpaint(n, _images(2), np.ones((32, 32))), r"mask must be a torch.Tensor"),
    ],
)
def test_bad_inputs_raise_clear_errors(net, call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(net)


# ------------------------------------------------------------------------------------------------
# Optional: the bundled, trained model (skipped until it is committed)


def test_bundled_model_round_trip_psnr():
    try:
        path = bundled_model_dir("mnist")
    except FileNotFoundError:
        pytest.skip("bundled MNIST pMF model not present")
    from core.data import load_dataset
    from core.eval.metrics import psnr

    net, _ = pmf_edit.from_pretrained(path)
    test = load_dataset("mnist", split="test")
    idx = torch.arange(0, 500, 50)  # one per class
    x01 = (test.images[idx] + 1) / 2
    rec = pmf_edit.reconstruct(net, x01, labels=test.labels[idx])
    assert rec.nfe <= 8
    assert psnr(rec.images, x01, data_range=1.0).mean() > 20.0


def test_bundled_model_edit_changes_the_class_and_keeps_the_digit():
    """Regression guard on what `edit` is for: held-out digits y -> y + 1 at the defaults are read as
    their target class by the project's classifier (90% here with the change gate and 2 regeneration
    jumps, fourteenth session; 100% at the eighth session's defaults) and stay closer to their source than
    an unrelated digit is (SSIM 0.560 here when written, 0.49 before; unrelated held-out digit pairs: 0.38)."""
    from core.data import load_dataset
    from core.eval.evaluation import evaluate_digits
    from core.eval.metrics import ssim

    net, _ = pmf_edit.from_pretrained(bundled_model_dir("mnist"))
    test = load_dataset("mnist", split="test")
    idx = torch.arange(0, 480, 12)  # 40 held-out digits
    x01, y = (test.images[idx] + 1) / 2, test.labels[idx]
    out = pmf_edit.edit(net, x01, source_labels=y, labels=(y + 1) % 10, generator=_gen())
    edited = out.images * 2 - 1
    assert evaluate_digits(edited, (y + 1) % 10)["class_accuracy"] >= 0.85
    assert evaluate_digits(edited, y)["class_accuracy"] <= 0.1
    assert float(ssim(edited, test.images[idx]).mean()) >= 0.45


# ------------------------------------------------------------------------------------------------
# CLI


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, net):
    d = tmp_path_factory.mktemp("model")
    save_model(d, net, objective="pmf", class_names=[str(i) for i in range(10)],
               sampling={"guidance_scale": 2.0, "guidance_interval": [0.0, 1.0], "num_steps": 1})
    return d


def _png(path, array):
    import imageio.v3 as iio

    iio.imwrite(path, array)
    return str(path)


def test_cli_invert_edit_inpaint(tmp_path, model_dir):
    from apps.cli import main

    img = _png(tmp_path / "in.png", (np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8))
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 255
    mpath = _png(tmp_path / "mask.png", mask)
    assert main(["edit", img, "--model", str(model_dir), "--target", "3", "--source", "1",
                 "--out", str(tmp_path / "e.png")]) == 0
    assert main(["invert", img, "--model", str(model_dir), "--label", "1",
                 "--out", str(tmp_path / "inv.npy"), "--reconstruction", str(tmp_path / "rec.png")]) == 0
    assert main(["inpaint", img, "--mask", mpath, "--model", str(model_dir), "--label", "2", "--seed", "1",
                 "--out", str(tmp_path / "p.png")]) == 0
    import imageio.v3 as iio

    src, out = iio.imread(img), iio.imread(tmp_path / "p.png")
    assert out.shape == (32, 32) and np.array_equal(out[mask == 0], src[mask == 0])
    assert iio.imread(tmp_path / "e.png").shape == (32, 32) and np.load(tmp_path / "inv.npy").shape == (1, 32, 32)


@pytest.mark.parametrize("size_mode", ["fit", "crop", "tile"])
def test_cli_any_size_same_size_out(tmp_path, model_dir, size_mode):
    import imageio.v3 as iio

    from apps.cli import main

    img = _png(tmp_path / "in.png", (np.random.default_rng(0).random((45, 70)) * 255).astype(np.uint8))
    mask = np.zeros((45, 70), np.uint8)
    mask[10:30, 20:40] = 255
    mpath = _png(tmp_path / "mask.png", mask)
    sm = ["--size-mode", size_mode]
    assert main(["edit", img, "--model", str(model_dir), "--target", "3", "--method", "flow",
                 "--out", str(tmp_path / "e.png")] + sm) == 0
    assert main(["invert", img, "--model", str(model_dir), "--iterations", "1", "--out", str(tmp_path / "inv.npy"),
                 "--reconstruction", str(tmp_path / "rec.png")] + sm) == 0
    assert main(["inpaint", img, "--mask", mpath, "--model", str(model_dir), "--steps", "2", "--resample", "1",
                 "--out", str(tmp_path / "p.png")] + sm) == 0
    src = iio.imread(img)
    for name in ("e.png", "rec.png", "p.png"):
        assert iio.imread(tmp_path / name).shape == (45, 70), name
    out = iio.imread(tmp_path / "p.png")
    assert np.array_equal(out[mask == 0], src[mask == 0])
    tiles = 6 if size_mode == "tile" else 1
    assert np.load(tmp_path / "inv.npy").shape == ((1, 32, 32) if tiles == 1 else (tiles, 1, 32, 32))


def test_cli_reads_a_phone_photo_upright_and_its_mask_lines_up(tmp_path, model_dir):
    """A file stored sideways with an EXIF orientation (as phones write them) is edited as it is shown:
    the output has the shown shape and the unmasked pixels are the shown pixels, bit for bit, for a
    mask drawn over the shown picture."""
    import imageio.v3 as iio
    from PIL import Image, ImageOps

    from apps.cli import main

    stored = np.random.default_rng(3).integers(0, 256, (30, 44), dtype=np.uint8)  # landscape as stored
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": a portrait photo
    im.save(tmp_path / "phone.png", exif=exif.tobytes())
    with Image.open(tmp_path / "phone.png") as f:
        shown = np.asarray(ImageOps.exif_transpose(f))
    assert shown.shape == (44, 30)
    mask = np.zeros(shown.shape, np.uint8)
    mask[5:20, 8:25] = 255  # drawn over the shown (portrait) picture
    iio.imwrite(tmp_path / "mask.png", mask)
    out = tmp_path / "p.png"
    assert main(["inpaint", str(tmp_path / "phone.png"), "--mask", str(tmp_path / "mask.png"), "--model",
                 str(model_dir), "--steps", "2", "--resample", "1", "--out", str(out)]) == 0
    result = iio.imread(out)
    assert result.shape == shown.shape
    assert np.array_equal(result[mask == 0], shown[mask == 0])
    assert not np.array_equal(result[mask > 0], shown[mask > 0])


def test_cli_errors(tmp_path, model_dir, capsys):
    from apps.cli import main

    tiny = _png(tmp_path / "tiny.png", np.zeros((1, 1), np.uint8))
    colour = np.zeros((32, 32, 3), np.uint8)
    colour[..., 0] = 200  # a grey picture stored as RGB is accepted; this one is red
    rgb = _png(tmp_path / "rgb.png", colour)
    ok = _png(tmp_path / "ok.png", np.zeros((32, 32), np.uint8))
    badmask = _png(tmp_path / "m.png", np.zeros((16, 16), np.uint8))
    cases = [
        (["edit", tiny, "--model", str(model_dir), "--target", "1"], "is 1x1"),
        (["edit", rgb, "--model", str(model_dir), "--target", "1"], "3 channels but the model takes 1"),
        (["edit", ok, "--model", str(model_dir), "--target", "12"], "class 12 is outside this model's classes 0..9"),
        (["inpaint", ok, "--mask", badmask, "--model", str(model_dir)], "mask is 16x16 but the image is 32x32"),
        (["edit", str(tmp_path / "nope.png"), "--model", str(model_dir), "--target", "1"], "no such image"),
    ]
    for argv, msg in cases:
        assert main(argv + ["--out", str(tmp_path / "o.png")]) == 2
        assert msg in capsys.readouterr().err


def test_cli_help_documents_every_flag(capsys):
    from apps.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in ("invert", "edit", "inpaint"):
        for action in sub.choices[name]._actions:
            assert action.help, f"pmf {name} {action.option_strings} has no help"


# ------------------------------------------------------------------------------------------------
# Inversion with the backward field (networks trained in both directions)


def test_backward_inversion_is_exact_on_the_exact_flow_and_one_evaluation():
    from tests.gaussian_flow import gaussian_flow

    net = gaussian_flow().double()
    y = torch.tensor([1, 4, 7])
    e = torch.randn(3, 1, 32, 32, generator=_gen(0), dtype=torch.float64)
    x = vf.jump(net, e, 1.0, 0.0, y)  # the exact flow's image of e
    inv = vf.invert_backward(net, x, 1.0, y, num_refinements=0)
    assert inv.nfe == 1
    assert (inv.latents - e).abs().max() < 1e-9  # z_1 = x + u(x, 1, 0) recovers the noise
    inv2 = vf.invert_backward(net, x, 0.6, y, num_steps=2, num_refinements=1)
    assert inv2.nfe == 2 * (1 + 2)
    assert (vf.jump(net, inv2.latents, 0.6, 0.0, y) - x).abs().max() < 1e-9


def test_backward_method_and_refinement_cancels_a_biased_inverse():
    from tests.gaussian_flow import GaussianMeanFlow, gaussian_flow

    class Biased(GaussianMeanFlow):  # the backward field off by a smooth error, as a learned one is
        def forward(self, z, t, r, *a, **k):
            u = super().forward(z, t, r, *a, **k)
            bwd = (r > t).view(-1, 1, 1, 1)
            return torch.where(bwd, u + 0.05 * torch.tanh(z), u)

    net = Biased(gaussian_flow().cfg, with_v_head=False).double().eval()
    images = _images(4, dtype=torch.float64) * 0.5 + 0.25
    y = [1, 2, 3, 4]
    psnr = []
    for k in (0, 1, 2):
        rec = pmf_edit.reconstruct(net, images, labels=y, method="backward", num_refinements=k)
        assert rec.nfe == 1 + 2 * k + 1
        psnr.append(float(-10 * torch.log10(((rec.images - images) ** 2).mean())))
    assert psnr[1] > psnr[0] + 10 and psnr[2] > psnr[1], psnr
    assert pmf_edit.invert(net, images, labels=y, num_iterations=2).nfe == 2  # auto: fixed point
    with pytest.raises(ValueError, match="backward head"):
        pmf_edit.invert(gauss_plain(), images.float(), labels=y, method="backward")
    with pytest.raises(ValueError, match="num_refinements"):
        pmf_edit.invert(net, images, labels=y, method="backward", num_refinements=-1)
    with pytest.raises(ValueError, match="method"):
        pmf_edit.invert(net, images, labels=y, method="newton")


def gauss_plain() -> GaussianMeanFlow:
    return GaussianMeanFlow(build_model("pMF-T/4", with_v_head=False).cfg, with_v_head=False).eval()


def test_backward_edit_keeps_the_noise_and_swaps_the_class():
    from tests.gaussian_flow import gaussian_flow

    net = gaussian_flow().double()
    e = 0.3 * torch.randn(2, 1, 32, 32, generator=_gen(3), dtype=torch.float64)  # images inside [-1, 1]
    src, tgt = torch.tensor([2, 5]), torch.tensor([8, 0])
    x_src = vf.jump(net, e, 1.0, 0.0, src)
    x_tgt = vf.jump(net, e, 1.0, 0.0, tgt)
    to01 = lambda x: (x + 1) / 2  # noqa: E731
    assert x_src.min() > -1 and x_src.max() < 1
    out = pmf_edit.edit(net, to01(x_src), source_labels=src, labels=tgt, guidance_scale=1.0, method="backward",
                        num_refinements=0, change_gate=None)  # the exact edit, not gated toward the source
    assert out.nfe == 2
    assert (out.images - to01(x_tgt).clamp(0, 1)).abs().max() < 1e-6


def test_inversion_init_keeps_its_former_name_seed_with_a_warning(gauss):
    x = vf.jump(gauss.double(), torch.randn(2, 1, 32, 32, generator=_gen(3), dtype=torch.float64), 1.0, 0.0,
                torch.tensor([1, 2]))
    new = vf.invert(gauss, x, 1.0, torch.tensor([1, 2]), num_iterations=3, init="carry")
    with pytest.warns(DeprecationWarning, match="now called init=") as rec:
        old = vf.invert(gauss, x, 1.0, torch.tensor([1, 2]), num_iterations=3, seed="carry")
    assert rec[0].filename == __file__  # points at the caller's line
    assert torch.equal(new.latents, old.latents)
    with pytest.raises(ValueError, match="init must be"):
        vf.invert(gauss, x, 1.0, num_iterations=1, init="random")


# ------------------------------------------------------------------------------------------------
# The checkpoint's recommended guidance (code review D)


def test_recommended_guidance_comes_from_official_checkpoints_only():
    from core.pretrained import from_pretrained, recommended_guidance

    official = {"source": {"format": "official", "official_model": "pmfDiT_B_16"},
                "sampling": {"guidance_scale": 8.5, "guidance_interval": [0.1, 0.7], "num_steps": 1}}
    assert recommended_guidance(official) == {"guidance_scale": 8.5, "guidance_interval": (0.1, 0.7)}
    assert recommended_guidance({**official, "source": {"format": "official", "official_model": None}}) is None
    assert recommended_guidance({"sampling": {"guidance_scale": 1.75}}) is None  # a model of ours
    bundled, _ = from_pretrained(bundled_model_dir("mnist"))
    assert bundled.recommended_guidance is None  # its tasks keep their measured defaults


@pytest.mark.parametrize("task", ["invert", "reconstruct", "edit", "sdedit", "flow_edit", "inpaint"])
def test_tasks_use_the_recommended_guidance_when_none_is_passed(task):
    """guidance_scale=None / guidance_interval=None: the network's recommended guidance where it has
    one, exactly as if passed; the task's own default where it has none (as before)."""
    import copy

    torch.manual_seed(0)
    net = build_model("pMF-T/4", with_v_head=False).eval()
    with torch.no_grad():  # every weight off its init, so that the guidance inputs reach the output
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)

    mask = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    mask[..., 8:24, 8:24] = True
    calls = {
        "invert": lambda m, **g: pmf_edit.invert(m, x, labels=1, **g).latents,
        "reconstruct": lambda m, **g: pmf_edit.reconstruct(m, x, labels=1, **g).images,
        "edit": lambda m, **g: pmf_edit.edit(m, x, labels=2, source_labels=1, generator=_gen(), **g).images,
        "sdedit": lambda m, **g: pmf_edit.sdedit(m, x, labels=2, strength=0.6, generator=_gen(), **g).images,
        "flow_edit": lambda m, **g: pmf_edit.flow_edit(m, x, labels=2, source_labels=1, generator=_gen(), **g).images,
        "inpaint": lambda m, **g: pmf_edit.inpaint(m, x, mask, labels=1, generator=_gen(), **g).images,
    }
    x = _images(2, seed=3)
    default = 4.0 if task in ("edit", "sdedit", "flow_edit") else 1.0
    plain = calls[task](net)
    assert torch.equal(plain, calls[task](net, guidance_scale=default, guidance_interval=(0.0, 1.0)))
    rec = copy.deepcopy(net)
    rec.recommended_guidance = {"guidance_scale": 2.5, "guidance_interval": (0.1, 0.7)}
    got = calls[task](rec)
    assert torch.equal(got, calls[task](net, guidance_scale=2.5, guidance_interval=(0.1, 0.7)))
    assert not torch.equal(got, plain)  # the recommendation really changed the guidance
    assert torch.equal(calls[task](rec, guidance_scale=default, guidance_interval=(0.0, 1.0)), plain)  # explicit wins


@pytest.mark.parametrize("task", ["reconstruct", "edit", "sdedit", "flow_edit", "inpaint"])
def test_strength_zero_returns_the_input_without_evaluating(net, task):
    """strength 0 is the input itself for every task, as in style_transfer (a slider's 0 end), with no
    network evaluation; arguments are still checked."""
    mask = torch.ones(3, 1, 40, 56, dtype=torch.bool)
    calls = {
        "reconstruct": lambda x, **k: pmf_edit.reconstruct(net, x, labels=1, **k),
        "edit": lambda x, **k: pmf_edit.edit(net, x, labels=2, source_labels=1, **k),
        "sdedit": lambda x, **k: pmf_edit.sdedit(net, x, labels=2, **k),
        "flow_edit": lambda x, **k: pmf_edit.flow_edit(net, x, labels=2, source_labels=1, **k),
        "inpaint": lambda x, **k: pmf_edit.inpaint(net, x, mask, labels=1, **k),
    }
    x = torch.rand(3, 1, 40, 56, generator=_gen(1))  # another size than the model's
    out = calls[task](x, strength=0.0, generator=_gen()) if task != "reconstruct" else calls[task](x, strength=0.0)
    assert out.nfe == 0 and torch.equal(out.images, x) and out.images is not x
    gen = {} if task == "reconstruct" else {"generator": _gen()}
    assert calls[task](x, strength=0.0, size_mode="tile", **gen).num_tiles > 1
    with pytest.raises(ValueError, match="guidance_scale must be >= 1"):
        calls[task](x, strength=0.0, guidance_scale=0.5)
    tiny = calls[task](x, strength=1e-3, **({} if task == "reconstruct" else {"generator": _gen()}))
    assert tiny.nfe > 0  # any positive strength runs the network


def test_invert_strength_zero_is_the_image_in_model_units(net):
    x = _images(2, seed=4)
    inv = pmf_edit.invert(net, x, labels=1, strength=0.0)
    assert inv.nfe == 0 and inv.t == 0.0 and not inv.diverged
    assert torch.allclose(inv.latents, 2 * x - 1)  # the state at t = 0 is the image, [-1, 1]
