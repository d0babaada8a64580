"""Typed training configs: every choice of a task in one frozen dataclass.

A task's config class extends `TrainConfig` with its data and model fields; its named
recipes are instances of that class. Overrides go through `with_overrides`, which
rejects a misspelt name at once. Each field's metadata (help text, choices, the shape of
its command-line flag) is what `torchlab train TASK --help` shows, so the CLI needs no
list of flags of its own.

    cfg = with_overrides(MnistConfig(), epochs=1, limit=2000)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torchlab.errors import UsageError

C = TypeVar("C", bound="TrainConfig")

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("none", "onecycle", "cosine")


def config_field(
    default: Any,
    help: str,
    *,
    check: tuple[Callable[[Any], bool], str] | None = None,
    choices: tuple | None = None,
    nargs: int | None = None,
    metavar: str | tuple[str, ...] | None = None,
    group: str = "training",
    resume_safe: bool = False,
) -> Any:
    """A config field with what its flag needs: help text, choices, tuple length (nargs), group.

    check: (predicate, what it wants), e.g. (lambda v: v >= 1, ">= 1"); a value that fails it is
    a UsageError "--name must be >= 1, got 0" when the config is built (None always passes).
    resume_safe: the value may change when a run is resumed (more epochs, a new patience);
    every other field fixes the data, the model or the schedule and must stay as it was.
    """
    meta = {
        "help": help,
        "check": check,
        "choices": choices,
        "nargs": nargs,
        "metavar": metavar,
        "group": group,
        "resume_safe": resume_safe,
    }
    return field(default=default, metadata=meta)


def whole(low: int) -> tuple[Callable[[Any], bool], str]:
    """A check for a whole number >= low."""
    return (lambda v: _whole(v, low), f"a whole number >= {low}")


def finite() -> tuple[Callable[[Any], bool], str]:
    """A check for any finite number."""
    return _finite, "a finite number"


def number(
    low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = True
) -> tuple[Callable[[Any], bool], str]:
    """A check for a finite number in the interval [low, high) (ends open or closed as asked)."""

    def ok(v: Any) -> bool:
        return _finite(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    if high == math.inf:
        return ok, f"a finite number {'>' if low_open else '>='} {low:g}"
    return ok, f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)")


def duration_seconds(value: str | float | None) -> float | None:
    """The seconds of a time budget: 90 or "90" (seconds), "90s", "15m", "2h", "1.5h"; None: no budget.

    Anything else (an unknown unit, a negative, zero or non-finite amount) is a ValueError.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(str(value).strip().lower())
        if match is None:
            raise ValueError(f"not a duration: {value!r}")
        seconds = float(match[1]) * DURATION_UNITS[match[2] or "s"]
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"not a positive duration: {value!r}")
    return seconds


def duration() -> tuple[Callable[[Any], bool], str]:
    """A check for a time budget that `duration_seconds` reads."""
    return _duration_ok, "a duration such as 90s, 15m or 2h (or a number of seconds)"


def _duration_ok(v: Any) -> bool:
    try:
        duration_seconds(v)
    except ValueError:
        return False
    return True


