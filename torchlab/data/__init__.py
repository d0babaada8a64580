"""Data sets (one module each), the in-memory batcher that keeps small sets on the device, splits."""

from torchlab.data.batcher import TensorBatcher, make_loader
from torchlab.data.splits import hold_out, normalize, split_indices

__all__ = ["TensorBatcher", "make_loader", "split_indices", "hold_out", "normalize"]
