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


def _mean_row(model: str, kind: str, rows: list[dict], notes: str) -> dict:
    runs = pd.DataFrame(rows)
    columns = [label for label in METRICS.values() if label in runs]
    return {"model": model, "kind": kind, "notes": notes, **runs[columns].mean().to_dict(),
            **{f"{c} sd": v for c, v in runs[columns].std().items()}}


def summary_table(stage1: dict[str, dict], ensembles: dict[str, dict], stage2: dict[str, dict],
                  stage2_jobs: list[dict] | None = None, reference: list[dict] | None = None) -> pd.DataFrame:
    """One row per model (name -> metrics dict), a mean and standard deviation row over the seeds of
    stage 1 and of every stage-2 run with several seeds, and the reference rows (already in %).
    stage2_jobs (config.stage2_jobs) describes the stage-2 models. Columns: model, kind, notes, the
    metrics in %, and for mean rows their standard deviations ('<metric> sd')."""
    rows = [_row(name, "stage 1", m) for name, m in stage1.items()]
    if len(stage1) > 1:
        rows.append(_mean_row(f"stage 1, mean of {len(stage1)} seeds", "stage 1 mean", rows, "± sd over seeds"))
    rows += [_row(f"ensemble {name}", "ensemble", m, "members' similarities averaged") for name, m in ensembles.items()]
    jobs = {job["name"]: job for job in stage2_jobs or []}
    families: dict[str, list[dict]] = {}
    for name, m in stage2.items():
        job = jobs.get(name)
        kind = "stage 2" if job is None or job["control_of"] is None else "control"
        row = _row(name, kind, m, job_notes(job) if job else "")
        rows.append(row)
        families.setdefault(job["family"] if job else name, []).append(row)
    for family, members in families.items():
        if len(members) > 1:
            rows.append(_mean_row(f"{family}, mean of {len(members)} seeds", f"{members[0]['kind']} mean", members,
                                  "± sd over seeds"))
    rows += [{"kind": "reference", "notes": "published", **{METRICS.get(k, k): v for k, v in ref.items()}}
             for ref in reference or []]
    table = pd.DataFrame(rows)
    ordered = ["model", "kind", "notes"] + [c for label in METRICS.values() for c in (label, f"{label} sd") if c in table]
    return table[ordered]


def job_notes(job: dict) -> str:
    """How a stage-2 job was trained, in a few words."""
    weights = f"w_dist {job['dist_weight']:g}, w_sup {job['sup_weight']:g}"
    if job["control_of"]:
        return f"control of {job['control_of']}: from seed{job['init']}, {weights}"
    tau = "" if job.get("target_tau") is None else f", target tau {job['target_tau']:g}"
    return f"from seed{job['init']} on {job['ensemble']} targets, {weights}{tau}"


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
