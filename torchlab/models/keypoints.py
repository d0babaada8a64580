"""Facial keypoint regressors: 96x96 gray face -> 30 numbers (x, y of 15 keypoints, in pixels).

keypoint-fcn  the practical's fully connected net, 9216 -> 1024 -> 512 -> 30 (9,978,398 parameters)
keypoint-cnn  the practical's CNN: three 3x3 convs (32/64/128) each with 2x2 max pooling, then
              12800 -> 256 -> 128 -> 30 with dropout 0.1 and 0.2 (3,406,494 parameters)
keypoint-net  torchlab's design: a small residual CNN with BatchNorm whose decoder draws one
              heat map per keypoint on a 24x24 grid; the keypoint is the heat map's center of
              mass (a "soft argmax"), so the output stays in pixels and moves smoothly. With
              flip_average=True it predicts in eval mode from the face and its mirror image
              (keypoints of the mirror flipped back, left and right swapped) and returns the mean.
              head="heatmap-48" draws 48x48 maps; head="regression" reads the 30 numbers off
              the encoder with one linear layer (the study's comparison).

The first two keep the seed's layers and call order, so `torchlab summary` prints the
seed's torchsummary tables.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchlab.data.facts import FLIP_SUM, HEADS
from torchlab.data.keypoints_augment import flip_keypoints
from torchlab.models import register_model

IMAGE_SIZE = 96
OUTPUTS = 30


@register_model(
    "keypoint-fcn",
    input_shape=(IMAGE_SIZE * IMAGE_SIZE,),
    description="practical's 9216->1024->512->30 keypoint MLP, dropout 0.3 (9,978,398 params)",
)
class KeypointFCN(nn.Module):
    """Fully connected: flattened 96x96 pixels -> 1024 -> 512 -> 30 coordinates, ReLU and dropout 0.3."""

    def __init__(self, dropout: float = 0.3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(IMAGE_SIZE * IMAGE_SIZE, 1024)
        self.dropout1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, 512)
        self.dropout2 = nn.Dropout(dropout)
        self.fc3 = nn.Linear(512, OUTPUTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (n, 1, 96, 96) or (n, 9216)
        x = self.dropout1(F.relu(self.fc1(x)))
        x = self.dropout2(F.relu(self.fc2(x)))
        return self.fc3(x)


@register_model(
    "keypoint-cnn",
    input_shape=(1, IMAGE_SIZE, IMAGE_SIZE),
    description="practical's 3-conv keypoint CNN, 12800->256->128->30 (3,406,494 params)",
)
class KeypointCNN(nn.Module):
    """Three conv(3x3, no padding) + ReLU + 2x2 max-pool stages (32, 64, 128 maps), then three linear layers."""

    def __init__(self, dropout1: float = 0.1, dropout2: float = 0.2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)  # 96 -> 94, pooled to 47
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)  # 47 -> 45, pooled to 22
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3)  # 22 -> 20, pooled to 10
        self.pool = nn.MaxPool2d(2, 2)
        self.dropout1 = nn.Dropout(dropout1)
        self.dropout2 = nn.Dropout(dropout2)
        self.fc1 = nn.Linear(128 * 10 * 10, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, OUTPUTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = x.flatten(1)
        x = self.dropout1(F.relu(self.fc1(x)))
        x = self.dropout2(F.relu(self.fc2(x)))
        return self.fc3(x)


# ------------------------------------------------------------------ keypoint-net
def conv_bn(c_in: int, c_out: int, stride: int = 1, kernel: int = 3, relu: bool = True) -> nn.Sequential:
    """Convolution (no bias) + BatchNorm (+ ReLU), 'same' padding."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut (a 1x1 conv-BN when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, c_out, stride), conv_bn(c_out, c_out, relu=False))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else conv_bn(c_in, c_out, stride, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class SoftArgmax2d(nn.Module):
    """Heat maps (n, k, h, w) -> expected (x, y) per map in input-image pixels, interleaved: (n, 2k).

    Cell j of a map with stride s covers pixels s*j .. s*j + s - 1, whose center is s*j + (s - 1)/2
    in the pixel-centered convention of the data (pixel j at x = j).
    """

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, heatmaps: torch.Tensor) -> torch.Tensor:
        n, k, h, w = heatmaps.shape
        # softmax in at least float32 (bf16 heat maps under autocast), float64 kept for gradient checks
        dtype = torch.promote_types(heatmaps.dtype, torch.float32)
        probs = torch.softmax(heatmaps.to(dtype).flatten(2), dim=-1).view(n, k, h, w)
        xs = torch.arange(w, device=heatmaps.device, dtype=probs.dtype) * self.stride + (self.stride - 1) / 2
        ys = torch.arange(h, device=heatmaps.device, dtype=probs.dtype) * self.stride + (self.stride - 1) / 2
        x = (probs.sum(dim=2) * xs).sum(dim=-1)
        y = (probs.sum(dim=3) * ys).sum(dim=-1)
        return torch.stack([x, y], dim=-1).flatten(1)


