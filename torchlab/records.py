"""Writing prediction records (lists of flat dicts) as JSON or CSV, atomically."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchlab.checkpoint import atomic_write_text

FORMATS = ("json", "csv")


def write_records(records: Sequence[dict[str, Any]], path: str | Path, fmt: str = "json") -> Path:
    """Write `records` to `path` with the json or csv module (quoting handled there); returns the path."""
    if fmt == "csv":
        columns: list[str] = []
        for row in records:
            columns += [k for k in row if k not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in records)
        text = buffer.getvalue()
    else:
        text = json.dumps(list(records), indent=2) + "\n"
    atomic_write_text(path, text)
    return Path(path)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return value
