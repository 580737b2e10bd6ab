"""Recount issue 11: run every bad-input case the issue listed and classify what happens.

The cases are the table in ``tests/issue11_cases.py`` (the same one ``tests/test_bad_inputs.py``
asserts on). Outcomes: clear (an error naming the argument or file; `pmf` exits 2 with one line), ok
(valid after all, finite result), unclear (right kind of error, does not name it), silent (no error,
wrong result), crash (any other exception or a traceback).

    python benchmarks/bench_bad_inputs.py                      # counts, one JSON line
    python benchmarks/bench_bad_inputs.py --tile-memory        # also: peak memory of tiled style transfer

``--tile-memory`` runs ``style_transfer`` on growing images with a tiny random RGB network, each in a
fresh process, with the tiles chunked (``TILE_CHUNK``, the default) and all at once (the old behaviour),
and reports the peak resident memory (ru_maxrss): chunked memory should stay flat as tiles grow.

Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_TILE_CHILD = """
import resource, sys, time, torch
torch.set_num_threads(1)
from core.model import build_model
from pmf_edit.style import transfer as style
side, chunk = int(sys.argv[1]), int(sys.argv[2])
style.TILE_CHUNK = chunk
torch.manual_seed(0)
net = build_model("pMF-T/4", in_channels=3, with_v_head=False).eval()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.process_time()
out = style.style_transfer(net, torch.rand(1, 3, side, side), torch.rand(1, 3, 32, 32))
print(out.num_tiles, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time() - t)
"""


def tile_memory(sides: list[int]) -> list[dict]:
    rows = []
    for side in sides:
        for chunk in (64, 10**9):
            out = subprocess.run([sys.executable, "-c", _TILE_CHILD, str(side), str(chunk)], cwd=ROOT,
                                 capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
            if out.returncode:
                rows.append({"side": side, "chunk": chunk, "error": out.stderr.strip().splitlines()[-1]})
                continue
            tiles, base, peak, cpu = out.stdout.split()
            rows.append({"side": side, "tiles": int(tiles), "chunk": "all" if chunk == 10**9 else chunk,
                         "peak_growth_mib": round((int(peak) - int(base)) / 1024, 1), "cpu_s": round(float(cpu), 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--verbose", action="store_true", help="print every case and its outcome to stderr")
    ap.add_argument("--tile-memory", action="store_true", help="also measure tiled style-transfer memory")
    ap.add_argument("--sides", type=int, nargs="+", default=[128, 256, 512], help="image sides for --tile-memory")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from tests.issue11_cases import Env, all_cases, classify

    t0 = time.perf_counter()
    env = Env(Path(tempfile.mkdtemp(prefix="issue11_")))
    per_class: dict[str, Counter] = {}
    total: Counter = Counter()
    not_clear = []
    for case in all_cases():
        outcome, detail = classify(case, env)
        per_class.setdefault(case.cls, Counter())[outcome] += 1
        total[outcome] += 1
        if outcome not in ("clear", "ok"):
            not_clear.append({"case": case.name, "outcome": outcome, "detail": detail})
        if args.verbose:
            print(f"{outcome:8s} {case.cls:18s} {case.name} :: {detail[:200]}", file=sys.stderr)
    result = {
        "cases": sum(total.values()), "outcomes": dict(total),
        "by_class": {k: dict(v) for k, v in sorted(per_class.items())},
        "not_clear": not_clear, "seconds": round(time.perf_counter() - t0, 1),
    }
    if args.tile_memory:
        result["tile_memory"] = tile_memory(args.sides)
    line = json.dumps(result)
    print(line)
    if args.out:
        Path(args.out).write_text(line + "\n")


if __name__ == "__main__":
    main()
