"""How the CLI prints what the library returns."""

from __future__ import annotations

import math
import sys


def print_summary(summary: dict) -> None:
    """`key: value` lines; floats with 4 decimals (accuracy: 0.9833)."""
    for key, value in summary.items():
        if isinstance(value, float) and math.isfinite(value):
            value = f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
        print(f"{key}: {value}")
    sys.stdout.flush()
