"""The runnable examples in the README and docs/ run as written (so the docs cannot drift from the API).

Blocks that need the user's own files (a video, an official checkpoint, a diffusers pipeline) are
fragments by design and are not run; the interpolation example is run up to its first file path."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), re.S)


# Files a block reads, made in its working folder first: {(doc, block): code}.
SETUP = {
    ("README.md", 1): "from skimage import data\nfrom core.images import pillow\n"
                      "pillow().fromarray(data.chelsea()).save('IMG_0001.HEIC')\n",  # an iPhone photo
}


@pytest.mark.parametrize("doc,index,until", [
    ("README.md", 0, None),  # quick start: one-step samples from the bundled model
    ("README.md", 1, None),  # a photo file in, the edit out with what the file had
    ("docs/editing.md", 0, None),  # every editing task on held-out digits
    ("docs/style.md", 0, None),  # style transfer on skimage photos
    ("docs/interpolation.md", 0, "res = interpolate_video("),  # the tensor API; the rest reads the user's videos
])
def test_doc_example_runs(tmp_path, doc, index, until):
    code = python_blocks(doc)[index]
    if until is not None:
        assert until in code, f"{doc} block {index} no longer contains {until!r}"
        code = code[:code.index(until)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    code = SETUP.get((doc, index), "") + code
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"{doc} python block {index} failed:\n{proc.stderr[-2000:]}"
