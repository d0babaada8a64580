"""A search space: which config fields a `torchlab tune` study varies, and over what.

    lr=1e-3:0.3:log        a float range, sampled on a log scale
    epochs=10:60           an int range (the field is an int), uniform
    batch_size=32,64,128   a choice among values, each read as the field reads its flag ("none", "true")

Every name is a field of the task's config (`weight-decay` and `weight_decay` both name one) and
every value must be one the field accepts, checked when the space is built, before anything runs:
a mistake is a one-line UsageError naming the entry. No torch, no Optuna here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torchlab.config import field_names, field_types, flag_name, with_overrides
from torchlab.errors import UsageError


@dataclass(frozen=True)
class Range:
    """Numbers from low to high (both included); integers when the field is an int; log: on a log scale."""

    low: float
    high: float
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class Choice:
    """One of these values."""

    values: tuple[Any, ...]


Dimension = Range | Choice


def split_entry(entry: str) -> tuple[str, str]:
    """("lr", "1e-3:0.3:log") from "lr=1e-3:0.3:log"; a missing '=' is a UsageError."""
    name, sep, spec = entry.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise UsageError(f"--search {entry!r}: write FIELD=LOW:HIGH, FIELD=LOW:HIGH:log or FIELD=A,B,C")
    return name.strip().lstrip("-").replace("-", "_"), spec.strip()


def parse_dimension(name: str, spec: str, base: Any) -> Dimension:
    """The dimension `spec` gives field `name` of config `base` (a recipe), its values checked against the field."""
    where = f"--search {name}={spec}"
    names = field_names(base)
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(
            f"{where}: {type(base).__name__} has no field {name!r}; {hint}valid fields: {', '.join(names)}"
        )
    kinds, optional = _kinds(field_types(type(base))[name])
    dim: Range | Choice
    if ":" in spec:
        dim = _range(where, spec, kinds)
        ends = [int(dim.low), int(dim.high)] if dim.integer else [dim.low, dim.high]
    else:
        dim = Choice(tuple(_value(where, text.strip(), kinds, optional) for text in spec.split(",")))
        ends = list(dim.values)
    for value in ends:  # each end (each choice) must be a value the field accepts
        try:
            with_overrides(base, **{name: value})
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
    return dim


def build_space(
    config: Any, defaults: dict[str, str], entries: Iterable[str], fixed: Iterable[str], use_defaults: bool = True
) -> dict[str, Dimension]:
    """The study's space: the task's `defaults` (unless not `use_defaults`), then the --search `entries`.

    Fields in `fixed` (set by the task's ordinary flags) leave the default space; naming one in --search
    as well is a UsageError. An empty space is a UsageError.
    """
    fixed = set(fixed)
    space: dict[str, Dimension] = {}
    if use_defaults:
        space = {name: parse_dimension(name, spec, config) for name, spec in defaults.items() if name not in fixed}
    for entry in entries:
        name, spec = split_entry(entry)
        if name in fixed:
            raise UsageError(f"--search {entry}: {flag_name(name)} also fixes {name} for every trial; drop one of them")
        space[name] = parse_dimension(name, spec, config)
    if not space:
        raise UsageError(
            "nothing to search: every field of the default space is fixed by a flag; add --search "
            "FIELD=LOW:HIGH or FIELD=A,B,C"
        )
    return space


def describe(space: dict[str, Dimension]) -> str:
    """'lr=0.003:0.3:log, batch_size=16,32' (the --search spelling)."""
    parts = []
    for name, dim in space.items():
        if isinstance(dim, Range):
            low, high = (int(dim.low), int(dim.high)) if dim.integer else (dim.low, dim.high)
            parts.append(f"{name}={low:g}:{high:g}" + (":log" if dim.log else ""))
        else:
            parts.append(
                f"{name}="
                + ",".join(
                    "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in dim.values
                )
            )
    return ", ".join(parts)


def _range(where: str, spec: str, kinds: list[Any]) -> Range:
    parts = spec.split(":")
    log = len(parts) == 3 and parts[2].strip().lower() == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise UsageError(f"{where}: a range is LOW:HIGH or LOW:HIGH:log")
    integer = int in kinds and float not in kinds
    if not (integer or float in kinds):
        raise UsageError(f"{where}: the field is not a number; list its values instead (FIELD=A,B,C)")
    try:
        low, high = (int(p) if integer else float(p) for p in parts[:2])
    except ValueError:
        what = "whole numbers" if integer else "numbers"
        raise UsageError(f"{where}: LOW and HIGH must be {what}") from None
    if not low < high:
        raise UsageError(f"{where}: LOW must be below HIGH")
    if log and low <= 0:
        raise UsageError(f"{where}: a log range needs LOW > 0")
    return Range(low, high, log, integer)


def _value(where: str, text: str, kinds: list[Any], optional: bool) -> Any:
    if optional and text.lower() == "none":
        return None
    for kind in kinds:
        try:
            if kind is bool:
                if text.lower() in ("true", "false"):
                    return text.lower() == "true"
            elif kind in (int, float, str):
                return kind(text)
        except ValueError:
            continue
    raise UsageError(f"{where}: {text!r} is not a value of this field")


def _kinds(hint: Any) -> tuple[list[Any], bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return [a for a in args if a is not type(None)], type(None) in args
    return [hint], False
