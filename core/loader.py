"""The training batch stream: this rank's batches, decoded in DataLoader workers, resumable exactly.

`BatchStream` serves every kind of training set through one interface (`next`, `state_dict`,
`load_state_dict`, `close`):
- an in-memory `core.data.ImageDataset`: indexed directly, as the training loop always did;
- a lazy set (`core.imagefiles.ImageFileDataset`, `core.shards.PackedImageDataset`): items are
  decoded by `torch.utils.data.DataLoader` worker processes, as uint8, and mapped to [-1, 1] here.

Order and flips come from `core.data.BatchSampler` (seeded per epoch; state = epoch and position in
the global batch stream; rank r takes the r-th slice of each global batch) plus one flip bit per
(seed, epoch, index). Nothing random happens in a worker, so the stream is a pure function of the
seed whatever the number of workers.

Workers decode ahead of the training loop (``workers * prefetch`` batches), so the sampler that feeds
the DataLoader is always ahead of what training has consumed. The stream therefore keeps a second,
"consumed" sampler that advances one batch per `next`; `state_dict()` is its state, and resuming
from it (on any number of ranks, with any number of workers) continues with exactly the next batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from core.data import BatchSampler, ImageDataset, load_dataset
from core.imagefiles import ImageFileDataset
from core.shards import PackedImageDataset, is_packed

__all__ = ["LoaderConfig", "BatchStream", "flip_bits", "open_training_set"]


def open_training_set(
    name_or_path: str | os.PathLike,
    *,
    stream: bool = False,
    resolution: int | None = None,
    channels: int | None = None,
) -> ImageDataset | ImageFileDataset | PackedImageDataset:
    """The training set `name_or_path` names, in memory or lazy.

    - a folder written by `core.shards.pack_dataset` (it has index.json): `PackedImageDataset`;
    - a file (a list of ``path [label]`` lines): `ImageFileDataset.from_file_list`;
    - a class folder with ``stream=True``: `ImageFileDataset.from_folder` (ADM centre crop);
    - anything else (built-in names, class folders): `core.data.load_dataset`, in memory.

    Args:
        name_or_path: built-in name, class folder, file list or packed folder.
        stream: read a class folder lazily instead of loading it into memory.
        resolution: output side; required for lazy file sets (their images differ in size), checked
            against a packed set's.
        channels: 1 or 3 (lazy sets default to 3); checked against a packed set's.

    Returns:
        A data set with `len`, `resolution`, `channels`, `num_classes` and `class_names`.

    Raises:
        ValueError: a lazy file set without `resolution`, or a packed set of another size.

    Example:
        >>> ds = open_training_set("imagenet/train", stream=True, resolution=256)   # ImageFileDataset
    """
    path = Path(name_or_path)
    if is_packed(path):
        ds = PackedImageDataset(path)
        for what, want, have in (("resolution", resolution, ds.resolution), ("channels", channels, ds.channels)):
            if want is not None and want != have:
                raise ValueError(f"packed data set {str(path)!r} has {what} {have}, but {what}={want} was asked; "
                                 f"pack it again at that {what} or leave the option out")
        return ds
    lazy = path.is_file() or (stream and path.is_dir())
    if lazy and resolution is None:
        raise ValueError(f"streamed data set {str(path)!r} needs a resolution (e.g. --resolution 256): its "
                         f"images differ in size and are centre-cropped to it")
    if path.is_file():
        return ImageFileDataset.from_file_list(path, resolution=resolution, channels=channels or 3)
    if lazy:
        return ImageFileDataset.from_folder(path, resolution=resolution, channels=channels or 3)
    return load_dataset(name_or_path, split="train", resolution=resolution, channels=channels)


@dataclass(frozen=True)
class LoaderConfig:
    """How a `BatchStream` reads."""

    workers: int = 4  # DataLoader processes decoding lazy sets (0: decode in this process)
    prefetch: int = 2  # batches each worker prepares ahead
    hflip: bool = False  # random horizontal flip, p = 0.5 (the official pMF ImageNet recipe uses none)
    pin_memory: bool = False  # page-locked batches for faster, asynchronous host-to-GPU copies

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {self.prefetch}")


def flip_bits(seed: int, epoch: int, num_samples: int) -> Tensor:
    """Whether each item is flipped in `epoch`: bool (N,), a pure function of (seed, epoch).

    The seed differs from that of `BatchSampler.permutation` for the same (seed, epoch) (the XOR), so
    which items are flipped does not follow their position in the order.
    """
    g = torch.Generator().manual_seed(((seed * 1_000_003 + epoch) % (2**62)) ^ 0x5F1F1A7)
    return torch.randint(0, 2, (num_samples,), generator=g, dtype=torch.int64).bool()


class _KeyBatches:
    """DataLoader `batch_sampler`: an endless stream of this rank's keys [(index, flip), ...]."""

    def __init__(self, sampler: BatchSampler, hflip: bool) -> None:
        self.sampler, self.hflip = sampler, hflip
        self._flips: tuple[int, Tensor] | None = None

    def __iter__(self):
        while True:
            idx = next(self.sampler)  # after next(), sampler.epoch is this batch's epoch
            yield list(zip(idx.tolist(), self._epoch_flips()[idx].tolist()))

    def _epoch_flips(self) -> Tensor:
        s = self.sampler
        if self._flips is None or self._flips[0] != s.epoch:
            bits = flip_bits(s.seed, s.epoch, s.num_samples) if self.hflip else torch.zeros(s.num_samples, dtype=torch.bool)
            self._flips = (s.epoch, bits)
        return self._flips[1]


