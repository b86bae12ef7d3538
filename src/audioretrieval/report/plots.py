"""Figures of the report (matplotlib, written as PNG and SVG)."""

from __future__ import annotations

import itertools
import os
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from audioretrieval.correspondences.ensemble import EnsembleTargets  # noqa: E402
from audioretrieval.correspondences.quality import truth_matrix  # noqa: E402
from audioretrieval.data.embeddings import read_identities  # noqa: E402
from audioretrieval.evaluation import sets  # noqa: E402
from audioretrieval.files import written_atomically  # noqa: E402
from audioretrieval.report.pages import spread  # noqa: E402
from audioretrieval.report.summary import METRICS  # noqa: E402
from audioretrieval.report.sweep import MAP_METRIC_NAMES  # noqa: E402

COLORS = {"own": "#d95f02", "true": "#1b9e77", "other": "#bbbbbb"}


def save_figure(fig, png: str | os.PathLike, svg: str | os.PathLike) -> None:
    for path in (png, svg):
        with written_atomically(path) as partial:
            fig.savefig(partial, format=Path(path).suffix.lstrip("."), dpi=110, bbox_inches="tight")
    plt.close(fig)


def training_curves(logs: dict[str, pd.DataFrame]):
    """Training loss and validation mAP@10 per epoch of every run (stage 2 dashed)."""
    fig, (loss_ax, map_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, log in logs.items():
        style = "--" if name.startswith("stage 2") else "-"
        loss_ax.plot(log["epoch"], log["train_loss"], style, marker=".", label=name)
        map_ax.plot(log["epoch"], 100 * log["val_map@10"], style, marker=".", label=name)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    map_ax.set(xlabel="epoch", ylabel="mAP@10 (%)", title="Validation mAP@10")
    map_ax.legend(fontsize="small")
    for ax in (loss_ax, map_ax):
        ax.grid(alpha=0.3)
    return fig


def metric_bars(summary: pd.DataFrame):
    """Evaluation metrics of every model of the summary, with its best weights (stage-1 mean with its
    seeds' sd), a panel per test set."""
    panels = list(summary.groupby("set", sort=False)) if "set" in summary else [(None, summary)]
    width_of = max(len(rows[rows["weights"] == "best"]) for _, rows in panels)
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(7, 1.6 * len(METRICS) + 0.5 * width_of), 4 * len(panels)), squeeze=False
    )
    for ax, (name, rows) in zip(axes[:, 0], panels):
        rows = rows[rows["weights"] == "best"].dropna(axis="columns", how="all").reset_index(drop=True)
        labels = [label for label in METRICS.values() if label in rows]
        width = 0.8 / len(rows)
        x = np.arange(len(labels))
        for i, row in rows.iterrows():
            errors = [row.get(f"{label} sd", np.nan) for label in labels]
            ax.bar(
                x + (i - (len(rows) - 1) / 2) * width,
                [row[label] for label in labels],
                width,
                yerr=None if np.all(pd.isna(errors)) else errors,
                capsize=3,
                label=row["model"],
                hatch="//" if row["kind"].startswith(("stage 2", "control")) else None,
            )
        ax.set_xticks(x, labels)
        title = "the evaluation split" if name is None else sets.title(name)
        ax.set(ylabel="%", title=f"Text-to-audio retrieval on {title}")
        ax.legend(fontsize="small", ncol=2)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def correspondence_examples(targets: str | os.PathLike, count: int, top_k: int, truth: pd.DataFrame | None = None):
    """For a few training captions, the clips with the highest estimated correspondence; the caption's
    own clip highlighted and, where the truth is known (demo), the clips it truly describes."""
    identities = read_identities(targets)
    similarity = EnsembleTargets(targets).matrix().T
    true = truth_matrix(identities, truth) if truth is not None else None
    rows = spread(len(identities["caption"]), count)
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 2.0 + 0.32 * top_k * len(rows)), squeeze=False)
    for ax, row in zip(axes[:, 0], rows):
        clips = np.argsort(-similarity[row], kind="stable")[:top_k]
        kinds = [
            "own"
            if c == identities["clip_of_caption"][row]
            else "true"
            if true is not None and true[row, c]
            else "other"
            for c in clips
        ]
        ax.barh(np.arange(len(clips)), similarity[row, clips], color=[COLORS[k] for k in kinds])
        low, high = similarity[row, clips].min(), similarity[row, clips].max()
        ax.set_xlim(low - 0.5 * (high - low) - 1e-6, high + 0.1 * (high - low) + 1e-6)  # show the differences
        ax.set_yticks(
            np.arange(len(clips)), [textwrap.shorten(identities["file_name"][c], 40) for c in clips], fontsize="small"
        )
        ax.invert_yaxis()
        ax.set_title(textwrap.fill(f'"{identities["caption"][row]}"', 90), fontsize="medium")
        ax.set_xlabel("estimated correspondence (mean score of the ensemble)")
    legend = [plt.Rectangle((0, 0), 1, 1, color=COLORS["own"], label="the caption's own clip")]
    if true is not None:
        legend += [plt.Rectangle((0, 0), 1, 1, color=COLORS["true"], label="another clip it truly describes")]
    legend += [plt.Rectangle((0, 0), 1, 1, color=COLORS["other"], label="other clip")]
    fig.legend(handles=legend, loc="upper center", ncol=len(legend), fontsize="small", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def comparison_intervals(comparisons: pd.DataFrame):
    """Each paired difference with its 95 % interval, one panel per metric."""
    by_set = comparisons.groupby("set", sort=False) if "set" in comparisons else [(None, comparisons)]
    panels = [
        (name, metric, rows[rows["metric"] == metric].reset_index(drop=True))
        for name, rows in by_set
        for metric in dict.fromkeys(rows["metric"])
    ]
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(6 * len(panels), 0.5 * len(comparisons) / len(panels) + 1.8),
        squeeze=False,
        sharey=True,
    )
    for ax, (name, metric, rows) in zip(axes[0], panels):
        y = np.arange(len(rows))
        colors = [
            COLORS["true"] if e and d > 0 else COLORS["own"] if e else "#555555"
            for d, e in zip(rows["difference"], rows["excludes_zero"])
        ]
        for i, row in rows.iterrows():
            ax.errorbar(
                row["difference"],
                y[i],
                xerr=[[row["difference"] - row["low"]], [row["high"] - row["difference"]]],
                fmt="o",
                color=colors[i],
                capsize=4,
            )
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y, [f"{m} - {b}" for m, b in zip(rows["model"], rows["baseline"])])
        ax.invert_yaxis()
        ax.set(
            xlabel=f"difference in mean {metric} (% points)",
            title=metric if name is None else f"{sets.title(name)}: {metric}",
        )
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


