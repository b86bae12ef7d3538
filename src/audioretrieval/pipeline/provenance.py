"""What code a workflow script runs: the script and every library module it imports, transitively.

Rules pass a digest of that code as a parameter, so that editing any of it reruns the rule (and
only the rules that run it): Snakemake itself tracks only a script's modification time.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "audioretrieval"
# Packages whose modules are found at run time (pkgutil), not imported by name: importing the
# package runs every module in it (model/audio.py's families, data/source.py's sources).
DISCOVERED = ("model/encoders", "data/sources")


def _module_file(package_dir: Path, dotted: str) -> Path | None:
    """The file of `audioretrieval.<dotted>` (a module or a package's __init__), if it exists."""
    base = package_dir.joinpath(*dotted.split(".")) if dotted else package_dir
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path, package_dir: Path) -> frozenset[Path]:
    """Library files a source file imports directly (absolute or relative imports, at any depth)."""
    stat = path.stat()
    return _imported_by_version(path, package_dir, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _imported_by_version(path: Path, package_dir: Path, mtime_ns: int, size: int) -> frozenset[Path]:
    """_imported, parsed once per version of the file: a workflow asks for the same modules for
    every rule (and, in a map, every world)."""
    here = path.parent.relative_to(package_dir).parts if path.is_relative_to(package_dir) else None
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level and here is not None:
                parent = list(here[: len(here) - node.level + 1])
                base = ".".join([PACKAGE, *parent, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names = [base] + [f"{base}.{a.name}" for a in node.names]  # `from pkg import module`
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                file = _module_file(package_dir, name[len(PACKAGE) + 1 :])
                if file:
                    found.add(file)
    for package in DISCOVERED:
        if package_dir / package / "__init__.py" in found:
            found.update((package_dir / package).glob("*.py"))
    return frozenset(found)


def code_files(script: Path, package_dir: Path) -> list[Path]:
    """The script and the library files it reaches through imports, in a stable order."""
    seen, todo = {script}, [script]
    while todo:
        for file in _imported(todo.pop(), package_dir) - seen:
            seen.add(file)
            todo.append(file)
    return sorted(seen, key=str)


def code_digest(script: str | Path, package_dir: str | Path) -> str:
    """A short digest of the content (not the location or time) of the code a script runs."""
    script, package_dir = Path(script), Path(package_dir)
    digest = hashlib.sha256()
    for file in code_files(script, package_dir):
        name = script.name if file == script else file.relative_to(package_dir.parent).as_posix()
        digest.update(name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]
