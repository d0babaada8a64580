"""Finding the plug-in modules of a package (models, tasks, commands) by listing its files."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType


def import_submodules(package: str, path: Iterable[str], skip: tuple[str, ...] = ()) -> list[ModuleType]:
    """Import every module directly inside `package` (its `__path__`), in name order, except `skip`."""
    names = sorted(info.name for info in pkgutil.iter_modules(path) if info.name not in skip)
    return [importlib.import_module(f"{package}.{name}") for name in names]
