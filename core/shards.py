"""Packed data sets: images already decoded and cropped, stored as uint8 numpy shards.

When JPEG decoding (and ADM's resize) is what limits training throughput, pay for it once:
`pack_dataset` writes every item of an `ImageFileDataset` as raw uint8 pixels, and
`PackedImageDataset` reads them back by memory-mapping, with no decoding at all. The pixels are the
ones the file set produces (same crop, same resampling): training on the packed copy is the same
training, bit for bit.

The cost is disk: R * R * C bytes per image, 196,608 at 256x256 RGB (ImageNet-1k train: 252 GB,
about twice its JPEGs), 786,432 at 512x512 (1.0 TB).

Layout of a packed folder::

    index.json          format, num_images, resolution, channels, shard_size, class_names, shards, source
    labels.npy          int64 (N,)
    shard_00000.npy     uint8 (shard_size, R, R, C); the last shard may be shorter
    ...

Every file is written under a temporary name and renamed when complete, and index.json comes last,
so a folder with an index.json is complete. An interrupted `pack_dataset` resumes: shards already
present with the right shape are kept.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from core.checkpoint import atomic_save_json
from core.imagefiles import ImageFileDataset, ItemKey

__all__ = ["pack_dataset", "PackedImageDataset", "is_packed", "FORMAT"]

FORMAT = "pmf-uint8-shards-v1"
INDEX = "index.json"


def is_packed(path: str | os.PathLike) -> bool:
    """True when `path` is a folder written by `pack_dataset` (it has an index.json)."""
    return (Path(path) / INDEX).is_file()


def _shard_name(k: int) -> str:
    return f"shard_{k:05d}.npy"


def _shard_ok(path: Path, shape: tuple[int, ...]) -> bool:
    try:
        a = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return a.dtype == np.uint8 and a.shape == shape


def pack_dataset(
    dataset: ImageFileDataset,
    out_dir: str | os.PathLike,
    *,
    shard_size: int = 1024,
    workers: int = 4,
    progress: bool = True,
) -> Path:
    """Decodes and crops every item of `dataset` once and writes them as uint8 shards.

    Args:
        dataset: the file set, with its resolution and channels already chosen.
        out_dir: output folder (created); a complete earlier pack of the same size is reused shard by shard.
        shard_size: images per shard file (1024 at 256x256 RGB is 201 MB).
        workers: DataLoader processes decoding in parallel (0: this process).
        progress: tqdm bar.

    Returns:
        `out_dir` as a Path; open it with `PackedImageDataset(out_dir)`.

    Raises:
        ValueError: `shard_size` < 1, an unreadable image (named), or `out_dir` holds a pack of a
            different size / resolution.

    Example:
        >>> ds = ImageFileDataset.from_folder("imagenet/train", resolution=256)
        >>> pack_dataset(ds, "imagenet-256-packed", workers=16)  # doctest: +SKIP
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n, r, c = len(dataset), dataset.resolution, dataset.channels
    if is_packed(out):
        old = json.loads((out / INDEX).read_text())
        if (old["num_images"], old["resolution"], old["channels"]) != (n, r, c):
            raise ValueError(f"{str(out)!r} already holds a pack of {old['num_images']} images at "
                             f"{old['resolution']}px x {old['channels']}ch; choose another output folder")
    num_shards = -(-n // shard_size)
    todo = []  # (shard k, start, stop) still to write
    for k in range(num_shards):
        start, stop = k * shard_size, min(n, (k + 1) * shard_size)
        if not _shard_ok(out / _shard_name(k), (stop - start, r, r, c)):
            todo.append((k, start, stop))
    indices = [i for _, start, stop in todo for i in range(start, stop)]
    loader = DataLoader(dataset, batch_size=min(64, shard_size), sampler=indices, num_workers=workers,
                        prefetch_factor=4 if workers else None)
    from tqdm.auto import tqdm

    bar = tqdm(total=n, initial=n - len(indices), unit="img", desc="pack", disable=not progress)
    batches = iter(loader)
    pending: list[Tensor] = []  # decoded rows not yet written, in index order
    try:
        for k, start, stop in todo:
            tmp = out / f".{_shard_name(k)}.partial"
            shard = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(stop - start, r, r, c))
            row = 0
            while row < stop - start:
                if not pending:
                    x, _ = next(batches)  # uint8 (b, C, R, R)
                    pending = list(x.permute(0, 2, 3, 1).unbind(0))  # (R, R, C) each
                take = min(len(pending), stop - start - row)
                shard[row : row + take] = torch.stack(pending[:take]).numpy()
                pending, row = pending[take:], row + take
                bar.update(take)
            shard.flush()
            del shard
            os.replace(tmp, out / _shard_name(k))
    finally:
        bar.close()
    tmp_labels = out / ".labels.npy.partial"
    with open(tmp_labels, "wb") as f:
        np.save(f, dataset.labels.astype(np.int64))
    os.replace(tmp_labels, out / "labels.npy")
    atomic_save_json(out / INDEX, {
        "format": FORMAT, "num_images": n, "resolution": r, "channels": c, "shard_size": shard_size,
        "shards": [_shard_name(k) for k in range(num_shards)], "class_names": dataset.class_names,
        "crop": "adm-center", "source": str(dataset.root),
    })
    return out


class PackedImageDataset(Dataset):
    """A folder written by `pack_dataset`, read by memory-mapping; items as `ImageFileDataset`'s.

    Example:
        >>> ds = PackedImageDataset("imagenet-256-packed")
        >>> x, y = ds[(5, False)]      # uint8 (3, 256, 256), int
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not is_packed(self.root):
            raise FileNotFoundError(f"{str(self.root)!r} is not a packed data set (no {INDEX}); "
                                    f"write one with `pmf pack-dataset`")
        index = json.loads((self.root / INDEX).read_text())
        if index.get("format") != FORMAT:
            raise ValueError(f"{str(self.root / INDEX)!r}: format {index.get('format')!r}, expected {FORMAT!r}")
        self.resolution, self.channels = int(index["resolution"]), int(index["channels"])
        self.shard_size, self.class_names = int(index["shard_size"]), list(index["class_names"])
        self._shard_files = list(index["shards"])
        self.labels = np.load(self.root / "labels.npy")
        if self.labels.shape != (int(index["num_images"]),):
            raise ValueError(f"{str(self.root)!r}: labels.npy has shape {self.labels.shape}, "
                             f"index.json says {index['num_images']} images")
        self._maps: dict[int, np.ndarray] = {}  # opened lazily, per process (each DataLoader worker its own)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, index: int) -> np.ndarray:
        """Item `index`: uint8 (R, R, C)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        k, row = divmod(index, self.shard_size)
        if k not in self._maps:
            self._maps[k] = np.load(self.root / self._shard_files[k], mmap_mode="r")
        return self._maps[k][row]

    def __getitem__(self, key: ItemKey) -> tuple[Tensor, int]:
        """Item `key` = index or (index, flip): (uint8 (C, R, R), label)."""
        index, flip = key if isinstance(key, tuple) else (key, False)
        a = self.read(index)
        if flip:
            a = a[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))), int(self.labels[index])
