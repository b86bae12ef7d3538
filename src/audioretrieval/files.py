"""Writing outputs so that a killed job never leaves a file that looks complete."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def partial_path(path: str | os.PathLike) -> Path:
    """Where a file is written before it is complete; renamed to `path` on success."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


@contextmanager
def written_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; it becomes `path` only if the block succeeds
    and is deleted otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(text: str, path: str | os.PathLike) -> None:
    with written_atomically(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_report_page(markdown: str, path: str | os.PathLike) -> None:
    """The Markdown tables as a self-contained HTML page, which the Snakemake report displays."""
    body = markdown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    write_text_atomically(f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
                          f'<body><pre style="font-size: 13px">{body}</pre></body></html>\n', path)
