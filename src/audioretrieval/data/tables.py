"""Writing tables so that a killed job never leaves a file that looks complete."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..files import written_atomically


def write_table_atomically(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table as Parquet (.parquet) or CSV (.csv) under a temporary name, then rename."""
    path = Path(path)
    if path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"{path}: expected a .parquet or .csv file name")
    with written_atomically(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)
