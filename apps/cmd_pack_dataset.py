"""`pmf pack-dataset`: decode and crop an image folder or file list once into uint8 shards.

    pmf pack-dataset imagenet/train imagenet-256-packed --resolution 256 --workers 16
    pmf train --dataset imagenet-256-packed ...          # no JPEG decoding while training
"""
from __future__ import annotations

import argparse
import json
import os


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "pack-dataset",
        help="pack an image folder / file list into uint8 shards (no decoding while training)",
        description="Decode every image once, apply ADM's centre crop at --resolution, and write the pixels "
                    "as uint8 numpy shards that `pmf train --dataset OUT` memory-maps. Re-running the same "
                    "command resumes an interrupted pack.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("source", help="folder of class subfolders, or a file list (lines 'path [label]')")
    p.add_argument("output", help="output folder")
    p.add_argument("--resolution", type=int, required=True, help="output side in pixels (e.g. 256 or 512)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=3, help="3 (RGB) or 1 (luma)")
    p.add_argument("--shard-size", type=int, default=1024, help="images per shard file")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="decoding processes (0: this process)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from core.imagefiles import ImageFileDataset
    from core.shards import pack_dataset

    if os.path.isfile(args.source):
        ds = ImageFileDataset.from_file_list(args.source, resolution=args.resolution, channels=args.channels)
    else:
        ds = ImageFileDataset.from_folder(args.source, resolution=args.resolution, channels=args.channels)
    out = pack_dataset(ds, args.output, shard_size=args.shard_size, workers=args.workers, progress=not args.quiet)
    print(json.dumps({"output": str(out), "images": len(ds), "classes": ds.num_classes,
                      "resolution": ds.resolution, "channels": ds.channels}))
    return 0
