"""Image conversions at the library's boundaries, and sample grids.

Ranges: ``core`` works in [-1, 1]; ``pmf_edit`` public functions use [0, 1]; files are uint8 or uint16.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core import checks


def pillow():
    """``PIL.Image`` with HEIF / HEIC (the format iPhones save photos in) registered when pillow-heif is
    installed (it is a dependency; without it such files get an error that says what to install).

    Example:
        >>> with pillow().open("IMG_0001.HEIC") as im: ...   # doctest: +SKIP
    """
    from PIL import Image

    global _HEIF_TRIED
    if not _HEIF_TRIED:
        _HEIF_TRIED = True
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()  # also applies the photo's rotation on decoding (EXIF then says 1)
        except ImportError:
            pass
    return Image


_HEIF_TRIED = False


def _heif_ok() -> bool:
    """Whether HEIF / HEIC files can be read here (pillow-heif installed and registered)."""
    return ".heic" in pillow().registered_extensions()


def to_model_range(images01: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return images01 * 2.0 - 1.0


def from_model_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((images + 1.0) * 0.5).clamp(0.0, 1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> uint8 (B, H, W, C) with round(255 (x + 1) / 2) (the torch branch's rule)."""
    x = from_model_range(images.detach().float().cpu())
    return (x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, nrow: int, pad: int = 2) -> np.ndarray:
    """Tile (B, C, H, W) images in [-1, 1] into one uint8 (H', W', C) picture, ``nrow`` per row."""
    arr = to_uint8(images)  # (B, H, W, C)
    B, H, W, C = arr.shape
    ncol = max(1, nrow)
    nrows = (B + ncol - 1) // ncol
    grid = np.zeros((nrows * (H + pad) + pad, ncol * (W + pad) + pad, C), dtype=np.uint8)
    for i in range(B):
        r, c = divmod(i, ncol)
        y0, x0 = pad + r * (H + pad), pad + c * (W + pad)
        grid[y0 : y0 + H, x0 : x0 + W] = arr[i]
    return grid


# Output formats that keep an alpha channel (the others, e.g. JPEG, write the colour alone).
ALPHA_FORMATS = (".png", ".apng", ".webp", ".tif", ".tiff")


# Output formats written at 16 bits when given uint16 arrays (a 16-bit input's edit keeps its depth).
DEEP_FORMATS = (".png", ".tif", ".tiff")


# Output formats that can carry an EXIF block and an ICC colour profile (``ImageFile.tags``).
TAG_FORMATS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif")

# Lossy formats written at quality 95 (Pillow's defaults, 75 for JPEG and AVIF and pillow-heif's 50 for HEIC,
# blur fine detail visibly).
QUALITY_95 = (".jpg", ".jpeg", ".heic", ".heif", ".avif")


def save_png(path: str | Path, array: np.ndarray, alpha: torch.Tensor | None = None,
             tags: dict[str, bytes] | None = None) -> Path:
    """Write a uint8 (H, W) / (H, W, 1) / (H, W, 3) array as PNG (atomically: temp name, then rename);
    ``alpha`` (H, W) or (1, 1, H, W) in [0, 1] becomes its alpha channel, ``tags`` (``ImageFile.tags``) its
    EXIF block and colour profile."""
    return _save_atomic(Path(path), _with_alpha(array, alpha, ".png"), ".png", tags)


def save_image(path: str | Path, array: np.ndarray, alpha: torch.Tensor | None = None,
               tags: dict[str, bytes] | None = None) -> Path:
    """Write a uint8 or uint16 (H, W) / (H, W, 1) / (H, W, 3) array in the format its extension names
    (.png, .jpg, .tif, .webp, ...; uint16 at 16 bits where the format has them, ``DEEP_FORMATS``, else
    rounded to 8), atomically (temp name in the same folder, then rename; the folder is
    created). JPEG, HEIC and AVIF are written at quality 95 (``QUALITY_95``).
    ``alpha`` (H, W) or (1, 1, H, W) in [0, 1] (an input's transparency, ``read_image01_alpha``) is
    written as the alpha channel where the format has one (``ALPHA_FORMATS``), else left out; ``tags``
    (an input's EXIF block and ICC colour profile, ``ImageFile.tags``) likewise where they fit (``TAG_FORMATS``).

    Example:
        >>> save_image("/tmp/out/mid.jpg", np.zeros((8, 8, 3), np.uint8))  # doctest: +SKIP
    """
    path = Path(path)
    if not path.suffix:
        raise ValueError(f"output {path} has no file extension; it picks the image format (e.g. .png)")
    return _save_atomic(path, _with_alpha(array, alpha, path.suffix), path.suffix, tags)


