"""Class names: the shipped ImageNet-1k list and one lookup of a class by name or index.

A model's classes are a list of strings, one per class index; a string may hold several names of
one class separated by ", " (synonyms, e.g. ``"Cardigan, Cardigan Welsh corgi"``). Model folders
store theirs in ``config.json`` (``class_names``); the official pMF checkpoints are ImageNet-1k
models, whose 1000 names ship in ``core/assets/imagenet_classes.txt`` (standard index order, see
its header), so nothing is downloaded.

Example:
    >>> names = imagenet_class_names()
    >>> resolve_class("Golden Retriever", names), resolve_class("207", names)
    (207, 207)
"""
from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Sequence

from core.checkpoint import ASSETS

IMAGENET_CLASSES_FILE = ASSETS / "imagenet_classes.txt"
IMAGENET_NUM_CLASSES = 1000


@lru_cache(maxsize=1)
def _imagenet() -> tuple[str, ...]:
    lines = IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").splitlines()
    names = tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    if len(names) != IMAGENET_NUM_CLASSES:  # a damaged install, not a user error
        raise RuntimeError(f"{IMAGENET_CLASSES_FILE} holds {len(names)} class names, expected 1000")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, index k = class k (``"tench"``, ``"goldfish"``, ...)."""
    return list(_imagenet())


def _norm(name: str) -> str:
    """Case-, space- and underscore-insensitive form of a name ("Golden_Retriever" = "golden retriever")."""
    return " ".join(name.replace("_", " ").split()).casefold()


def _synonyms(entry: str) -> list[str]:
    return [s.strip() for s in entry.split(",") if s.strip()]


def resolve_class(spec: str | int, names: Sequence[str], what: str = "class") -> int:
    """The index of a class given by index (int or digit string) or by name.

    Names match case-insensitively against every synonym of every class (spaces and underscores
    alike). When several classes match only case-insensitively, the one whose spelling matches
    exactly wins ("Cardigan" the dog, "cardigan" the sweater); otherwise the name is ambiguous.

    Args:
        spec: an index 0..K-1, its string, or a class name.
        names: the model's class names (K strings, synonyms separated by ", ").
        what: what the argument is called in messages ("class", "style class", "--target", ...).

    Returns:
        The class index.

    Raises:
        ValueError: index out of range, an ambiguous name, or an unknown name; the message lists
            the closest names with their indices.

    Example:
        >>> resolve_class("tabby", imagenet_class_names())
        281
    """
    k = len(names)
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().lstrip("-").isdigit()):
        idx = int(spec)
        if not 0 <= idx < k:
            raise ValueError(f"{what} {idx} is outside this model's classes 0..{k - 1}")
        return idx
    if not isinstance(spec, str):
        raise TypeError(f"{what} must be a class index or name, got {type(spec).__name__}")
    want = _norm(spec)
    hits = sorted({i for i, entry in enumerate(names) for s in _synonyms(entry) if _norm(s) == want})
    if len(hits) > 1:
        exact = [i for i in hits if spec.strip() in _synonyms(names[i])]
        if len(exact) == 1:
            return exact[0]
        shown = ", ".join(f"{i}: {names[i]!r}" for i in hits)
        raise ValueError(f"{what} {spec!r} is ambiguous: {shown}; pass the index")
    if hits:
        return hits[0]
    raise ValueError(f"unknown {what} {spec!r}; " + _suggest(spec, names))


def _suggest(spec: str, names: Sequence[str]) -> str:
    """'did you mean ...' for an unknown name: every class of a small model, else close matches."""
    if len(names) <= 30:
        return f"this model's classes are {list(names)}"
    by_name = {}
    for i, entry in enumerate(names):
        for s in _synonyms(entry):
            by_name.setdefault(_norm(s), i)
    want = _norm(spec)
    close = difflib.get_close_matches(want, list(by_name), n=6, cutoff=0.6)
    # Names that contain the query as a word ("retriever" -> the retriever breeds) come next.
    close += [s for s in by_name if want and f" {want} " in f" {s} " and s not in close][: 8 - len(close)]
    if not close:
        return f"no close match among the {len(names)} class names (pass an index 0..{len(names) - 1})"
    return "close matches: " + ", ".join(f"{names[by_name[s]]!r} ({by_name[s]})" for s in close)


def default_class_names(num_classes: int) -> list[str] | None:
    """Class names for a model that stores none: ImageNet-1k for 1000 classes (the official pMF
    checkpoints), else None."""
    return imagenet_class_names() if num_classes == IMAGENET_NUM_CLASSES else None
