"""Generators of the bundled example manifests (``pmf_edit/bench/manifests/*.json``).

    python -m pmf_edit.bench.examples            # rewrites the bundled files

- ``mnist_heldout_swap100``: 100 of the 500 held-out MNIST-5k test digits (10 per class, evenly spaced,
  the images benchmarks/bench_editing.py uses), class swap y -> (y + 1) % 10, seed 0. Reported numbers.
- ``mnist_tune_swap100``: 100 digits of the 4500-image TRAIN split (10 per class, evenly spaced), same
  edit: the split on which editor defaults are chosen (never the held-out digits).
- ``mnist_heldout_inpaint20``: 20 held-out digits (2 per class) with the bottom half masked, target =
  source class: an inpainting manifest whose preservation metrics apply outside the mask.
- ``photos_imagenet``: the offline colour photos (skimage / sklearn) at 256 x 256 with ImageNet class
  edits, for the official ImageNet checkpoints. Source = the ImageNet MobileNetV2's top-1 class on the
  unedited photo (so the scoring classifier agrees with it); targets are ImageNet indices; ``edit``
  holds a text prompt naming the target ("a photo of a lion") for text-driven editors.
"""
from __future__ import annotations

import torch

from pmf_edit.bench.manifest import BUNDLED_DIR, EditItem, Manifest, save_manifest

__all__ = ["mnist_swap_manifest", "mnist_inpaint_manifest", "photos_imagenet_manifest", "write_bundled"]


def _evenly(labels: torch.Tensor, per_class: int) -> list[int]:
    """Indices: ``per_class`` evenly spaced rows of each class, in class order."""
    out = []
    for c in range(int(labels.max()) + 1):
        rows = (labels == c).nonzero().squeeze(1)
        pick = torch.linspace(0, len(rows) - 1, per_class).round().long()
        out += rows[pick].tolist()
    return out


def mnist_swap_manifest(split: str, per_class: int, name: str, seed: int = 0) -> Manifest:
    """Class swap y -> (y + 1) % 10 on ``per_class`` digits of each class of an MNIST-5k split."""
    from core.data import load_dataset

    labels = load_dataset("mnist", split=split).labels
    items = tuple(EditItem(id=f"{k:04d}", image=f"mnist:{split}:{i}", source=int(labels[i]),
                           target=(int(labels[i]) + 1) % 10, seed=seed)
                  for k, i in enumerate(_evenly(labels, per_class)))
    return Manifest(items=items, resolution=32, channels=1, classifier="digits", feature_size=112, name=name)


def mnist_inpaint_manifest(per_class: int = 2, name: str = "mnist_heldout_inpaint20") -> Manifest:
    """Refill the bottom half (rows 16..31) of held-out digits as their own class."""
    from core.data import load_dataset

    labels = load_dataset("mnist", split="test").labels
    items = tuple(EditItem(id=f"{k:04d}", image=f"mnist:test:{i}", source=int(labels[i]), target=int(labels[i]),
                           edit="refill the bottom half", mask="box:16,0,32,32", seed=k)
                  for k, i in enumerate(_evenly(labels, per_class)))
    return Manifest(items=items, resolution=32, channels=1, classifier="digits", feature_size=112, name=name)


# (photo, ImageNet source index = MobileNetV2 top-1 on the photo, target index, target name for reading)
PHOTO_EDITS = (
    ("chelsea", 285, 291, "lion"),
    ("chelsea", 285, 292, "tiger"),
    ("chelsea", 285, 207, "golden retriever"),
    ("coffee", 967, 963, "pizza"),
    ("coffee", 967, 948, "Granny Smith"),
    ("china", 698, 980, "volcano"),
    ("flower", 996, 985, "daisy"),
)


def photos_imagenet_manifest(name: str = "photos_imagenet") -> Manifest:
    """ImageNet class edits of the offline colour photos at 256 x 256 (official checkpoints' size)."""
    items = tuple(EditItem(id=f"{k:02d}_{photo}_to_{tgt}", image=f"photo:{photo}", source=src, target=tgt,
                           edit=f"a photo of a {tname}", seed=k)
                  for k, (photo, src, tgt, tname) in enumerate(PHOTO_EDITS))
    return Manifest(items=items, resolution=256, channels=3, classifier="imagenet", feature_size=224, name=name)


def write_bundled() -> list[str]:
    """(Re)write every bundled manifest; returns their names."""
    made = [mnist_swap_manifest("test", 10, "mnist_heldout_swap100"),
            mnist_swap_manifest("train", 10, "mnist_tune_swap100"),
            mnist_inpaint_manifest(), photos_imagenet_manifest()]
    for m in made:
        save_manifest(m, BUNDLED_DIR / f"{m.name}.json")
    return [m.name for m in made]


if __name__ == "__main__":
    print(write_bundled())
