"""Every torchlab model, by name.

Each module in this package defines plain `nn.Module`s (no training code) and registers
them with `@register_model`; the modules are listed in `MODEL_MODULES`, so adding a model
family means adding a file here and its name there. `build_model(name, **kwargs)` constructs one.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
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
        check_model_arguments(self, kwargs)
        return self.cls(**{**self.defaults, **kwargs})


def check_model_arguments(spec: ModelSpec, kwargs: dict[str, Any]) -> None:
    """Check constructor arguments against the constructor before building (a checkpoint may hold any values).

    A name the constructor does not take is a TypeError; a value of the wrong kind or an impossible size a
    ValueError naming it: whole-number arguments are sizes and counts (>= 1; >= 0 where the default is 0, a
    seed), lists of whole numbers are channel counts (each >= 1), real numbers must be finite.
    """
    parameters = inspect.signature(spec.cls.__init__).parameters
    for name, value in kwargs.items():
        if name not in parameters or name == "self":
            raise TypeError(f"{spec.name} takes no argument {name!r}")
        default = spec.defaults.get(name, parameters[name].default)
        problem = _argument_problem(value, default)
        if problem:
            raise ValueError(f"{spec.name} argument {name} must be {problem}, got {value!r}"[:300])


def _argument_problem(value: Any, default: Any) -> str | None:
    """What `value` must be, judged by the kind of the parameter's `default`; None when it is fine."""

    def whole(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    def real(v: Any) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if whole(default):
        least = 0 if default == 0 else 1
        return None if whole(value) and value >= least else f"a whole number >= {least}"
    if isinstance(default, float):
        return None if real(value) else "a finite number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, (list, tuple)) and default and all(whole(v) for v in default):
        ok = isinstance(value, (list, tuple)) and value and all(whole(v) and v >= 1 for v in value)
        return None if ok else "a list of whole numbers >= 1"
    if isinstance(value, (list, tuple)) and not all(real(v) for v in value):
        return "a list of finite numbers"
    return None


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
