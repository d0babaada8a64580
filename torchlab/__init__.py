"""torchlab: readable, fast PyTorch implementations of five classic course models.

    import torchlab
    model, meta = torchlab.load("checkpoints/digit-mlp/best.pt")
    trainer = torchlab.Trainer(model, loss_fn, optimizer, epochs=10, ...)
"""

__version__ = "0.1.0"

from torchlab.checkpoint import load  # noqa: E402
from torchlab.device import pick_device, seed_everything  # noqa: E402
from torchlab.early_stopping import EarlyStopping  # noqa: E402
from torchlab.errors import CheckpointError, DataError, DeviceError, TorchlabError, TrainingError, UsageError  # noqa: E402
from torchlab.models import build_model, count_parameters, get_model_spec, model_names  # noqa: E402
from torchlab.trainer import FitResult, Trainer  # noqa: E402

__all__ = [
    "__version__", "load", "pick_device", "seed_everything", "EarlyStopping", "Trainer", "FitResult",
    "build_model", "count_parameters", "get_model_spec", "model_names",
    "TorchlabError", "UsageError", "DeviceError", "DataError", "CheckpointError", "TrainingError",
]
