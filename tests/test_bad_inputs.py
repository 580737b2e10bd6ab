"""Issue 11: every bad input a clear error, every file operation safe, runs that can be steered after a
crash. One test per class of failure; the cases of the first classes are the table in
``tests/issue11_cases.py`` (also counted by ``benchmarks/bench_bad_inputs.py``)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.issue11_cases import Env, all_cases, classify, cli

REPO = Path(__file__).resolve().parents[1]
CASES = all_cases()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return Env(tmp_path_factory.mktemp("issue11"))


@pytest.mark.parametrize("cls", sorted({c.cls for c in CASES}))
def test_every_case_of_the_class_is_a_clear_error(env, cls):
    """bad number, wrong type, inconsistent batch, cli option, damaged file, unsafe output: each case
    raises a ValueError/TypeError/FileNotFoundError naming the argument or file (or `pmf` exits 2 with
    one such line), or is valid after all and gives a finite result."""
    bad = []
    for case in (c for c in CASES if c.cls == cls):
        outcome, detail = classify(case, env)
        if outcome not in ("clear", "ok"):
            bad.append(f"{case.name}: {outcome}: {detail}")
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------------------------------------------
# Training runs: resume rules, interrupted runs, concurrent runs, file modes


def _train(env: Env, run: Path, *extra: str):
    return cli(["train", "--out-dir", run, "--dataset", "digits", "--preset", "pMF-T/4", "--batch-size", "4",
                "--sample-every", "0", "--no-progress", "--threads", "1", "--ckpt-every", "2", "--log-every", "1",
                *extra])


def _optimizer_lrs(run: Path) -> list[float]:
    """The learning rates stored in the latest checkpoint's optimizer states."""
    ckpt = run / "checkpoints" / json.loads((run / "checkpoints" / "latest.json").read_text())["path"]
    meta = json.loads((ckpt / "state.json").read_text())
    out = []
    for opt in meta["optimizers"]:
        groups = dict(opt["__dict__"])["param_groups"]
        out += [dict(g["__dict__"])["lr"] for g in groups]
    return out


def test_resume_rules_lr_takes_effect_fixed_fields_refused_changes_logged(env, tmp_path):
    run = tmp_path / "run"
    assert _train(env, run, "--steps", "2", "--lr", "1e-3").rc == 0
    assert _optimizer_lrs(run) == [1e-3, 1e-3]
    # A lower rate after (say) a divergence: used from the resumed step on, recorded.
    res = _train(env, run, "--steps", "4", "--lr", "5e-4")
    assert res.rc == 0 and "lr 0.001 -> 0.0005" in res.err
    assert _optimizer_lrs(run) == [5e-4, 5e-4]
    changes = [json.loads(ln) for ln in (run / "resume.jsonl").read_text().splitlines()]
    assert changes[-1]["step"] == 2 and changes[-1]["changed"]["lr"] == [1e-3, 5e-4]
    # What would change the checkpoint's meaning is refused, and the run folder is left as it was.
    before = (run / "config.json").read_text()
    res = _train(env, run, "--steps", "6", "--lr", "5e-4", "--batch-size", "8")  # refused by the data order
    assert res.rc == 2 and "batch_size" in res.err
    res = _train(env, run, "--steps", "6", "--lr", "5e-4", "--ema-halflife-kimg", "1", "2")  # by RESUME_FIXED
    assert res.rc == 2 and "ema_halflife_kimg" in res.err and "new --out-dir" in res.err
    assert (run / "config.json").read_text() == before


