"""Writing tables so that a killed job never leaves a file that looks complete."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .h5audio import partial_path


def write_table_atomically(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table as Parquet (.parquet) or CSV (.csv) under a temporary name, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        elif path.suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            raise ValueError(f"{path}: expected a .parquet or .csv file name")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