def _with_alpha(array: np.ndarray, alpha: torch.Tensor | None, suffix: str) -> np.ndarray:
    """(H, W[, C]) uint8 / uint16 -> (H, W, C + 1) with the alpha appended at the array's depth, when there
    is an alpha and the format keeps it; the array itself otherwise."""
    if alpha is None or suffix.lower() not in ALPHA_FORMATS:
        return array
    top = float(np.iinfo(array.dtype).max)
    a = (alpha.detach().float().cpu().reshape(array.shape[0], array.shape[1]).clamp(0, 1) * top).round()
    colour = array if array.ndim == 3 else array[:, :, None]
    if colour.shape[2] == 1 and suffix.lower() not in (".png", ".apng"):  # grey + alpha is a PNG mode only
        colour = np.repeat(colour, 3, axis=2)
    return np.concatenate([colour, a.numpy().astype(array.dtype)[:, :, None]], axis=2)


_BAND_ROWS = 256  # rows converted at once by to_file_array


def to_file_array(images01: torch.Tensor, bits: int = 8) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, C) uint8 (``bits=8``) or uint16 (16) with round((2^bits - 1) v), the
    inverse of ``read_image01``: a pixel read as k / 255 (or k / 65535) is written back as k.

    Example:
        >>> to_file_array(torch.full((3, 2, 2), 0.5)).dtype, to_file_array(torch.ones(1, 2, 2), 16).max()
        (dtype('uint8'), 65535)
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    top, dtype = (255.0, np.uint8) if bits == 8 else (65535.0, np.uint16)
    x = images01.detach()
    C, H, W = x.shape
    out = np.empty((H, W, C), dtype)
    for r0 in range(0, H, _BAND_ROWS):  # no full-size float temporary (576 MB for a 48-MP photo)
        band = x[:, r0:r0 + _BAND_ROWS].cpu().float().clamp(0, 1).mul_(top).round_()
        out[r0:r0 + _BAND_ROWS] = band.permute(1, 2, 0).numpy()  # (C, h, W) -> (h, W, C), cast on assignment
    return out


def _bits_of(im) -> int:
    """16 when an opened (not yet decoded) Pillow image's file stores 16-bit samples (a raw converter's TIFF, a
    16-bit PNG), else 8: the depth the commands write their output at (``ImageFile.bits``)."""
    return 16 if im.mode.startswith("I;16") or _raw_16(im) else 8


@dataclass(frozen=True)
class ImageFile:
    """An image file as a viewer shows it (``open_image``), with what a picture made from it keeps when
    written with ``write_image(..., like=)``: its transparency, EXIF and colour profile, bit depth."""

    pixels: torch.Tensor  # (1, C, H, W) float32 in [0, 1], upright
    alpha: torch.Tensor | None  # (1, 1, H, W) float32 in [0, 1], or None when the file has no alpha
    tags: dict[str, bytes]  # Pillow save keywords "exif" / "icc_profile" (``_tags_of``)
    bits: int  # 8 or 16: the depth of the file's samples (``_bits_of``)
    path: Path


@checks.checked  # path, channels, name by their types
def open_image(path: str | Path, channels: int | None = None, name: str | None = None) -> ImageFile:
    """Read an image file for editing: ``read_image01_alpha``'s pixels and alpha, with the file's tags and
    bit depth from the same opening of it. Errors as ``read_image01``.

    Example:
        >>> photo = open_image("IMG_0001.HEIC", channels=3)            # doctest: +SKIP
        >>> edited = pmf_edit.edit(net, photo.pixels, labels="tabby")  # doctest: +SKIP
        >>> write_image("edited.jpg", edited.images, like=photo)       # doctest: +SKIP
    """
    pixels, alpha, tags, bits = _read(path, channels, name)
    return ImageFile(pixels, alpha, tags, bits, Path(path))


