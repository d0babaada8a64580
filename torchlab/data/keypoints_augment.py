"""Label-preserving augmentation of face batches, on the device, a whole batch at a time.

A batch is (images (n, 1, 96, 96) in [0, 1], keypoints (n, 30) in pixels, mask (n, 30) of
0/1 = labeled). Geometry is applied to images and keypoints alike:

- horizontal flip: the image columns are reversed, every x becomes `flip_sum - x` (95 for the
  pixel-centered Kaggle convention) and every left/right pair of keypoints swaps names;
- a small rotation, scale change and shift about the image center (one `grid_sample`);
- brightness and contrast (images only).

A keypoint pushed outside the image is masked out, so the loss never asks for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from torchlab.data.keypoints import FLIP_SUM, IMAGE_SIZE, flip_permutation

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
CENTER = (IMAGE_SIZE - 1) / 2.0  # 47.5: the middle of the pixel-centered grid


def coordinate_permutation(device: torch.device | str = "cpu") -> torch.Tensor:
    """(30,) column order that swaps left/right keypoints, x and y staying together."""
    pairs = torch.tensor(flip_permutation())
    return torch.stack([2 * pairs, 2 * pairs + 1], dim=1).flatten().to(device)


def flip_keypoints(keypoints: torch.Tensor, flip_sum: float = FLIP_SUM) -> torch.Tensor:
    """Keypoints (..., 30) of the mirrored image: x -> flip_sum - x, left and right swapped."""
    out = keypoints[..., coordinate_permutation(keypoints.device)].clone()
    out[..., 0::2] = flip_sum - out[..., 0::2]
    return out


def flip_batch(
    images: torch.Tensor, keypoints: torch.Tensor, mask: torch.Tensor, which: torch.Tensor, flip_sum: float = FLIP_SUM
) -> Batch:
    """Mirror the samples where `which` (n,) is True; the others pass unchanged."""
    sel = which.view(-1, 1, 1, 1)
    images = torch.where(sel, images.flip(-1), images)
    row = which.view(-1, 1)
    perm = coordinate_permutation(keypoints.device)
    keypoints = torch.where(row, flip_keypoints(keypoints, flip_sum), keypoints)
    mask = torch.where(row, mask[:, perm], mask)
    return images, keypoints, mask


def affine_batch(
    images: torch.Tensor,
    keypoints: torch.Tensor,
    mask: torch.Tensor,
    angle: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
) -> Batch:
    """Rotate by `angle` (radians), scale and shift (pixels, (n, 2)) about the image center.

    A point p moves to c + s R (p - c) + t. grid_sample with align_corners=True puts the
    normalized coordinates -1 and +1 on the centers of the first and last pixels, the same
    pixel-centered convention as the keypoints.
    """
    cos, sin = torch.cos(angle), torch.sin(angle)
    forward = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2) * scale.view(-1, 1, 1)
    inverse = torch.linalg.inv(forward)
    offset = -(inverse @ (shift / CENTER).unsqueeze(-1))
    theta = torch.cat([inverse, offset], dim=2).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=True)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)
    points = keypoints.view(len(keypoints), -1, 2) - CENTER
    points = points @ forward.transpose(1, 2).to(points.dtype) + CENTER + shift.view(-1, 1, 2)
    inside = ((points >= 0) & (points <= IMAGE_SIZE - 1)).all(dim=-1, keepdim=True)
    mask = mask * inside.expand_as(points).reshape_as(mask).to(mask.dtype)
    return images, points.reshape_as(keypoints), mask


@dataclass
class KeypointAugment:
    """The TensorBatcher transform: random flip, rotation, scale, shift, brightness and contrast."""

    flip: float = 0.5  # probability
    flip_sum: float = FLIP_SUM
    degrees: float = 12.0
    scale: float = 0.08  # scale factor drawn from [1 - scale, 1 + scale]
    shift: float = 5.0  # pixels, each axis
    brightness: float = 0.15
    contrast: float = 0.25

    def __call__(self, batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> Batch:
        images, keypoints, mask = batch
        n, device = len(images), images.device

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator, device=device) * 2 - 1

        if self.flip > 0:
            which = torch.rand(n, generator=generator, device=device) < self.flip
            images, keypoints, mask = flip_batch(images, keypoints, mask, which, self.flip_sum)
        if self.degrees or self.scale or self.shift:
            angle = uniform(n) * math.radians(self.degrees)
            scale = 1 + uniform(n) * self.scale
            shift = uniform(n, 2) * self.shift
            images, keypoints, mask = affine_batch(images, keypoints, mask, angle, scale, shift)
        if self.brightness or self.contrast:
            mean = images.mean(dim=(1, 2, 3), keepdim=True)
            contrast = 1 + uniform(n, 1, 1, 1) * self.contrast
            brightness = uniform(n, 1, 1, 1) * self.brightness
            images = ((images - mean) * contrast + mean + brightness).clamp(0, 1)
        keypoints = keypoints * mask  # unlabeled coordinates stay 0, never NaN
        return images, keypoints, mask
