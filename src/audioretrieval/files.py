"""Writing outputs so that a killed job never leaves a file that looks complete; a file's content digest."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


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


def write_bytes_atomically(data: bytes, path: str | os.PathLike) -> None:
    with written_atomically(path) as tmp:
        tmp.write_bytes(data)


def write_table_atomically(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """A table as Parquet (.parquet) or CSV (.csv)."""
    path = Path(path)
    if path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"{path}: expected a .parquet or .csv file name")
    with written_atomically(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)


def save_torch_atomically(obj, path: str | os.PathLike) -> None:
    """An object torch.save can write (checkpoints, training state)."""
    import torch  # only the jobs that write checkpoints pay for importing it

    with written_atomically(path) as tmp:
        torch.save(obj, tmp)


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """The hex digest of a file's bytes (`algorithm`: md5, sha256, ...), read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()
