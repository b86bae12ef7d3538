"""The map's table, text and figure (pipeline.sweep describes its points).

At every point, stage 2 - control, stage 2 - its start and control - its start, per query and paired
(the same start and seed), averaged over every start, seed and query, with two 95 % intervals:

- at the level of starts, the one claims rest on: a t-interval over the per-start means (each over
  the start's seeds and the queries), mean +- t(n - 1) sd / sqrt(n). The starts are the independent
  units (a stage-1 run and every stage-2 run from it share its randomness); for a balanced design it
  is what a mixed model with a random start effect gives;
- a hierarchical bootstrap: the starts resampled, then the seeds within each start, then the queries
  (the same queries for every run). With few starts it is too narrow: resampling n values
  underestimates their variance by (n - 1) / n and ignores the t-distribution's tails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from audioretrieval.evaluation import sets
from audioretrieval.pipeline.config import MAP_POINT_COLUMNS
from audioretrieval.report.compare import aligned_scores

# the challenge's multi-positive mAP@16 first (the headline), own-clip AP@10 (the paper's), the DCASE AP@10
MAP_METRIC_NAMES = [("dcase2025_ap@16", "DCASE25 AP@16"), ("ap@10", "AP@10"), ("dcase2025_ap@10", "DCASE25 AP@10")]
MAP_METRICS = tuple(metric for metric, _ in MAP_METRIC_NAMES)
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


def start_interval(diff: np.ndarray, confidence: float = 0.95) -> dict:
    """diff [starts, seeds, queries]: the t-interval of the mean over the per-start means (df: starts
    - 1) and the standard deviation between starts; NaN with a single start."""
    means = np.asarray(diff, dtype=np.float64).mean(axis=(1, 2))
    if means.size < 2:
        return {"start_low": np.nan, "start_high": np.nan, "starts_sd": np.nan}
    sd = float(means.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, means.size - 1)) * sd / np.sqrt(means.size)
    return {"start_low": float(means.mean() - half), "start_high": float(means.mean() + half), "starts_sd": sd}


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


SHARES = ("own_clip", "other_true_clips", "false_clips", "off_own_precision")


def _targets(point: dict, quality: pd.DataFrame | None, mass: pd.DataFrame | None) -> dict:
    """How good the point's targets are (mean over its starts' ensembles): ROC AUC and AP of the
    estimates against the truth, and where the target its loss trains towards (rule and loss mix
    included) puts a caption's mass in a batch; NaN where unknown (no truth, or the oracle's ROC AUC)."""
    row = {"roc_auc": np.nan, "average_precision": np.nan, **dict.fromkeys(SHARES, np.nan)}
    if quality is not None and point["quality_rows"][0] is not None:
        scored = quality.set_index("model").loc[point["quality_rows"]]
        row.update(roc_auc=scored["roc_auc"].mean(), average_precision=scored["average_precision"].mean())
    if mass is not None and point["weights"]["dist"]:
        weights = point["weights"]
        same = (
            np.isclose(mass["tau"], point["target_tau"])
            & mass["ensemble"].isin(point["ensembles"])
            & (mass["rule"] == point["rule"])
            & np.isclose(mass["dist_weight"], weights["dist"])
            & np.isclose(mass["sup_weight"], weights["sup"])
        )
        row.update(mass.loc[same, list(SHARES)].mean().to_dict())
    return row


def point_row(
    point: dict,
    tables: dict[str, pd.DataFrame],
    quality: pd.DataFrame | None,
    mass: pd.DataFrame | None,
    resamples: int,
) -> dict:
    """One row of the map: the point's labels, rule, data and targets, and each contrast per metric
    with both intervals."""
    row = {
        **point["labels"],
        "world": point["world"],
        "variant": point["variant"],
        "rule": point["rule"],
        "target_tau": point["target_tau"],
        "dist_weight": point["weights"]["dist"],
        "sup_weight": point["weights"]["sup"],
        "select_by": point["select_by"],
        "starts": len(point["starts"]),
        "seeds": len(point["runs"][0]),
        "runs": f"{len(point['starts'])} x {len(point['runs'][0])}",
        "target_source": point["targets"],
    }
    assert set(row) - set(point["labels"]) == MAP_POINT_COLUMNS - {"set"}, (
        "config.MAP_POINT_COLUMNS lists them"
    )  # set: set_maps
    if quality is not None:
        first = quality.iloc[0]
        row["true_clips_per_caption"] = 1 + first["true_pairs"] / first["captions"]
    row.update(_targets(point, quality, mass))
    metrics = [m for m in MAP_METRICS if all(m in tables[name] for name in point["starts"])]
    for metric in metrics:
        scores = _scores(tables, point, metric)
        row[f"{metric} start"] = float(scores["starts"].mean())
        for contrast, (model, baseline) in CONTRASTS.items():
            diff = scores[model] - scores[baseline]
            result = {**hierarchical_bootstrap(diff, resamples), **start_interval(diff)}
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
    "own_clip": "target's share on the own clip",
    "off_own_precision": "precision of the mass off the own clip",
    "false_clips": "target's share on false clips",
    "roc_auc": "estimates' ROC AUC",
    "true_clips_per_caption": "clips a caption truly describes",
    "{metric} control-start": "control − start (what plain extra training gains)",
}


def _correlation(x: pd.Series, y: pd.Series) -> float:
    """Pearson r over the points where both are known; NaN with fewer than 3 or no spread."""
    known = x.notna() & y.notna()
    if known.sum() < 3 or x[known].std() == 0 or y[known].std() == 0:
        return np.nan
    return float(np.corrcoef(x[known], y[known])[0, 1])


def _centred(values: pd.Series, worlds: pd.Series) -> pd.Series:
    """Each value less the mean of its world's (within-world variation only)."""
    return values - values.groupby(worlds).transform("mean")


