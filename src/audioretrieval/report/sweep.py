"""The map's table, text and figure (pipeline.sweep describes its points).

At every point, stage 2 - control, stage 2 - its start and control - its start, per query and paired
(the same start and seed), averaged over every start, seed and query, with a 95 % interval from a
hierarchical bootstrap: the starts resampled, then the seeds within each start, then the queries (the
same queries for every run). The interval thus covers the randomness of training (which stage-1 run
stage 2 starts from, and its own seed) and the sampling of queries. With few starts it is somewhat
narrow: resampling n values underestimates their variance by a factor (n - 1) / n.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audioretrieval.report.compare import COMPARED_METRICS, aligned_scores

MAP_METRICS = COMPARED_METRICS
MAP_METRIC_NAMES = [("ap@10", "AP@10"), ("dcase2025_ap@10", "DCASE25 AP@10")]  # as the table and figure name them
CONTRASTS = {  # name -> (model, baseline) of the paired runs
    "stage2-control": ("runs", "controls"),
    "stage2-start": ("runs", "starts"),
    "control-start": ("controls", "starts"),
}


def hierarchical_bootstrap(diff: np.ndarray, resamples: int, seed: int = 0, confidence: float = 0.95) -> dict:
    """diff [starts, seeds, queries]: per-query differences of paired runs. Their mean, the percentile
    interval of that mean when starts, seeds within a start and queries are resampled with
    replacement, and the standard deviation of the per-run means (the spread between runs)."""
    diff = np.asarray(diff, dtype=np.float64)
    if diff.ndim != 3 or 0 in diff.shape:
        raise ValueError(f"expected differences [starts, seeds, queries], got shape {diff.shape}")
    starts, seeds, queries = diff.shape
    rng = np.random.default_rng(seed)
    means = []
    for size in np.diff(np.r_[0:resamples:500, resamples]):
        weights = rng.multinomial(queries, np.full(queries, 1 / queries), size=size) / queries  # [b, q]
        run_means = np.einsum("skq,bq->bsk", diff, weights)
        picked_starts = rng.integers(0, starts, size=(size, starts))
        picked_seeds = rng.integers(0, seeds, size=(size, starts, seeds))
        rows = np.arange(size)[:, None, None]
        means.append(run_means[rows, picked_starts[:, :, None], picked_seeds].mean(axis=(1, 2)))
    tail = (1 - confidence) / 2
    low, high = np.quantile(np.concatenate(means), [tail, 1 - tail])
    per_run = diff.mean(axis=2).ravel()
    return {
        "difference": float(diff.mean()),
        "low": float(low),
        "high": float(high),
        "runs_sd": float(per_run.std(ddof=1)) if per_run.size > 1 else float("nan"),
    }


def _scores(tables: dict[str, pd.DataFrame], point: dict, metric: str) -> dict[str, np.ndarray]:
    """The point's per-query scores in % as [starts, seeds, queries] (starts: [starts, 1, queries]),
    restricted to the queries every run scores."""
    names = {
        "runs": [name for row in point["runs"] for name in row],
        "controls": [name for row in point["controls"] for name in row],
        "starts": point["starts"],
    }
    everything = [name for group in names.values() for name in group]
    stacked = 100 * aligned_scores([tables[name] for name in everything], metric, everything)
    scored = ~np.isnan(stacked).any(0)
    starts, seeds = len(point["starts"]), len(point["runs"][0])
    runs = stacked[: starts * seeds, scored].reshape(starts, seeds, -1)
    controls = stacked[starts * seeds : 2 * starts * seeds, scored].reshape(starts, seeds, -1)
    return {"runs": runs, "controls": controls, "starts": stacked[2 * starts * seeds :, scored][:, None, :]}


def _targets(point: dict, quality: pd.DataFrame | None, mass: pd.DataFrame | None) -> dict:
    """How good the point's targets are (mean over its starts' ensembles): ROC AUC and AP against the
    truth, and where their mass goes in a batch; NaN where unknown (no truth, or the oracle)."""
    row = {
        "roc_auc": np.nan,
        "average_precision": np.nan,
        "own_clip": np.nan,
        "other_true_clips": np.nan,
        "false_clips": np.nan,
    }
    if quality is not None and point["quality_rows"][0] is not None:
        scored = quality.set_index("model").loc[point["quality_rows"]]
        row.update(roc_auc=scored["roc_auc"].mean(), average_precision=scored["average_precision"].mean())
    if mass is not None and point["weights"]["dist"]:
        at_tau = mass[np.isclose(mass["tau"], point["target_tau"]) & mass["ensemble"].isin(point["ensembles"])]
        row.update(at_tau[["own_clip", "other_true_clips", "false_clips"]].mean().to_dict())
    return row


def point_row(
    point: dict,
    tables: dict[str, pd.DataFrame],
    quality: pd.DataFrame | None,
    mass: pd.DataFrame | None,
    resamples: int,
) -> dict:
    """One row of the map: the point's labels, data and targets, and each contrast per metric."""
    row = {
        **point["labels"],
        "world": point["world"],
        "variant": point["variant"],
        "runs": f"{len(point['starts'])} x {len(point['runs'][0])}",
        "targets": point["targets"],
    }
    if quality is not None:
        first = quality.iloc[0]
        row["true_clips_per_caption"] = 1 + first["true_pairs"] / first["captions"]
    row.update(_targets(point, quality, mass))
    metrics = [m for m in MAP_METRICS if all(m in tables[name] for name in point["starts"])]
    for metric in metrics:
        scores = _scores(tables, point, metric)
        row[f"{metric} start"] = float(scores["starts"].mean())
        for contrast, (model, baseline) in CONTRASTS.items():
            result = hierarchical_bootstrap(scores[model] - scores[baseline], resamples)
            row.update({f"{metric} {contrast}{'' if k == 'difference' else ' ' + k}": v for k, v in result.items()})
    return row