@register_model(
    "keypoint-net",
    input_shape=(1, IMAGE_SIZE, IMAGE_SIZE),
    description="residual CNN + BatchNorm, 24x24 heat maps with soft-argmax (torchlab's keypoint model)",
)
class KeypointNet(nn.Module):
    """Encoder 96 -> 48 -> 24 -> 12 -> 6 (residual blocks, BatchNorm), decoder back to 24x24 with skip
    connections, one heat map per keypoint, soft-argmax to pixel coordinates.

    head: "heatmap-24" (the above), "heatmap-48" (the decoder goes one stage further, to 48x48 maps,
    with the first stage as its skip), or "regression" (the 6x6 features flattened into one linear
    layer: 30 numbers directly, its bias started at the mean keypoints).
    flip_average: in eval mode, the mean of the prediction for the face and the flipped-back prediction
    for its mirror image (test-time augmentation: two passes, x -> flip_sum - x); training sees one pass.
    """

    def __init__(
        self,
        width: int = 32,
        keypoints: int = 15,
        mean_keypoints: list[float] | None = None,
        prior_sigma: float = 1.5,
        flip_average: bool = False,
        head: str = "heatmap-24",
        flip_sum: float = FLIP_SUM,
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, not {head!r}")
        w = width
        self.flip_average = flip_average
        self.flip_sum = flip_sum  # the mirror maps x to flip_sum - x (the training data's convention)
        self.head = head
        self.stem = nn.Sequential(conv_bn(1, w), conv_bn(w, w, stride=2))  # 48x48
        self.layer1 = ResidualBlock(w, w)  # 48
        self.layer2 = ResidualBlock(w, 2 * w, stride=2)  # 24
        self.layer3 = ResidualBlock(2 * w, 4 * w, stride=2)  # 12
        self.layer4 = ResidualBlock(4 * w, 8 * w, stride=2)  # 6: every cell sees the whole face
        if head == "regression":
            self.regress = nn.Linear(8 * w * 6 * 6, 2 * keypoints)
            if mean_keypoints is not None:
                with torch.no_grad():
                    self.regress.weight.mul_(0.1)
                    self.regress.bias.copy_(torch.tensor(mean_keypoints, dtype=torch.float32))
            return
        self.grid = 24 if head == "heatmap-24" else 48
        # A learned prior added to every heat map. Started as a bump (sigma in 24-grid cells) on the training
        # set's mean keypoint, the net predicts the mean face from its first step and learns the offsets.
        self.prior = nn.Parameter(self.mean_prior(mean_keypoints, keypoints, prior_sigma * self.grid / 24))
        self.lateral3 = conv_bn(4 * w, 4 * w, kernel=1, relu=False)
        self.top4 = conv_bn(8 * w, 4 * w, kernel=1, relu=False)
        self.merge12 = conv_bn(4 * w, 2 * w)
        self.lateral2 = conv_bn(2 * w, 2 * w, kernel=1, relu=False)
        self.merge24 = conv_bn(2 * w, 2 * w)
        if self.grid == 48:
            self.lateral1 = conv_bn(w, w, kernel=1, relu=False)
            self.top24 = conv_bn(2 * w, w, kernel=1, relu=False)
            self.merge48 = conv_bn(w, w)
        self.heatmaps = nn.Conv2d(2 * w if self.grid == 24 else w, keypoints, kernel_size=1)
        self.soft_argmax = SoftArgmax2d(stride=IMAGE_SIZE // self.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip_average and not self.training:
            return (self.keypoints(x) + flip_keypoints(self.keypoints(x.flip(-1)), self.flip_sum)) / 2
        return self.keypoints(x)

    def keypoints(self, x: torch.Tensor) -> torch.Tensor:
        """One pass: faces (n, 1, 96, 96) -> keypoints (n, 30) in pixels."""
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        if self.head == "regression":
            return self.regress(c4.flatten(1))
        p3 = self.merge12(F.relu(self.lateral3(c3) + F.interpolate(self.top4(c4), scale_factor=2.0, mode="nearest")))
        p = self.merge24(F.relu(self.lateral2(c2) + F.interpolate(p3, scale_factor=2.0, mode="nearest")))
        if self.grid == 48:
            p = self.merge48(F.relu(self.lateral1(c1) + F.interpolate(self.top24(p), scale_factor=2.0, mode="nearest")))
        return self.soft_argmax(self.heatmaps(p) + self.prior)

    def mean_prior(self, mean_keypoints: list[float] | None, keypoints: int, sigma: float) -> torch.Tensor:
        """(k, 24, 24) log-Gaussian bumps around the mean keypoints (pixels), or zeros without them."""
        if mean_keypoints is None:
            return torch.zeros(keypoints, self.grid, self.grid)
        stride = IMAGE_SIZE // self.grid
        centers = (torch.arange(self.grid, dtype=torch.float32) * stride + (stride - 1) / 2) / stride
        mean = torch.tensor(mean_keypoints, dtype=torch.float32).view(keypoints, 2) / stride
        dx = (centers.view(1, 1, -1) - mean[:, 0].view(-1, 1, 1)) ** 2
        dy = (centers.view(1, -1, 1) - mean[:, 1].view(-1, 1, 1)) ** 2
        return -(dx + dy) / (2 * sigma**2)
