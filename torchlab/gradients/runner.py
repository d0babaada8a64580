"""Which checks run for a name, and running them with fresh random draws."""

from __future__ import annotations

import zlib

import torch

from torchlab.gradients import registry
from torchlab.gradients.checks import EXAMPLES, FORMULA_CHECKS
from torchlab.gradients.result import CheckResult, failed, skipped
from torchlab.gradients.symbolic import SympyMissing


def check_names() -> list[str]:
    """Every registered model, the models that have a hand formula, then the seed examples."""
    from torchlab.models import model_names

    models = sorted(set(model_names()) | (set(FORMULA_CHECKS) - set(EXAMPLES)))
    return models + list(EXAMPLES)


def derived_seed(seed: int, *labels: str) -> int:
    """A seed of its own for each check, so `--seed S MODEL` repeats what `--seed S all` drew."""
    return (seed + zlib.crc32("/".join(labels).encode())) % 2**31


def run_checks(name: str, seed: int, budget: float = registry.BUDGET) -> list[CheckResult]:
    """All rows for one name: gradcheck and finite differences (registered models), then the
    hand / symbolic / seed checks wherever a seed gives a formula or a number."""
    from torchlab.models import model_names

    registered = name in model_names()
    rows: list[CheckResult] = []
    if registered:
        for method, check in (
            ("gradcheck", lambda s: [r for r in [registry.gradcheck_row(name, s, budget)] if r]),
            ("finite-difference", lambda s: registry.finite_difference_rows(name, s, budget)),
        ):
            try:
                rows += check(derived_seed(seed, name, method))
            except Exception as exc:  # a crashing check is a failing row, not a crashed table
                rows.append(failed(name, "all", method, exc))
    for method, check in FORMULA_CHECKS.get(name, []):
        if not registered and name not in EXAMPLES:
            rows.append(skipped(name, "all", method, f"model {name!r} is not registered (yet)"))
            continue
        try:
            rows += check(torch.Generator().manual_seed(derived_seed(seed, name, method)))
        except SympyMissing as exc:
            rows.append(skipped(name, "all", method, str(exc)))
        except Exception as exc:
            rows.append(failed(name, "all", method, exc))
    return rows
