"""Batch video: resume with skip_existing, and over Ray (a local 2-CPU instance; skipped without ray)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from apps.cli import main as cli_main
from pmf_edit.video import interpolate_video, interpolate_videos
from pmf_edit.video.distributed import interpolate_files_on_ray
from tests.test_video import read_all, write_clip

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    # Two CPUs = at most two files at once; workers import this checkout (not an installed copy).
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture()
def clips(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for k, n in enumerate((5, 6, 7)):
        frames = np.stack([np.roll(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), i, axis=1) for i in range(n)])
        write_clip(src / f"clip{k}.mp4", frames)
    (src / "broken.mp4").write_bytes(b"this is not a video")
    return src


def test_each_file_once_failures_per_file_and_resume(local_ray, clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = interpolate_videos(clips, out, suffix="_2x", ray=True, skip_existing=True, progress=False)
    assert sorted(Path(r.src).name for r in res.done) == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    assert list(res.failed) == [str(clips / "broken.mp4")] and "not a readable video" in res.failed[str(clips / "broken.mp4")]
    assert res.skipped == []
    for r, n in zip(res.done, (5, 6, 7)):
        assert r.frames_in == n and r.frames_out == 2 * n - 1  # factor 2: every source frame + one between
        assert read_all(Path(r.dst))[1].shape[0] == r.frames_out
    # Same frames as the single-machine path.
    local = interpolate_video(clips / "clip2.mp4", tmp_path / "local.mp4", progress=False, workers=1)
    assert np.array_equal(read_all(Path(local.dst))[1], read_all(Path(res.done[2].dst))[1])
    assert sorted(p.name for p in out.iterdir()) == ["clip0_2x.mp4", "clip1_2x.mp4", "clip2_2x.mp4"]  # no partials

    # Resume: one finished output lost and a stale partial from a killed run; the rest is skipped.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "clip1_2x.mp4").unlink()
    (out / ".clip1_2x.partial-12345.mp4").write_bytes(b"half a video")
    again = interpolate_videos(clips, out, suffix="_2x", ray=True, skip_existing=True, progress=False)
    assert [Path(r.src).name for r in again.done] == ["clip1.mp4"]
    assert sorted(Path(s).name for s in again.skipped) == ["clip0.mp4", "clip2.mp4"]
    assert list(again.failed) == [str(clips / "broken.mp4")]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "clip1_2x.mp4"} == \
        {k: v for k, v in stamps.items() if k != "clip1_2x.mp4"}  # skipped outputs untouched
    assert not (out / ".clip1_2x.partial-12345.mp4").exists()


def test_cli_ray_flag(local_ray, clips: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    code = cli_main(["interpolate-video", str(clips), str(out), "--ray", "--quiet"])
    text = capsys.readouterr()
    assert code == 1  # broken.mp4 failed
    assert text.out.count("ok   ") == 3 and "FAIL" in text.err and "broken.mp4" in text.err
    code = cli_main(["interpolate-video", str(clips), str(out), "--ray", "--skip-existing", "--quiet"])
    assert capsys.readouterr().out.count("skip ") == 3 and code == 1


def test_single_machine_path_resumes_and_does_not_import_ray(clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    code = (
        "import sys; from pmf_edit.video import interpolate_videos; "
        f"r = interpolate_videos({str(clips)!r}, {str(out)!r}, progress=False, workers=1); "
        "assert len(r.done) == 3 and len(r.failed) == 1 and r.skipped == []; "
        f"r = interpolate_videos({str(clips)!r}, {str(out)!r}, progress=False, workers=1, skip_existing=True); "
        "assert r.done == [] and len(r.skipped) == 3 and len(r.failed) == 1; "
        "assert 'ray' not in sys.modules and 'pmf_edit.video.distributed' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})


def test_missing_ray_is_a_clear_error_and_bad_jobs_are_refused(clips: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: `import ray` raises ImportError
    with pytest.raises(ImportError, match="pip install 'pmf-edit\\[ray\\]'"):
        interpolate_videos(clips, tmp_path / "o", ray=True, progress=False)
    with pytest.raises(ValueError, match="same output"):
        interpolate_files_on_ray([(clips / "clip0.mp4", tmp_path / "x.mp4"), (clips / "clip1.mp4", tmp_path / "x.mp4")])
    with pytest.raises(ValueError, match="workers"):
        interpolate_files_on_ray([(clips / "clip0.mp4", tmp_path / "x.mp4")], workers=0)
