"""torchlab: readable, fast PyTorch implementations of five classic course models.

import torchlab
result = torchlab.train("digits", epochs=5)                 # a task's recipe, fields overridden
print(result.metrics["test_accuracy"], result.best_checkpoint)
torchlab.predict(result.best_checkpoint, index=[0])       # values, not printed text
model, meta = torchlab.load(result.best_checkpoint)       # the nn.Module itself
torchlab.tune("digit-mlp", trials=40, hidden=32)          # a recipe search (Optuna: torchlab[tune])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from torchlab.version import __version__

# Public name -> the module that defines it. Imported on first use (PEP 562), so that
# `torchlab --help`, `--version` and argument errors answer without importing torch.
_EXPORTS = {
    "train": "torchlab.api",
    "evaluate": "torchlab.api",
    "predict": "torchlab.api",
    "get_recipe": "torchlab.api",
    "recipe_names": "torchlab.api",
    "task_names": "torchlab.api",
    "open_checkpoint": "torchlab.api",
    "LoadedCheckpoint": "torchlab.api",
    "RunResult": "torchlab.tasks.run",
    "load": "torchlab.engine.checkpoint",
    "pick_device": "torchlab.runtime.device",
    "seed_everything": "torchlab.runtime.device",
    "EarlyStopping": "torchlab.engine.early_stopping",
    "Trainer": "torchlab.engine.trainer",
    "FitResult": "torchlab.engine.trainer",
    "build_model": "torchlab.models",
    "count_parameters": "torchlab.models",
    "get_model_spec": "torchlab.models",
    "model_names": "torchlab.models",
    "compare": "torchlab.reporting.compare",
    "Comparison": "torchlab.reporting.compare",
    "tune": "torchlab.search.study",
    "TuneResult": "torchlab.search.results",
    "Callback": "torchlab.engine.callbacks",
    "TorchlabError": "torchlab.errors",
    "UsageError": "torchlab.errors",
    "DeviceError": "torchlab.errors",
    "DataError": "torchlab.errors",
    "CheckpointError": "torchlab.errors",
    "TrainingError": "torchlab.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # next time: a plain attribute
        return value
    try:  # a submodule: torchlab.engine.checkpoint, torchlab.data, ...
        return importlib.import_module(f"torchlab.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module 'torchlab' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from torchlab.api import (
        LoadedCheckpoint,
        evaluate,
        get_recipe,
        open_checkpoint,
        predict,
        recipe_names,
        task_names,
        train,
    )
    from torchlab.engine.callbacks import Callback
    from torchlab.engine.checkpoint import load
    from torchlab.engine.early_stopping import EarlyStopping
    from torchlab.engine.trainer import FitResult, Trainer
    from torchlab.errors import CheckpointError, DataError, DeviceError, TorchlabError, TrainingError, UsageError
    from torchlab.models import build_model, count_parameters, get_model_spec, model_names
    from torchlab.reporting.compare import Comparison, compare
    from torchlab.runtime.device import pick_device, seed_everything
    from torchlab.search.results import TuneResult
    from torchlab.search.study import tune
    from torchlab.tasks.run import RunResult