@checks.checked
def write_image(path: str | Path, images01: torch.Tensor, like: ImageFile | None = None) -> Path:
    """Write a (1, C, H, W) or (C, H, W) picture in [0, 1] to ``path`` in the format its extension names (PNG
    without one), atomically, keeping what the file it was made from had (``like``, from ``open_image``)
    where the format has it: alpha (when the sizes agree), EXIF, colour profile, 16-bit samples (PNG, TIFF).
    round((2^bits - 1) v): a pixel read as k / 255 (k / 65535) is written back as k.

    Example:
        >>> write_image("/tmp/out/mid.png", torch.rand(3, 8, 8))      # doctest: +SKIP
    """
    if not isinstance(images01, torch.Tensor):
        raise TypeError(f"images01 must be a torch.Tensor (1, C, H, W) or (C, H, W) in [0, 1], got "
                        f"{type(images01).__name__}")
    x = images01[0] if images01.ndim == 4 else images01
    if x.ndim != 3:
        raise ValueError(f"images01 must be (1, C, H, W) or (C, H, W), got {tuple(images01.shape)}")
    keep = like is not None and like.alpha is not None and like.alpha.shape[-2:] == x.shape[-2:]
    arr = to_file_array(x, like.bits if like is not None else 8)
    write = save_image if Path(path).suffix else save_png
    return write(path, arr, alpha=like.alpha if keep else None, tags=like.tags if like is not None else None)


def _raw_16(im) -> str | None:
    """The raw mode of an opened (not yet decoded) Pillow image when its file stores 16-bit samples Pillow
    decodes to 8 ("RGB;16B" of a PNG, "RGBA;16N" of a TIFF, "LA;16B" of a grey + alpha PNG), else None."""
    return next((str(t.args) for t in im.tile if ";16" in str(t.args)), None)


def check_image_output(path: str | Path) -> Path:
    """``path`` as a Path when its extension names an image format Pillow writes (or it has none: PNG
    then); a ValueError naming it otherwise. Commands call it before any work, so a typo such as
    ``out.jgp`` fails at once instead of after the computation (imageio would write a TIFF under it).

    Example:
        >>> check_image_output("edited.jpg")
        PosixPath('edited.jpg')
    """
    Image = pillow()
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix and Image.registered_extensions().get(suffix) not in Image.SAVE:
        raise ValueError(f"output {path}: {path.suffix!r} is not an image format this can write; "
                         "use .png (lossless), .jpg, .tif or .webp")
    return path


def _tags_of(im) -> dict[str, bytes]:
    """What of an opened photo file an edit should keep, as Pillow ``save`` keywords (``ImageFile.tags``):
    ``exif`` (date taken, camera, GPS; its Orientation reset to 1, since the pixels are read upright) and
    ``icc_profile`` (the colour space the pixel values are in: a phone's Display P3 photo shown without it
    looks washed out). Empty when the file has neither; a damaged block gives what could be read (it never
    stops an edit)."""
    tags: dict[str, bytes] = {}
    try:
        if im.info.get("icc_profile") and im.mode in ("RGB", "RGBA"):  # an RGB profile for RGB pixels (a
            tags["icc_profile"] = im.info["icc_profile"]  # CMYK or grey one would not describe the output)
        exif = im.getexif()
        if len(exif):
            for ifd in (0x8769, 0x8825):  # the Exif (dates) and GPS sub-blocks are read on demand
                exif.get_ifd(ifd)
            exif[0x0112] = 1  # Orientation: the pixels are upright now
            tags["exif"] = exif.tobytes()
    except Exception:  # noqa: BLE001  (Pillow raises many types for a bad block)
        return tags
    return tags


