"""torchlab: readable, fast PyTorch implementations of five classic course models.

    import torchlab
    result = torchlab.train("digit-mlp", epochs=5)              # a task's recipe, fields overridden
    print(result.metrics["test_accuracy"], result.best_checkpoint)
    torchlab.predict(result.best_checkpoint, index=[0])       # values, not printed text
    model, meta = torchlab.load(result.best_checkpoint)       # the nn.Module itself
"""

__version__ = "0.1.0"

from torchlab.api import (  # noqa: E402
    LoadedCheckpoint,
    evaluate,
    get_recipe,
    open_checkpoint,
    predict,
    recipe_names,
    task_names,
    train,
)
from torchlab.checkpoint import load  # noqa: E402
from torchlab.device import pick_device, seed_everything  # noqa: E402
from torchlab.early_stopping import EarlyStopping  # noqa: E402
from torchlab.errors import CheckpointError, DataError, DeviceError, TorchlabError, TrainingError, UsageError  # noqa: E402
from torchlab.models import build_model, count_parameters, get_model_spec, model_names  # noqa: E402
from torchlab.tasks.base import RunResult  # noqa: E402
from torchlab.trainer import FitResult, Trainer  # noqa: E402

__all__ = [
    "__version__", "train", "evaluate", "predict", "get_recipe", "recipe_names", "task_names", "open_checkpoint",
    "LoadedCheckpoint", "RunResult", "load", "pick_device", "seed_everything", "EarlyStopping", "Trainer", "FitResult",
    "build_model", "count_parameters", "get_model_spec", "model_names",
    "TorchlabError", "UsageError", "DeviceError", "DataError", "CheckpointError", "TrainingError",
]
