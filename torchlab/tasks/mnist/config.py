"""`mnist`: MNIST classifiers, 10 classes or a binary pair of digits.

    import torchlab
    result = torchlab.train("mnist", data_dir="../shared/data/mnist", epochs=1)   # or: torchlab train mnist ...

    torchlab train mnist --data-dir ../shared/data/mnist                       # mnist-cnn, >= 99% test accuracy
    torchlab train mnist --data-dir ../shared/data/mnist --recipe fast         # mnist-fast, 99% in one epoch
    torchlab train mnist --model mnist-linear --digits 4 5 --recipe post       # the post's linear "is it a 5?"
    torchlab train mnist --model mnist-tiny-cnn --recipe assignment            # the assignment's 0-vs-1 CNN
    torchlab evaluate checkpoints/mnist/best.pt --data-dir ../shared/data/mnist
    torchlab predict checkpoints/mnist/best.pt digit.png --index 0

Recipes:
  default     AdamW + one-cycle LR, batches of 128, 3 epochs, 5,000 training images held out for validation.
  fast        mnist-fast, Adam (beta2 0.9) + one-cycle LR, label smoothing 0.1, batches of 256, ONE epoch: 99% test
              accuracy from one pass over the images (the study in BENCHMARKS.md).
  long        a wider mnist-cnn (32-64-128), random affine augmentation, label smoothing, 12 epochs.
  post        the post's loop: full-batch gradient descent, lr 1, 100 steps, its loss mean(|target - sigmoid|),
              N(0, 1) weights; digits 4 and 5 ("is it a 5?") and mnist-linear unless told otherwise.
  assignment  the assignment's loop: SGD lr 0.01, batches of 32, 5 epochs, binary cross-entropy, N(0, 1)
              weights; the first 1,000 training images of 0 and 1, mnist-tiny-cnn unless told otherwise.
Every recipe sets bf16 autocast (it acts on CUDA only; --fp32 or --no-amp turns it off); the conv
recipes (default, fast, long, assignment) also set channels-last.

The training images live on the device in a TensorBatcher; normalization (mean and std of the
training pixels), the digits and the class names go into the checkpoint for evaluate/predict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torchlab.config import TrainConfig, config_field, number, require, whole
from torchlab.data.facts import validate_digits
from torchlab.errors import UsageError
from torchlab.tasks import Task, register_task

MODELS = ("mnist-cnn", "mnist-fast", "mnist-simple-cnn", "mnist-tiny-cnn", "mnist-mlp", "mnist-linear")
ACTIVATIONS = ("sigmoid", "relu")
LOSSES = ("default", "post")


def _widths(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 3 and all(whole(1)[0](c) for c in value)


@dataclass(frozen=True)
class MnistConfig(TrainConfig):
    """Every choice of an mnist run (the shared training fields come from TrainConfig)."""

    threads: int | None = config_field(
        None, "CPU threads for torch (none: torch's choice)", check=whole(1), group="speed", resume_safe=True
    )
    data_dir: str = config_field("data", "folder with the MNIST IDX files, flat or <dir>/MNIST/raw/", group="data")
    download: bool = config_field(
        False, "download MNIST into --data-dir with torchvision first", group="data", resume_safe=True
    )
    digits: tuple[int, int] | None = config_field(
        None,
        "binary task on two digits: target 1 for B, 0 for A (e.g. --digits 4 5)",
        nargs=2,
        metavar=("A", "B"),
        group="data",
    )
    limit: int | None = config_field(
        None, "use only the first N training images (after --digits; none: all)", check=whole(1), group="data"
    )
    val_size: int | None = config_field(
        None,
        "training images held out for validation (none: 1/12 of them, so 5,000 of "
        "MNIST's 60,000 and a share of any --limit)",
        check=whole(0),
        group="data",
    )
    augment: bool = config_field(False, "random shifts, turns and zooms of the training images", group="data")
    normalize: bool = config_field(True, "subtract the training pixels' mean and divide by their std", group="data")
    model: str = config_field("mnist-cnn", "which classifier", choices=MODELS, group="model")
    channels: tuple[int, int, int] = config_field(
        (8, 16, 32), "mnist-cnn widths", check=(_widths, "three widths >= 1"), nargs=3, metavar="C", group="model"
    )
    hidden: int | None = config_field(
        None,
        "hidden units of mnist-mlp (50), mnist-tiny-cnn (8), mnist-simple-cnn (64), "
        "mnist-fast (256) (none: the model's own)",
        check=whole(1),
        group="model",
    )
    activation: str | None = config_field(
        None, "mnist-mlp's hidden activation (none: sigmoid)", choices=ACTIVATIONS, group="model"
    )
    init: float | None = config_field(
        None,
        "start from N(0, std^2) weights and biases, as the seeds (none: PyTorch's init)",
        check=number(0, low_open=True),
        group="model",
    )
    loss: str = config_field(
        "default",
        "default: cross-entropy (binary for --digits); post: the post's mean(|target - sigmoid|), --digits only",
        choices=LOSSES,
    )
    label_smoothing: float = config_field(0.0, "cross-entropy label smoothing (10 classes only)", check=number(0, 1))
    beta2: float | None = config_field(
        None,
        "Adam/AdamW second-moment decay (none: torch's 0.999; beta1 follows the one-cycle momentum cycle)",
        check=number(0, 1, low_open=True),
    )

    def validate(self) -> None:
        super().validate()
        if self.digits is not None:
            require(
                isinstance(self.digits, tuple) and all(whole(0)[0](d) for d in self.digits),
                "digits",
                "two digits 0..9",
                self.digits,
            )
            validate_digits(self.digits)
        if self.beta2 is not None and self.optimizer not in ("adam", "adamw"):
            raise UsageError(f"--beta2 is Adam's and AdamW's; --optimizer {self.optimizer} has none")
        if self.loss == "post" and self.digits is None:
            raise UsageError(
                "--loss post (the post recipe) trains a binary classifier; give --digits A B (e.g. --digits 4 5)"
            )


# Every recipe sets bf16 autocast (CUDA only); the conv recipes also set channels-last.
RECIPES = {
    "default": MnistConfig(
        epochs=3,
        lr=2e-2,
        batch_size=128,
        weight_decay=1e-2,
        optimizer="adamw",
        schedule="onecycle",
        warmup=0.25,
        amp=True,
        channels_last=True,
    ),
    # 99% in one epoch on two CPU cores: the study in BENCHMARKS.md (tools/study_mnist.py, validation images only).
    "fast": MnistConfig(
        epochs=1,
        lr=1e-2,
        batch_size=256,
        weight_decay=0.0,
        optimizer="adam",
        schedule="onecycle",
        warmup=0.2,
        label_smoothing=0.1,
        beta2=0.9,
        amp=True,
        channels_last=True,
        model="mnist-fast",
    ),
    "long": MnistConfig(
        epochs=12,
        lr=1e-2,
        batch_size=128,
        weight_decay=5e-2,
        optimizer="adamw",
        schedule="onecycle",
        warmup=0.25,
        amp=True,
        channels_last=True,
        channels=(32, 64, 128),
        label_smoothing=0.1,
        augment=True,
    ),
    "post": MnistConfig(
        epochs=100,
        lr=1.0,
        batch_size=None,
        weight_decay=0.0,
        optimizer="sgd",
        schedule="none",
        amp=True,
        model="mnist-linear",
        loss="post",
        val_size=0,
        normalize=False,
        init=1.0,
        digits=(4, 5),
    ),
    "assignment": MnistConfig(
        epochs=5,
        lr=1e-2,
        batch_size=32,
        weight_decay=0.0,
        optimizer="sgd",
        schedule="none",
        amp=True,
        channels_last=True,
        model="mnist-tiny-cnn",
        val_size=0,
        normalize=False,
        init=1.0,
        digits=(0, 1),
        limit=1000,
    ),
}

TASK = register_task(
    Task(
        name="mnist",
        help="MNIST digits: linear, MLP and CNN classifiers (10 classes or --digits A B)",
        config_class=MnistConfig,
        recipes=RECIPES,
        description=__doc__ or "",
        models=MODELS,
        package=__package__,
        train="train:train",  # tasks/mnist/train.py: train(cfg, run); infer.py: evaluate, predict
        format_prediction="torchlab.reporting.records:format_digit_prediction",
        flag_aliases={"--fp32": ("amp", False, "no bf16 autocast on CUDA (same as --no-amp)")},
        tune_metric=("val_loss", "min"),
        search_space={
            "lr": "1e-4:0.1:log",
            "weight_decay": "1e-6:0.1:log",
            "batch_size": "64,128,256",
        },  # torchlab tune
    )
)
