"""Reading image files as a viewer shows them (core.images.read_image01), which every command uses:
EXIF orientation, CMYK / palette / grey+alpha / 16-bit / bilevel files, channel policy, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from core.images import read_image01


def _photo(h: int = 24, w: int = 40) -> np.ndarray:
    """A small uint8 RGB picture with no symmetry (so a rotation or flip cannot pass unnoticed)."""
    g = np.random.default_rng(0)
    return g.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    im = Image.fromarray(_photo())
    exif = im.getexif()
    exif[0x0112] = orientation  # the Orientation tag phones write instead of rotating the pixels
    path = tmp_path / "phone.png"
    im.save(path, exif=exif.tobytes())
    with Image.open(path) as stored:
        shown = np.asarray(ImageOps.exif_transpose(stored))  # what a photo viewer displays
    x = read_image01(path)
    assert x.shape == (1, 3, *shown.shape[:2])
    assert torch.equal(x[0].permute(1, 2, 0), torch.from_numpy(shown.astype(np.float32) / 255))
    if orientation in (5, 6, 7, 8):  # a quarter turn: portrait comes out portrait
        assert x.shape[-2:] == (40, 24)


def test_modes_convert_like_a_viewer(tmp_path):
    rgb = _photo()
    base = Image.fromarray(rgb)
    base.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    with Image.open(tmp_path / "cmyk.jpg") as f:
        cmyk_as_rgb = np.asarray(f.convert("RGB"))
    x = read_image01(tmp_path / "cmyk.jpg")
    assert x.shape == (1, 3, 24, 40)  # not read as RGBA with the K plate dropped
    assert torch.equal(x[0].permute(1, 2, 0), torch.from_numpy(cmyk_as_rgb / np.float32(255)))
    assert float((x[0].permute(1, 2, 0) - torch.from_numpy(rgb / np.float32(255))).abs().mean()) < 0.03

    base.convert("P", palette=Image.ADAPTIVE).save(tmp_path / "pal.png")
    with Image.open(tmp_path / "pal.png") as f:
        assert torch.equal(read_image01(tmp_path / "pal.png")[0].permute(1, 2, 0),
                           torch.from_numpy(np.asarray(f.convert("RGB")) / np.float32(255)))

    base.convert("RGBA").save(tmp_path / "rgba.png")
    assert torch.equal(read_image01(tmp_path / "rgba.png")[0].permute(1, 2, 0), torch.from_numpy(rgb / np.float32(255)))
    base.convert("LA").save(tmp_path / "la.png")
    la = read_image01(tmp_path / "la.png")
    assert la.shape == (1, 1, 24, 40)

    grey16 = (np.arange(24 * 40, dtype=np.uint16) * 61).reshape(24, 40)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    assert torch.equal(read_image01(tmp_path / "g16.png")[0, 0], torch.from_numpy(grey16 / np.float32(65535)))

    Image.fromarray(rgb[..., 0] > 127).save(tmp_path / "bw.png")
    bw = read_image01(tmp_path / "bw.png")
    assert set(bw.unique().tolist()) == {0.0, 1.0}


def test_eight_bit_values_are_exact_and_channels_follow_the_model(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(grey).save(tmp_path / "g.png")
    x = read_image01(tmp_path / "g.png", channels=3)
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    assert torch.equal((x * 255).round().to(torch.uint8)[0, 2], torch.from_numpy(grey))  # k / 255 round trip
    # A grey picture stored as RGB is grey: a grayscale model takes it; a colour one is refused by name.
    Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(tmp_path / "grey_rgb.png")
    assert read_image01(tmp_path / "grey_rgb.png", channels=1).shape == (1, 1, 16, 16)
    Image.fromarray(_photo()).save(tmp_path / "colour.png")
    with pytest.raises(ValueError, match=r"colour.png has 3 channels but the model takes 1 \(grayscale\), and the picture is in colour"):
        read_image01(tmp_path / "colour.png", channels=1)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such image file: .*missing.png"):
        read_image01(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image file .*junk.png"):
        read_image01(tmp_path / "junk.png")
    (tmp_path / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))
    with pytest.raises(ValueError, match=r"cannot read image file .*IMG_0001.HEIC"):  # a broken one
        read_image01(tmp_path / "IMG_0001.HEIC")
    Image.fromarray(_photo()).save(tmp_path / "IMG_0003.DNG", format="TIFF")  # a DNG is a TIFF: Pillow would read
    with pytest.raises(ValueError, match=r"IMG_0003.DNG is a camera RAW file; develop it first"):  # its preview
        read_image01(tmp_path / "IMG_0003.DNG")
    import core.images

    with pytest.MonkeyPatch.context() as mp:  # without pillow-heif the message says what to install
        mp.setattr(core.images, "_heif_ok", lambda: False)
        with pytest.raises(ValueError, match=r"IMG_0001.HEIC: .*HEIC/HEIF photos .*pip install pillow-heif"):
            read_image01(tmp_path / "IMG_0001.HEIC")
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match=r"f.tif: unsupported pixel type float32"):
        read_image01(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="channels must be 1, 3 or None"):
        read_image01(tmp_path / "junk.png", channels=2)
    with pytest.raises(FileNotFoundError, match="no such image file: mask m.png"):
        read_image01(tmp_path / "m.png", name="mask m.png")


def test_outputs_take_the_format_of_their_extension(tmp_path):
    """`pmf edit --out e.jpg` wrote PNG bytes under a .jpg name; the extension now names the format
    (PNG without one), and an unknown extension is refused before any work."""
    from apps.cli import main
    from core.checkpoint import bundled_model_dir
    from core.images import check_image_output

    Image.fromarray(_photo()).save(tmp_path / "in.png")
    model = str(bundled_model_dir("photos"))
    for name, fmt in (("e.jpg", "JPEG"), ("e.webp", "WEBP"), ("e.tif", "TIFF"), ("e", "PNG")):
        assert main(["edit", str(tmp_path / "in.png"), "--model", model, "--target", "1", "--out",
                     str(tmp_path / name)]) == 0
        with Image.open(tmp_path / name) as f:
            assert f.format == fmt and f.size == (40, 24)
    assert main(["stylize", str(tmp_path / "in.png"), "class:1", "-o", str(tmp_path / "s.jpg"), "--model", model]) == 0
    with Image.open(tmp_path / "s.jpg") as f:
        assert f.format == "JPEG"
    with pytest.raises(ValueError, match=r"'\.jgp' is not an image format this can write"):
        check_image_output(tmp_path / "e.jgp")
    assert main(["edit", str(tmp_path / "in.png"), "--model", model, "--target", "1", "--out",
                 str(tmp_path / "e.jgp")]) == 2
    assert not list(tmp_path.glob("*e.jgp*"))  # nothing written under the bad name


def test_cutouts_keep_their_transparency_through_the_commands(tmp_path):
    """A transparent PNG (a sticker, a product cut-out) came out opaque: alpha was dropped on reading. The
    commands now write the input's alpha back where the output format has one (PNG, WebP, TIFF)."""
    from apps.cli import main
    from core.checkpoint import bundled_model_dir
    from core.images import read_image01_alpha

    rgba = np.concatenate([_photo(), np.zeros((24, 40, 1), np.uint8)], axis=2)
    rgba[4:20, 6:30, 3] = 255  # an opaque patch on a transparent sheet
    rgba[4:20, 30:34, 3] = 128  # and a soft edge
    Image.fromarray(rgba).save(tmp_path / "cut.png")
    model = str(bundled_model_dir("photos"))
    runs = {
        "e.png": ["edit", str(tmp_path / "cut.png"), "--model", model, "--target", "1", "--out", str(tmp_path / "e.png")],
        "s.webp": ["stylize", str(tmp_path / "cut.png"), "class:1", "-o", str(tmp_path / "s.webp"), "--model", model],
        "e.jpg": ["edit", str(tmp_path / "cut.png"), "--model", model, "--target", "1", "--out", str(tmp_path / "e.jpg")],
    }
    for name, argv in runs.items():
        assert main(argv) == 0, name
        x, alpha = read_image01_alpha(tmp_path / name)
        assert x.shape == (1, 3, 24, 40), name
        if name == "e.jpg":
            assert alpha is None  # JPEG has no alpha: the colour alone
        else:
            assert torch.equal((alpha[0, 0] * 255).round().to(torch.uint8), torch.from_numpy(rgba[:, :, 3])), name


