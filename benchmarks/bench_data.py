"""Data-pipeline throughput: images/s per CPU core for JPEG decode + ADM crop vs packed uint8 shards.

Writes a temporary folder of ImageNet-like JPEGs (random crops of the offline photos, resized to the
sizes ImageNet photos commonly have, e.g. 500x375, quality 90), then times, side by side in one run:
- `files`: `ImageFileDataset` items (PIL decode + ADM centre crop), in this process;
- `decode_only`: the PIL decode alone (how much of `files` is decoding);
- `packed`: `PackedImageDataset` items (memory-mapped uint8 shards) after `pack_dataset`;
- `stream`: `BatchStream` end to end with `--workers` DataLoader processes (wall-clock images/s).
Per-core rates divide by the CPU seconds the work used (process time), so they hold on a busy
machine; the `stream` rate is wall-clock and does depend on how many cores are free (see `load_avg`).

    python -m benchmarks.bench_data --images 200 --resolution 256 --workers 2 > benchmarks/results/data_256.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.imagefiles import ImageFileDataset
from core.loader import BatchStream, LoaderConfig
from core.shards import PackedImageDataset, pack_dataset

# Common ImageNet-1k train sizes (W, H); the mean image is about 400x350.
SIZES = [(500, 375), (375, 500), (500, 333), (500, 500), (640, 480), (333, 500), (500, 400)]


def make_jpegs(root: Path, n: int, seed: int = 0) -> None:
    from skimage import data

    sources = [getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")]
    rng = np.random.default_rng(seed)
    for k in range(n):
        src = sources[k % len(sources)]
        w, h = SIZES[k % len(SIZES)]
        side = rng.integers(min(src.shape[:2]) // 2, min(src.shape[:2]) + 1)
        y0, x0 = rng.integers(0, src.shape[0] - side + 1), rng.integers(0, src.shape[1] - side + 1)
        im = Image.fromarray(src[y0 : y0 + side, x0 : x0 + side]).resize((w, h), Image.Resampling.BICUBIC)
        folder = root / f"class_{k % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        im.save(folder / f"img_{k:05d}.JPEG", quality=90)


def cpu_rate(fn, n: int) -> tuple[float, float]:
    """(images per CPU second of this process, wall seconds) for calling fn(i) for i < n."""
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        fn(i)
    return n / max(time.process_time() - c0, 1e-9), time.perf_counter() - t0


def decode_only(ds: ImageFileDataset, i: int) -> None:
    with Image.open(ds.path(i)) as im:
        im.convert("RGB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=200, help="JPEGs to generate and time")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader processes for the stream row")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="pmf-bench-data-") as tmp:
        root = Path(tmp) / "jpegs"
        make_jpegs(root, args.images)
        ds = ImageFileDataset.from_folder(root, resolution=args.resolution)
        jpeg_bytes = sum(ds.path(i).stat().st_size for i in range(len(ds)))
        for i in range(min(8, len(ds))):  # warm the page cache and PIL's imports
            ds[i]
        files_rate, files_wall = cpu_rate(lambda i: ds[(i, i % 2 == 1)], len(ds))
        decode_rate, _ = cpu_rate(lambda i: decode_only(ds, i), len(ds))
        t0 = time.perf_counter()
        pack_dataset(ds, Path(tmp) / "packed", shard_size=64, workers=args.workers, progress=False)
        pack_wall = time.perf_counter() - t0
        packed = PackedImageDataset(Path(tmp) / "packed")
        reps = 5  # packed reads are fast: repeat for a measurable time
        packed_rate, _ = cpu_rate(lambda i: packed[(i % len(packed), i % 2 == 1)], reps * len(packed))
        stream = BatchStream(ds, args.batch_size, seed=0, config=LoaderConfig(workers=args.workers, hflip=True))
        next(stream)  # start the workers
        batches = max(1, len(ds) // args.batch_size - 1)
        t0 = time.perf_counter()
        for _ in range(batches):
            next(stream)
        stream_wall = time.perf_counter() - t0
        stream.close()
    report = {
        "bench": "data_pipeline",
        "images": args.images,
        "resolution": args.resolution,
        "mean_jpeg_kb": round(jpeg_bytes / len(ds) / 1024, 1),
        "files_img_per_cpu_s": round(files_rate, 1),  # decode + ADM crop + flip, one core
        "decode_only_img_per_cpu_s": round(decode_rate, 1),
        "decode_share_of_files": round(files_rate / decode_rate, 3),
        "packed_img_per_cpu_s": round(packed_rate, 1),  # memory-mapped uint8 read + flip, one core
        "packed_over_files": round(packed_rate / files_rate, 1),
        "files_wall_s": round(files_wall, 2),
        "pack_wall_s": round(pack_wall, 2),
        "stream_workers": args.workers,
        "stream_img_per_s_wall": round(batches * args.batch_size / stream_wall, 1),
        "packed_bytes_per_image": args.resolution**2 * 3,
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
        "torch": torch.__version__,
        "pillow": Image.__version__,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
