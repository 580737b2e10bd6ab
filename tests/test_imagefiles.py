"""Lazy image-file sets: ADM centre crop, class-folder scan, file lists, packed shards."""
import numpy as np
import pytest
import torch
from PIL import Image

from core.imagefiles import ImageFileDataset, adm_center_crop, read_file_list, scan_class_folders
from core.shards import PackedImageDataset, pack_dataset


def make_jpeg_folder(root, classes=("cat", "dog"), per_class=5, seed=0):
    """root/<class>/img_<k>.jpg with varied sizes (wide, tall, large), plus files that must be ignored."""
    rng = np.random.default_rng(seed)
    sizes = [(40, 30), (30, 52), (70, 64), (33, 33), (96, 41)]  # (W, H)
    for c in classes:
        (root / c).mkdir(parents=True)
        for k in range(per_class):
            w, h = sizes[k % len(sizes)]
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / c / f"img_{k}.jpg", quality=90)
        (root / c / "notes.txt").write_text("not an image")
        (root / c / ".hidden.jpg").write_bytes(b"junk")
    return root


def test_adm_crop_takes_the_centre():
    a = np.zeros((16, 48, 3), np.uint8)
    a[:, :16], a[:, 16:32], a[:, 32:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)  # red | green | blue
    out = adm_center_crop(Image.fromarray(a), 16)  # short side already 16: no resize, centre third
    assert out.shape == (16, 16, 3)
    assert (out == (0, 255, 0)).all()


def test_adm_crop_box_halves_before_bicubic():
    # 64 -> 16: two box halvings (64 >= 2*16, 32 >= 2*16) and no bicubic step, so the result is the
    # 4x4 block mean (up to rounding); PIL's direct bicubic resize is not.
    a = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = adm_center_crop(Image.fromarray(a), 16).astype(float)
    block_mean = a.reshape(16, 4, 16, 4, 3).mean((1, 3))
    assert np.abs(out - block_mean).max() <= 2.0  # PIL rounds after each pass of each halving
    direct = np.asarray(Image.fromarray(a).resize((16, 16), Image.Resampling.BICUBIC)).astype(float)
    assert np.abs(direct - block_mean).max() > 10  # so the check above can tell the two apart


def test_adm_crop_sizes_and_errors():
    assert adm_center_crop(Image.new("RGB", (500, 375)), 256).shape == (256, 256, 3)
    assert adm_center_crop(Image.new("L", (31, 97)), 8).shape == (8, 8)
    with pytest.raises(ValueError, match="size"):
        adm_center_crop(Image.new("RGB", (8, 8)), 0)


def test_folder_scan_labels_and_items(tmp_path):
    root = make_jpeg_folder(tmp_path / "d")
    paths, labels, classes = scan_class_folders(root)
    assert classes == ["cat", "dog"] and labels == [0] * 5 + [1] * 5
    assert all(p.endswith(".jpg") and ".hidden" not in p for p in paths)
    ds = ImageFileDataset.from_folder(root, resolution=16)
    assert len(ds) == 10 and ds.num_classes == 2
    x, y = ds[7]
    assert x.dtype == torch.uint8 and x.shape == (3, 16, 16) and y == 1
    xf, yf = ds[(7, True)]
    assert torch.equal(xf, x.flip(-1)) and yf == y
    # Luma: one channel.
    assert ImageFileDataset.from_folder(root, resolution=8, channels=1)[0][0].shape == (1, 8, 8)


