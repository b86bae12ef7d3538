"""Paired comparison of two models scored on the same queries: the mean difference of a per-query
score with a confidence interval from a seeded paired bootstrap over queries."""

from __future__ import annotations

import numpy as np
import pandas as pd

QUERY_KEYS = ["file_name", "caption_index"]


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0,
                     confidence: float = 0.95, chunk: int = 500) -> dict:
    """Mean of a - b over queries and the percentile interval of that mean over `resamples`
    resamplings of the queries (the same queries for both models: paired)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if diff.ndim != 1 or len(diff) == 0:
        raise ValueError(f"expected two equally long, non-empty per-query score vectors, got shapes {np.shape(a)}, {np.shape(b)}")
    rng = np.random.default_rng(seed)
    means = np.concatenate([
        diff[rng.integers(0, len(diff), size=(min(chunk, resamples - start), len(diff)))].mean(1)
        for start in range(0, resamples, chunk)
    ])
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"difference": float(diff.mean()), "low": float(low), "high": float(high), "queries": len(diff),
            "excludes_zero": bool(low > 0 or high < 0)}


def aligned_scores(tables: list[pd.DataFrame], column: str, names: list[str] | None = None) -> np.ndarray:
    """[models, queries] of one per-query column, after checking every table lists the same queries
    in the same order (so that differences are paired)."""
    names = names or [f"table {i}" for i in range(len(tables))]
    reference = tables[0][QUERY_KEYS]
    for name, table in zip(names[1:], tables[1:]):
        if not table[QUERY_KEYS].equals(reference):
            raise ValueError(f"{name} was not scored on the same queries as {names[0]}; cannot pair them")
    missing = [name for name, table in zip(names, tables) if column not in table]
    if missing:
        raise KeyError(f"{missing} have no per-query column {column!r}")
    return np.stack([table[column].to_numpy(np.float64) for table in tables])
