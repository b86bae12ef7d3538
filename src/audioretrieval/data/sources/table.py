"""A dataset from a folder of audio and a table: a CSV or Parquet manifest of (file, caption[, split])
rows, any number of captions per clip, each file a path below `audio_dir`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from audioretrieval.data.source import MANIFEST_COLUMNS, DatasetSource, Manifest, ManifestError, split_by_rule


class TableSource(DatasetSource):
    name = "table"

    def inputs(self) -> list[str]:
        return [self.settings["manifest"]]

    def read(self) -> Manifest:
        path = Path(self.settings["manifest"])
        if not path.is_file():
            raise ManifestError(f"{self.where}.manifest {str(path)!r}: no such file")
        if path.suffix not in (".csv", ".parquet"):
            raise ManifestError(f"{self.where}.manifest {str(path)!r}: expected a .csv or .parquet file")
        try:
            if path.suffix == ".parquet":
                raw = pd.read_parquet(path)
            else:
                raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        except (UnicodeDecodeError, ValueError, OSError) as exc:  # pyarrow's and pandas' parse errors are ValueErrors
            raise ManifestError(f"{path}: cannot be read as a UTF-8 {path.suffix[1:]} table ({exc})") from exc
        rule = self.settings.get("split", {"validation": 0.0, "evaluation": 0.0})  # absent: all development
        by_column = rule == "column"
        needed = ["file", "caption"] + (["split"] if by_column else [])
        absent = [column for column in needed if column not in raw.columns]
        if absent:
            raise ManifestError(
                f"{path}: no column {' or '.join(absent)} (found {list(raw.columns)}); expected "
                f"{', '.join(needed)}" + ("" if by_column else f" ({self.where}.split assigns the splits)")
            )
        if raw.empty:
            raise ManifestError(f"{path}: the manifest has no rows")
        rows = pd.DataFrame(
            {
                "file": raw["file"].fillna("").astype(str),  # a Parquet null is an empty cell
                "caption": raw["caption"].fillna("").astype(str),
                "split": raw["split"].fillna("").astype(str) if by_column else split_by_rule(raw["file"], rule),
                "origin": [f"{path} row {i + 1}" for i in range(len(raw))],  # rows, not lines: a caption may span lines
            },
            columns=MANIFEST_COLUMNS,
        )
        return Manifest(Path(self.settings["audio_dir"]), rows, str(path))
