"""The summary table: every model's evaluation metrics side by side (in %), with published references."""

from __future__ import annotations

import json
import os

import pandas as pd

METRICS = {"map@10": "mAP@10", "r@1": "R@1", "r@5": "R@5", "r@10": "R@10",
           "multi_map@16": "multi mAP@16", "multi_map@10": "multi mAP@10"}


def read_metrics(path: str | os.PathLike) -> dict:
    with open(path) as f:
        return json.load(f)


def _row(model: str, kind: str, metrics: dict, notes: str = "") -> dict:
    return {"model": model, "kind": kind, "notes": notes,
            **{label: 100 * metrics[key] for key, label in METRICS.items() if key in metrics}}


def summary_table(stage1: dict[str, dict], ensembles: dict[str, dict], stage2: dict[str, dict],
                  stage2_notes: dict[str, str] | None = None, reference: list[dict] | None = None) -> pd.DataFrame:
    """One row per model (name -> metrics dict), a mean and standard deviation row over the stage-1
    seeds, and the reference rows (already in %). Columns: model, kind, notes, the metrics, and for
    the mean row their standard deviations ('<metric> sd')."""
    rows = [_row(name, "stage 1", m) for name, m in stage1.items()]
    if len(stage1) > 1:
        seeds = pd.DataFrame(rows)
        columns = [label for label in METRICS.values() if label in seeds]
        mean = {"model": f"stage 1, mean of {len(stage1)} seeds", "kind": "stage 1 mean", "notes": "± sd over seeds",
                **seeds[columns].mean().to_dict(), **{f"{c} sd": v for c, v in seeds[columns].std().items()}}
        rows.append(mean)
    rows += [_row(f"ensemble {name}", "ensemble", m, "members' similarities averaged") for name, m in ensembles.items()]
    rows += [_row(name, "stage 2", m, (stage2_notes or {}).get(name, "")) for name, m in stage2.items()]
    rows += [{"kind": "reference", "notes": "published", **{METRICS.get(k, k): v for k, v in ref.items()}}
             for ref in reference or []]
    table = pd.DataFrame(rows)
    ordered = ["model", "kind", "notes"] + [c for label in METRICS.values() for c in (label, f"{label} sd") if c in table]
    return table[ordered]


def summary_markdown(table: pd.DataFrame) -> str:
    """The table with 'mean ± sd' cells and two decimals."""
    shown = table[[c for c in table if not c.endswith(" sd")]].copy().astype(object)
    for label in METRICS.values():
        if label not in table:
            continue
        sd = table.get(f"{label} sd")
        shown[label] = [
            "" if pd.isna(v) else f"{v:.2f}" + ("" if sd is None or pd.isna(sd[i]) else f" ± {sd[i]:.2f}")
            for i, v in table[label].items()
        ]
    return shown.fillna("").to_markdown(index=False) + "\n"