def _worker_init(_: int) -> None:
    # Each worker decodes one image at a time; intra-op threads would only fight the other workers.
    torch.set_num_threads(1)


class BatchStream:
    """This rank's endless stream of (images, labels) batches; resumable at any batch.

    Args:
        dataset: an in-memory `ImageDataset`, or a lazy set whose items are
            ``dataset[(index, flip)] -> (uint8 (C, R, R), label)`` with `len`, `resolution`,
            `channels`, `num_classes`, `class_names`.
        batch_size: GLOBAL batch size (all ranks); each rank gets batch_size // world_size.
        seed: seeds the order and the flips.
        rank, world_size: this process's place in data parallelism.
        config: workers, prefetch, flips, pinning.
        device: where batches are returned (uint8 is moved before the float conversion: 4x fewer bytes).

    Example:
        >>> ds = ImageFileDataset.from_folder("imagenet/train", resolution=256)
        >>> stream = BatchStream(ds, 1024, seed=0, rank=0, world_size=8, config=LoaderConfig(workers=8))
        >>> x, y = next(stream)                 # float32 (128, 3, 256, 256) in [-1, 1], int64 (128,)
        >>> state = stream.state_dict()         # save with the checkpoint; load_state_dict(state) resumes
    """

    def __init__(self, dataset: ImageDataset | Dataset, batch_size: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, config: LoaderConfig = LoaderConfig(),
                 device: torch.device | str = "cpu") -> None:
        self.dataset, self.config, self.device = dataset, config, torch.device(device)
        self._consumed = BatchSampler(len(dataset), batch_size, seed=seed, rank=rank, world_size=world_size)
        self._in_memory = isinstance(dataset, ImageDataset)
        self._flips = _KeyBatches(self._consumed, config.hflip)  # in-memory path: flips of the consumed sampler
        self._iter: Any = None

    # The training loop reads these the same way for every kind of set.
    @property
    def batch_size(self) -> int:
        return self._consumed.batch_size

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        """The next batch: float32 (B / world_size, C, R, R) in [-1, 1] and int64 labels, on `device`."""
        if self._in_memory:
            idx = next(self._consumed)
            x, y = self.dataset[idx]
            if self.config.hflip:
                flip = self._flips._epoch_flips()[idx]
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            return x.to(self.device), y.to(self.device)
        if self._iter is None:
            self._iter = iter(self._make_loader())
        x, y = next(self._iter)  # uint8 (b, C, R, R), int64 (b,)
        next(self._consumed)  # one more batch consumed: the state a checkpoint must record
        x = x.to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        return x, y.to(self.device, non_blocking=True)

    def _make_loader(self) -> DataLoader:
        feed = BatchSampler(self._consumed.num_samples, self._consumed.batch_size, seed=self._consumed.seed,
                            rank=self._consumed.rank, world_size=self._consumed.world_size)
        feed.load_state_dict(self._consumed.state_dict())  # start where training stands
        workers = self.config.workers
        return DataLoader(
            self.dataset, batch_sampler=_KeyBatches(feed, self.config.hflip), num_workers=workers,
            prefetch_factor=self.config.prefetch if workers else None, pin_memory=self.config.pin_memory,
            worker_init_fn=_worker_init if workers else None, persistent_workers=False,
        )

    def state_dict(self) -> dict[str, int]:
        """The consumed position (seed, epoch, position, N, global batch): plain ints."""
        return self._consumed.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue after the batch `state` was taken at; restarts the workers if they were running."""
        self.close()
        self._consumed.load_state_dict(state)

    def close(self) -> None:
        """Stops the worker processes (they restart on the next `next`)."""
        shutdown = getattr(self._iter, "_shutdown_workers", None)  # multi-process iterators only
        if shutdown is not None:
            shutdown()  # now, rather than whenever the garbage collector gets to the iterator
        self._iter = None
