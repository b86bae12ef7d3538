"""Multi-positive relevance annotations of query captions, matched to a split as DCASE 2025 Task 6 does.

A relevance table gives, for each query (a caption text), the audio files it describes. It is read from
- the DCASE 2025 Task 6 layout (`resources/metadata_eval.csv` of CPJKU/dcase2025_task6_baseline):
  columns `query` and `audio_filenames`, each cell a Python list literal of file names, one row per
  query; or
- a long table, one row per (query, relevant file): a query column (`query` or `caption`) and a file
  name column (`relevant_file_name`, `file_name` or `audio_file_name`), such as the demo's ground
  truth; the rows of one query are gathered.
As the baseline defines it, a query's relevant clips are exactly the files listed (a caption's own
clip counts only if it is listed), and each query is scored once, by the first caption of the split
with exactly its text. Texts and file names are compared after Unicode NFC normalisation, so that a
name written in decomposed form still finds its clip.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audioretrieval.data.captions import nfc

QUERY_COLUMNS = ("query", "caption")
LIST_COLUMNS = ("audio_filenames", "file_names", "audio_file_names", "audio_files")
NAME_COLUMNS = ("relevant_file_name", "file_name", "audio_file_name")


class RelevanceMismatch(ValueError):
    pass


def _pick(columns, candidates) -> str | None:
    return next((name for name in candidates if name in columns), None)


def _names_in(cell, path, row: int) -> list[str]:
    """The file names of one list cell: a list, or a Python list literal."""
    names = cell
    if isinstance(cell, str):
        try:
            names = ast.literal_eval(cell.strip())
        except (ValueError, SyntaxError) as exc:
            raise RelevanceMismatch(
                f"{path}, row {row + 1}: expected a list literal of file names such as "
                f"\"['a.wav', 'b.wav']\", found {cell[:80]!r}"
            ) from exc
    if not isinstance(names, (list, tuple, np.ndarray)) or not all(isinstance(n, str) for n in names) or not len(names):
        raise RelevanceMismatch(
            f"{path}, row {row + 1}: expected a non-empty list of file names, found {str(cell)[:80]!r}"
        )
    return [nfc(n) for n in names]


def read_relevance(path: str | os.PathLike) -> pd.DataFrame:
    """The queries of a Parquet or CSV relevance table: columns `query` (NFC text) and `relevant`
    (the list of relevant file names, NFC), one row per query in the file's order."""
    path = Path(path)
    raw = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
    query = _pick(raw.columns, QUERY_COLUMNS)
    lists = _pick(raw.columns, LIST_COLUMNS)
    names = _pick(raw.columns, NAME_COLUMNS)
    if query is None or (lists is None and names is None):
        raise RelevanceMismatch(
            f"{path}: expected a query column {list(QUERY_COLUMNS)} and either a column of file name lists "
            f"{list(LIST_COLUMNS)} or one of single file names {list(NAME_COLUMNS)}; found {list(raw.columns)}"
        )
    if raw.empty:
        raise RelevanceMismatch(f"{path}: the relevance table is empty")
    queries = [nfc(q) for q in raw[query]]
    if lists is not None:
        table = pd.DataFrame({"query": queries, "relevant": [_names_in(c, path, i) for i, c in enumerate(raw[lists])]})
        repeated = table.loc[table["query"].duplicated(), "query"].tolist()
        if repeated:
            raise RelevanceMismatch(f"{path}: {len(repeated)} queries appear in more than one row, e.g. {repeated[:3]}")
        return table
    long = pd.DataFrame({"query": queries, "name": [nfc(n) for n in raw[names]]}).drop_duplicates()
    gathered = long.groupby("query", sort=False)["name"].agg(list)
    return pd.DataFrame({"query": gathered.index, "relevant": gathered.to_list()})


def match_queries(
    table: pd.DataFrame, file_names: list[str], captions: list[str], source: str = "relevance table"
) -> tuple[np.ndarray, torch.Tensor]:
    """Each query's caption row (the first caption with exactly its text) and the boolean
    [queries, clips] matrix of its relevant clips. A query or file name that matches nothing in the
    split is an error naming the first offenders."""
    clip_row: dict[str, int] = {}
    for i, name in enumerate(file_names):
        clip_row.setdefault(nfc(name), i)
    caption_row: dict[str, int] = {}
    for row, text in enumerate(captions):
        caption_row.setdefault(nfc(text), row)
    unknown_queries = [q for q in table["query"] if q not in caption_row]
    unknown_files = sorted({n for names in table["relevant"] for n in names} - set(clip_row))
    problems = []
    if unknown_queries:
        problems.append(f"{len(unknown_queries)} queries match no caption of the split, e.g. {unknown_queries[:3]}")
    if unknown_files:
        problems.append(f"{len(unknown_files)} file names match no clip of the split, e.g. {unknown_files[:3]}")
    if problems:
        raise RelevanceMismatch(f"{source}: " + "; ".join(problems))
    rows = np.asarray([caption_row[q] for q in table["query"]], dtype=np.int64)
    relevant = torch.zeros((len(table), len(file_names)), dtype=torch.bool)
    for query, names in enumerate(table["relevant"]):
        relevant[query, [clip_row[n] for n in names]] = True
    return rows, relevant
