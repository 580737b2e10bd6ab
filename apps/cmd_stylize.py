"""`pmf stylize`: render a picture in the style of another picture or of a class of an RGB model.

    pmf stylize photo.png texture.png -o out.png                    # reference style image
    pmf stylize photo.png class:brick -o out.png --strength 0.5      # a style class of the model
    pmf stylize big.jpg class:gravel -o out.png --size-mode tile     # any size: fit (default), crop, tile

Default model: the bundled ``photos`` pMF (13 classes, 32x32; ``--list-classes`` prints them).
Writes OUT (PNG) and prints one JSON line (network evaluations, size mode, seconds).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from pmf_edit.style import (DEFAULT_ATTENTION_TEMPERATURE, DEFAULT_INJECTION_WEIGHT, DEFAULT_METHOD,
                                DEFAULT_STRENGTH, DEFAULT_TEXTURE)

    p = sub.add_parser(
        "stylize",
        help="style transfer from a reference image or a model class",
        description="Render CONTENT in the style of STYLE (an image file, or class:NAME of the model) "
        "through the pMF velocity field, in a few network evaluations.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("content", nargs="?", help="content image file (PNG/JPEG/...)")
    p.add_argument("style", nargs="?", help="style image file, or class:NAME / class:INDEX of the model")
    p.add_argument("-o", "--output", default=None, help="output image; its extension names the format (.png, .jpg, "
                   ".tif, .webp; PNG without one); required unless --list-classes")
    p.add_argument("--model", default=None,
                   help="RGB pMF model folder or official .pt file (e.g. pMF-B-16.pt: style classes are ImageNet "
                   "names or indices, class:goldfish); default: the bundled photos model")
    p.add_argument("--model-config", default=None, metavar="JSON",
                   help="architecture (PMFConfig fields, JSON file or inline JSON) of an official-format "
                   "checkpoint that is not a released size; such files are refused without it")
    p.add_argument("--strength", type=float, default=DEFAULT_STRENGTH,
                   help="0 = the content, 1 = all style (the time the content is inverted to)")
    p.add_argument("--method", choices=("kv", "kv_replace", "feat", "swap"), default=DEFAULT_METHOD,
                   help="kv: attention key/value sharing; kv_replace: the style's keys/values instead "
                   "of the content's; feat: feature AdaIN; swap: class swap only")
    p.add_argument("--attention-temperature", type=float, default=DEFAULT_ATTENTION_TEMPERATURE,
                   help="kv/kv_replace: multiplies the content's attention logits over the style's keys "
                   "(> 1: each content token copies its closest style tokens more sharply), in [0.25, 8]")
    p.add_argument("--injection-weight", type=float, default=DEFAULT_INJECTION_WEIGHT,
                   help="kv/kv_replace: blend of the content's own attention (0) and the injected one (1); "
                   "feat: the AdaIN weight")
    p.add_argument("--style-class", default=None,
                   help="the class a style IMAGE shows, if known (conditions the generation on it)")
    p.add_argument("--size-mode", choices=("fit", "crop", "tile", "auto", "native", "resize"), default="fit",
                   help="how a content of another size than the model's is shown to it: fit (whole picture, "
                   "aspect kept, the change carried back to full resolution edge-aware), crop (centre square) "
                   "or tile (model-size tiles at full resolution: slower, a visible patch mesh); auto, native "
                   "and resize are former names of fit")
    p.add_argument("--style-scale", choices=("whole", "content"), default="whole",
                   help="whole: the whole style image resized to the model's side; content: the style "
                   "resized by the content's own factor, then its centre (texture keeps its size relative "
                   "to the content; matters when the style image is larger than the content)")
    p.add_argument("--texture", type=float, default=DEFAULT_TEXTURE,
                   help="weight of the style's own texture added at full resolution (x strength; 0: the "
                   "network's change only)")
    p.add_argument("--no-color-match", action="store_true", help="skip the Lab colour move")
    p.add_argument("--color-after", action="store_true",
                   help="make the Lab colour move on the output instead of on the content before the model")
    p.add_argument("--seed", type=int, default=0, help="seed (class styles draw a one-step sample)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--list-classes", action="store_true", help="print the model's style classes and exit")
    p.set_defaults(func=run)
    return p


def _open(path: str):
    """An image file -> ``core.images.ImageFile`` with (1, 3, H, W) pixels in [0, 1], read as a viewer shows
    it (EXIF orientation, HEIC, CMYK, palettes, 16 bit; gray repeated) with its alpha, tags and depth."""
    from core.images import open_image
    from pmf_edit.images import check_image_size

    img = open_image(path, channels=3)
    check_image_size(img.pixels, repr(path))
    return img


def run(args: argparse.Namespace) -> int:
    from core.checkpoint import bundled_model_dir
    from core.images import check_image_output
    from pmf_edit.editing import from_pretrained
    from pmf_edit.style import resolve_style_class, style_transfer

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model_path = Path(args.model) if args.model else bundled_model_dir("photos")
    from apps.cmd_sample import _model_config
    from apps.cmd_edit import _write, weights_precision

    net, meta = from_pretrained(model_path, device=device, precision=getattr(args, "precision", None) or "auto",
                                **_model_config(args.model_config))
    if net.cfg.in_channels != 3:
        raise ValueError(f"style transfer needs an RGB model; {model_path} has {net.cfg.in_channels} channel(s)")
    names = meta.get("class_names") or [str(i) for i in range(net.cfg.num_classes)]
    if args.list_classes:
        print("\n".join(f"{i}: {n}" for i, n in enumerate(names)))
        return 0
    if not args.content or not args.style or not args.output:
        raise ValueError("usage: pmf stylize CONTENT STYLE -o OUT (STYLE a file or class:NAME)")
    check_image_output(args.output)  # before any work: a bad extension fails at once
    if not 0.0 <= args.strength <= 1.0:
        raise ValueError(f"--strength must lie in [0, 1], got {args.strength}")
    content_file = _open(args.content)  # the output keeps the content's transparency, tags and depth
    content = content_file.pixels
    style: torch.Tensor | str
    if args.style.startswith("class:"):
        style = args.style
        resolve_style_class(net, style, 1, names)  # fail early on an unknown class
    else:
        if not Path(args.style).is_file():
            raise FileNotFoundError(f"no style image file at {args.style!r} (for a class, write class:NAME; "
                                    f"classes: {', '.join(names)})")
        style = _open(args.style).pixels
    t0 = time.perf_counter()
    res = style_transfer(
        net, content, style, strength=args.strength, method=args.method, class_names=names,
        style_labels=None if args.style_class is None else resolve_style_class(net, args.style_class, 1, names),
        color_match=not args.no_color_match, color_first=not args.color_after, size_mode=args.size_mode,
        attention_temperature=args.attention_temperature, injection_weight=args.injection_weight,
        style_scale=args.style_scale, texture=args.texture,
        generator=torch.Generator().manual_seed(args.seed),
    )
    seconds = time.perf_counter() - t0
    out = Path(args.output)
    _write(str(out), res.images, content_file)  # the edit commands' writer: format, alpha, EXIF, depth
    print(json.dumps({
        "output": str(out), "model": str(model_path), "style": args.style, "strength": args.strength,
        "method": res.method, "texture": args.texture, "nfe": res.nfe, "size_mode": res.size_mode,
        "tiles": res.num_tiles,
        "size": list(res.images.shape[-2:]), "seconds": round(seconds, 3), "precision": weights_precision(net),
    }))
    return 0
