"""Writing prediction records (lists of flat dicts) as JSON or CSV, atomically."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torchlab.errors import UsageError
from torchlab.runtime.files import atomic_write_text

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


def format_digit_prediction(record: dict[str, Any]) -> str:
    """`test[7]: digit 7 (probability 0.998) (true 7)` and a line of every class's probability.

    The wording of every digit classifier's prediction (digit-mlp and mnist).
    """
    true = f" (true {record['true']})" if record["true"] not in (None, "") else ""
    probs = " ".join(f"{c}:{v:.3f}" for c, v in record["probabilities"].items())
    head = f"{record['input']}: digit {record['prediction']} (probability {record['probability']:.3f}){true}"
    return f"{head}\n  probabilities: {probs}"


def write_into(target: Path, write: Callable[[Path], Any]) -> Path:
    """write(target), an operating-system failure turned into a one-line error that names `target` (not a temp file)."""
    try:
        write(target)
    except OSError as exc:
        raise UsageError(
            f"cannot write {target}: {exc.strerror or exc}; give --out a folder you can write to"
        ) from None
    return target
