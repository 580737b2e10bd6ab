"""The bad-input cases of issue 11, as one table: each case is run and its outcome classified.

Used by ``tests/test_bad_inputs.py`` (every case of a class must come out "clear" or "ok") and by
``benchmarks/bench_bad_inputs.py`` (the counts the issue reported, recounted).

Outcomes:
    clear   ValueError / TypeError / FileNotFoundError whose message names the argument or file, or a
            `pmf` command that exits 2 with one error line naming it
    ok      the call is valid after all and succeeds with a finite result (e.g. t=torch.tensor(0.5))
    unclear the right kind of error, but the message does not name the argument or file
    silent  no error, and the result is wrong (NaN, an untrained model, a 1-frame video, exit 0...)
    crash   any other exception (a raw torch / numpy / OS traceback)
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

CLEAR_ERRORS = (ValueError, TypeError, FileNotFoundError)


@dataclass
class Case:
    cls: str  # class of failure (one test per class)
    name: str  # what is tried
    run: Callable[["Env"], Any]  # raises, returns a result, or returns a CliResult
    names: tuple[str, ...]  # one of these must appear in the error message
    ok_if_returns: bool = False  # success (with finite tensors) is a right answer too


@dataclass
class CliResult:
    rc: int
    err: str


class Env:
    """Tiny models and files shared by the cases (built once per session)."""

    def __init__(self, tmp: Path) -> None:
        from core.checkpoint import save_model
        from core.model import build_model

        self.tmp = tmp
        torch.manual_seed(0)
        self.net = build_model("pMF-T/4", with_v_head=False).eval()  # 1 channel, 32x32, 10 classes
        self.rgb = build_model("pMF-T/4", in_channels=3, with_v_head=False).eval()
        self.img = torch.rand(1, 1, 32, 32)
        self.rgb_img = torch.rand(1, 3, 32, 32)
        self.model_dir = tmp / "model"
        save_model(self.model_dir, self.net, objective="pmf", class_names=[str(i) for i in range(10)],
                   sampling={"guidance_scale": 1.0, "guidance_interval": [0.0, 1.0], "num_steps": 1})
        self.nan_model_dir = tmp / "nan_model"
        save_model(self.nan_model_dir, self.net, objective="pmf", class_names=[str(i) for i in range(10)],
                   sampling={"guidance_scale": float("nan"), "guidance_interval": [0.0, 1.0], "num_steps": 1})
        self._video: Path | None = None

    def path(self, name: str) -> Path:
        return self.tmp / name

    def video(self) -> Path:
        """A 6-frame 32x32 mp4."""
        if self._video is None:
            import imageio_ffmpeg

            self._video = self.tmp / "clip.mp4"
            w = imageio_ffmpeg.write_frames(str(self._video), (32, 32), fps=10, macro_block_size=1)
            w.send(None)
            for i in range(6):
                w.send((np.full((32, 32, 3), 40 * i, np.uint8)).tobytes())
            w.close()
        return self._video


def cli(argv: list[str]) -> CliResult:
    """Run `pmf ARGV` in this process; the exit code and what it printed to stderr."""
    from apps.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:  # argparse
            rc = int(e.code or 0)
    return CliResult(rc, err.getvalue())


def _finite(obj: Any) -> bool:
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    for attr in ("images", "latents"):
        if hasattr(obj, attr):
            return _finite(getattr(obj, attr))
    return True


def classify(case: Case, env: Env) -> tuple[str, str]:
    """(outcome, detail) of one case."""
    try:
        out = case.run(env)
    except CLEAR_ERRORS as err:
        msg = str(err)
        ok = any(n.lower() in msg.lower() for n in case.names)
        return ("clear" if ok else "unclear"), f"{type(err).__name__}: {msg}"[:300]
    except Exception as err:  # noqa: BLE001 - any other exception is what we count
        return "crash", f"{type(err).__name__}: {err}"[:300]
    if isinstance(out, CliResult):
        lines = [ln for ln in out.err.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ": error: " in ln]
        if "Traceback" in out.err or "internal error" in out.err:
            return "crash", out.err[-300:]
        if out.rc == 2 and len(errors) == 1:
            ok = any(n.lower() in errors[0].lower() for n in case.names)
            return ("clear" if ok else "unclear"), errors[0][:300]
        if out.rc == 0 and case.ok_if_returns:
            return "ok", out.err[-200:]
        return "silent", f"exit {out.rc}: {out.err[-200:]}"
    if case.ok_if_returns and _finite(out):
        return "ok", type(out).__name__
    return "silent", f"returned {type(out).__name__}" + ("" if _finite(out) else " with NaN")


# ------------------------------------------------------------------------------------------------
# The cases

NAN = float("nan")


def _api_cases() -> list[Case]:
    import pmf_edit
    from core.sampling import sample_flow_matching, sample_pmf
    from pmf_edit.interpolate import InterpolationConfig, interpolate_frames
    from pmf_edit.style import style_transfer
    from pmf_edit.style_baselines import reinhard_transfer

    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    gray = {  # the 1-channel functions, with valid arguments
        "invert": lambda e, **k: pmf_edit.invert(e.net, e.img, labels=1, **k),
        "reconstruct": lambda e, **k: pmf_edit.reconstruct(e.net, e.img, labels=1, **k),
        "edit": lambda e, **k: pmf_edit.edit(e.net, e.img, labels=2, source_labels=1, **k),
        "sdedit": lambda e, **k: pmf_edit.sdedit(e.net, e.img, labels=2, **k),
        "flow_edit": lambda e, **k: pmf_edit.flow_edit(e.net, e.img, labels=2, source_labels=1, **k),
        "inpaint": lambda e, **k: pmf_edit.inpaint(e.net, e.img, torch.ones(32, 32, dtype=torch.bool), **k),
        "sample_pmf": lambda e, **k: sample_pmf(e.net, [1], **k),
        "sample_flow_matching": lambda e, **k: sample_flow_matching(e.net, [1], **k),
    }
    every = {**gray, "style_transfer": lambda e, **k: style_transfer(e.rgb, e.rgb_img, e.rgb_img, **k)}
    cases: list[Case] = []
    for fn, call in every.items():
        cases.append(Case("bad number", f"{fn}(guidance_scale=nan)",
                          lambda e, c=call: c(e, guidance_scale=NAN), ("guidance_scale",)))
    for fn in ("edit", "flow_edit"):
        cases.append(Case("bad number", f"{fn}(source_guidance_scale=nan)",
                          lambda e, c=gray[fn]: c(e, source_guidance_scale=NAN), ("source_guidance_scale",)))
    for fn in ("flow_edit", "sdedit", "sample_pmf"):
        cases.append(Case("bad number", f"{fn}(guidance_interval=(0.8, 0.2))",
                          lambda e, c=gray[fn]: c(e, guidance_interval=(0.8, 0.2)), ("guidance_interval",)))
    for fn in ("sdedit", "flow_edit", "sample_pmf", "style_transfer"):
        for v in (NAN, 1.5):
            cases.append(Case("bad number", f"{fn}(num_steps={v})",
                              lambda e, c=every[fn], v=v: c(e, num_steps=v), ("num_steps",)))
    for fn in ("edit", "sdedit", "flow_edit", "inpaint", "sample_pmf", "style_transfer"):
        cases.append(Case("wrong type", f"{fn}(generator=0)",
                          lambda e, c=every[fn]: c(e, generator=0), ("generator",)))
    sp = lambda e, *a, **k: sample_pmf(e.net, *a, **k)  # noqa: E731
    cases += [
        Case("inconsistent batch", "sample_pmf(labels=[1.5])", lambda e: sp(e, [1.5]), ("labels",)),
        Case("inconsistent batch", "sample_pmf(None, num_samples=0)", lambda e: sp(e, None, num_samples=0),
             ("num_samples",)),
        Case("inconsistent batch", "sample_pmf([1, 2], num_samples=5)", lambda e: sp(e, [1, 2], num_samples=5),
             ("num_samples",)),
        Case("inconsistent batch", "sample_pmf(labels=[])", lambda e: sp(e, []), ("labels",)),
        Case("inconsistent batch", "sample_pmf(labels=[[1, 2]])", lambda e: sp(e, [[1, 2]]), ("labels",)),
        Case("inconsistent batch", "sample_pmf(None, num_samples=-1)", lambda e: sp(e, None, num_samples=-1),
             ("num_samples",)),
        Case("wrong type", "sample_pmf(noise=numpy)", lambda e: sp(e, [1], noise=np.zeros((1, 1, 32, 32))),
             ("noise",)),
        Case("wrong type", "sample_pmf(noise=float16)",
             lambda e: sp(e, [1], noise=torch.zeros(1, 1, 32, 32, dtype=torch.float16)), ("noise",),
             ok_if_returns=True),
        Case("bad number", "sample_pmf(noise=NaN)", lambda e: sp(e, [1], noise=torch.full((1, 1, 32, 32), NAN)),
             ("noise",)),
        Case("bad number", "reinhard_transfer(strength=nan)",
             lambda e: reinhard_transfer(e.rgb_img, e.rgb_img, strength=NAN), ("strength",)),
        Case("bad number", "reinhard_transfer(strength=2)",
             lambda e: reinhard_transfer(e.rgb_img, e.rgb_img, strength=2.0), ("strength",)),
        Case("bad number", "reinhard_transfer(1x1 content)",
             lambda e: reinhard_transfer(torch.rand(1, 3, 1, 1), e.rgb_img), ("content",)),
        Case("wrong type", "style_transfer(style=numpy image)",
             lambda e: style_transfer(e.rgb, e.rgb_img, np.random.rand(32, 32, 3)), ("style",)),
        Case("wrong type", "interpolate_frames(t=torch.tensor(0.5))",
             lambda e: interpolate_frames(e.rgb_img, e.rgb_img, torch.tensor(0.5)), ("times",), ok_if_returns=True),
        Case("bad number", "InterpolationConfig(alpha=nan)", lambda e: InterpolationConfig(alpha=NAN), ("alpha",)),
        Case("bad number", "interpolate_video(scene_threshold=nan)",
             lambda e: pmf_edit.interpolate_video(e.video(), e.path("st.mp4"), scene_threshold=NAN, progress=False),
             ("scene_threshold",)),
        Case("wrong type", "interpolate_frames(config=dict)",
             lambda e: interpolate_frames(e.rgb_img, e.rgb_img, 0.5, config={"alpha": 1.0}), ("config",)),
        Case("wrong type", "interpolate_video(config=dict)",
             lambda e: pmf_edit.interpolate_video(e.video(), e.path("cd.mp4"), config={"alpha": 1.0},
                                                  progress=False), ("config",)),
        Case("bad number", "style_transfer(4096x4096): tiles reach the network in bounded batches",
             _bounded_tiles, ("TILE_CHUNK",), ok_if_returns=True),
    ]
    return cases


def _bounded_tiles(e: Env) -> Any:
    """A tiled call never sends the network more than 2 * TILE_CHUNK samples at once (content + style
    branch), however many tiles (4096x4096 is ~29k); raises if it does. Shown with TILE_CHUNK = 4 on a
    96x96 image (16 tiles) to stay fast; the loop is the same for any size."""
    from pmf_edit.style import transfer as style  # the module that reads TILE_CHUNK

    seen: list[int] = []
    h = e.rgb.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[0]))
    chunk, style.TILE_CHUNK = style.TILE_CHUNK, 4
    try:
        out = style.style_transfer(e.rgb, torch.rand(1, 3, 96, 96), e.rgb_img, size_mode="tile")
        if out.num_tiles <= style.TILE_CHUNK or max(seen) > 2 * style.TILE_CHUNK:
            raise RuntimeError(f"{out.num_tiles} tiles, largest network batch {max(seen)} (TILE_CHUNK 4)")
    finally:
        style.TILE_CHUNK = chunk
        h.remove()
    return out


def _train_args(e: Env, out: str, *extra: str) -> list[str]:
    return ["train", "--out-dir", e.path(out), "--dataset", "digits", "--preset", "pMF-T/4", "--steps", "2",
            "--batch-size", "4", "--sample-every", "0", "--no-progress", "--threads", "1", *extra]


def _nan_loss_run(e: Env) -> CliResult:
    import core.train as train_mod

    real = train_mod.pmf_loss_given

    def nan_loss(*a, **k):
        loss, stats = real(*a, **k)
        return loss * NAN, {**stats, "loss": NAN}

    train_mod.pmf_loss_given = nan_loss
    try:
        return cli(_train_args(e, "nanloss"))
    finally:
        train_mod.pmf_loss_given = real


def _cli_cases() -> list[Case]:
    cases = [
        Case("cli option", "pmf train: non-finite loss", _nan_loss_run, ("non-finite loss",)),
        Case("cli option", "pmf train --lr 1e400", lambda e: cli(_train_args(e, "lr", "--lr", "1e400")), ("--lr",)),
    ]
    for flag, value in (("--ckpt-every", "0"), ("--log-every", "0"), ("--threads", "-1"),
                        ("--model-override", "width=0"), ("--model-override", "nonsense=3"), ("--device", "cuda"),
                        ("--steps", "-5"), ("--max-minutes", "-1"), ("--resolution", "0"),
                        ("--guidance-scale", "nan")):
        if flag == "--device" and torch.cuda.is_available():
            continue
        name = "width" if "width" in value else ("nonsense" if "nonsense" in value else flag)
        cases.append(Case("cli option", f"pmf train {flag} {value}",
                          lambda e, f=flag, v=value: cli(_train_args(e, f"o{abs(hash((f, v)))}", f, v)),
                          (name, flag)))
    cases += [
        Case("cli option", "pmf sample --steps 0",
             lambda e: cli(["sample", "--model", e.model_dir, "--outdir", e.path("s0"), "--steps", "0",
                            "--classes", "1", "--num-per-class", "1"]), ("--steps",)),
        Case("cli option", "pmf sample with a model whose default guidance is NaN",
             lambda e: cli(["sample", "--model", e.nan_model_dir, "--outdir", e.path("snan"),
                            "--classes", "1", "--num-per-class", "1"]), ("guidance_scale",)),
        Case("cli option", "pmf interpolate-video a.png out.mp4", _png_as_video, ("1 frame", "a.png")),
    ]
    return cases


def _png_as_video(e: Env) -> CliResult:
    import imageio.v3 as iio

    iio.imwrite(e.path("a.png"), np.zeros((32, 32, 3), np.uint8))
    return cli(["interpolate-video", e.path("a.png"), e.path("a_out.mp4"), "--quiet"])


def _checkpoint_cases() -> list[Case]:
    from core.official import to_official_state_dict
    from core.pretrained import from_pretrained
    from safetensors.torch import save_file

    def make(e: Env, kind: str, suffix: str) -> Path:
        sd = to_official_state_dict(e.rgb.state_dict())
        good_pt, good_st = e.path("good.pt"), e.path("good.safetensors")
        if not good_pt.exists():
            torch.save(sd, good_pt)
            save_file({k: v.contiguous() for k, v in sd.items()}, good_st)
        p = e.path(f"{kind}{suffix}")
        src = (good_pt if suffix == ".pt" else good_st).read_bytes()
        other = (good_st if suffix == ".pt" else good_pt).read_bytes()
        data = {"truncated": src[: len(src) // 2], "zero-byte": b"", "renamed": other,
                "garbage": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))}[kind]
        p.write_bytes(data)
        return p

    cases = []
    for suffix in (".pt", ".safetensors"):
        for kind in ("truncated", "zero-byte", "renamed", "garbage"):
            # A renamed file is readable (we go by its bytes, not its name); every one is an architecture
            # that no released model has, so it must be refused without config=, naming the file.
            cases.append(Case("damaged file", f"from_pretrained({kind}{suffix})",
                              lambda e, k=kind, s=suffix: from_pretrained(make(e, k, s)), (f"{kind}{suffix}",)))
    cases.append(Case("damaged file", "official pMF-B/16 file missing its last blocks", _cut_b16,
                      ("no released model",)))
    return cases


def _cut_b16(e: Env) -> Any:
    from core.model import build_model
    from core.official import load_official, to_official_state_dict

    import warnings

    warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter")
    with torch.device("meta"):
        sd = to_official_state_dict(build_model("pMF-B/16", with_v_head=False).state_dict())
    sd = {k: v for k, v in sd.items() if not k.startswith(("shared_blocks.7.", "u_heads.7."))}
    # Only the architecture check is under test: it runs before any tensor data is read.
    sd = {k: torch.zeros(v.shape, dtype=v.dtype) if "pos_embed" in k or "proj1" in k else v for k, v in sd.items()}
    return load_official(sd, device="meta", source="pMF-B-16.pt")


def _video_cases() -> list[Case]:
    from pmf_edit.video import interpolate_video, interpolate_videos

    def same_spelled(e: Env) -> Any:
        v = e.video()
        return interpolate_video(v, f"{v.parent}/./{v.name}", progress=False)

    def folder_same(e: Env) -> Any:
        d = e.path("vids")
        d.mkdir(exist_ok=True)
        (d / "a.mp4").write_bytes(e.video().read_bytes())
        return interpolate_videos(d, e.path("vids/../vids"), progress=False)

    def out_is_folder(e: Env) -> Any:
        e.path("outdir.mp4").mkdir(exist_ok=True)
        return interpolate_video(e.video(), e.path("outdir.mp4"), progress=False)

    def out_folder_is_file(e: Env) -> Any:
        d = e.path("vids2")
        d.mkdir(exist_ok=True)
        (d / "a.mp4").write_bytes(e.video().read_bytes())
        e.path("afile").write_text("x")
        return interpolate_videos(d, e.path("afile"), progress=False)

    return [
        Case("unsafe output", "interpolate_video(out == in)", lambda e: interpolate_video(e.video(), e.video(),
                                                                                            progress=False), ("input",)),
        Case("unsafe output", "interpolate_video(out == in, spelled ./)", same_spelled, ("input",)),
        Case("unsafe output", "interpolate_videos(folder == folder)", folder_same, ("input folder",)),
        Case("unsafe output", "interpolate_video(out is an existing folder)", out_is_folder, ("folder",)),
        Case("unsafe output", "interpolate_videos(out folder is a file)", out_folder_is_file, ("afile",)),
        Case("unsafe output", "pmf train into a read-only folder",
             lambda e: _read_only(e, lambda d: cli(_train_args(e, str(d / "run")))), ("ro",)),
        Case("unsafe output", "pmf sample into a read-only folder",
             lambda e: _read_only(e, lambda d: cli(["sample", "--model", e.model_dir, "--outdir", d / "s",
                                                    "--classes", "1", "--num-per-class", "1"])), ("ro",)),
        Case("unsafe output", "pmf interpolate onto a folder", _interp_onto_folder, ("folder_out",)),
        Case("unsafe output", "pmf interpolate-video (folder mode) into a read-only folder",
             lambda e: _read_only(e, lambda d: cli(["interpolate-video", e.video().parent / "vids2", d / "o",
                                                    "--quiet"])), ("ro",)),
        Case("unsafe output", "pmf sample: disk full", _disk_full, ("No space left",)),
    ]


def _read_only(e: Env, call: Callable[[Path], CliResult]) -> CliResult:
    """Run `call(folder)` with a read-only folder (as a non-root user would see it; root bypasses the
    mode bits, so a read-only write is then simulated by making the folder a file's child)."""
    d = e.path("ro") / f"d{len(list(e.path('ro').glob('*'))) if e.path('ro').exists() else 0}"
    d.mkdir(parents=True)
    if os.geteuid() == 0:  # root ignores 0o555: put the outputs under a FILE instead (ENOTDIR)
        blocker = d / "file"
        blocker.write_text("x")
        return call(blocker)
    d.chmod(0o555)
    try:
        return call(d)
    finally:
        d.chmod(0o755)


def _interp_onto_folder(e: Env) -> CliResult:
    import imageio.v3 as iio

    iio.imwrite(e.path("f0.png"), np.zeros((32, 32, 3), np.uint8))
    iio.imwrite(e.path("f1.png"), np.full((32, 32, 3), 255, np.uint8))
    e.path("folder_out").mkdir(exist_ok=True)
    return cli(["interpolate", e.path("f0.png"), e.path("f1.png"), "-o", e.path("folder_out")])


def _disk_full(e: Env) -> CliResult:
    """ENOSPC from the PNG writer, as a full disk gives it."""
    import errno

    import imageio.v3 as iio

    real = iio.imwrite

    def full(path, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    iio.imwrite = full
    try:
        return cli(["sample", "--model", e.model_dir, "--outdir", e.path("full"), "--classes", "1",
                    "--num-per-class", "1"])
    finally:
        iio.imwrite = real


def all_cases() -> list[Case]:
    return _api_cases() + _cli_cases() + _checkpoint_cases() + _video_cases()
