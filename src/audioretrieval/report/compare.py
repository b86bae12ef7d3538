"""Paired comparison of two models scored on the same queries: the mean difference of a per-query
score with a confidence interval from a seeded paired bootstrap over queries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audioretrieval.evaluation import sets

QUERY_KEYS = ["file_name", "caption_index"]


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0, confidence: float = 0.95, chunk: int = 500
) -> dict:
    """Mean of a - b over queries and the percentile interval of that mean over `resamples`
    resamplings of the queries (the same queries for both models: paired)."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"expected per-query scores of the same queries, got shapes {np.shape(a)} and {np.shape(b)}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if diff.ndim != 1 or len(diff) == 0:
        raise ValueError(
            f"expected two equally long, non-empty per-query score vectors, got shapes {np.shape(a)}, {np.shape(b)}"
        )
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [
            diff[rng.integers(0, len(diff), size=(min(chunk, resamples - start), len(diff)))].mean(1)
            for start in range(0, resamples, chunk)
        ]
    )
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {
        "difference": float(diff.mean()),
        "low": float(low),
        "high": float(high),
        "queries": len(diff),
        "excludes_zero": bool(low > 0 or high < 0),
    }


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


def comparison_rows(
    scores: dict[str, np.ndarray], pairs: list[tuple[str, str, str]], resamples: int, seed: int
) -> list[dict]:
    """One row per (what, model, baseline): the paired bootstrap of model - baseline per-query scores."""
    return [
        {
            "comparison": what,
            "model": model,
            "baseline": baseline,
            **paired_bootstrap(scores[model], scores[baseline], resamples, seed),
        }
        for what, model, baseline in pairs
    ]


def comparisons_table(
    per_query: dict[str, pd.DataFrame],
    groups: dict[str, list[str]],
    pairs: list[tuple[str, str, str]],
    metrics: list[str],
    resamples: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired comparisons of groups of models scored on the same queries.

    per_query: model -> its per-query table (the ranks.parquet of evaluation.score); groups: a name -> the
    models whose per-query scores it averages (the seeds of a run, the stage-1 runs); pairs:
    (what, group, baseline group). For each metric column, queries where any model has no score
    (DCASE 2025 AP of a caption that is no query) are left out. Differences are in % points.
    """
    names = list(per_query)
    rows = []
    for metric in metrics:
        stacked = aligned_scores([per_query[n] for n in names], metric, names)
        scored = ~np.isnan(stacked).any(0)
        index = {n: i for i, n in enumerate(names)}
        scores = {
            group: 100 * stacked[[index[m] for m in members]][:, scored].mean(0) for group, members in groups.items()
        }
        rows += [{"metric": metric, **row} for row in comparison_rows(scores, pairs, resamples, seed)]
    return pd.DataFrame(rows)


def group_mean(per_query: dict[str, pd.DataFrame], members: list[str], metric: str) -> float:
    """The mean per-query score of a group of models (over its models and the queries they score)."""
    return float(np.nanmean(np.stack([per_query[m][metric].to_numpy(np.float64) for m in members])))


def realised_share(
    per_query: dict[str, pd.DataFrame],
    groups: dict[str, list[str]],
    estimated: str,
    control: str,
    oracle: str,
    metric: str,
) -> float:
    """(estimated - control) / (oracle - control) of the groups' mean scores: the share of the gain that
    ground-truth targets give over the control which estimated targets realise; NaN when the oracle
    does not beat the control (there is no gain to share)."""
    means = {g: group_mean(per_query, groups[g], metric) for g in (estimated, control, oracle)}
    possible = means[oracle] - means[control]
    return (means[estimated] - means[control]) / possible if possible > 0 else float("nan")


def comparisons_markdown(table: pd.DataFrame, resamples: int) -> str:
    """The comparisons table with 'difference [low, high]' cells in % points."""
    shown = pd.DataFrame(
        {
            "metric": table["metric"],
            "comparison": table["comparison"],
            "model": table["model"],
            "baseline": table["baseline"],
            "difference [95 % interval]": [
                f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
                for d, lo, hi in zip(table["difference"], table["low"], table["high"])
            ],
            "excludes 0": ["yes" if e else "no" for e in table["excludes_zero"]],
            "queries": table["queries"],
        }
    )
    return (
        f"Paired differences of per-query scores in % points, 95 % intervals from a paired bootstrap over "
        f"queries ({resamples} resamples). They cover the sampling of queries, not the randomness of training "
        f"(each run here is one start and its seeds averaged): another start or seed can move a run by more. "
        f"The map (docs/map.md) has intervals that include it.\n\n" + shown.to_markdown(index=False) + "\n"
    )


COMPARED_METRICS = ("ap@10", "dcase2025_ap@10")


def comparisons_text(
    per_query: dict[str, pd.DataFrame],
    groups: dict[str, list[str]],
    table: pd.DataFrame,
    shares: list[tuple[str, str, str]],
    resamples: int,
) -> str:
    """The comparisons as a researcher reads them (Markdown): the table and, with an oracle, the share
    of its gain over the control that each run's estimated targets realise."""
    text = comparisons_markdown(table, resamples)
    metrics = list(dict.fromkeys(table["metric"]))
    for estimated, control, oracle in shares:
        values = {m: realised_share(per_query, groups, estimated, control, oracle, m) for m in metrics}
        notes = [
            note
            for note, applies in (
                ("nan: the oracle does not beat the control", any(np.isnan(v) for v in values.values())),
                ("above 1: the estimated targets gain more than the oracle's", any(v > 1 for v in values.values())),
            )
            if applies
        ]
        realised = ", ".join(f"{value:.2f} in mean {m}" for m, value in values.items())
        text += (
            f"\nShare of the possible gain over the control that {estimated}'s estimated targets realise, "
            f"({estimated} - {control}) / ({oracle} - {control}): {realised}"
            + (f" ({'; '.join(notes)})" if notes else "")
            + "\n"
        )
    return text


def set_comparisons(
    per_query: dict[str, dict[str, pd.DataFrame]],
    groups: dict[str, list[str]],
    pairs: list[tuple[str, str, str]],
    shares: list[tuple[str, str, str]],
    resamples: int,
) -> tuple[pd.DataFrame, str]:
    """The comparisons on each test set (name -> model -> per-query table), in COMPARED_METRICS where
    every model has them: one table, each row led by its set, and the text with a section per set."""
    tables, texts = {}, []
    for name, scored in per_query.items():
        metrics = [m for m in COMPARED_METRICS if all(m in t for t in scored.values())]
        table = comparisons_table(scored, groups, pairs, metrics, resamples)
        tables[name] = table
        texts.append(
            f"## Comparisons on {sets.title(name)}\n\n" + comparisons_text(scored, groups, table, shares, resamples)
        )
    return sets.stacked(tables), "\n".join(texts)
