"""MNIST classifiers, from the seeds' one-neuron model to a fast, strong CNN.

Every model takes (N, 1, 28, 28) images and returns logits: `classes=1` gives one logit for a
binary question ("is it the second digit?", sigmoid in the loss and at prediction), `classes=10`
gives one logit per digit (softmax in the loss and at prediction). The convolutional models keep
their convolution part in `self.features` (an `nn.Sequential` with named layers) so figures can
show what each conv, ReLU and pool layer produces.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from torchlab.models import register_model

PIXELS = 28 * 28


@register_model(
    "mnist-linear", input_shape=(1, 28, 28), description="784->1 linear classifier (the post's; sigmoid in the loss)"
)
class MnistLinear(nn.Module):
    """A weighted sum of the 784 pixels plus a bias: one logit per class."""

    def __init__(self, classes: int = 1) -> None:
        super().__init__()
        self.linear = nn.Linear(PIXELS, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


@register_model(
    "mnist-mlp", input_shape=(1, 28, 28), description="784->h->1 or 10, one hidden layer (the post's non-linear net)"
)
class MnistMLP(nn.Module):
    """784 pixels -> `hidden` units (sigmoid as in the post, or ReLU) -> `classes` logits."""

    def __init__(self, hidden: int = 50, classes: int = 1, activation: str = "sigmoid") -> None:
        super().__init__()
        if activation not in ("sigmoid", "relu"):
            raise ValueError(f"activation must be 'sigmoid' or 'relu', got {activation!r}")
        self.hidden = nn.Linear(PIXELS, hidden)
        self.activation = nn.Sigmoid() if activation == "sigmoid" else nn.ReLU()
        self.output = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.activation(self.hidden(x.flatten(1))))


def _named(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


@register_model(
    "mnist-tiny-cnn",
    input_shape=(1, 28, 28),
    description="the assignment's CNN: conv 1->2, pool, conv 2->4, pool, 196->8->1 (1,681 params)",
)
class MnistTinyCNN(nn.Module):
    """Two 3x3 conv layers with 2 and 4 channels, each followed by ReLU and 2x2 max-pooling."""

    def __init__(self, classes: int = 1, hidden: int = 8) -> None:
        super().__init__()
        self.features = _named(
            ("conv1", nn.Conv2d(1, 2, 3, padding=1)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),  # 2x14x14
            ("conv2", nn.Conv2d(2, 4, 3, padding=1)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),  # 4x7x7
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * 7 * 7, hidden), nn.ReLU(), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(
    "mnist-simple-cnn",
    input_shape=(1, 28, 28),
    description="the practical's SimpleCNN: conv 1->8, conv 8->16, 784->64->classes, dropout 0.25",
)
class MnistSimpleCNN(nn.Module):
    """Practical §5.9's two conv/ReLU/pool stages and a dropout-regularized dense head."""

    def __init__(self, classes: int = 10, hidden: int = 64, dropout: float = 0.25) -> None:
        super().__init__()
        self.features = _named(
            ("conv1", nn.Conv2d(1, 8, 3, padding=1)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),  # 8x14x14
            ("conv2", nn.Conv2d(8, 16, 3, padding=1)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),  # 16x7x7
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(
    "mnist-cnn",
    input_shape=(1, 28, 28),
    description="fast 10-class CNN: 3 x (3x3 conv, max-pool, batch norm, ReLU), linear head (8,834 params)",
)
class MnistCNN(nn.Module):
    """Three stages of conv -> max-pool -> batch norm -> ReLU (28 -> 14 -> 7 -> 3 pixels), then one linear layer.

    Pooling right after each convolution means batch norm and ReLU run on a quarter of the
    pixels, which is most of the saving on a CPU; the ReLU/max-pool order does not change the
    result (both are monotone), and batch norm after pooling trains just as well.
    """

    def __init__(self, channels: list[int] | tuple[int, ...] = (8, 16, 32), classes: int = 10) -> None:
        super().__init__()
        if len(channels) != 3 or min(channels) < 1:
            raise ValueError(f"channels must be three positive widths, got {channels}")
        layers: list[tuple[str, nn.Module]] = []
        width_in = 1
        for stage, width in enumerate(channels, start=1):
            layers += [
                (f"conv{stage}", nn.Conv2d(width_in, width, 3, padding=1, bias=False)),
                (f"pool{stage}", nn.MaxPool2d(2)),
                (f"bn{stage}", nn.BatchNorm2d(width)),
                (f"relu{stage}", nn.ReLU()),
            ]
            width_in = width
        self.features = _named(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(width_in * 3 * 3, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@torch.no_grad()
def init_normal(model: nn.Module, std: float = 1.0, generator: torch.Generator | None = None) -> None:
    """The seeds' initialization: every weight and bias drawn from N(0, std^2) (the post uses std 1)."""
    for param in model.parameters():
        param.normal_(0.0, std, generator=generator)


def feature_maps(model: nn.Module, images: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(layer name, output) after every layer of `model.features`, for activation panels."""
    features = getattr(model, "features", None)
    if features is None:
        return []
    out = []
    x = images
    with torch.no_grad():
        for name, layer in features.named_children():
            x = layer(x)
            out.append((name, x.detach().cpu()))
    return out


@register_model(
    "mnist-fast",
    input_shape=(1, 28, 28),
    description="one-epoch CNN: 5x5 stride-2 conv, 3x3 conv + max-pool, 800->256->10 (215,194 params)",
)
class MnistFastCNN(nn.Module):
    """A cheap-per-image CNN that reaches 99% in one epoch (the `fast` recipe; BENCHMARKS.md).

    The layout of train_mnist_fast (conv 5x5, conv 3x3, max-pool before ReLU, a 256-unit dense
    head), with the first max-pool replaced by a stride-2 first convolution: a quarter of that
    layer's work, which on a CPU is what bounds the time per epoch.
    """

    def __init__(self, channels: list[int] | tuple[int, ...] = (24, 32), hidden: int = 256, classes: int = 10) -> None:
        super().__init__()
        if len(channels) != 2 or min(channels) < 1:
            raise ValueError(f"channels must be two positive widths, got {channels}")
        first, second = channels
        self.features = _named(
            ("conv1", nn.Conv2d(1, first, 5, stride=2)),
            ("relu1", nn.ReLU()),  # first x 12 x 12
            ("conv2", nn.Conv2d(first, second, 3)),
            ("pool2", nn.MaxPool2d(2)),
            ("relu2", nn.ReLU()),  # second x 5 x 5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(second * 5 * 5, hidden), nn.ReLU(), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