def test_interpolate_takes_a_grey_and_a_colour_frame(tmp_path):
    from apps.cli import main

    colour = _photo()
    Image.fromarray(colour).save(tmp_path / "c.png")
    Image.fromarray(colour[..., 0]).save(tmp_path / "g.png")
    assert main(["interpolate", str(tmp_path / "c.png"), str(tmp_path / "g.png"), "-o", str(tmp_path / "m.png")]) == 0
    with Image.open(tmp_path / "m.png") as f:
        assert f.mode == "RGB" and f.size == (40, 24)


def test_edited_photos_keep_their_exif_and_colour_profile(tmp_path):
    """A phone photo's EXIF (date taken, camera, GPS) and ICC profile (Display P3: without it the picture looks
    washed out) were dropped from the edited output; they are written back, Orientation reset to 1 (the pixels
    were turned on reading), on formats that take them. A CMYK file's profile is not (the output is RGB)."""
    from PIL import ImageCms

    from apps.cli import main
    from core.checkpoint import bundled_model_dir

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    im = Image.fromarray(_photo())
    exif = im.getexif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = "Apple"  # Make
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 10:00:00"  # DateTimeOriginal (Exif sub-block)
    exif.get_ifd(0x8825)[0x0001] = "N"  # GPSLatitudeRef (GPS sub-block)
    im.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95, icc_profile=icc)
    model = str(bundled_model_dir("photos"))
    for name, argv in (("e.jpg", ["edit", str(tmp_path / "phone.jpg"), "--model", model, "--target", "1", "--out"]),
                       ("s.png", ["stylize", str(tmp_path / "phone.jpg"), "class:1", "--model", model, "-o"])):
        assert main([*argv, str(tmp_path / name)]) == 0
        with Image.open(tmp_path / name) as f:
            got = f.getexif()
            assert f.size == (24, 40)  # upright
            assert got[0x0112] == 1 and got[0x010F] == "Apple"
            assert got.get_ifd(0x8769)[0x9003] == "2024:05:01 10:00:00" and got.get_ifd(0x8825)[0x0001] == "N"
            assert f.info.get("icc_profile") == icc
    from core.images import open_image

    im.convert("CMYK").save(tmp_path / "print.jpg", icc_profile=icc)  # (a profile of the wrong space on purpose)
    assert "icc_profile" not in open_image(tmp_path / "print.jpg").tags


