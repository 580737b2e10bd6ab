"""The edit manifest: which image to edit, from which class to which (or another edit), where, with which seed.

A manifest is a JSON file (a header plus ``items``) or a CSV file (one item per row, the header
fields given on the command line). Each item:

    id       output file stem (unique; default: the row number, zero-padded)
    image    a file path, relative to the manifest's folder, or a built-in reference:
             ``mnist:test:17`` / ``mnist:train:17`` (row of that MNIST-5k split),
             ``photo:chelsea`` (a whole offline photo of ``core.data.PHOTO_SOURCES``)
    source   class index the image shows (int; None if unknown)
    target   class index the edit should produce (int; None for an edit that is not a class swap)
    edit     free text for other edits (a prompt for a text-driven editor; optional)
    mask     optional region to edit: a file path (white = edit) or ``box:top,left,bottom,right``
             in pixels of the loaded image (bottom/right exclusive); None = the whole image
    seed     int, the seed of this item's noise generator

Header fields (JSON) / defaults: ``resolution`` (images are resized, shorter side, and centre-cropped
to it), ``channels`` (1 or 3), ``classifier`` ("digits", "imagenet", or None: what ``score`` uses for
target accuracy unless told otherwise), ``feature_size`` (side the MobileNetV2 metrics resize to).

Example:
    >>> m = load_manifest(bundled_manifest("mnist_heldout_swap100"))
    >>> images = load_images(m)                  # (100, 1, 32, 32) in [0, 1]
    >>> m.items[0].source, m.items[0].target
    (0, 1)
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "EditItem", "Manifest", "load_manifest", "save_manifest", "load_images", "load_masks",
    "bundled_manifest", "read_image01", "BUNDLED_DIR",
]

BUNDLED_DIR = Path(__file__).parent / "manifests"
CLASSIFIERS = ("digits", "imagenet")


@dataclass(frozen=True)
class EditItem:
    """One edit of a manifest (see the module docstring for each field's format)."""

    id: str  # output file stem, unique within the manifest
    image: str  # file path (relative to the manifest folder) or built-in reference
    source: int | None = None  # class the image shows
    target: int | None = None  # class the edit should produce; None for a non-class edit
    edit: str | None = None  # free-text edit (prompt) for text-driven editors
    mask: str | None = None  # file path (white = edit) or "box:top,left,bottom,right"; None = whole image
    seed: int = 0  # seed of this item's noise generator


@dataclass(frozen=True)
class Manifest:
    """A list of edits and how to load their images."""

    items: tuple[EditItem, ...]  # the edits, in order
    resolution: int  # images are loaded at resolution x resolution
    channels: int  # 1 (gray) or 3 (RGB)
    classifier: str | None = None  # default target-accuracy classifier: "digits", "imagenet" or None
    feature_size: int = 224  # side images are resized to for the MobileNetV2 metrics
    name: str = ""  # free label
    root: Path = field(default=Path("."), compare=False)  # folder that relative paths start from

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError(f"manifest {self.name!r} has no items")
        ids = [it.id for it in self.items]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"manifest {self.name!r}: duplicate item ids {dup[:5]}")
        if self.channels not in (1, 3):
            raise ValueError(f"manifest channels must be 1 or 3, got {self.channels}")
        if self.resolution < 8:
            raise ValueError(f"manifest resolution must be >= 8 (SSIM's window), got {self.resolution}")
        if self.classifier is not None and self.classifier not in CLASSIFIERS:
            raise ValueError(f"manifest classifier must be one of {CLASSIFIERS} or null, got {self.classifier!r}")

    def select(self, ids: list[str]) -> Manifest:
        """The manifest restricted to ``ids`` (in manifest order)."""
        keep = set(ids)
        return replace(self, items=tuple(it for it in self.items if it.id in keep))


def bundled_manifest(name: str) -> Path:
    """Path of a manifest shipped in ``pmf_edit/bench/manifests`` (``name`` without ``.json``)."""
    path = BUNDLED_DIR / f"{name}.json"
    if not path.is_file():
        have = sorted(p.stem for p in BUNDLED_DIR.glob("*.json"))
        raise FileNotFoundError(f"no bundled manifest {name!r}; bundled: {have}")
    return path


