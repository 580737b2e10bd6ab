"""The project's own MNIST digit classifier: class accuracy of generated digits and the feature
network of the Frechet distance on digits ("FD-digits").

It is trained ONLY on the MNIST-5k train split (4500 images) with light random affine augmentation,
so the 500 held-out test digits measure it honestly and can serve as the FD reference set.
The bundled weights (`core/assets/digit_classifier.safetensors`, ~0.55 MB) are reproduced by

    OMP_NUM_THREADS=1 python benchmarks/train_digit_classifier.py       # seed 0, 20 epochs

which prints the held-out accuracy (see that script's docstring for the measured numbers).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from core.data import BatchSampler, ImageDataset

__all__ = [
    "ClassifierConfig",
    "TrainClassifierConfig",
    "DigitClassifier",
    "train_classifier",
    "classifier_accuracy",
    "load_digit_classifier",
    "save_digit_classifier",
    "BUNDLED_CLASSIFIER",
]

BUNDLED_CLASSIFIER = Path(__file__).parent.parent / "assets" / "digit_classifier.safetensors"


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of the digit CNN."""

    in_channels: int = 1  # grayscale digits
    resolution: int = 32  # input side; MNIST-at-32 (28x28 padded by 2)
    widths: tuple[int, int, int] = (32, 64, 128)  # channels of the three conv stages; last = feature dim
    num_classes: int = 10


@dataclass(frozen=True)
class TrainClassifierConfig:
    """How `train_classifier` trains; the defaults produce the bundled weights."""

    seed: int = 0  # seeds the init, the batch order and the augmentation
    epochs: int = 20  # passes over the 4500 training digits
    batch_size: int = 64
    lr: float = 3e-3  # AdamW peak learning rate, cosine-decayed to 0 after a 1-epoch linear warm-up
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    max_shift: float = 0.1  # random translation, as a fraction of the side (3 px at 32)
    max_rotation: float = 12.0  # random rotation, degrees
    scale_range: tuple[float, float] = (0.9, 1.1)  # random isotropic scale


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DigitClassifier(nn.Module):
    """Three conv stages (32 -> 16 -> 8 -> 4 px), global average pooling, linear head.

    Input (B, 1, 32, 32) in [-1, 1]; `features` gives the pooled (B, widths[-1]) vector used for
    FD-digits, `forward` the (B, num_classes) logits.
    """

    def __init__(self, config: ClassifierConfig = ClassifierConfig()) -> None:
        super().__init__()
        self.config = config
        c1, c2, c3 = config.widths
        self.body = nn.Sequential(
            *_conv_bn_relu(config.in_channels, c1), *_conv_bn_relu(c1, c1), nn.MaxPool2d(2),  # (B, c1, R/2, R/2)
            *_conv_bn_relu(c1, c2), *_conv_bn_relu(c2, c2), nn.MaxPool2d(2),  # (B, c2, R/4, R/4)
            *_conv_bn_relu(c2, c3), nn.MaxPool2d(2),  # (B, c3, R/8, R/8)
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(c3, config.num_classes)

    def _check(self, x: Tensor) -> None:
        c, r = self.config.in_channels, self.config.resolution
        if x.ndim != 4 or x.shape[1:] != (c, r, r) or not x.is_floating_point():
            raise ValueError(f"DigitClassifier expects float (B, {c}, {r}, {r}) in [-1, 1], got {x.dtype} {tuple(x.shape)}")

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features.

        Args:
            x: (B, 1, 32, 32) in [-1, 1].

        Returns:
            (B, 128) pooled, post-ReLU features.
        """
        self._check(x)
        return self.body(x).mean((2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) for x (B, 1, 32, 32) in [-1, 1]."""
        return self.head(self.dropout(self.features(x)))


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def _random_affine(x: Tensor, cfg: TrainClassifierConfig, generator: torch.Generator) -> Tensor:
    """Per-image random rotation/scale/shift (B, C, H, W) -> same; background stays -1."""
    b = x.shape[0]
    u = torch.rand(b, 4, generator=generator)  # (B, 4) uniforms: angle, scale, dx, dy
    angle = (u[:, 0] * 2 - 1) * math.radians(cfg.max_rotation)
    lo, hi = cfg.scale_range
    scale = lo + (hi - lo) * u[:, 1]
    shift = (u[:, 2:] * 2 - 1) * cfg.max_shift * 2  # affine_grid coordinates span 2 per side
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)  # (B, H, W, 2)
    # Sample x + 1 with zero padding so out-of-frame pixels come back as background (-1).
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


