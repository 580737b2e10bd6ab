"""Write a model folder for images ``--factor`` times larger, warm-started from a trained one.

The converted network is exactly the nearest-upsampled original (``core.upscale``); train it at the
new size with ``pmf train --init-from OUT --resolution NEW ...`` to add the detail inside each patch.

    python benchmarks/upscale_model.py --model core/assets/pmf-photos --factor 2 --out runs/photos64-init
"""

from __future__ import annotations

import argparse
import json

from core.checkpoint import load_model, read_config, save_model
from core.upscale import upscale_patches


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="trained model folder (config.json + model.safetensors)")
    p.add_argument("--factor", type=int, default=2, help="image and patch side multiplier")
    p.add_argument("--noise-scale", type=float, default=None, help="default: the model's times --factor")
    p.add_argument("--out", required=True, help="output model folder")
    args = p.parse_args(argv)
    net, _ = load_model(args.model)
    big = upscale_patches(net, args.factor, args.noise_scale)
    extra = {k: v for k, v in read_config(args.model).items() if k != "model"}
    extra["upscaled_from"] = {"model": str(args.model), "factor": args.factor}
    save_model(args.out, big, **extra)
    print(json.dumps({"out": args.out, "image_size": big.cfg.image_size, "patch_size": big.cfg.patch_size,
                      "noise_scale": big.cfg.noise_scale}))


if __name__ == "__main__":
    main()
