"""Every torchlab model, by name.

Each module in this package defines plain `nn.Module`s (no training code) and registers
them with `@register_model`; the modules are listed in `MODEL_MODULES`, so adding a model
family means adding a file here and its name there. `build_model(name, **kwargs)` constructs one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its class, default constructor arguments and example input shape."""

    name: str
    cls: type[nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None  # one sample, without the batch dimension
    description: str = ""

    def build(self, **kwargs: Any) -> nn.Module:
        return self.cls(**{**self.defaults, **kwargs})


MODEL_MODULES = ("digits", "keypoints", "mnist", "patch", "ring")
_MODELS: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    defaults: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
    description: str = "",
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make `cls` buildable as `build_model(name)`."""

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        doc = description or ((cls.__doc__ or "").strip().splitlines() or [""])[0]
        spec = ModelSpec(name, cls, dict(defaults or {}), input_shape, doc)
        if _MODELS.get(name, spec) != spec:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = spec
        return cls

    return decorate


def _load() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(f"{__name__}.{module}")


def model_names() -> list[str]:
    _load()
    return sorted(_MODELS)


def get_model_spec(name: str) -> ModelSpec:
    """The spec registered under `name`; KeyError lists the known names."""
    _load()
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Construct the model registered as `name`, with its defaults overridden by `kwargs`."""
    return get_model_spec(name).build(**kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
