"""Report pages: Markdown tables as self-contained HTML pages, which the Snakemake report displays."""

from __future__ import annotations

import os

import numpy as np

from audioretrieval.files import write_text_atomically


def write_report_page(markdown: str, path: str | os.PathLike) -> None:
    """The Markdown tables as one self-contained HTML page."""
    body = markdown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    write_text_atomically(
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        f'<body><pre style="font-size: 13px">{body}</pre></body></html>\n',
        path,
    )


def spread(rows: int, count: int) -> np.ndarray:
    """`count` of `rows` rows spread evenly over them (deterministic)."""
    return np.unique(np.linspace(0, rows - 1, min(count, rows)).round().astype(int))