def test_interrupted_run_torn_log_stale_temp_files_lock_and_file_modes(env, tmp_path):
    from core.train import _lock_run

    run = tmp_path / "run"
    old = os.umask(0o027)
    try:
        assert _train(env, run, "--steps", "2").rc == 0
    finally:
        os.umask(old)
    # Outputs follow the umask (mkstemp alone would give 0600).
    assert (run / "model" / "model.safetensors").stat().st_mode & 0o777 == 0o640
    assert (run / "checkpoints" / "latest.json").stat().st_mode & 0o777 == 0o640
    # What a kill in the middle of writes leaves: a torn log line and temporary files.
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 3, "loss": 0.')
    stale = [run / "checkpoints" / ".latest.json.abc.tmp", run / "model" / ".model.safetensors.x.tmp",
             run / "checkpoints" / ".tmp_step_0000004"]
    stale[0].write_text("{")
    stale[1].write_bytes(b"\0")
    stale[2].mkdir()
    res = _train(env, run, "--steps", "4")
    assert res.rc == 0, res.err
    assert "torn last line" in res.err and "temporary file" in res.err
    assert not any(p.exists() for p in stale)
    assert [json.loads(ln)["step"] for ln in (run / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    # A second run on a folder in use is refused (the lock dies with its process, even on SIGKILL).
    lock = _lock_run(run)
    try:
        res = _train(env, run, "--steps", "6")
        assert res.rc == 2 and "in use by another training run" in res.err
    finally:
        lock.close()
    # A torn line elsewhere than at the end was not written by a kill: refused, naming file and line.
    lines = (run / "log.jsonl").read_text().splitlines()
    (run / "log.jsonl").write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    res = _train(env, run, "--steps", "6")
    assert res.rc == 2 and "log.jsonl line 2" in res.err


# ------------------------------------------------------------------------------------------------
# Video: signals, truncated sources


def _video(path: Path, frames: int, size: int = 48) -> Path:
    import imageio_ffmpeg

    w = imageio_ffmpeg.write_frames(str(path), (size, size), fps=25, macro_block_size=1)
    w.send(None)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        w.send(rng.integers(0, 256, (size, size, 3), dtype=np.uint8).tobytes())
    w.close()
    return path


def _ffmpeg_writing(folder: Path) -> list[int]:
    """pids of live processes whose command line mentions `folder` (our ffmpeg children)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().decode(errors="replace")
                state = (d / "stat").read_text().split()[2]
            except OSError:
                continue
            if "ffmpeg" in cmd and str(folder) in cmd and state != "Z":
                pids.append(int(d.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find ffmpeg children")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_stops_video_without_partial_files_or_ffmpeg_children(tmp_path, sig):
    src = _video(tmp_path / "in.mp4", 400)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "apps.cli", "interpolate-video", str(src), str(out / "o.mp4"),
                             "--quiet", "--workers", "1", "--method", "flow-medium"], cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob(".o.partial-*")):
        time.sleep(0.05)
    assert list(out.glob(".o.partial-*")), "the run never started writing"
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert f"stopped by {signal.Signals(sig).name}" in err and "Traceback" not in err
    assert list(out.iterdir()) == []  # no partial file, no output
    time.sleep(0.2)
    assert _ffmpeg_writing(out) == [] and _ffmpeg_writing(src) == []


def test_truncated_source_warns_with_the_frame_count(tmp_path):
    from pmf_edit.video import TruncatedVideoWarning, interpolate_video

    full = _video(tmp_path / "full.mkv", 60, size=32)  # Matroska: the duration is in the header
    half = tmp_path / "half.mkv"
    half.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.warns(TruncatedVideoWarning, match=r"decoded only \d+ of the ~60 frames") as rec:
        interpolate_video(half, tmp_path / "o.mkv", progress=False)
    (w,) = [w for w in rec if w.category is TruncatedVideoWarning]
    assert w.filename == __file__  # attributed to the caller's line, not to the library
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedVideoWarning)
        interpolate_video(full, tmp_path / "o2.mkv", progress=False)  # a whole file: no warning
    # On the command line it is one warning line, exit 0 (the frames that exist were converted).
    res = cli(["interpolate-video", half, tmp_path / "o3.mkv", "--quiet"])
    assert res.rc == 0 and any(ln.startswith("pmf interpolate-video: warning:") and "of the ~60 frames" in ln
                               for ln in res.err.splitlines())


def test_style_tiles_in_chunks_give_the_unchunked_result(monkeypatch):
    """The bounded tile batches (TILE_CHUNK) change nothing but memory: same pixels as one batch."""
    from core.model import build_model
    from pmf_edit.style import transfer as style  # the module that reads TILE_CHUNK

    torch.manual_seed(0)
    net = build_model("pMF-T/4", in_channels=3, with_v_head=False).eval()
    content, ref = torch.rand(2, 3, 80, 72), torch.rand(1, 3, 32, 32)
    calls: list[int] = []
    net.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731  (the texture stage draws start noise)
    whole = style.style_transfer(net, content, ref, size_mode="tile", generator=g())
    n_whole, calls[:] = len(calls), []
    monkeypatch.setattr(style, "TILE_CHUNK", 3)
    chunked = style.style_transfer(net, content, ref, size_mode="tile", generator=g())
    assert whole.num_tiles > 3 and whole.nfe == chunked.nfe
    assert len(calls) > n_whole and max(calls) <= 2 * 2 * 3  # more, smaller network batches (B = 2)
    assert torch.allclose(whole.images, chunked.images, atol=1e-5)


def test_editing_tiles_in_chunks_give_the_unchunked_result(monkeypatch):
    """Tile mode on a big photo was one network batch of every tile (a 1024-px photo at 32 px: 1849
    tiles, 1.6 GB; a 12-megapixel one ~21k). The editing tasks now run tiles in chunks of TILE_CHUNK like
    style transfer: the network never sees more, and the pixels, NFE and latents are those of one batch."""
    import pmf_edit
    from core.model import build_model
    from pmf_edit.editing import tasks

    torch.manual_seed(0)
    net = build_model("pMF-T/4", in_channels=3, with_v_head=False).eval()
    x = torch.rand(2, 3, 80, 72)
    mask = torch.zeros(2, 1, 80, 72, dtype=torch.bool)
    mask[:, :, 20:50, 10:40] = True
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    calls = {
        "edit": lambda: pmf_edit.edit(net, x, labels=[1, 2], method="fixed-point", strength=0.5, generator=g(),
                                      size_mode="tile"),
        "sdedit": lambda: pmf_edit.sdedit(net, x, labels=[4, 5], generator=g(), size_mode="tile"),
        "flow_edit": lambda: pmf_edit.flow_edit(net, x, labels=1, source_labels=[0, 3], generator=g(),
                                                size_mode="tile"),
        "inpaint": lambda: pmf_edit.inpaint(net, x, mask, labels=1, generator=g(), size_mode="tile"),
        "reconstruct": lambda: pmf_edit.reconstruct(net, x, labels=1, size_mode="tile"),
        "invert": lambda: pmf_edit.invert(net, x, labels=1, size_mode="tile"),
    }
    whole = {k: f() for k, f in calls.items()}
    seen: list[int] = []
    hook = net.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[0]))
    monkeypatch.setattr(tasks, "TILE_CHUNK", 3)
    try:
        for name, f in calls.items():
            seen.clear()
            got = f()
            assert whole[name].num_tiles > 3 and max(seen) <= 2 * 3, (name, max(seen))  # flow_edit: 2 branches
            assert got.nfe == whole[name].nfe, name
            a, b = (whole[name].latents, got.latents) if name == "invert" else (whole[name].images, got.images)
            assert torch.allclose(a, b, atol=1e-5), (name, float((a - b).abs().max()))
        assert got.residual == pytest.approx(whole["invert"].residual, rel=1e-4)  # the mean over every tile
    finally:
        hook.remove()
