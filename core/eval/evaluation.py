"""Sample-quality evaluation: class accuracy and Frechet distances on features of frozen networks.

- Digits: the project's own classifier (`core/eval/classifier.py`, trained on the MNIST train split only)
  gives the class accuracy of class-conditional samples, and its 128-d features give "FD-digits"
  against the 500 held-out MNIST test digits (whose statistics are computed once per process).
- RGB: the ImageNet MobileNetV2's 1280-d pooled features give "FD-MobileNet", a stand-in for FID
  (no Inception weights exist offline) against any reference images or cached `FeatureStats`.

Frechet distances are biased upward at small N: compare values only at equal sample counts.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from core.eval.classifier import DigitClassifier, load_digit_classifier
from core.data import load_dataset
from core.eval.metrics import FeatureStats, frechet_distance
from core.eval.perceptual import MobileNetFeatures

__all__ = ["evaluate_digits", "evaluate_rgb", "digit_reference_stats", "mobilenet_features", "classifier_features"]


@functools.lru_cache(maxsize=1)
def _bundled_classifier() -> DigitClassifier:
    return load_digit_classifier()


@functools.lru_cache(maxsize=1)
def _default_mobilenet() -> MobileNetFeatures:
    return MobileNetFeatures()


def _check_images(images: Tensor, channels: tuple[int, ...], name: str, resolution: int | None = None) -> None:
    ok = images.ndim == 4 and images.shape[1] in channels and images.is_floating_point()
    if resolution is not None:
        ok = ok and tuple(images.shape[-2:]) == (resolution, resolution)
    if not ok:
        want = f"(N, {'|'.join(map(str, channels))}, {resolution or 'H'}, {resolution or 'W'})"
        raise ValueError(f"{name} must be float {want} in [-1, 1], got {images.dtype} {tuple(images.shape)}")


@torch.no_grad()
def classifier_features(
    images: Tensor, classifier: DigitClassifier | None = None, *, batch_size: int = 500
) -> tuple[Tensor, Tensor]:
    """Digit-classifier (features (N, 128), logits (N, 10)) for images (N, 1, 32, 32) in [-1, 1]."""
    clf = classifier if classifier is not None else _bundled_classifier()
    clf.eval()
    device = next(clf.parameters()).device
    feats, logits = [], []
    for i in range(0, len(images), batch_size):
        f = clf.features(images[i : i + batch_size].to(device, torch.float32))
        feats.append(f.cpu())
        logits.append(clf.head(f).cpu())
    return torch.cat(feats), torch.cat(logits)


@functools.lru_cache(maxsize=1)
def digit_reference_stats() -> FeatureStats:
    """Bundled-classifier feature statistics of the 500 held-out MNIST test digits (cached per process)."""
    test = load_dataset("mnist", split="test")
    return FeatureStats.from_features(classifier_features(test.images)[0])


def evaluate_digits(images: Tensor, labels: Tensor, *, classifier: DigitClassifier | None = None) -> dict:
    """Class accuracy and FD-digits of generated digits.

    Args:
        images: generated digits (N, 1, 32, 32) in [-1, 1], N >= 2.
        labels: int (N,), the class each image was generated for.
        classifier: None = the bundled classifier (whose reference statistics are cached); another
            classifier recomputes the held-out reference features with it.

    Returns:
        {"class_accuracy": fraction classified as their label, "fd_digits": Frechet distance of
        classifier features vs the 500 held-out test digits, "n": N}.

    Example:
        >>> test = load_dataset("mnist", split="test")
        >>> evaluate_digits(test.images, test.labels)["class_accuracy"]   # the classifier's own accuracy
    """
    _check_images(images, (1,), "images", 32)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must be ({images.shape[0]},), got {tuple(labels.shape)}")
    feats, logits = classifier_features(images, classifier)
    if classifier is None:
        reference = digit_reference_stats()
    else:
        reference = FeatureStats.from_features(classifier_features(load_dataset("mnist", split="test").images, classifier)[0])
    accuracy = (logits.argmax(1) == labels.cpu().long()).double().mean().item()
    return {"class_accuracy": accuracy, "fd_digits": frechet_distance(feats, reference), "n": int(images.shape[0])}


@torch.no_grad()
def mobilenet_features(images: Tensor, network: MobileNetFeatures | None = None, *, batch_size: int = 64) -> Tensor:
    """Pooled MobileNetV2 features (N, 1280) of images (N, 1|3, H, W) in [-1, 1] (resized to 224 inside)."""
    _check_images(images, (1, 3), "images")
    net = network if network is not None else _default_mobilenet()
    device = next(net.parameters()).device
    return torch.cat([net(images[i : i + batch_size].to(device, torch.float32)).cpu() for i in range(0, len(images), batch_size)])


def evaluate_rgb(
    images: Tensor,
    reference_images: Tensor | FeatureStats,
    *,
    network: MobileNetFeatures | None = None,
) -> dict:
    """FD-MobileNet: Frechet distance of ImageNet MobileNetV2 pooled features.

    Args:
        images: generated images (N, 1|3, H, W) in [-1, 1], N >= 2.
        reference_images: real images in the same format, or their cached `FeatureStats`
            (`FeatureStats.from_features(mobilenet_features(ref))`, saved with `.save`).
        network: None = the offline ImageNet weights at 224 px, loaded once per process.

    Returns:
        {"fd_mobilenet": float, "n": N}.

    Example:
        >>> ref = load_dataset("photos", split="test").images
        >>> evaluate_rgb(generated, ref)["fd_mobilenet"]
    """
    feats = mobilenet_features(images, network)
    if isinstance(reference_images, FeatureStats):
        reference = reference_images
    else:
        reference = FeatureStats.from_features(mobilenet_features(reference_images, network))
    return {"fd_mobilenet": frechet_distance(feats, reference), "n": int(images.shape[0])}
