"""The ending every benchmark shares: its report as one JSON line on stdout, and indented in a file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(report: dict[str, Any], out: str | Path | None) -> dict[str, Any]:
    """Print ``report`` as one JSON line; with ``out``, also write it there (indented; folders made).

    Returns:
        ``report`` itself, so that a benchmark's ``main`` can end with ``return write_report(...)``.

    Example:
        >>> write_report({"benchmark": "demo", "rows": []}, None)
        {"benchmark": "demo", "rows": []}
        {'benchmark': 'demo', 'rows': []}
    """
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return report
