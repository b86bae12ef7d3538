"""Extension points found, not listed: the subclasses a package's modules define."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def subclasses_in(package: ModuleType, base: type, key: str) -> dict[str, type]:
    """Every subclass of `base` defined in a module of `package`, by its attribute `key`."""
    found = {}
    for module in pkgutil.iter_modules(package.__path__):
        imported = importlib.import_module(f"{package.__name__}.{module.name}")
        for value in vars(imported).values():
            if isinstance(value, type) and issubclass(value, base) and value.__module__ == imported.__name__:
                found[getattr(value, key)] = value
    return found
