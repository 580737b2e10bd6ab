"""core/data.py: built-in splits, image folders and their errors, the resumable/shardable sampler."""

from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import BatchSampler, ImageDataset, PhotosConfig, load_dataset, load_image_folder, load_photos


# ---- MNIST and digits --------------------------------------------------------------------------------


def test_mnist_splits_sizes_disjoint_deterministic():
    train, test, full = (load_dataset("mnist", split=s) for s in ("train", "test", "all"))
    assert (len(train), len(test), len(full)) == (4500, 500, 5000)
    assert train.images.shape[1:] == (1, 32, 32) and train.images.dtype == torch.float32
    assert train.images.min() >= -1 and train.images.max() <= 1
    assert test.labels.bincount().tolist() == [50] * 10
    assert train.labels.bincount().tolist() == [450] * 10
    # 28x28 digits padded by 2: the border is background (-1)
    assert (train.images[..., :2, :] == -1).all() and (train.images[..., :, -2:] == -1).all()
    # disjoint: no test image appears in train (compare exact pixel rows)
    train_rows = {r.numpy().tobytes() for r in train.images.flatten(1)}
    assert not any(r.numpy().tobytes() in train_rows for r in test.images.flatten(1))
    # train + test is a partition of "all"
    assert sorted(train_rows | {r.numpy().tobytes() for r in test.images.flatten(1)}) == sorted(
        {r.numpy().tobytes() for r in full.images.flatten(1)}
    )
    again = load_dataset("mnist", split="test")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    assert train.num_classes == 10 and train.channels == 1 and train.resolution == 32


def test_mnist_resolution_and_channels():
    ds = load_dataset("mnist", split="test", resolution=16, channels=3)
    assert ds.images.shape == (500, 3, 16, 16)
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])
    assert load_dataset("mnist", split="test", resolution=28).images.shape == (500, 1, 28, 28)


def test_digits_split():
    pytest.importorskip("sklearn")
    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    assert len(train) + len(test) == 1797 and test.labels.bincount().tolist() == [20] * 10
    assert test.images.shape[1:] == (1, 8, 8)


def test_photos_small_config_holds_out_unseen_region():
    pytest.importorskip("sklearn")
    cfg = PhotosConfig(train_crops_per_source=3, test_crops_per_source=2)
    train, test = load_photos(split="train", config=cfg), load_photos(split="test", config=cfg)
    assert train.images.shape == (13 * 3, 3, 32, 32) and test.images.shape == (13 * 2, 3, 32, 32)
    assert train.num_classes == 13 and "chelsea" in train.class_names
    assert torch.equal(load_photos(split="test", config=cfg).images, test.images)


def test_bad_split_and_unknown_name():
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist", split="val")
    with pytest.raises(FileNotFoundError, match="neither a built-in"):
        load_dataset("cifar10")


# ---- image folders -----------------------------------------------------------------------------------


def _write_png(path: Path, array: np.ndarray) -> None:
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, array)