@torch.no_grad()
def classifier_accuracy(model: DigitClassifier, images: Tensor, labels: Tensor, *, batch_size: int = 500) -> float:
    """Top-1 accuracy of `model` (put in eval mode) on images (N, 1, 32, 32) in [-1, 1]."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        correct += int((model(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum())
    return correct / max(len(images), 1)


def train_classifier(
    dataset: ImageDataset,
    *,
    config: TrainClassifierConfig = TrainClassifierConfig(),
    model_config: ClassifierConfig = ClassifierConfig(),
    eval_dataset: ImageDataset | None = None,
    log: Callable[[str], None] | None = print,
) -> tuple[DigitClassifier, dict]:
    """Trains a `DigitClassifier` from scratch, deterministically given `config.seed`.

    Args:
        dataset: training digits (use the MNIST train split, never "test"): (N, 1, 32, 32) in [-1, 1].
        config: optimisation and augmentation settings.
        model_config: network shape.
        eval_dataset: optional held-out set, scored after every epoch (never used for training).
        log: called with one line per epoch; None for silence.

    Returns:
        (model in eval mode, stats dict with "seconds", "train_accuracy", "eval_accuracy", "config").

    Example:
        >>> from core.data import load_dataset
        >>> model, stats = train_classifier(load_dataset("mnist"), eval_dataset=load_dataset("mnist", split="test"))
    """
    if dataset.images.shape[1:] != (model_config.in_channels, model_config.resolution, model_config.resolution):
        raise ValueError(f"dataset images are {tuple(dataset.images.shape[1:])}, model expects "
                         f"({model_config.in_channels}, {model_config.resolution}, {model_config.resolution})")
    start = time.perf_counter()
    # Init and dropout draw from the global RNG: seed it inside fork_rng so the caller's stream is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return _train(dataset, config, model_config, eval_dataset, log, start)


def _train(
    dataset: ImageDataset,
    config: TrainClassifierConfig,
    model_config: ClassifierConfig,
    eval_dataset: ImageDataset | None,
    log: Callable[[str], None] | None,
    start: float,
) -> tuple[DigitClassifier, dict]:
    """The loop of `train_classifier`, run with the global RNG seeded to config.seed."""
    model = DigitClassifier(model_config)
    aug_gen = torch.Generator().manual_seed(config.seed + 1)
    sampler = BatchSampler(len(dataset), config.batch_size, seed=config.seed)
    steps_per_epoch = sampler.batches_per_epoch
    total = config.epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    )
    stats: dict = {"config": asdict(config), "model_config": asdict(model_config)}
    for epoch in range(config.epochs):
        model.train()
        loss_sum = 0.0
        for _ in range(steps_per_epoch):
            x, y = dataset[next(sampler)]
            x = _random_affine(x, config, aug_gen)
            loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item()
        line = f"epoch {epoch + 1}/{config.epochs} loss {loss_sum / steps_per_epoch:.4f}"
        if eval_dataset is not None:
            stats["eval_accuracy"] = classifier_accuracy(model, eval_dataset.images, eval_dataset.labels)
            line += f" held-out acc {stats['eval_accuracy']:.4f}"
        if log is not None:
            log(line + f" ({time.perf_counter() - start:.0f} s)")
    stats["train_accuracy"] = classifier_accuracy(model, dataset.images, dataset.labels)
    stats["seconds"] = time.perf_counter() - start
    return model.eval(), stats


# --------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------


def save_digit_classifier(model: DigitClassifier, path: str | os.PathLike, *, metadata: dict | None = None) -> None:
    """Writes the weights as safetensors with the `ClassifierConfig` (and `metadata`) in the header."""
    from safetensors.torch import save_file

    meta = {"config": json.dumps(asdict(model.config))}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def load_digit_classifier(path: str | os.PathLike | None = None, *, device: torch.device | str = "cpu") -> DigitClassifier:
    """Loads the bundled (or a given) digit classifier, frozen and in eval mode.

    Args:
        path: a file written by `save_digit_classifier`; None = the bundled
            `core/assets/digit_classifier.safetensors`.
        device: where to put it.

    Returns:
        `DigitClassifier` with requires_grad False; `.features(x)` gives (B, 128).

    Example:
        >>> clf = load_digit_classifier()
        >>> clf(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path is not None else BUNDLED_CLASSIFIER
    if not path.is_file():
        raise FileNotFoundError(
            f"digit classifier weights {str(path)!r} not found"
            + ("; recreate them with: python benchmarks/train_digit_classifier.py" if path == BUNDLED_CLASSIFIER else "")
        )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    cfg = json.loads(meta.get("config", "{}"))
    if "widths" in cfg:
        cfg["widths"] = tuple(cfg["widths"])
    model = DigitClassifier(ClassifierConfig(**cfg))
    model.load_state_dict(load_file(str(path)), strict=True)
    model.requires_grad_(False)
    return model.eval().to(device)