def _opt_int(value, name: str, where: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} must be an integer class index, got {value!r}") from None
    if f != int(f):
        raise ValueError(f"{where}: {name} must be an integer, got {value!r}")
    return int(f)


def _item(raw: dict, row: int, width: int) -> EditItem:
    where = f"manifest item {row}"
    if not raw.get("image"):
        raise ValueError(f"{where}: 'image' is required")
    if None in raw:  # csv.DictReader files surplus values under the key None
        raise ValueError(f"{where}: more values than header fields; quote values that contain commas, "
                         f"e.g. \"box:0,0,16,16\"")
    unknown = set(raw) - {f for f in EditItem.__dataclass_fields__} - {"source_name", "target_name", "note"}
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}; allowed: {list(EditItem.__dataclass_fields__)}")
    seed = _opt_int(raw.get("seed"), "seed", where)
    return EditItem(
        id=str(raw.get("id") or f"{row:0{width}d}"),
        image=str(raw["image"]),
        source=_opt_int(raw.get("source"), "source", where),
        target=_opt_int(raw.get("target"), "target", where),
        edit=raw.get("edit") or None,
        mask=raw.get("mask") or None,
        seed=0 if seed is None else seed,
    )


def load_manifest(
    path: str | os.PathLike,
    *,
    resolution: int | None = None,
    channels: int | None = None,
    classifier: str | None = None,
) -> Manifest:
    """Read a JSON or CSV manifest.

    Args:
        path: ``.json`` (header + ``items``) or ``.csv`` (a header row naming the item fields).
        resolution, channels, classifier: override (JSON) or supply (CSV: required resolution and
            channels) the header fields.

    Returns:
        ``Manifest`` whose relative paths resolve against the file's folder.

    Example:
        >>> m = load_manifest("edits.csv", resolution=32, channels=1, classifier="digits")
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {str(path)!r} does not exist")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"manifest {str(path)!r} is not valid JSON: {e}") from e
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise ValueError(f"manifest {str(path)!r} must be a JSON object with an 'items' list")
        rows, header = data["items"], data
    elif path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        header = {}
    else:
        raise ValueError(f"manifest must end in .json or .csv, got {str(path)!r}")
    res = resolution or header.get("resolution")
    ch = channels or header.get("channels")
    if res is None or ch is None:
        raise ValueError(f"manifest {str(path)!r} does not give resolution and channels; pass them "
                         f"(--resolution, --channels)")
    width = max(4, len(str(len(rows))))
    items = tuple(_item(dict(r), i, width) for i, r in enumerate(rows))
    return Manifest(items=items, resolution=int(res), channels=int(ch),
                    classifier=classifier or header.get("classifier"),
                    feature_size=int(header.get("feature_size", 224)), name=str(header.get("name", path.stem)),
                    root=path.parent)


def save_manifest(manifest: Manifest, path: str | os.PathLike, *, extra: dict | None = None) -> Path:
    """Write ``manifest`` as JSON (the format ``load_manifest`` reads); ``extra`` adds header fields."""
    path = Path(path)
    head = {"name": manifest.name, "resolution": manifest.resolution, "channels": manifest.channels,
            "classifier": manifest.classifier, "feature_size": manifest.feature_size, **(extra or {})}
    items = [{k: v for k, v in asdict(it).items() if v is not None} for it in manifest.items]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**head, "items": items}, indent=None, separators=(",", ":"))
                    .replace('"items":[', '"items":[\n').replace("},{", "},\n{") + "\n")
    return path


# ------------------------------------------------------------------------------------------------
# Loading images and masks


def _builtin(ref: str) -> torch.Tensor | None:
    """(C, H, W) in [-1, 1] for a built-in reference, None if ``ref`` is not one."""
    kind, _, rest = ref.partition(":")
    if kind == "mnist" and rest:
        from core.data import load_dataset

        split, _, index = rest.partition(":")
        ds = load_dataset("mnist", split=split)
        i = int(index)
        if not 0 <= i < len(ds):
            raise ValueError(f"image {ref!r}: index {i} outside the {len(ds)} digits of split {split!r}")
        return ds.images[i]
    if kind == "photo" and rest:
        from core.data import PHOTO_SOURCES, _hwc_to_tensor

        sources = dict(PHOTO_SOURCES)
        if rest not in sources:
            raise ValueError(f"image {ref!r}: unknown photo; choose one of {sorted(sources)}")
        return _hwc_to_tensor(sources[rest](), f"photo {rest!r}")
    return None


def read_image01(path: Path) -> torch.Tensor:
    """(C, H, W) float32 in [0, 1] from an 8/16-bit image file (k / 255 exactly; read by
    ``core.images.read_image01``) or a float .npy (C, H, W) / (H, W, C) / (H, W); alpha is dropped."""
    if path.suffix == ".npy":
        a = np.load(path)
        if a.ndim == 2:
            a = a[None]
        elif a.ndim == 3 and a.shape[0] not in (1, 3) and a.shape[2] in (1, 3):
            a = a.transpose(2, 0, 1)
        if a.ndim != 3 or a.shape[0] not in (1, 3) or not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{path}: expected a float array (C, H, W) with C in (1, 3), got {a.dtype} {a.shape}")
        return torch.from_numpy(a.astype(np.float32))
    from core.images import read_image01 as read

    return read(path)[0]  # (C, H, W): EXIF orientation, CMYK, palettes, 16 bit as a viewer shows them


def _load_one(ref: str, root: Path, resolution: int, channels: int) -> torch.Tensor:
    """(C, R, R) in [0, 1]. Files are read straight to [0, 1] (k / 255, so an unedited output written as
    PNG reads back bit-identical); built-ins come in [-1, 1] and are mapped back (8-bit ones snapped to
    k / 255 when not resized, undoing float round-off)."""
    from core.data import _resize_center_crop, _to_channels

    x = _builtin(ref)
    if x is not None:
        x01 = ((x + 1) / 2).clamp(0, 1)
        if tuple(x01.shape[-2:]) == (resolution, resolution):
            x01 = (x01 * 255).round() / 255  # built-ins are 8-bit data
    else:
        p = Path(ref) if Path(ref).is_absolute() else root / ref
        if not p.is_file():
            raise FileNotFoundError(f"manifest image {ref!r} not found (looked for {str(p)!r})")
        x01 = read_image01(p)
    if tuple(x01.shape[-2:]) != (resolution, resolution):
        x01 = _resize_center_crop(x01, resolution).clamp(0, 1)
    return _to_channels(x01[None], channels)[0]


def load_images(manifest: Manifest) -> torch.Tensor:
    """The manifest's source images, (N, C, R, R) float32 in [0, 1] (shorter side resized, centre crop).

    Example:
        >>> load_images(load_manifest(bundled_manifest("mnist_heldout_swap100"))).shape
        torch.Size([100, 1, 32, 32])
    """
    m = manifest
    return torch.stack([_load_one(it.image, m.root, m.resolution, m.channels) for it in m.items])


def _load_mask(spec: str, root: Path, resolution: int) -> torch.Tensor:
    if spec.startswith("box:"):
        try:
            top, left, bottom, right = (int(v) for v in spec[4:].split(","))
        except ValueError:
            raise ValueError(f"mask {spec!r} must be box:top,left,bottom,right (4 integers)") from None
        if not (0 <= top < bottom <= resolution and 0 <= left < right <= resolution):
            raise ValueError(f"mask {spec!r} must satisfy 0 <= top < bottom <= {resolution} and "
                             f"0 <= left < right <= {resolution}")
        m = torch.zeros(resolution, resolution, dtype=torch.bool)
        m[top:bottom, left:right] = True
        return m
    gray = _load_one(spec, root, resolution, 1)[0]  # (R, R) in [0, 1]
    return gray > 0.5


def load_masks(manifest: Manifest) -> torch.Tensor | None:
    """(N, 1, R, R) bool masks, True = region to edit (an item without a mask is all True); None if no
    item has one.
    """
    m = manifest
    if all(it.mask is None for it in m.items):
        return None
    full = torch.ones(m.resolution, m.resolution, dtype=torch.bool)
    return torch.stack([(full if it.mask is None else _load_mask(it.mask, m.root, m.resolution))[None]
                        for it in m.items])