def test_image_folder_classes_and_resize(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("dogs", 2), ("cats", 3)):
        for i in range(n):
            _write_png(tmp_path / name / f"{i}.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    (tmp_path / "cats" / "notes.txt").write_text("not an image")  # ignored
    ds = load_dataset(tmp_path, resolution=16)
    assert ds.class_names == ["cats", "dogs"]  # sorted
    assert ds.labels.tolist() == [0, 0, 0, 1, 1]
    assert ds.images.shape == (5, 3, 16, 16) and ds.images.min() >= -1 and ds.images.max() <= 1
    # same-size images: resolution inferred as the shorter side
    assert load_image_folder(tmp_path).images.shape == (5, 3, 20, 20)


def test_image_folder_grayscale_and_exact_values(tmp_path):
    img = np.zeros((8, 8), dtype=np.uint8)
    img[2:6, 2:6] = 255
    _write_png(tmp_path / "a" / "x.png", img)
    ds = load_image_folder(tmp_path)
    assert ds.images.shape == (1, 1, 8, 8)
    assert torch.equal(ds.images[0, 0], torch.from_numpy(img).float() / 127.5 - 1)
    assert load_image_folder(tmp_path, channels=3).images.shape == (1, 3, 8, 8)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class subfolders"):
        load_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="contains no images"):
        load_image_folder(tmp_path)
    _write_png(tmp_path / "empty" / "ok.png", np.zeros((4, 4, 3), np.uint8))
    bad = tmp_path / "empty" / "broken.png"
    bad.write_bytes(b"\x89PNG garbage, not an image" * 3)
    with pytest.raises(ValueError, match="broken.png"):
        load_image_folder(tmp_path)
    bad.unlink()
    _write_png(tmp_path / "empty" / "big.png", np.zeros((6, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="different sizes"):
        load_image_folder(tmp_path)
    with pytest.raises(ValueError, match="test split"):
        load_dataset(tmp_path, split="test", resolution=4)


def test_dataset_validation():
    with pytest.raises(ValueError, match="float32"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.int64), ["a"])
    with pytest.raises(ValueError, match="int64"):
        ImageDataset(torch.zeros(2, 1, 4, 4), torch.zeros(3, dtype=torch.int64), ["a"])


# ---- sampler -----------------------------------------------------------------------------------------


def test_sampler_epochs_are_permutations():
    s = BatchSampler(10, 5, seed=1)
    first = torch.cat([next(s), next(s)])
    second = torch.cat([next(s), next(s)])
    assert sorted(first.tolist()) == list(range(10)) == sorted(second.tolist())
    assert not torch.equal(first, second)
    assert s.state_dict()["epoch"] == 1
    # drop_last: 10 samples, batches of 4 -> 2 per epoch, the last 2 indices of each epoch unused
    s = BatchSampler(10, 4, seed=1)
    assert s.batches_per_epoch == 2
    assert len(set(torch.cat([next(s), next(s)]).tolist())) == 8
    s = BatchSampler(10, 4, seed=1, drop_last=False)
    assert [len(next(s)) for _ in range(4)] == [4, 4, 2, 4]


def test_sampler_resume_mid_epoch_is_exact():
    s = BatchSampler(103, 8, seed=7)
    for _ in range(17):  # into the second epoch (12 batches per epoch), mid-epoch
        next(s)
    state = s.state_dict()
    expected = [next(s) for _ in range(30)]  # crosses the next epoch boundary too
    resumed = BatchSampler(103, 8, seed=999)  # seed comes from the state
    resumed.load_state_dict(dict(state))
    for a, b in zip(expected, [next(resumed) for _ in range(30)]):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(103, 16).load_state_dict(state)


def test_sampler_seed_changes_order():
    a, b = BatchSampler(50, 10, seed=0), BatchSampler(50, 10, seed=1)
    assert not torch.equal(next(a), next(b))


def test_sampler_ddp_shards_are_disjoint_and_cover_global_batch():
    world = 4
    single = BatchSampler(64, 16, seed=3)
    ranks = [BatchSampler(64, 16, seed=3, rank=r, world_size=world) for r in range(world)]
    for _ in range(9):  # across epoch boundaries
        global_batch = next(single)
        shards = [next(r) for r in ranks]
        assert all(len(sh) == 4 for sh in shards)
        assert torch.equal(torch.cat(shards), global_batch)
        assert len(set(torch.cat(shards).tolist())) == 16
    # resuming on a different world size continues the same global stream
    state = ranks[0].state_dict()
    two = [BatchSampler(64, 16, rank=r, world_size=2) for r in range(2)]
    for s in two:
        s.load_state_dict(state)
    assert torch.equal(torch.cat([next(s) for s in two]), next(single))


def test_sampler_errors():
    with pytest.raises(ValueError, match="divisible"):
        BatchSampler(100, 10, world_size=3)
    with pytest.raises(ValueError, match="no batches"):
        BatchSampler(5, 10)
    with pytest.raises(ValueError, match="rank"):
        BatchSampler(100, 10, rank=2, world_size=2)


def test_image_folder_reads_files_as_a_viewer_shows_them(tmp_path):
    """A user's own photo folder: a CMYK JPEG keeps its colours (it was read as RGBA, the K plate dropped)
    and a phone photo stored sideways with an EXIF orientation comes in upright."""
    from PIL import Image, ImageOps

    rgb = np.zeros((24, 40, 3), np.uint8)
    rgb[:, :20] = (200, 30, 30)  # red left half
    rgb[:, 20:] = (30, 30, 200)  # blue right half
    (tmp_path / "a").mkdir()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "a" / "cmyk.jpg", quality=100)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "a" / "phone.png", exif=exif.tobytes())
    ds = load_image_folder(tmp_path, resolution=24)
    cmyk, phone = ds.images[0], ds.images[1]  # sorted file names: cmyk.jpg, phone.png
    left = (cmyk[:, :, :8].mean(dim=(1, 2)) + 1) / 2 * 255
    assert left[0] > 170 and left[1] < 60 and left[2] < 60  # still red
    with Image.open(tmp_path / "a" / "phone.png") as f:
        shown = np.asarray(ImageOps.exif_transpose(f))  # (40, 24, 3): red on top
    assert shown.shape == (40, 24, 3)
    top, bottom = ((phone[:, :8].mean(dim=(1, 2)) + 1) / 2 * 255), ((phone[:, -8:].mean(dim=(1, 2)) + 1) / 2 * 255)
    assert top[0] > 170 and bottom[2] > 170  # upright: red above blue, as shown