FIGURE_METRICS = ("dcase2025_ap@16", "ap@10")  # the map figure's rows: the challenge's metric, the paper's


def map_figure(table: pd.DataFrame):
    """Stage 2 - control (with its start-level interval, or the bootstrap's where a point has one start)
    at every point of the map, against the share of its loss's target on the own clip, the precision
    of the rest, and what the same extra training gains by itself (control - start); a row per metric:
    the DCASE 2025 AP@16 where there are annotations, and AP@10 of each caption's own clip."""
    names = dict(MAP_METRIC_NAMES)
    metrics = [(m, names[m]) for m in FIGURE_METRICS if f"{m} stage2-control" in table]
    candidates = [
        ("own_clip", "target's share on the own clip"),
        ("off_own_precision", "precision of the mass off the own clip"),
        ("{metric} control-start", "control − start, {name} (% points)"),
    ]  # the last is always there; the others need the demo's truth
    panels = [
        (c, title)
        for c, title in candidates
        if c.format(metric=metrics[0][0]) in table and table[c.format(metric=metrics[0][0])].notna().any()
    ]
    fig, axes = plt.subplots(len(metrics), len(panels), figsize=(5.5 * len(panels), 4.5 * len(metrics)), squeeze=False)
    colors = dict(zip(table["world"].unique(), itertools.cycle(plt.get_cmap("tab10").colors)))
    for ax_row, (metric, name) in zip(axes, metrics):
        column = f"{metric} stage2-control"
        bounds = [f"{column} start_low", f"{column} start_high"]
        if not all(b in table and table[b].notna().all() for b in bounds):
            bounds = [f"{column} low", f"{column} high"]
        errors = np.abs(table[bounds].to_numpy().T - table[column].to_numpy())
        for ax, (x, title) in zip(ax_row, panels):
            x, title = x.format(metric=metric), title.format(name=name)
            for world, color in colors.items():
                rows = (table["world"] == world).to_numpy()
                ax.errorbar(
                    table.loc[rows, x],
                    table.loc[rows, column],
                    yerr=errors[:, rows],
                    fmt="o",
                    color=color,
                    capsize=3,
                    label=world,
                )
            for _, row in table.iterrows():
                ax.annotate(
                    row["variant"], (row[x], row[column]), fontsize="x-small", xytext=(4, 3), textcoords="offset points"
                )
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set(xlabel=title, ylabel=f"stage 2 − control, {name} (% points)")
    axes[0, 0].legend(title="world", fontsize="small")
    fig.suptitle(
        "When targets from estimated correspondences beat the same extra training (95 % intervals over starts)"
    )
    fig.tight_layout()
    return fig
