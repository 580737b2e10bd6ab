"""`pmf invert`, `pmf edit`, `pmf inpaint`: edit image files with a trained pMF model (the bundled
MNIST model by default).

    pmf invert digit.png --label 7 --out noise.npy --reconstruction rec.png
    pmf edit digit.png --source 7 --target 1 --out one.png                  # 3 network evaluations
    pmf edit digit.png --source 7 --target 1 --method flow --seed 0 --out one.png
    pmf inpaint digit.png --mask hole.png --label 7 --seed 0 --out filled.png
    pmf edit photo.jpg --model m/ --target 3 --size-mode crop --out out.png   # any size in, same size out
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from core.images import check_image_output


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="input image file (PNG/JPEG...) with the model's channel count, any size")
    p.add_argument("--model", default=None,
                   help="model folder (config.json + model.safetensors) or official pMF .pt file "
                   "(e.g. pMF-B-16.pt: ImageNet classes by name or index); default: a bundled model that fits the "
                   "picture, the MNIST pMF for a grey one, the photos pMF (a 32x32 RGB toy) for a colour one")
    p.add_argument("--model-config", default=None, metavar="JSON",
                   help="architecture (PMFConfig fields, a JSON file or inline JSON) of an official-format "
                   "checkpoint that is not a released size; such files are refused without it")
    p.add_argument("-o", "--out", "--output", dest="out", required=True,
                   help="output file: an image whose extension names its format (.png, .jpg, .tif, .webp; "
                   "PNG without one), or the .npy of pmf invert's latents")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="guidance scale >= 1 (a network input, no extra cost); default: the official "
                   "checkpoint's recommended scale (e.g. 8.5 for pMF-B/16), else per command")
    p.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("T_MIN", "T_MAX"),
                   help="times in which guidance applies; default: the official checkpoint's "
                   "recommended interval (e.g. 0.1 0.7 for pMF-B/16), else 0 1")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--size-mode", choices=("fit", "crop", "tile"), default="fit",
                   help="how an image of another size than the model's is shown to it: fit (whole image, "
                   "aspect kept, reflect-padded), crop (centre square; inpaint: around the mask) or tile "
                   "(overlapping model-size tiles at full resolution); the output has the input's size")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: ...)" only where there is a value to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.required:
            return action.help or ""
        return super()._get_help_string(action)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    fmt = _Formatter
    p = sub.add_parser("invert", help="image -> the noise that regenerates it (implicit jumps)",
                       description="Invert an image to the state z_t at t = --strength (1: noise) and "
                       "save it as a .npy array (C, H, W); optionally write the round-trip reconstruction.",
                       formatter_class=fmt)
    _common(p)
    p.add_argument("--label", default=None, help="class the image shows (index or name); default: the null class")
    p.add_argument("--strength", type=float, default=1.0, help="end time t in [0, 1] (0: the image itself)")
    p.add_argument("--steps", type=int, default=None, help="inversion intervals (default: measured, 2)")
    p.add_argument("--iterations", type=int, default=None,
                   help="fixed-point updates per interval (default: the method's: 7 fixed-point, 2 hybrid)")
    _inversion_flags(p)
    p.add_argument("--reconstruction", default=None, help="also write the regenerated image here (the extension names the format; PNG without one)")
    p.set_defaults(func=run_invert)

    p = sub.add_parser("edit", help="change an image's class, keeping its shape and style",
                       description="Class-swap edit. --method invert: invert under the source class to "
                       "t = --strength, regenerate under the target; flow: inversion-free difference of the "
                       "target and source velocity fields (FlowEdit-style); sdedit: noise, one jump.",
                       formatter_class=fmt)
    _common(p)
    p.add_argument("--target", required=True, help="class to turn the image into (index or name)")
    p.add_argument("--source", default=None, help="class the image shows (index or name); default: the null class")
    p.add_argument("--method", choices=("invert", "flow", "sdedit"), default="invert", help="editor")
    p.add_argument("--strength", type=float, default=None,
                   help="how far towards noise, in [0, 1] (0 keeps the input); default: the method's")
    p.add_argument("--steps", type=int, default=None, help="regeneration jumps (flow: steps); default: the method's")
    p.add_argument("--seed", type=int, default=0, help="noise seed (invert, flow, sdedit)")
    p.add_argument("--change-gate", type=float, default=None, metavar="T",
                   help="keep the source where the edit changed it by less than T of its largest change "
                   "(0 < T <= 1, proportionally below; default 0.6, pmf_edit.editing.DEFAULT_GATE); 0: no gate")
    _inversion_flags(p)
    p.set_defaults(func=run_edit)

    p = sub.add_parser("inpaint", help="refill a masked region; other pixels stay exactly as they are",
                       description="Inpaint: white (> 127) mask pixels are regenerated, the rest is copied "
                       "bit-exactly from the input.", formatter_class=fmt)
    _common(p)
    p.add_argument("--mask", required=True, help="mask image, same height and width; white = fill")
    p.add_argument("--label", default=None, help="class to fill with (index or name); default: the null class")
    p.add_argument("--strength", type=float, default=1.0, help="first noise level in [0, 1] (0 keeps the input)")
    p.add_argument("--steps", type=int, default=4, help="noise levels")
    p.add_argument("--resample", type=int, default=2, help="re-noising rounds per level")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.set_defaults(func=run_inpaint)
    return p


def _inversion_flags(p: argparse.ArgumentParser) -> None:
    """--inversion / --switch: the solver of the inversion (``pmf_edit.editing.invert``'s ``method``)."""
    p.add_argument("--inversion", choices=("auto", "fixed-point", "backward", "hybrid", "seeded"), default="auto",
                   help="inversion solver; backward/hybrid/seeded need a model with a backward head "
                   "(auto, the measured best: fixed-point for invert; for edits one backward jump on a model "
                   "with an inverse head (pmf train --objective invert, e.g. the bundled MNIST model), the "
                   "hybrid on other models with a backward head, else fixed-point)")
    p.add_argument("--switch", type=float, default=None,
                   help="hybrid: the fixed-point solver's share of [0, strength] before the backward jump, "
                   "in [0, 1) (default: measured, 0.9)")


def _inversion_kwargs(args: argparse.Namespace) -> dict:
    return {"method": args.inversion, **({} if args.switch is None else {"switch": args.switch})}


# ------------------------------------------------------------------------------------------------


def _model_path(args: argparse.Namespace) -> Path:
    """--model, else the bundled model that fits the picture: the MNIST pMF for a grey one (or an RGB file
    whose channels are equal), the photos pMF for a colour one (a grey model refuses colour pictures)."""
    if args.model:
        return Path(args.model)
    from core.checkpoint import bundled_model_dir

    return bundled_model_dir("mnist" if _is_grey(args.image) else "photos")


def _is_grey(path: str) -> bool:
    """Whether a picture is grey (one channel, or three equal ones), judged on a small decode of it (a JPEG
    at 1/8 of its size: a 48-megapixel photo is not decoded twice)."""
    import numpy as np

    from core.images import pillow, read_image01

    try:
        with pillow().open(path) as im:
            im.draft("RGB", (256, 256))  # JPEG only; other formats decode whole (cheap next to the edit)
            rgb = np.asarray(im.convert("RGB"))
    except Exception:  # noqa: BLE001  (Pillow raises many types for a bad file)
        read_image01(path)  # the reader's message names the file and what is wrong with it
        raise
    return bool((rgb[..., :1] == rgb[..., 1:]).all())


def _load(args: argparse.Namespace):
    """(network, class names, recommended guidance, the model's path) for the command's --model or default."""
    from apps.cmd_sample import _model_config
    from pmf_edit.editing import from_pretrained

    path = _model_path(args)

    net, meta = from_pretrained(path, device=args.device, precision=getattr(args, "precision", None) or "auto",
                                **_model_config(args.model_config))
    if meta.get("objective", "pmf") != "pmf":
        raise ValueError(f"{path} is a {meta.get('objective')!r} model; editing needs a pMF (average-velocity) model")
    names = meta.get("class_names") or [str(i) for i in range(net.cfg.num_classes)]
    # An official checkpoint's recommended guidance replaces the per-command defaults, which were
    # measured on the bundled models (the Python tasks apply the same rule: resolve_guidance).
    return net, names, net.recommended_guidance or {}, path


def _class(spec: str | None, names: list[str]) -> int | None:
    """A class index from an index or a name (case-insensitive, any synonym; ImageNet names for
    the official checkpoints); None = the null class."""
    from core.class_names import resolve_class

    return None if spec is None else resolve_class(spec, names)


def _read(path: str, net):
    """Image file -> ``core.images.ImageFile`` (pixels (1, C, H, W) float32 in [0, 1], alpha, tags, bit depth),
    checked against the model (channels; any size). Read as a viewer shows it (EXIF orientation, HEIC,
    CMYK, palettes, 16 bit); a grayscale file is repeated for an RGB model, a colour one refused by a
    grayscale model."""
    from core.images import open_image
    from pmf_edit.images import check_image_size

    img = open_image(path, channels=net.cfg.in_channels)
    check_image_size(img.pixels, path)  # any size the size policy accepts
    return img


def _write(path: str, images01: torch.Tensor, like=None) -> None:
    """The first image, written in the format the extension names (PNG when there is none), keeping what
    the input file ``like`` (an ``ImageFile``) had where the format has it: alpha (a cut-out stays a
    cut-out), EXIF (date, camera, GPS), colour profile, 16-bit samples (``core.images.write_image``)."""
    from core.images import write_image

    write_image(path, images01[:1], like=like)


def _guidance(args: argparse.Namespace, default: float, rec: dict) -> dict:
    """Guidance keywords: the command line's, else the checkpoint's recommended ``rec``, else ``default``."""
    scale = args.guidance_scale if args.guidance_scale is not None else rec.get("guidance_scale", default)
    interval = args.guidance_interval if args.guidance_interval is not None else rec.get("guidance_interval", (0.0, 1.0))
    return {"guidance_scale": scale, "guidance_interval": tuple(interval)}


def weights_precision(net) -> str:
    """The precision the network's weights are stored in, as ``--precision`` names it ("bf16", "fp32")."""
    dtype = next(net.parameters()).dtype
    return {torch.bfloat16: "bf16", torch.float32: "fp32"}.get(dtype, str(dtype).removeprefix("torch."))


def _report(cmd: str, out: str, nfe: int, seconds: float, net=None, model: Path | None = None, **extra) -> None:
    weights = {} if net is None else {"precision": weights_precision(net)}
    where = {} if model is None else {"model": str(model)}
    print(json.dumps({"command": cmd, "out": out, **where, "nfe": nfe, "ms": round(1000 * seconds, 1), **weights,
                      **extra}))


def run_invert(args: argparse.Namespace) -> int:
    from pmf_edit.editing import invert
    from pmf_edit.velocity import DEFAULT_INTERVALS, generate

    if args.reconstruction:
        check_image_output(args.reconstruction)  # before any work
    net, names, rec, model = _load(args)
    img = _read(args.image, net)
    x = img.pixels
    x = x.to(args.device)
    y = _class(args.label, names)
    g = _guidance(args, 1.0, rec)
    t0 = time.perf_counter()
    steps = args.steps or DEFAULT_INTERVALS
    inv = invert(net, x, labels=y, strength=args.strength, num_steps=steps, num_iterations=args.iterations,
                 size_mode=args.size_mode, **_inversion_kwargs(args), **g)
    nfe = inv.nfe
    T = inv.num_tiles
    if args.reconstruction:
        from core.images import from_model_range
        from pmf_edit.images import from_network, plan_size, to_network

        # Regenerate what the network saw from the latents, then carry it to the input's size.
        plan = plan_size(*x.shape[-2:], net.cfg.image_size, args.size_mode)
        rec, k = generate(net, inv.latents, inv.t, steps, None if y is None else [y] * T, g["guidance_scale"],
                          g["guidance_interval"])
        nfe += k * T
        x_in = to_network(plan, x)
        _write(args.reconstruction, from_network(plan, x, x_in, from_model_range(rec).to(x_in)), img)
    seconds = time.perf_counter() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    # (C, S, S) for one network input, (T, C, S, S) for T tiles.
    np.save(args.out, (inv.latents[0] if T == 1 else inv.latents[:T]).cpu().numpy())
    _report("invert", args.out, nfe, seconds, net=net, model=model, t=inv.t, residual=inv.residual,
            diverged=inv.diverged, inversion=args.inversion, size_mode=args.size_mode, tiles=T)
    return 0


def run_edit(args: argparse.Namespace) -> int:
    from pmf_edit import editing

    check_image_output(args.out)  # before any work: a bad extension fails at once
    net, names, rec, model = _load(args)
    img = _read(args.image, net)
    x = img.pixels
    x = x.to(args.device)
    tgt = _class(args.target, names)
    src = _class(args.source, names)
    kw = {} if args.strength is None else {"strength": args.strength}
    if args.steps is not None:
        kw["num_steps"] = args.steps
    g = _guidance(args, editing.EDIT_GUIDANCE, rec)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    kw["size_mode"] = args.size_mode
    if args.change_gate is not None:
        kw["change_gate"] = _change_gate(args.change_gate)
    if args.method == "invert":
        out = editing.edit(net, x, labels=tgt, source_labels=src, generator=gen, **_inversion_kwargs(args), **kw, **g)
    elif args.method == "flow":
        out = editing.flow_edit(net, x, labels=tgt, source_labels=src, generator=gen, **kw, **g)
    else:
        out = editing.sdedit(net, x, labels=tgt, generator=gen, **kw, **g)
    seconds = time.perf_counter() - t0
    _write(args.out, out.images, img)
    _report("edit", args.out, out.nfe, seconds, net=net, model=model, method=args.method, source=src, target=tgt,
            size_mode=args.size_mode, tiles=out.num_tiles)
    return 0


def _change_gate(threshold: float):
    """--change-gate T: 0 turns the gate off, (0, 1] sets its threshold (``editing.ChangeGate``)."""
    from pmf_edit.editing import ChangeGate

    if threshold == 0:
        return None
    try:
        return ChangeGate(threshold=threshold)
    except ValueError:
        raise ValueError(f"--change-gate must be 0 (no gate) or in (0, 1], got {threshold}") from None


def run_inpaint(args: argparse.Namespace) -> int:
    from core.images import read_image01
    from pmf_edit.editing import inpaint

    check_image_output(args.out)  # before any work: a bad extension fails at once
    net, names, rec, model = _load(args)
    img = _read(args.image, net)
    x = img.pixels
    x = x.to(args.device)
    if not Path(args.mask).is_file():
        raise FileNotFoundError(f"no such mask image: {args.mask}")
    # The mask is read like the image (EXIF orientation included, so a mask drawn over the displayed
    # photo lines up with it); any channel above half marks the pixel.
    m = read_image01(args.mask, name=f"mask {args.mask}")[0].amax(dim=0)  # (H, W) in [0, 1]
    if tuple(m.shape) != tuple(x.shape[-2:]):
        raise ValueError(f"mask is {m.shape[0]}x{m.shape[1]} but the image is {x.shape[-2]}x{x.shape[-1]}")
    mask = (m > 0.5)[None, None].to(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    out = inpaint(net, x, mask, labels=_class(args.label, names), strength=args.strength,
                  num_steps=args.steps, num_resample=args.resample, generator=gen, size_mode=args.size_mode,
                  **_guidance(args, 1.0, rec))
    seconds = time.perf_counter() - t0
    # Unmasked pixels: bit-identical floats, and round(255 * v) of v = k / 255 gives back k.
    _write(args.out, out.images, img)
    _report("inpaint", args.out, out.nfe, seconds, net=net, model=model, masked_pixels=int(mask.sum()),
            size_mode=args.size_mode, tiles=out.num_tiles)
    return 0