def map_table(
    points: list[dict], tables: dict[str, dict[str, pd.DataFrame]], qualities: dict, masses: dict, resamples: int
) -> pd.DataFrame:
    """Every point's row; beside each, its world's oracle - control (the ceiling) where the map has it.
    tables: world -> run name -> its per-query table; qualities, masses: world -> its quality and
    target-mass tables (demo)."""
    rows = [
        point_row(p, tables[p["world"]], qualities.get(p["world"]), masses.get(p["world"]), resamples) for p in points
    ]
    table = pd.DataFrame(rows)
    ceilings = [_ceiling(point, points) for point in points]
    for metric in MAP_METRICS:
        column = f"{metric} stage2-control"
        if column in table:
            table[f"{metric} oracle-control"] = [np.nan if c is None else table.loc[c, column] for c in ceilings]
    return table


def _ceiling(point: dict, points: list[dict]) -> int | None:
    """The row of the oracle point of `point`'s world whose labels agree with most of its own (the
    ceiling at the same temperature, loss mix, ...), or None when the world has no oracle."""
    oracles = [i for i, p in enumerate(points) if p["world"] == point["world"] and p["targets"] == "oracle"]
    if not oracles:
        return None
    shared = [sum(points[i]["labels"][axis] == value for axis, value in point["labels"].items()) for i in oracles]
    return oracles[int(np.argmax(shared))]


PREDICTORS = {  # {metric}: the metric whose stage 2 - control the quantity is set against
    "false_clips": "target mass on false clips",
    "roc_auc": "targets' ROC AUC",
    "true_clips_per_caption": "clips a caption truly describes",
    "{metric} start": "the start's score",
    "{metric} control-start": "control - start (what plain extra training gains)",
}


def _correlation(x: pd.Series, y: pd.Series) -> float:
    """Pearson r over the points where both are known; NaN with fewer than 3 or no spread."""
    known = x.notna() & y.notna()
    if known.sum() < 3 or x[known].std() == 0 or y[known].std() == 0:
        return np.nan
    return float(np.corrcoef(x[known], y[known])[0, 1])


def _cell(row: pd.Series, column: str) -> str:
    if column not in row or pd.isna(row[column]):
        return "—"
    return f"{row[column]:+.2f} [{row[column + ' low']:+.2f}, {row[column + ' high']:+.2f}]"


def map_markdown(table: pd.DataFrame, axes: list[str], resamples: int) -> str:
    """The map as a researcher reads it: one line per point, then what predicts stage 2 - control."""
    shown = pd.DataFrame({axis: table[axis] for axis in axes})
    if "true_clips_per_caption" in table:
        shown["true clips / caption"] = table["true_clips_per_caption"].round(1)
    for column, title in [("false_clips", "false mass"), ("roc_auc", "ROC AUC")]:
        if column in table and table[column].notna().any():  # unknown without a ground truth (ClothoV2)
            shown[title] = table[column].round(3)
    shown["start AP@10"] = table["ap@10 start"].round(2)
    for metric, name in MAP_METRIC_NAMES:
        if f"{metric} stage2-control" not in table:
            continue
        shown[f"stage 2 − control, {name}"] = [_cell(r, f"{metric} stage2-control") for _, r in table.iterrows()]
        shown[f"sd over runs, {name}"] = table[f"{metric} stage2-control runs_sd"].round(2)
        shown[f"stage 2 − start, {name}"] = [_cell(r, f"{metric} stage2-start") for _, r in table.iterrows()]
        shown[f"control − start, {name}"] = [_cell(r, f"{metric} control-start") for _, r in table.iterrows()]
    text = (
        "## The map: stage 2 against the same extra training\n\n"
        f"Differences in % points, each the mean over every start, seed and query ({table['runs'].iloc[0]} runs: "
        "starts x stage-2 seeds); 95 % intervals from a hierarchical bootstrap (starts, then seeds within a "
        f"start, then queries; {resamples} resamples), so they include the randomness of training; 'sd over "
        "runs': the standard deviation of one run's difference. False mass: the share of a caption's target "
        "on clips it does not describe (a batch of the stage-2 batch size, at the point's temperature).\n\n"
        + shown.to_markdown(index=False)
        + "\n"
    )
    estimated = table[table["targets"] == "estimated"]
    metrics = [(m, name) for m, name in MAP_METRIC_NAMES if f"{m} stage2-control" in table]
    lines = []
    for column, title in PREDICTORS.items():
        r = [
            _correlation(estimated[column.format(metric=m)], estimated[f"{m} stage2-control"])
            if column.format(metric=m) in estimated
            else np.nan
            for m, _ in metrics
        ]
        if not all(np.isnan(r)):
            lines.append(f"| {title} | " + " | ".join("—" if np.isnan(v) else f"{v:+.2f}" for v in r) + " |")
    if lines:
        text += (
            f"\nWhat goes with stage 2 − control across the {len(estimated)} points with estimated targets, "
            "each quantity in the same metric as the difference where it has one (Pearson r; descriptive, "
            "the points are not independent):\n\n"
            + f"| quantity | {' | '.join(name for _, name in metrics)} |\n|---|{'---|' * len(metrics)}\n"
            + "\n".join(lines)
            + "\n"
        )
    return text