def test_folder_photos_are_read_upright(tmp_path):
    """A portrait phone photo is stored sideways with an EXIF Orientation; training on it sideways was wrong."""
    (tmp_path / "d" / "cat").mkdir(parents=True)
    a = np.zeros((20, 60, 3), np.uint8)  # stored landscape: top half red, bottom half black
    a[:10] = (255, 0, 0)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise, portrait 20 x 60: the red half on the right
    im.save(tmp_path / "d" / "cat" / "phone.jpg", exif=exif.tobytes(), quality=95)
    x = ImageFileDataset.from_folder(tmp_path / "d", resolution=20)[0][0].float()  # (3, 20, 20): the centre crop
    assert x[0, :, 12:].mean() > 200 and x[0, :, :8].mean() < 40  # red right half (sideways: red top half)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFileDataset.from_folder(tmp_path / "missing", resolution=8)
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match="no class subfolders"):
        ImageFileDataset.from_folder(tmp_path / "flat", resolution=8)
    (tmp_path / "flat" / "empty").mkdir()
    with pytest.raises(ValueError, match="contains no images"):
        ImageFileDataset.from_folder(tmp_path / "flat", resolution=8)
    root = make_jpeg_folder(tmp_path / "bad", per_class=1)
    (root / "cat" / "img_0.jpg").write_bytes(b"not a jpeg")
    ds = ImageFileDataset.from_folder(root, resolution=8)
    with pytest.raises(ValueError, match="img_0.jpg"):
        ds[0]


def test_file_list_with_and_without_labels(tmp_path):
    root = make_jpeg_folder(tmp_path / "d")
    (tmp_path / "labelled.txt").write_text("# comment\n\nd/dog/img_1.jpg 4\nd/cat/img_0.jpg 2\n")
    ds = ImageFileDataset.from_file_list(tmp_path / "labelled.txt", resolution=8)
    assert len(ds) == 2 and ds.labels.tolist() == [4, 2] and ds.num_classes == 5
    ref = ImageFileDataset.from_folder(root, resolution=8)
    assert torch.equal(ds[0][0], ref[6][0])  # dog/img_1 is item 6 of the folder
    (tmp_path / "plain.txt").write_text(f"{root}/dog/img_1.jpg\nd/cat/img_0.jpg\n")  # absolute + relative
    paths, labels, classes = read_file_list(tmp_path / "plain.txt")
    assert classes == ["cat", "dog"] and labels == [1, 0]
    (tmp_path / "mixed.txt").write_text("d/dog/img_1.jpg 1\nd/cat/img_0.jpg\n")
    with pytest.raises(ValueError, match="label"):
        read_file_list(tmp_path / "mixed.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="names no images"):
        read_file_list(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError):
        read_file_list(tmp_path / "missing.txt")


def test_pack_reads_back_identical_pixels_and_resumes(tmp_path):
    ds = ImageFileDataset.from_folder(make_jpeg_folder(tmp_path / "d"), resolution=16)
    out = pack_dataset(ds, tmp_path / "packed", shard_size=4, workers=0, progress=False)
    packed = PackedImageDataset(out)
    assert len(packed) == 10 and packed.class_names == ["cat", "dog"] and packed.resolution == 16
    assert sorted(p.name for p in out.glob("shard_*.npy")) == ["shard_00000.npy", "shard_00001.npy", "shard_00002.npy"]
    for i in range(10):
        for flip in (False, True):
            a, b = ds[(i, flip)], packed[(i, flip)]
            assert torch.equal(a[0], b[0]) and a[1] == b[1]
    # Interrupted pack: a shard and the index missing -> re-running rewrites just that shard.
    before = (out / "shard_00000.npy").stat().st_mtime_ns
    (out / "shard_00001.npy").unlink()
    (out / "index.json").unlink()
    pack_dataset(ds, out, shard_size=4, workers=0, progress=False)
    assert (out / "shard_00000.npy").stat().st_mtime_ns == before
    assert torch.equal(PackedImageDataset(out)[5][0], ds[5][0])
    with pytest.raises(ValueError, match="already holds a pack"):
        pack_dataset(ImageFileDataset.from_folder(tmp_path / "d", resolution=8), out, workers=0, progress=False)
    with pytest.raises(FileNotFoundError, match="not a packed data set"):
        PackedImageDataset(tmp_path / "d")