def _deep_photo(h: int = 24, w: int = 40, c: int = 3) -> np.ndarray:
    """A uint16 picture using all 16 bits (its low bytes differ from a 8-bit picture's k * 257)."""
    return np.random.default_rng(1).integers(0, 65536, (h, w, c), dtype=np.uint16)


def _grey_alpha_png16(path, arr: np.ndarray) -> None:
    """A 16-bit grey + alpha PNG (colour type 4), which neither Pillow nor OpenCV writes, chunk by chunk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w, _ = arr.shape
    rows = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))  # filter 0 per row
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_sixteen_bit_files_are_read_at_sixteen_bits(tmp_path):
    """Pillow reads 16-bit colour PNG / TIFF (a raw converter's export) at 8 bits, keeping the high byte: values
    up to one level off and the low byte lost. They are read through OpenCV at full depth, alpha included."""
    import cv2
    import tifffile

    from core.images import open_image, read_image01_alpha

    rgb = _deep_photo()
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb[:, :, ::-1])
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb, photometric="rgb", compression="zlib")
    rgba = _deep_photo(c=4)
    tifffile.imwrite(tmp_path / "rgba16.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    _grey_alpha_png16(tmp_path / "la16.png", rgba[:, :, [0, 3]])
    for name, want in (("rgb16.png", rgb), ("rgb16.tif", rgb), ("rgba16.tif", rgba), ("la16.png", rgba[:, :, [0, 3]])):
        x, alpha = read_image01_alpha(tmp_path / name)
        colour = want[:, :, :-1] if want.shape[2] in (2, 4) else want
        assert torch.equal(x[0].permute(1, 2, 0), torch.from_numpy(colour / np.float32(65535))), name
        if want.shape[2] in (2, 4):
            assert torch.equal(alpha[0, 0], torch.from_numpy(want[:, :, -1] / np.float32(65535))), name
        assert open_image(tmp_path / name).bits == 16, name
    Image.fromarray(_photo()).save(tmp_path / "rgb8.png")
    assert open_image(tmp_path / "rgb8.png").bits == 8


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_sixteen_bit_files_are_turned_upright(tmp_path, orientation):
    from core.images import save_image

    deep = _deep_photo()
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = orientation
    save_image(tmp_path / "phone16.png", deep, tags={"exif": exif.tobytes()})
    with Image.open(tmp_path / "phone16.png") as stored:
        shown8 = np.asarray(ImageOps.exif_transpose(stored))  # a viewer's picture, at Pillow's 8 bits
    x = read_image01(tmp_path / "phone16.png")
    assert x.shape == (1, 3, *shown8.shape[:2])
    assert float((x[0].permute(1, 2, 0) * 255 - torch.from_numpy(shown8.astype(np.float32))).abs().max()) <= 1.0


def test_sixteen_bit_photos_are_edited_at_sixteen_bits(tmp_path):
    """An edit of a 16-bit photo was written at 8 bits: the pixels the edit does not touch were no longer the
    input's. PNG and TIFF outputs now keep 16 bits (with EXIF and colour profile); JPEG gets 8, rounded."""
    import cv2
    from PIL import ImageCms

    from apps.cli import main
    from core.checkpoint import bundled_model_dir
    from core.images import read_image01_alpha, save_image

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x010F] = "Nikon"  # Make
    deep = _deep_photo()
    save_image(tmp_path / "raw.png", deep, tags={"exif": exif.tobytes(), "icc_profile": icc})
    save_image(tmp_path / "raw.tif", deep, tags={"icc_profile": icc})
    mask = np.zeros((24, 40), np.uint8)
    mask[8:16, 10:30] = 255
    Image.fromarray(mask).save(tmp_path / "hole.png")
    model = str(bundled_model_dir("photos"))
    for src, out in (("raw.png", "f.png"), ("raw.tif", "f.tif"), ("raw.png", "f.jpg")):
        assert main(["inpaint", str(tmp_path / src), "--mask", str(tmp_path / "hole.png"), "--model", model,
                     "--label", "1", "--out", str(tmp_path / out)]) == 0
        back = cv2.imread(str(tmp_path / out), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
        keep = mask == 0
        if out == "f.jpg":
            assert back.dtype == np.uint8
            continue
        assert back.dtype == np.uint16, out
        assert np.array_equal(back[keep], deep[keep]), out  # untouched pixels: the input's, all 16 bits
        assert not np.array_equal(back[~keep], deep[~keep]), out
        with Image.open(tmp_path / out) as f:
            assert f.info.get("icc_profile") == icc, out
            if out == "f.png":
                assert f.getexif()[0x010F] == "Nikon"
        x, _ = read_image01_alpha(tmp_path / out)
        assert torch.equal(x[0].permute(1, 2, 0)[torch.from_numpy(keep)], torch.from_numpy(deep[keep] / np.float32(65535)))
    assert main(["interpolate", str(tmp_path / "raw.png"), str(tmp_path / "raw.tif"), "-o", str(tmp_path / "m.png")]) == 0
    middle = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED)
    assert middle.dtype == np.uint16 and np.array_equal(middle[:, :, ::-1], deep)  # two equal frames: the frame