def _interval(row: pd.Series, column: str, low: str = "low", high: str = "high") -> str:
    if column not in row or pd.isna(row[column]):
        return "—"
    if pd.isna(row.get(f"{column} {low}", np.nan)):
        return f"{row[column]:+.2f}"
    return f"{row[column]:+.2f} [{row[f'{column} {low}']:+.2f}, {row[f'{column} {high}']:+.2f}]"


def _cell(row: pd.Series, column: str) -> str:
    return _interval(row, column)


def _start_cell(row: pd.Series, column: str) -> str:
    return _interval(row, column, "start_low", "start_high")


def _predictor_lines(table: pd.DataFrame, metrics: list[tuple[str, str]], centre: bool) -> list[str]:
    lines = []
    for column, title in PREDICTORS.items():
        cells = []
        for metric, _ in metrics:
            x_name, y_name = column.format(metric=metric), f"{metric} stage2-control"
            if x_name not in table:
                cells.append(np.nan)
                continue
            x, y = table[x_name], table[y_name]
            if centre:
                x, y = _centred(x, table["world"]), _centred(y, table["world"])
            cells.append(_correlation(x, y))
        if not all(np.isnan(cells)):
            lines.append(f"| {title} | " + " | ".join("—" if np.isnan(v) else f"{v:+.2f}" for v in cells) + " |")
    return lines


def map_markdown(table: pd.DataFrame, axes: list[str], resamples: int, heading: str = "The map") -> str:
    """The map as a researcher reads it: one line per point, then what goes with stage 2 - control."""
    shown = pd.DataFrame({axis: table[axis] for axis in axes})
    shown["rule"] = table["rule"]
    if "true_clips_per_caption" in table:
        shown["true clips / caption"] = table["true_clips_per_caption"].round(1)
    for column, title in [
        ("own_clip", "own"),
        ("other_true_clips", "other true"),
        ("false_clips", "false"),
        ("off_own_precision", "off-own precision"),
        ("roc_auc", "ROC AUC"),
    ]:
        if column in table and table[column].notna().any():  # unknown without a ground truth (ClothoV2)
            shown[title] = table[column].round(3)
    metrics = [(m, name) for m, name in MAP_METRIC_NAMES if f"{m} stage2-control" in table]
    for metric, name in metrics:
        column = f"{metric} stage2-control"
        shown[f"stage 2 − control, {name} [starts]"] = [_start_cell(r, column) for _, r in table.iterrows()]
        shown[f"[bootstrap], {name}"] = [
            "—" if pd.isna(r[column]) else f"[{r[column + ' low']:+.2f}, {r[column + ' high']:+.2f}]"
            for _, r in table.iterrows()
        ]
        shown[f"sd between starts, {name}"] = table[f"{column} starts_sd"].round(2)
        shown[f"control − start, {name}"] = [_cell(r, f"{metric} control-start") for _, r in table.iterrows()]
    first = table.iloc[0]
    text = (
        f"## {heading}: stage 2 against the same extra training\n\n"
        f"Differences in % points, each the mean over every start, seed and query ({first['runs']} runs: "
        "starts x stage-2 seeds). [starts]: the 95 % t-interval over the per-start means, which claims rest "
        "on; [bootstrap]: the hierarchical bootstrap's (starts, seeds within a start, queries; "
        f"{resamples} resamples), narrower with few starts. Stage 2 keeps the epoch of the best validation "
        f"{first['select_by']}, as its control does. Own / other true / false: the shares of a caption's "
        "target over a training batch's clips, of the target the loss trains towards (the rule's, mixed with "
        "L_sup's one-hot as the loss weights mix them); off-own precision: other true / (other true + "
        "false).\n\n" + shown.to_markdown(index=False) + "\n"
    )
    estimated = table[table["target_source"] == "estimated"]
    for centre, heading in [
        (False, f"across the {len(estimated)} points with estimated targets"),
        (True, "within worlds (each quantity less its world's mean)"),
    ]:
        if centre and estimated["world"].nunique() < 2:
            continue
        lines = _predictor_lines(estimated, metrics, centre)
        if lines:
            text += (
                f"\nWhat goes with stage 2 − control {heading}, each quantity in the same metric as the "
                "difference where it has one (Pearson r; descriptive: the points share starts and "
                "controls, so they are not independent):\n\n"
                + f"| quantity | {' | '.join(name for _, name in metrics)} |\n|---|{'---|' * len(metrics)}\n"
                + "\n".join(lines)
                + "\n"
            )
    return text


def set_maps(
    points: list[dict],
    tables: dict[str, dict[str, dict[str, pd.DataFrame]]],
    qualities: dict,
    masses: dict,
    axes: list[str],
    resamples: int,
) -> tuple[pd.DataFrame, str]:
    """The map on each test set (tables: set -> world -> run -> per-query table; the main set first):
    one table, each row led by its set, and the text with the main set's map and then each further
    set's under its own heading."""
    maps = {name: map_table(points, scored, qualities, masses, resamples) for name, scored in tables.items()}
    texts = [
        map_markdown(table, axes, resamples, "The map" if i == 0 else f"On {sets.title(name)}, the map")
        for i, (name, table) in enumerate(maps.items())
    ]
    return sets.stacked(maps), "\n".join(texts)
