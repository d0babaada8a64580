"""Data sets (one module each) and the in-memory batcher that keeps small sets on the device."""

from torchlab.data.batcher import TensorBatcher, make_loader, split_indices

__all__ = ["TensorBatcher", "make_loader", "split_indices"]