def test_the_default_model_fits_the_picture(tmp_path, capsys):
    """`pmf edit photo.jpg --target ...` without --model refused every colour photo (the default was the grey
    MNIST model); the default is now the bundled model that fits: MNIST for grey pictures, photos for colour."""
    import json

    from apps.cli import main

    Image.fromarray(_photo()).save(tmp_path / "colour.png")
    Image.fromarray(_photo()[..., 0]).save(tmp_path / "grey.png")
    for name, model in (("colour.png", "pmf-photos"), ("grey.png", "pmf-mnist")):
        assert main(["edit", str(tmp_path / name), "--target", "1", "--out", str(tmp_path / f"e_{name}")]) == 0
        assert json.loads(capsys.readouterr().out)["model"].endswith(model)


def test_iphone_heic_photos_are_read_and_written(tmp_path, capsys):
    """iPhones save photos as HEIC, which Pillow alone cannot open ("needs a plugin"): pillow-heif is a
    dependency now. Upright as shown, EXIF and colour profile kept on the outputs; .heic outputs too."""
    import json

    from PIL import ImageCms

    from apps.cli import main
    from core.images import pillow, read_image01_alpha

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    im = pillow().fromarray(_photo())  # stored 24 x 40
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned a quarter: portrait 40 x 24
    exif[0x010F] = "Apple"
    im.save(tmp_path / "IMG_0002.HEIC", exif=exif.tobytes(), icc_profile=icc, quality=95)
    x, alpha = read_image01_alpha(tmp_path / "IMG_0002.HEIC")
    assert x.shape == (1, 3, 40, 24) and alpha is None
    for out in ("e.jpg", "e.heic"):
        assert main(["edit", str(tmp_path / "IMG_0002.HEIC"), "--target", "1", "--out", str(tmp_path / out)]) == 0
        assert json.loads(capsys.readouterr().out)["model"].endswith("pmf-photos")
        with pillow().open(tmp_path / out) as f:
            assert f.size == (24, 40) and f.getexif().get(0x010F) == "Apple" and f.info.get("icc_profile") == icc


