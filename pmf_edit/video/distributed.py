"""Batch frame interpolation over a Ray cluster: one Ray task per video file.

`interpolate_videos(..., ray=...)` and `pmf interpolate-video DIR OUT --ray [ADDRESS]` land here; the
default single-machine path never imports this module (nor Ray, an optional extra:
``pip install 'pmf-edit[ray]'``).

Guarantees, and how they are kept:
- each file is converted once: the driver submits exactly one task per pending file, and tasks are
  not retried by default (``retries=0``): a crashed worker is reported, not silently redone;
- failures are per file: a task catches its own error and returns it as text; a lost worker or node
  becomes an error for that file only, and every other file still runs;
- outputs are atomic: `interpolate_video` writes a hidden temporary file next to the output and
  renames it when complete, so an output name only ever holds a finished video;
- resumable: with ``skip_existing=True`` a re-run skips every output that exists, which, by the
  point above, means every file that finished. Temporary files left by a killed run are removed
  before that file is converted again.

Every node must see the input and output folders at the same paths (a shared filesystem such as
NFS or Lustre) and have pmf-edit installed; a node that cannot see a file reports that.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import socket
from collections.abc import Sequence
from typing import Any

from pmf_edit.video.files import BatchResult, VideoResult, interpolate_video

__all__ = ["interpolate_files_on_ray"]


def _error_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def _remove_stale_partials(dst: str) -> None:
    """Deletes temporary outputs a killed run left for `dst` (named .<stem>.partial-<pid><ext>)."""
    folder, name = os.path.split(os.path.abspath(dst))
    stem, ext = os.path.splitext(name)
    for path in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(stem)}.partial-*{glob.escape(ext)}")):
        try:
            os.remove(path)
        except FileNotFoundError:  # removed meanwhile: nothing to do
            pass


def _convert_one(src: str, dst: str, kwargs: dict[str, Any]) -> tuple[bool, VideoResult | str]:
    """Runs on a Ray worker: (True, VideoResult) or (False, one-line error naming the node)."""
    host = socket.gethostname()
    if not os.path.exists(src):
        return False, f"FileNotFoundError: {src} is not visible on node {host} (the input folder must be on a shared filesystem)"
    if not os.path.isdir(os.path.dirname(os.path.abspath(dst))):
        return False, f"FileNotFoundError: output folder of {dst} is not visible on node {host}"
    _remove_stale_partials(dst)
    try:
        return True, interpolate_video(src, dst, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        return False, _error_line(err)


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise ImportError("distributing videos over Ray needs the optional 'ray' package: "
                          "pip install 'pmf-edit[ray]' (or pip install ray)") from err
    return ray


def interpolate_files_on_ray(
    jobs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    *,
    address: bool | str = True,
    skip_existing: bool = False,
    workers: int | None = None,
    retries: int = 0,
    progress: bool = True,
    **kwargs: Any,
) -> BatchResult:
    """Converts each (input, output) pair in its own Ray task; returns what was done, skipped and failed.

    Args:
        jobs: (input video, output path) pairs; outputs must be distinct.
        address: True: `ray.init()` defaults (``RAY_ADDRESS`` if set, else a new local instance),
            or the connection this process already has; a string is passed to
            ``ray.init(address=...)``: "auto" (the running cluster), "ray://head:10001" (Ray Client).
        skip_existing: skip pairs whose output exists (a finished file: outputs are atomic).
        workers: threads per file (`interpolate_video`'s ``workers``) and the CPUs Ray reserves for its
            task, so a node runs (its CPUs // workers) files at once; None: 1 (files, not frame pairs,
            are the unit of parallelism here).
        retries: Ray task retries after a worker dies (0: the file is reported failed instead).
        progress: a tqdm bar over files on the driver (per-file frame bars are off on workers).
        **kwargs: passed to `interpolate_video` (factor, fps, config, quality, ...).

    Returns:
        A `BatchResult` (done, failed: input -> one-line error, skipped: inputs with finished outputs).

    Raises:
        ImportError: Ray is not installed.
        ValueError: two jobs share an output path, or a bad `workers` / `retries`.

    Example:
        >>> jobs = [("in/a.mp4", "out/a.mp4"), ("in/b.mp4", "out/b.mp4")]
        >>> res = interpolate_files_on_ray(jobs, address="auto", skip_existing=True, factor=2)  # doctest: +SKIP
    """
    workers = 1 if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    # Workers may run in another folder (or machine): they get absolute paths; reports use the given ones.
    pairs = [(os.fspath(s), os.fspath(d)) for s, d in jobs]
    outputs = [os.path.abspath(d) for _, d in pairs]
    if len(set(outputs)) != len(outputs):
        dup = next(d for d in outputs if outputs.count(d) > 1)
        raise ValueError(f"two inputs would write the same output {dup}")
    kwargs = {**kwargs, "workers": workers, "progress": False}
    result = BatchResult()
    todo = []
    for src, dst in pairs:
        if skip_existing and os.path.exists(dst):
            result.skipped.append(src)
        else:
            todo.append((src, dst))
    if not todo:
        return result
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=None if address is True else address, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=workers, max_retries=retries)(_convert_one)
        pending = {task.remote(os.path.abspath(src), os.path.abspath(dst), kwargs): (src, dst)
                   for src, dst in todo}  # one task per file
        from tqdm.auto import tqdm

        with tqdm(total=len(todo), unit="video", desc="ray", disable=not progress) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                src, dst = pending.pop(ready[0])
                try:
                    ok, value = ray.get(ready[0])
                except ray.exceptions.RayError as err:  # worker or node lost, task cancelled, ...
                    ok, value = False, _error_line(err)
                if ok:
                    result.done.append(dataclasses.replace(value, src=src, dst=dst))
                else:
                    result.failed[src] = value
                bar.update(1)
    finally:
        if started_here:
            ray.shutdown()
    # Completion order varies from run to run; report in input order.
    result.done.sort(key=lambda r: r.src)
    failed = sorted(result.failed.items())
    result.failed.clear()
    result.failed.update(failed)
    return result