def _save_atomic(path: Path, array: np.ndarray, suffix: str, tags: dict[str, bytes] | None = None) -> Path:
    import imageio.v3 as iio

    pillow()  # (a .heic output needs its writer registered)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == np.uint16 and suffix.lower() not in DEEP_FORMATS:  # e.g. JPEG: 8 bits, round(k / 257)
        array = ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    tmp = path.with_name(f".{path.name}.tmp{suffix}")
    options = {"quality": 95} if suffix.lower() in QUALITY_95 else {}
    if tags and suffix.lower() in TAG_FORMATS:
        options.update(tags, plugin="pillow")
    try:
        if array.dtype == np.uint16:
            _write_deep(tmp, array, tags or {})
        else:
            iio.imwrite(tmp, array, **options)
        tmp.replace(path)
    except BaseException:  # a failed or interrupted write leaves nothing behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_deep(path: Path, array: np.ndarray, tags: dict[str, bytes]) -> None:
    """A uint16 (H, W[, C]) array as a 16-bit PNG (OpenCV, with the EXIF block and colour profile) or TIFF
    (tifffile, with the colour profile; Pillow writes neither at 16 bits per colour channel)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        colour = array.ndim == 3 and array.shape[2] >= 3
        extra = ["unassalpha"] if array.ndim == 3 and array.shape[2] in (2, 4) else None
        tifffile.imwrite(path, array, photometric="rgb" if colour else "minisblack", extrasamples=extra,
                         iccprofile=tags.get("icc_profile"), compression="zlib")
        return
    import cv2

    if array.ndim == 3:
        array = array[:, :, [2, 1, 0, 3][: array.shape[2]]] if array.shape[2] >= 3 else array[:, :, [0, 0, 0, 1]]
    kinds, blocks = [], []  # PNG's eXIf chunk holds the TIFF-style block without Pillow's "Exif\0\0" prefix
    if tags.get("exif"):
        kinds.append(cv2.IMAGE_METADATA_EXIF)
        blocks.append(np.frombuffer(tags["exif"].removeprefix(b"Exif\x00\x00"), np.uint8))
    if tags.get("icc_profile"):
        kinds.append(cv2.IMAGE_METADATA_ICCP)
        blocks.append(np.frombuffer(tags["icc_profile"], np.uint8))
    if not cv2.imwriteWithMetadata(str(path), np.ascontiguousarray(array), kinds, blocks):
        raise OSError(f"OpenCV could not write {path}")


# Camera RAW formats: sensor data that needs developing (demosaicing, white balance, a tone curve). Pillow reads
# the small embedded preview of some of them as if it were the photo, so they are refused by name.
RAW_EXTENSIONS = (".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2",
                  ".pef", ".srw", ".raw", ".3fr", ".iiq", ".x3f")


# Pillow modes that carry colour in another model: converted to RGB on reading (CMYK JPEGs from print
# workflows, YCbCr / LAB / HSV TIFFs). Palette images come back as RGB(A) from imageio already.
_TO_RGB_MODES = ("CMYK", "YCbCr", "LAB", "HSV")


# Pillow modes whose 16-bit files Pillow itself reads at 8 bits (a raw converter's 16-bit TIFF / PNG): read
# through OpenCV instead, which keeps the 16 bits. (16-bit grey is Pillow's "I;16" and needs no detour.)
_DEEP_MODES = ("RGB", "RGBA")  # (a 16-bit grey + alpha PNG opens as RGBA, its raw mode "LA;16")

# EXIF orientation -> the turn that shows the stored (H, W, C) pixels upright (as PIL.ImageOps.exif_transpose).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _read_deep(path: Path, grey_alpha: bool, orientation: int) -> np.ndarray | None:
    """A 16-bit colour (or grey + alpha) file as uint16 (H, W, C) in Pillow's channel order, turned upright;
    None when OpenCV cannot decode it at 16 bits (the caller then reads it through Pillow, at 8 bits)."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # (H, W[, C]) BGR(A); the EXIF turn is ours to apply
    if arr is None or arr.dtype != np.uint16:
        return None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] >= 3:
        arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]  # BGR(A) -> RGB(A)
    if grey_alpha and arr.shape[2] == 4:  # OpenCV expands grey + alpha to colour: back to (grey, alpha)
        arr = arr[:, :, [0, 3]]
    return np.ascontiguousarray(_ORIENT.get(orientation, lambda a: a)(arr))


def read_image01(path: str | Path, channels: int | None = None, name: str | None = None) -> torch.Tensor:
    """An image file as a float32 (1, C, H, W) tensor in [0, 1], the way a photo viewer shows it.
    (``read_image01_alpha`` also returns the alpha channel this drops.)

    * EXIF orientation is applied (a portrait phone photo stored sideways comes out upright), so
      the pixels match what the user sees and what a mask drawn over the displayed picture covers.
    * 8-bit values map to k / 255 exactly (an unedited output written as PNG reads back bit-identical),
      16-bit files (grey, RGB, with alpha: PNG, TIFF) to k / 65535; bilevel images to 0 / 1.
    * CMYK, YCbCr, LAB and HSV images are converted to RGB; palette images are expanded; alpha is
      dropped (the colour under transparent pixels is kept as stored); an animation or a multi-page
      file gives its first frame. HEIC (iPhone photos) through pillow-heif, AVIF through Pillow; camera RAW
      files are refused (develop them first).
    * ``channels=3``: a grayscale file is repeated to RGB. ``channels=1``: an RGB file whose three
      channels are equal is taken as grayscale; a colour one is refused (the caller's model is
      grayscale; convert it first). None: the file's own channels (1 or 3).

    Args:
        path: the image file.
        channels: 1, 3 or None (see above).
        name: how errors name the file (default: the path).

    Returns:
        (1, C, H, W) float32 in [0, 1].

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: unreadable or unsupported data (the message names the file and what it holds).

    Example:
        >>> x = read_image01("photo.jpg", channels=3)          # doctest: +SKIP
        >>> x.shape, float(x.min()) >= 0.0, float(x.max()) <= 1.0   # doctest: +SKIP
        (torch.Size([1, 3, 1080, 1440]), True, True)
    """
    return read_image01_alpha(path, channels, name)[0]


