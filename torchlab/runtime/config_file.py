"""A run's config as a TOML file: every run folder's `config.toml`, which `torchlab train --config FILE` reads.

    task = "digits"             # which task, recipe and seed the run used
    recipe = "default"
    seed = 0
    epochs = 20                 # then every field of the task's config, one `key = value` line each
    lr = 0.03
    patience = "none"           # None is the string "none" (TOML has no null), as on the command line
    channels = [32, 64, 128]    # a tuple is an array

A file written by a run names every field, so `torchlab train --config <run>/config.toml --out NEW`
replays that run; a file written by hand may name only some fields (the rest come from the recipe).
Reading checks each key against the task's config class: an unknown key or a value of the wrong type
is a one-line UsageError naming the key and the file. No torch here: the CLI checks a file before
importing it.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
import tempfile
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchlab.config import as_dict, field_names, field_types
from torchlab.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as a package (a dependency there)
    import tomli as tomllib

CONFIG_FILE = "config.toml"  # the name of the file in every run folder
RUN_KEYS = ("task", "recipe", "seed")  # what a file says about the run besides the config fields
NONE = "none"  # how None is written


@dataclass(frozen=True)
class ConfigFile:
    """A config file as read: the run's task, recipe and seed (None when the file leaves one out) and its fields."""

    path: Path
    task: str | None
    recipe: str | None
    seed: int | None
    values: dict[str, Any]  # config fields as TOML gave them; `typed_values` checks them against a config class


def config_toml(task: str, recipe: str, seed: int, cfg: Any) -> str:
    """The text of a config file for a run of `task` with `recipe`, `seed` and config `cfg` (every field)."""
    lines = [
        "# torchlab run config: replay it with `torchlab train --config THIS_FILE --out NEW_FOLDER`",
        f"task = {_toml_value(task)}",
        f"recipe = {_toml_value(recipe)}",
        f"seed = {seed}",
        "",
    ]
    lines += [f"{name} = {_toml_value(value)}" for name, value in as_dict(cfg).items()]
    return "\n".join(lines) + "\n"


def write_config_file(path: str | os.PathLike, task: str, recipe: str, seed: int, cfg: Any) -> Path:
    """Write `config_toml(...)` to `path` atomically (a temporary file renamed over it)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(config_toml(task, recipe, seed, cfg))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_config_file(path: str | os.PathLike) -> ConfigFile:
    """Parse a config file; a missing file, bad TOML, a table or a mistyped run key is a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--config {path} does not exist or is not a file; give a TOML file such as <run>/config.toml")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not a TOML file ({exc}); write one `key = value` line per field") from None
    for key, value in data.items():
        if isinstance(value, dict):
            raise UsageError(f"{path}: [{key}] is a table; a torchlab config file holds only `key = value` lines")
    task, recipe, seed = data.pop("task", None), data.pop("recipe", None), data.pop("seed", None)
    for key, value in (("task", task), ("recipe", recipe)):
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{path}: key {key!r} must be a string, got {value!r}")
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32):
        raise UsageError(f"{path}: key 'seed' must be a whole number in 0..4294967295, got {seed!r}")
    return ConfigFile(path, task, recipe, seed, data)


def typed_values(file: ConfigFile, config_class: type) -> dict[str, Any]:
    """The file's config fields as `config_class` types them (None from "none", tuples from arrays, ints as floats).

    A key that is not a field, or a value that does not fit the field's type, is a UsageError naming both.
    """
    names, hints = field_names(config_class), field_types(config_class)
    out = {}
    for key, value in file.values.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(
                f"{file.path}: unknown key {key!r}; {hint}the keys are {', '.join(RUN_KEYS)} and the "
                f"fields of {config_class.__name__} (torchlab train TASK --help lists them)"
            )
        try:
            out[key] = _typed(value, hints[key])
        except TypeError:
            raise UsageError(f"{file.path}: key {key!r} must be {_type_words(hints[key])}, got {value!r}") from None
    return out


def _typed(value: Any, hint: Any) -> Any:
    """`value` converted to `hint` (a field's type), or TypeError."""
    kinds, optional = _kinds(hint)
    if optional and value == NONE:
        return None
    for kind in kinds:
        if typing.get_origin(kind) is tuple:
            if isinstance(value, list):
                item = typing.get_args(kind)[0]
                return tuple(_typed(v, item) for v in value)
        elif kind is bool:
            if isinstance(value, bool):
                return value
        elif kind is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif kind is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif kind is str:
            if isinstance(value, str):
                return value
    raise TypeError(value)


def _kinds(hint: Any) -> tuple[list[Any], bool]:
    """(the non-None types of a hint, whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return [a for a in args if a is not type(None)], type(None) in args
    return [hint], False


def _type_words(hint: Any) -> str:
    words = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    kinds, optional = _kinds(hint)
    parts = [
        f"an array of {words.get(typing.get_args(k)[0], 'values')}"
        if typing.get_origin(k) is tuple
        else words.get(k, str(k))
        for k in kinds
    ]
    return " or ".join(parts + ([f'"{NONE}"'] if optional else []))


def _toml_value(value: Any) -> str:
    if value is None:
        return json.dumps(NONE)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's


__all__ = ["CONFIG_FILE", "ConfigFile", "config_toml", "read_config_file", "typed_values", "write_config_file"]
