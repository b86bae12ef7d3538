"""Correspondence tables for multi-positive evaluation: which clips each query caption describes.

The canonical form is long: one row per (query, relevant_file_name). It is read from
- the demo's ground truth (`demo_correspondences_{split}.parquet`: caption, relevant_file_name), or
- a CSV in the layout of the DCASE 2025 Task 6 annotations: a query column (`query` or `caption`)
  and a column of relevant audio file names: one name per row (`relevant_file_name`, `file_name`,
  `audio_file_name`) or a list of names per row (`file_names`, `audio_file_names`, `audio_files`:
  a Python/JSON list, or names separated by ';'). A cell that is a list literal is read as a list
  in any column; file names themselves may contain ';' (HTML entities such as `&#39;` do).
Queries are matched to a split's captions by their exact text (captions with the same text share
their relevant clips); every caption the table mentions also counts its own clip as relevant, and
captions it does not mention are left out of the multi-positive metrics.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

QUERY_COLUMNS = ("query", "caption")
NAME_COLUMNS = ("relevant_file_name", "file_name", "audio_file_name", "file_names", "audio_file_names", "audio_files")
LIST_COLUMNS = ("file_names", "audio_file_names", "audio_files")


class RelevanceMismatch(ValueError):
    pass


def _pick(columns, candidates, path, what) -> str:
    for name in candidates:
        if name in columns:
            return name
    raise RelevanceMismatch(f"{path}: no {what} column; expected one of {list(candidates)}, found {list(columns)}")


def _names_in(cell, is_list_column: bool) -> list[str]:
    if isinstance(cell, (list, tuple, np.ndarray)):
        return [str(n).strip() for n in cell]
    text = str(cell).strip()
    if text.startswith("[") and text.endswith("]"):
        return [str(n).strip() for n in ast.literal_eval(text)]
    if is_list_column:
        return [n.strip() for n in text.split(";") if n.strip()]
    return [text] if text else []


def read_relevance(path: str | os.PathLike) -> pd.DataFrame:
    """The long table (query, relevant_file_name) of a Parquet or CSV correspondence file."""
    path = Path(path)
    raw = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=False)
    query = _pick(raw.columns, QUERY_COLUMNS, path, "query")
    names = _pick(raw.columns, [c for c in NAME_COLUMNS if c != query], path, "relevant file name")
    rows = [(str(q).strip(), name) for q, cell in zip(raw[query], raw[names])
            for name in _names_in(cell, names in LIST_COLUMNS)]
    if not rows:
        raise RelevanceMismatch(f"{path}: the correspondence table is empty")
    return pd.DataFrame(rows, columns=["query", "relevant_file_name"]).drop_duplicates(ignore_index=True)


def relevance_matrix(file_names: list[str], captions: list[str], clip_of_caption: np.ndarray,
                     table: pd.DataFrame, source: str = "correspondence table") -> torch.Tensor:
    """Boolean [captions, clips]: the table's relevant clips of each caption's text, plus its own clip.

    Captions whose text the table does not mention get no row of their own (all False); a query or
    file name of the table that matches nothing in the split is an error naming the first offenders.
    """
    clip_row = {name: i for i, name in enumerate(file_names)}
    caption_rows: dict[str, list[int]] = {}
    for row, text in enumerate(captions):
        caption_rows.setdefault(text.strip(), []).append(row)
    unknown_queries = sorted(set(table["query"]) - set(caption_rows))
    unknown_files = sorted(set(table["relevant_file_name"]) - set(clip_row))
    problems = []
    if unknown_queries:
        problems.append(f"{len(unknown_queries)} queries match no caption of the split, e.g. {unknown_queries[:3]}")
    if unknown_files:
        problems.append(f"{len(unknown_files)} file names match no clip of the split, e.g. {unknown_files[:3]}")
    if problems:
        raise RelevanceMismatch(f"{source}: " + "; ".join(problems))
    relevant = torch.zeros((len(captions), len(file_names)), dtype=torch.bool)
    pairs = pd.DataFrame({"query": [c.strip() for c in captions], "row": np.arange(len(captions))}).merge(table, on="query")
    relevant[torch.tensor(pairs["row"].to_numpy()),
             torch.tensor(pairs["relevant_file_name"].map(clip_row).to_numpy(np.int64))] = True
    annotated = relevant.any(1)
    relevant[annotated, torch.as_tensor(clip_of_caption)[annotated]] = True
    return relevant
