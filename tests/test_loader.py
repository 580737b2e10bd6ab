"""BatchStream: DataLoader workers, exact mid-epoch resume, rank shards, flips, training on streamed sets."""
import json

import pytest
import torch

from core.data import load_dataset
from core.imagefiles import ImageFileDataset
from core.loader import BatchStream, LoaderConfig, flip_bits, open_training_set
from core.shards import pack_dataset
from core.train import TrainConfig, train
from tests.test_imagefiles import make_jpeg_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_jpeg_folder(tmp_path_factory.mktemp("jpegs") / "d", classes=("a", "b", "c"), per_class=4)


def _take(stream, n):
    out = [next(stream) for _ in range(n)]
    return torch.cat([x for x, _ in out]), torch.cat([y for _, y in out])


def test_batches_are_the_decoded_items_in_sampler_order(folder):
    ds = ImageFileDataset.from_folder(folder, resolution=8)
    stream = BatchStream(ds, 4, seed=3, config=LoaderConfig(workers=2))
    x, y = next(stream)
    assert x.dtype == torch.float32 and x.shape == (4, 3, 8, 8) and -1 <= x.min() and x.max() <= 1
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(3 * 1_000_003))  # BatchSampler's epoch 0
    want = torch.stack([ds[i][0] for i in perm[:4].tolist()]).float() / 127.5 - 1
    assert torch.equal(x, want) and y.tolist() == [int(ds.labels[i]) for i in perm[:4]]
    stream.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_is_exact_despite_prefetch(folder, workers):
    ds = ImageFileDataset.from_folder(folder, resolution=8)
    cfg = LoaderConfig(workers=workers, prefetch=2, hflip=True)
    full = BatchStream(ds, 4, seed=1, config=cfg)
    xs, ys = _take(full, 7)  # 2 epochs and a third of one (12 images, batch 4)
    first = BatchStream(ds, 4, seed=1, config=cfg)
    _take(first, 4)  # the workers have decoded further ahead than this
    state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint stores
    assert (state["epoch"], state["position"]) == (1, 4)
    first.close()
    resumed = BatchStream(ds, 4, seed=1, config=LoaderConfig(workers=1, hflip=True))  # other worker count
    resumed.load_state_dict(state)
    x2, y2 = _take(resumed, 3)
    assert torch.equal(x2, xs[16:]) and torch.equal(y2, ys[16:])
    resumed.close()


def test_ranks_split_the_global_batch_and_resume_on_fewer_ranks(folder):
    ds = ImageFileDataset.from_folder(folder, resolution=8)
    cfg = LoaderConfig(workers=0)
    single = BatchStream(ds, 4, seed=0, config=cfg)
    r0 = BatchStream(ds, 4, seed=0, rank=0, world_size=2, config=cfg)
    r1 = BatchStream(ds, 4, seed=0, rank=1, world_size=2, config=cfg)
    for _ in range(4):
        (x0, y0), (x1, y1), (x, y) = next(r0), next(r1), next(single)
        assert x0.shape[0] == 2 and torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    one = BatchStream(ds, 4, seed=0, config=cfg)
    one.load_state_dict(r0.state_dict())  # checkpoint of a 2-process run, resumed by 1 process
    assert torch.equal(next(one)[0], next(single)[0])


def test_flips_are_deterministic_and_mirror_the_item(folder):
    ds = ImageFileDataset.from_folder(folder, resolution=8)
    bits = flip_bits(5, 0, len(ds))
    assert torch.equal(bits, flip_bits(5, 0, len(ds))) and not torch.equal(bits, flip_bits(5, 1, len(ds)))
    stream = BatchStream(ds, 12, seed=5, config=LoaderConfig(workers=0, hflip=True))
    x, _ = next(stream)  # the whole epoch 0
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(5 * 1_000_003))
    for row, i in enumerate(perm.tolist()):
        plain = ds[i][0].float() / 127.5 - 1
        assert torch.equal(x[row], plain.flip(-1) if bits[i] else plain)
    assert 0 < int(bits.sum()) < 12  # both cases were checked