def _whole(v: Any, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class TrainConfig:
    """The choices every task makes; task configs add their data and model fields."""

    epochs: int = config_field(10, "maximum number of epochs", check=whole(1), resume_safe=True)
    lr: float = config_field(1e-3, "(peak) learning rate", check=number(0, low_open=True))
    batch_size: int | None = config_field(
        64, "samples per batch and per process (none: the whole set in one batch)", check=whole(1), resume_safe=True
    )  # e.g. resuming 2 processes' run on 1
    weight_decay: float = config_field(0.0, "decoupled weight decay (AdamW) or L2 penalty (Adam, SGD)", check=number(0))
    optimizer: str = config_field("adamw", "optimizer", choices=OPTIMIZERS)
    schedule: str = config_field("none", "learning-rate schedule over the run, stepped per batch", choices=SCHEDULES)
    warmup: float = config_field(
        0.3, "onecycle: share of the steps spent raising the learning rate", check=number(0, 1, low_open=True)
    )
    patience: int | None = config_field(
        None,
        "early stopping: epochs without improvement before stopping (none: never)",
        check=whole(0),
        resume_safe=True,
    )
    min_delta: float = config_field(
        0.0, "early stopping: smallest change that counts as an improvement", check=number(0), resume_safe=True
    )
    baseline: float | None = config_field(
        None,
        "early stopping: stop when the monitored value has not beaten this within --patience epochs "
        "(Keras baseline; none: no baseline)",
        check=finite(),
        resume_safe=True,
    )
    start_from_epoch: int = config_field(
        0,
        "early stopping: warm-up epochs during which the monitored value is not looked at (Keras start_from_epoch)",
        check=whole(0),
        resume_safe=True,
    )
    stopping_threshold: float | None = config_field(
        None,
        "early stopping: stop as soon as the monitored value is better than this (Lightning stopping_threshold; "
        "none: never)",
        check=finite(),
        resume_safe=True,
    )
    divergence_threshold: float | None = config_field(
        None,
        "early stopping: stop as soon as the monitored value is worse than this (Lightning divergence_threshold; "
        "none: never)",
        check=finite(),
        resume_safe=True,
    )
    check_finite: bool = config_field(
        True,
        "early stopping: stop when the monitored value is NaN or infinite (Lightning check_finite)",
        resume_safe=True,
    )
    max_time: str | float | None = config_field(
        None,
        "time budget of this process: stop at the first batch boundary past it, validate and write the "
        "checkpoints; 90s, 15m, 2h or seconds (none: no limit)",
        check=duration(),
        metavar="TIME",
        resume_safe=True,
    )
    accumulate: int = config_field(
        1,
        "gradient accumulation: one optimizer step per N batches, an effective batch of N x --batch-size",
        check=whole(1),
        metavar="N",
        resume_safe=True,
    )  # like batch_size: keeps the effective batch on fewer processes
    grad_clip: float | None = config_field(
        None, "clip the gradient norm to this value (none: no clipping)", check=number(0, low_open=True)
    )
    ema: float | None = config_field(
        None,
        "decay of an exponential moving average of the weights, which validation, early stopping and the "
        "checkpoints then use, e.g. 0.999 (none: no average)",
        check=number(0, 1, high_open=True),
    )
    amp: bool = config_field(
        False, "bf16 autocast on CUDA (no effect on the CPU or MPS)", group="speed", resume_safe=True
    )
    compile: bool = config_field(False, "torch.compile the model", group="speed", resume_safe=True)
    channels_last: bool = config_field(
        False, "channels-last memory format for conv nets", group="speed", resume_safe=True
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Reject values no training can use, naming the flag: each field's check and choices.

        Task configs override this only for rules that tie several fields together.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            check, choices = f.metadata.get("check"), f.metadata.get("choices")
            if check is not None and value is not None:
                require(check[0](value), f.name, check[1], value)
            if choices and value is not None:
                require(value in choices, f.name, f"one of {', '.join(map(str, choices))}", value)


def require(ok: bool, name: str, want: str, value: Any) -> None:
    """Raise the one-line UsageError `--name must be <want>, got <value>` unless `ok`."""
    if not ok:
        raise UsageError(f"{flag_name(name)} must be {want}, got {value!r}")


def flag_name(name: str) -> str:
    """The command-line spelling of a config field: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def field_names(cls_or_cfg: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cls_or_cfg)]


def with_overrides(cfg: C, **overrides: Any) -> C:
    """A copy of `cfg` with some fields changed; a name that is not a field is a UsageError."""
    names = field_names(cfg)
    for key in overrides:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(f"{type(cfg).__name__} has no field {key!r}; {hint}valid fields: {', '.join(names)}")
    # frozen: no lists
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(cfg, **values)


def as_dict(cfg: Any) -> dict[str, Any]:
    """Plain data (for checkpoints and printing): tuples become lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a config class (the module uses `from __future__ import annotations`)."""
    return typing.get_type_hints(cls)


def changed_fields(base: Any, cfg: Any) -> str:
    """The fields where `cfg` differs from `base`, as "epochs=18, flip=0.0"."""
    theirs = as_dict(base)
    return ", ".join(f"{name}={value}" for name, value in as_dict(cfg).items() if theirs.get(name) != value)


def resume_conflicts(saved: dict[str, Any], cfg: Any) -> list[tuple[str, Any, Any]]:
    """(name, old, new) for every field that is not resume-safe and differs from the saved config."""
    now = as_dict(cfg)
    out = []
    for f in dataclasses.fields(cfg):
        if f.metadata.get("resume_safe") or f.name not in saved:
            continue
        if saved[f.name] != now[f.name]:
            out.append((f.name, saved[f.name], now[f.name]))
    return out
