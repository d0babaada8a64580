"""Data sets (one module each), the in-memory batcher that keeps small sets on the device, splits.

The names below are imported on first use (PEP 562), so that `torchlab.data.facts`, which the
torch-free task configs import, does not pull torch in through this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "TensorBatcher": "torchlab.data.batcher",
    "make_loader": "torchlab.data.batcher",
    "split_indices": "torchlab.data.splits",
    "hold_out": "torchlab.data.splits",
    "normalize": "torchlab.data.splits",
}
__all__ = ["TensorBatcher", "make_loader", "split_indices", "hold_out", "normalize"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # next time: a plain attribute
        return value
    raise AttributeError(f"module 'torchlab.data' has no attribute {name!r}")


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from torchlab.data.batcher import TensorBatcher, make_loader
    from torchlab.data.splits import hold_out, normalize, split_indices
