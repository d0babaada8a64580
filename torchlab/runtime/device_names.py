"""Device names torchlab accepts, checked without importing torch (the CLI answers at once)."""

from __future__ import annotations

import re

from torchlab.errors import DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE_NAME = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


def check_device_name(spec: str) -> str:
    """`spec` trimmed and lower-cased when it names a device torchlab can use; else DeviceError.

    Whether that device exists here is torchlab.runtime.device.pick_device's question.
    """
    name = spec.strip().lower()
    if not _DEVICE_NAME.fullmatch(name):
        raise DeviceError(f"unknown device {spec!r}; use one of {', '.join(DEVICE_CHOICES)}")
    return name