def read_image01_alpha(path: str | Path, channels: int | None = None,
                       name: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``read_image01`` and the file's alpha channel: ((1, C, H, W), (1, 1, H, W) or None when the file
    has none), both float32 in [0, 1]. The commands write it back on outputs whose format has alpha
    (``save_image(..., alpha=)``), so a cut-out keeps its transparency.

    Example:
        >>> x, alpha = read_image01_alpha("sticker.png", channels=3)   # doctest: +SKIP
    """
    pixels, alpha, _, _ = _read(path, channels, name)
    return pixels, alpha


def _read(path: str | Path, channels: int | None, name: str | None
          ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, bytes], int]:
    """(pixels, alpha, tags, bits) of an image file: ``read_image01_alpha``'s with its EXIF / colour profile
    (``_tags_of``) and sample depth (``_bits_of``) from the same opening of it."""
    import imageio.v3 as iio

    label = str(path) if name is None else name
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such image file: {label}")
    if p.suffix.lower() in RAW_EXTENSIONS:  # (Pillow opens a DNG as a TIFF: its small embedded preview)
        raise ValueError(f"{label} is a camera RAW file; develop it first (a raw converter's 16-bit TIFF or a "
                         "JPEG: both are read here at full size)")
    try:  # the pillow plugin only: no slow plugin probing of a bad file, and it knows EXIF
        with pillow().open(p) as im:
            mode, raw = im.mode, _raw_16(im)  # (before getexif, which may decode a PNG to reach its eXIf)
            bits = _bits_of(im)
            orientation = im.getexif().get(0x0112, 1)
            tags = _tags_of(im)
        arr = _read_deep(p, "LA;16" in raw, orientation) if raw and mode in _DEEP_MODES else None
        if arr is None:
            arr = np.asarray(iio.imread(p, plugin="pillow", rotate=True,
                                        mode="RGB" if mode in _TO_RGB_MODES else None))
    except Exception as err:  # imageio / Pillow raise many types for bad data; all mean "unreadable"
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        hint = ("; HEIC/HEIF photos (iPhones save HEIC) need pillow-heif (pip install pillow-heif) or converting "
                "to JPEG/PNG first" if p.suffix.lower() in (".heic", ".heif") and not _heif_ok() else "")
        raise ValueError(f"cannot read image file {label}: {type(err).__name__}: {first}{hint}") from err
    if arr.ndim == 4:  # an animation: its first frame
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{label}: unsupported image layout {arr.shape} (expected H x W with 1-4 channels)")
    alpha = arr[:, :, -1] if arr.shape[2] in (2, 4) else None  # (H, W) of LA / RGBA files
    arr = arr[:, :, :1] if arr.shape[2] == 2 else arr[:, :, :3]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{label}: unsupported pixel type {arr.dtype} (mode {mode}); use 8- or 16-bit images")
    if channels == 1 and arr.shape[2] == 3:
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise ValueError(f"{label} has 3 channels but the model takes 1 (grayscale), and the picture is in "
                             "colour; convert it first")
        arr = arr[:, :, :1]
    scale = float(np.iinfo(arr.dtype).max)
    # (H, W, C) -> (C, H, W) in the file's own integer type first: the float image is made once (a 48-MP photo's
    # float copies are 576 MB each).
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(scale)  # (C, H, W)
    if channels == 3 and x.shape[0] == 1:
        x = x.expand(3, -1, -1).contiguous()
    a = None if alpha is None else torch.from_numpy(alpha.astype(np.float32) / scale)[None, None]  # (1, 1, H, W)
    return x[None], a, tags, bits
