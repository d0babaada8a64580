"""One row of a gradient check, and the comparison that fills it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: Hand-derived and SymPy gradients must match autograd to this relative error (float64).
FORMULA_RTOL = 1e-10
#: Forward values of the NumPy reference layers against the torch layers.
FORWARD_RTOL = 1e-12


@dataclass
class CheckResult:
    """model | parameter | method | max abs err | max rel err | pass/fail (None: skipped) | note."""

    model: str
    parameter: str
    method: str
    max_abs: float | None = None
    max_rel: float | None = None
    passed: bool | None = None
    note: str = ""

    @property
    def status(self) -> str:
        return "skip" if self.passed is None else ("pass" if self.passed else "FAIL")


def as_array(value: Any) -> np.ndarray:
    """A float64 NumPy copy of a tensor, array or number."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def compare(
    model: str,
    parameter: str,
    method: str,
    value: Any,
    reference: Any,
    rtol: float = FORMULA_RTOL,
    atol: float = 0.0,
    note: str = "",
) -> CheckResult:
    """Compare `value` (a formula) with `reference` (autograd, torch, or a printed number).

    max abs err = max |value - reference|; max rel err = max abs err / max |reference|
    (the error relative to the size of the gradient, so that entries that are zero do not
    divide by zero). Passes when the shapes agree and max abs err <= atol + rtol * max |reference|.
    """
    a, b = as_array(value), as_array(reference)
    if a.shape != b.shape:
        return CheckResult(model, parameter, method, passed=False, note=f"shape {a.shape} != reference {b.shape}")
    if a.size == 0:
        return CheckResult(model, parameter, method, 0.0, 0.0, True, note or "empty")
    max_abs = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    passed = bool(np.isfinite(max_abs) and max_abs <= atol + rtol * scale)
    return CheckResult(model, parameter, method, max_abs, max_rel, passed, note)


def failed(model: str, parameter: str, method: str, exc: BaseException) -> CheckResult:
    """The row for a check that raised: it failed, and the note says why."""
    return CheckResult(model, parameter, method, passed=False, note=f"{type(exc).__name__}: {exc}")


def skipped(model: str, parameter: str, method: str, reason: str) -> CheckResult:
    return CheckResult(model, parameter, method, passed=None, note=reason)