def test_open_image_and_write_image_keep_what_the_file_had(tmp_path):
    """The Python side of what the commands do: open_image reads pixels, alpha, tags and depth in one go;
    write_image(..., like=) writes a result that keeps them (a creative tool needs both calls, no more)."""
    from PIL import ImageCms

    import pmf_edit
    from core.images import save_image

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x010F] = "Nikon"
    deep = _deep_photo(c=4)
    save_image(tmp_path / "in.png", deep, tags={"exif": exif.tobytes(), "icc_profile": icc})
    photo = pmf_edit.open_image(tmp_path / "in.png")
    assert photo.pixels.shape == (1, 3, 24, 40) and photo.alpha.shape == (1, 1, 24, 40) and photo.bits == 16
    assert photo.tags["icc_profile"] == icc
    pmf_edit.write_image(tmp_path / "out.png", photo.pixels, like=photo)  # an unchanged picture comes back as it was
    back = pmf_edit.open_image(tmp_path / "out.png")
    assert torch.equal(back.pixels, photo.pixels) and torch.equal(back.alpha, photo.alpha) and back.bits == 16
    with Image.open(tmp_path / "out.png") as f:
        assert f.getexif()[0x010F] == "Nikon" and f.info.get("icc_profile") == icc
    pmf_edit.write_image(tmp_path / "plain.png", torch.rand(3, 5, 7))  # no like: 8-bit, no alpha
    plain = pmf_edit.open_image(tmp_path / "plain.png")
    assert plain.bits == 8 and plain.alpha is None and plain.pixels.shape == (1, 3, 5, 7)
    pmf_edit.write_image(tmp_path / "small.png", torch.rand(1, 3, 12, 20), like=photo)  # another size: no alpha
    assert pmf_edit.open_image(tmp_path / "small.png").alpha is None
    with pytest.raises(TypeError, match="images01 must be a torch.Tensor"):
        pmf_edit.write_image(tmp_path / "x.png", np.zeros((3, 4, 4)))
