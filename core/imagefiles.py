"""Lazy image-file data sets for ImageNet-size training: class folders or file lists, ADM centre crop.

`core.data` loads a whole set into one in-memory tensor, which stops working somewhere past a few
hundred thousand images (ImageNet-1k train at 256x256 would be 250 GB of uint8). The sets here hold
only the file names, as one numpy byte array rather than a list of Python strings: DataLoader worker
processes fork the parent, and touching a million Python objects' reference counts would copy their
pages into every worker. Each item is decoded when it is asked for, normally inside a DataLoader worker
(`core.loader.BatchStream`).

Preprocessing is the one ADM (Dhariwal & Nichol 2021) introduced and the official pMF code uses for
ImageNet (PMF_SPEC section 6): halve the image with a box filter while its shorter side is at least
twice the target, resize bicubically so the shorter side equals the target, keep the centred square.
Items are uint8 (C, R, R) tensors: four times fewer bytes than float32 to pass between processes;
`BatchStream` maps them to [-1, 1].

A horizontal flip is chosen by the sampler, not here, so that it is a pure function of
(seed, epoch, index) and a resumed run flips the same images: an item key is ``index`` or
``(index, flip)``.

File-list format (one image per line; blank lines and lines starting with ``#`` are skipped)::

    n01440764/n01440764_10026.JPEG 0
    n01440764/n01440764_10027.JPEG 0
    /abs/path/elsewhere.jpg 17

Paths are relative to the list file's folder unless absolute. The label is the last
whitespace-separated token and must be an integer; with no label on any line, each file's parent
folder name is its class (sorted names -> 0..K-1, as for class folders).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset

from core.images import pillow

__all__ = ["ImageFileDataset", "adm_center_crop", "scan_class_folders", "read_file_list", "ItemKey"]

# Pillow decodes every one of these; ImageNet is JPEG (".JPEG" upper case), checked case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif")

ItemKey = int | tuple[int, bool]  # an index, or (index, flip horizontally)


def adm_center_crop(image: Image.Image, size: int) -> np.ndarray:
    """ADM's centre crop: box-halve while the short side >= 2 * size, bicubic to short side = size, crop.

    The box halvings make the result differ from one direct bicubic resize (and are cheaper); they are
    kept so that the pixels match those ADM, JiT and pMF trained on.

    Args:
        image: a decoded PIL image in the wanted mode ("RGB" or "L"); any size.
        size: output side length R >= 1.

    Returns:
        uint8 (R, R, 3) for RGB, (R, R) for "L".

    Example:
        >>> adm_center_crop(Image.new("RGB", (500, 375)), 256).shape
        (256, 256, 3)
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    while min(image.size) >= 2 * size:
        image = image.resize((image.width // 2, image.height // 2), resample=Image.Resampling.BOX)
    scale = size / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)),
                         resample=Image.Resampling.BICUBIC)
    a = np.asarray(image)  # (H', W'[, C]) with min(H', W') == size
    top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
    return a[top : top + size, left : left + size]


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def scan_class_folders(root: str | os.PathLike) -> tuple[list[str], list[int], list[str]]:
    """Lists ``root/<class>/**/<image>``: (paths relative to root, labels, sorted class names).

    Hidden files and folders are skipped; within a class, files are in sorted path order.

    Raises:
        FileNotFoundError: `root` is missing or not a folder.
        ValueError: no class subfolders, or a class folder without images.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ValueError(f"image folder {str(root)!r} has no class subfolders; put images in "
                         f"{str(root)!r}/<class name>/ (one subfolder is fine for unlabelled data)")
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = []
        for folder, dirs, files in os.walk(root / name):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # prune hidden folders in place
            rel = os.path.relpath(folder, root)
            found += [os.path.join(rel, f) for f in files if _is_image(f)]
        if not found:
            raise ValueError(f"class folder {str(root / name)!r} contains no images (extensions {IMAGE_EXTENSIONS})")
        found.sort()
        paths += found
        labels += [label] * len(found)
    return paths, labels, classes


def read_file_list(list_path: str | os.PathLike) -> tuple[list[str], list[int], list[str]]:
    """Parses a file list (format in the module docstring): (paths as written, labels, class names).

    Raises:
        FileNotFoundError: `list_path` does not exist.
        ValueError: an empty list, a label that is not a non-negative integer on some lines but
            present on others (the message names the line), or a mix of labelled/unlabelled lines.
    """
    list_path = Path(list_path)
    if not list_path.is_file():
        raise FileNotFoundError(f"file list {str(list_path)!r} does not exist")
    paths: list[str] = []
    raw_labels: list[int | None] = []
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:  # an image or other binary file given where a file list is expected
        raise ValueError(f"file list {str(list_path)!r} is not UTF-8 text (an image or a binary file?): "
                         f"{err.reason}") from err
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            if int(parts[1]) < 0:
                raise ValueError(f"{list_path}:{lineno}: label must be >= 0, got {parts[1]}")
            paths.append(parts[0])
            raw_labels.append(int(parts[1]))
        else:
            paths.append(line)  # no label: the whole line is the path (it may contain spaces)
            raw_labels.append(None)
    if not paths:
        raise ValueError(f"file list {str(list_path)!r} names no images")
    has_label = [lab is not None for lab in raw_labels]
    if any(has_label) and not all(has_label):
        first = has_label.index(not has_label[0])
        raise ValueError(f"{list_path}: line with path {paths[first]!r} and the first line disagree on having "
                         f"an integer label; give every line a label or none")
    if all(has_label):
        labels = [int(lab) for lab in raw_labels]
        class_names = [str(c) for c in range(max(labels) + 1)]
    else:
        parents = [Path(p).parent.name for p in paths]
        class_names = sorted(set(parents))
        index = {name: i for i, name in enumerate(class_names)}
        labels = [index[p] for p in parents]
    return paths, labels, class_names


class ImageFileDataset(Dataset):
    """Images on disk, decoded and ADM-centre-cropped one at a time.

    Attributes:
        root: folder the relative paths are under.
        resolution: output side R.
        channels: 3 (RGB) or 1 (luma); every file is converted (ImageNet has grayscale and CMYK JPEGs).
        class_names: one name per label.
        labels: int64 numpy array (N,).

    Example:
        >>> ds = ImageFileDataset.from_folder("imagenet/train", resolution=256)
        >>> x, y = ds[(0, True)]       # uint8 (3, 256, 256), flipped; y an int
    """

    def __init__(self, root: str | os.PathLike, paths: Sequence[str], labels: Sequence[int],
                 class_names: Sequence[str], *, resolution: int, channels: int = 3) -> None:
        if resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {resolution}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if len(paths) != len(labels) or not paths:
            raise ValueError(f"need as many labels as paths (and at least one), got {len(paths)} paths, "
                             f"{len(labels)} labels")
        self.root = Path(root)
        # One fixed-width byte array: no per-file Python object for forked workers to copy (see top).
        self._paths = np.array([p.encode("utf-8") for p in paths], dtype=np.bytes_)
        self.labels = np.asarray(labels, dtype=np.int64)
        if int(self.labels.max()) >= len(class_names):
            raise ValueError(f"label {int(self.labels.max())} out of range for {len(class_names)} class names")
        self.class_names = list(class_names)
        self.resolution, self.channels = resolution, channels

    @classmethod
    def from_folder(cls, root: str | os.PathLike, *, resolution: int, channels: int = 3) -> ImageFileDataset:
        """A class-folder set (``root/<class>/**/<image>``); sorted class names become labels 0..K-1."""
        paths, labels, classes = scan_class_folders(root)
        return cls(root, paths, labels, classes, resolution=resolution, channels=channels)

    @classmethod
    def from_file_list(cls, list_path: str | os.PathLike, *, resolution: int,
                       channels: int = 3) -> ImageFileDataset:
        """A set named by a text file of ``path [label]`` lines (format in the module docstring)."""
        paths, labels, classes = read_file_list(list_path)
        return cls(Path(list_path).parent, paths, labels, classes, resolution=resolution, channels=channels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self._paths)

    def path(self, index: int) -> Path:
        """The file of item `index` (absolute paths in a file list stay absolute)."""
        return self.root / self._paths[index].decode("utf-8")

    def read(self, index: int) -> np.ndarray:
        """Decodes and crops item `index`: uint8 (R, R, C). Errors name the file."""
        path = self.path(index)
        try:
            with pillow().open(path) as im:  # upright as a viewer shows it (a phone photo is stored sideways), then
                im = ImageOps.exif_transpose(im).convert("RGB" if self.channels == 3 else "L")  # decoded (PIL is lazy)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise ValueError(f"cannot read image file {str(path)!r}: {type(e).__name__}: {e}") from e
        a = adm_center_crop(im, self.resolution)
        return a[:, :, None] if a.ndim == 2 else a

    def __getitem__(self, key: ItemKey) -> tuple[Tensor, int]:
        """Item `key` = index or (index, flip): (uint8 (C, R, R), label)."""
        index, flip = key if isinstance(key, tuple) else (key, False)
        a = self.read(index)
        if flip:
            a = a[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))), int(self.labels[index])
