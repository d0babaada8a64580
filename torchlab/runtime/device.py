"""Choosing the device and seeding every random number generator."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import numpy as np
import torch

from torchlab.errors import DeviceError
from torchlab.runtime.device_names import DEVICE_CHOICES, check_device_name


def accelerator_type() -> str | None:
    """The accelerator PyTorch reports ("cuda", "mps", ...), or None on a CPU-only machine."""
    accel = getattr(torch, "accelerator", None)
    if accel is not None and accel.is_available():
        return accel.current_accelerator().type
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return None


def pick_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn "auto" | "cpu" | "cuda" | "cuda:1" | "mps" into a torch.device that exists here.

    "auto" prefers the accelerator (CUDA, MPS, ...) and falls back to the CPU. Asking for a
    device this machine does not have raises DeviceError.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = check_device_name(spec)
    if spec == "auto":
        # Under torchrun each process drives the GPU named by LOCAL_RANK.
        kind = accelerator_type()
        if kind is None:
            return torch.device("cpu")
        if kind == "cuda" and "LOCAL_RANK" in os.environ:
            return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        return torch.device(kind)
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device {spec!r}; use one of {', '.join(DEVICE_CHOICES)}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"device {spec!r} was requested but no CUDA GPU is visible; use --device cpu or auto")
        if device.index is None and "LOCAL_RANK" in os.environ:  # under torchrun: this process's GPU
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"device {spec!r} was requested but only {count} CUDA GPU(s) are visible (cuda:0..cuda:{count - 1})"
            )
        return device
    if device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError(
                f"device {spec!r} was requested but Apple MPS is not available here; use --device cpu or auto"
            )
        return device
    raise DeviceError(f"unsupported device {spec!r}; use one of {', '.join(DEVICE_CHOICES)}")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices) with one number."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG state as plain tensors and lists, loadable with weights_only=True."""
    # legacy=True (the default) gives the MT19937 tuple; numpy's stubs type the no-argument call as the dict form
    np_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    version, internal, gauss = random.getstate()
    # The two 624-word Mersenne Twister states go in as int64 tensors, not lists of ints: a tensor
    # pickles as one blob, and this state is written with every epoch's checkpoint.
    state = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() returned (states for missing devices are skipped).

    RNG states are CPU byte tensors; a checkpoint read with map_location="cuda" moves them to
    the GPU, so they are brought back first (torch.set_rng_state refuses anything else).
    """
    if "python" in state:
        version, internal, gauss = state["python"]  # internal: a tensor, or a list in older checkpoints
        internal = internal.tolist() if isinstance(internal, torch.Tensor) else internal
        random.setstate((version, tuple(int(v) for v in internal), gauss))
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        keys = keys.cpu().numpy() if isinstance(keys, torch.Tensor) else keys
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


@contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """On the CPU, run the block with one intra-op thread, then restore the previous count.

    For tiny models (the digit MLP, the ring and patch nets) a second thread costs more in
    hand-offs than it saves, and on a busy machine it can make each step 20x slower.
    """
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