def test_in_memory_sets_keep_their_batches(folder):
    from core.data import BatchSampler

    ds = load_dataset("digits")
    stream, sampler = BatchStream(ds, 16, seed=2), BatchSampler(len(ds), 16, seed=2)
    for _ in range(3):
        assert torch.equal(next(stream)[0], ds[next(sampler)][0])


def test_packed_stream_equals_file_stream(folder, tmp_path):
    files = ImageFileDataset.from_folder(folder, resolution=8)
    packed = open_training_set(pack_dataset(files, tmp_path / "p", shard_size=5, workers=0, progress=False))
    cfg = LoaderConfig(workers=2, hflip=True)
    a, b = BatchStream(files, 6, seed=9, config=cfg), BatchStream(packed, 6, seed=9, config=cfg)
    xa, ya = _take(a, 3)
    xb, yb = _take(b, 3)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    with pytest.raises(ValueError, match="resolution 8"):
        open_training_set(tmp_path / "p", resolution=16)


def test_open_training_set_dispatch(folder, tmp_path):
    assert isinstance(open_training_set(folder, stream=True, resolution=8), ImageFileDataset)
    assert open_training_set(folder, resolution=8).images.shape == (12, 3, 8, 8)  # in memory, as before
    (tmp_path / "list.txt").write_text(f"{folder}/a/img_0.jpg 0\n{folder}/c/img_1.jpg 2\n")
    assert len(open_training_set(tmp_path / "list.txt", resolution=8)) == 2
    with pytest.raises(ValueError, match="needs a resolution"):
        open_training_set(folder, stream=True)


def _train_cfg(out, dataset, **kw):
    base = dict(out_dir=str(out), dataset=str(dataset), stream=True, resolution=8, preset="pMF-T/4",
                model_overrides={"patch_size": 2}, batch_size=4, steps=4, log_every=1, sample_every=0,
                ckpt_every=2, progress=False, threads=1, data_workers=1, hflip=True)
    base.update(kw)
    return TrainConfig(**base)


def test_training_on_a_streamed_folder_resumes_exactly(folder, tmp_path):
    full = _train_cfg(tmp_path / "full", folder)
    train(full)
    half = _train_cfg(tmp_path / "half", folder, steps=2)
    train(half)
    train(_train_cfg(tmp_path / "half", folder))  # same out_dir: resumes from step 2
    log = lambda run: [json.loads(s) for s in (run / "log.jsonl").read_text().splitlines()]  # noqa: E731
    a, b = log(tmp_path / "full"), log(tmp_path / "half")
    assert [d["step"] for d in b] == [1, 2, 3, 4]
    assert [d["loss"] for d in a] == [d["loss"] for d in b]
    cfg = json.loads((tmp_path / "full" / "config.json").read_text())
    assert cfg["class_names"] == ["a", "b", "c"] and cfg["model"]["image_size"] == 8


def test_cli_pack_then_train_on_the_packed_folder(folder, tmp_path, capsys):
    from apps.cli import main

    packed = tmp_path / "packed"
    assert main(["pack-dataset", str(folder), str(packed), "--resolution", "8", "--workers", "0", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 12
    assert main(["train", "--dataset", str(packed), "--out-dir", str(tmp_path / "run"), "--preset", "pMF-T/4",
                 "--model-override", "patch_size=2", "--steps", "1", "--batch-size", "4", "--data-workers", "0",
                 "--sample-every", "0", "--no-progress", "--threads", "1"]) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["train"]["dataset"] == str(packed) and cfg["model"]["image_size"] == 8
    assert main(["train", "--dataset", str(folder), "--stream", "--out-dir", str(tmp_path / "r2"), "--steps", "1"]) == 2
    assert "needs a resolution" in capsys.readouterr().err
