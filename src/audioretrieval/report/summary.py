"""The summary table: every model's evaluation metrics side by side (in %), with published references,
on each test set (evaluation.sets)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pandas as pd

from audioretrieval.evaluation import sets
from audioretrieval.pipeline.study import encoder_of

if TYPE_CHECKING:
    from audioretrieval.pipeline.study import Stage2Job

METRICS = {
    "map@10": "mAP@10",
    "r@1": "R@1",
    "r@5": "R@5",
    "r@10": "R@10",
    "dcase2025_map@16": "DCASE25 mAP@16",
    "dcase2025_map@10": "DCASE25 mAP@10",
}


RELEASED_NOTES = {
    "passt_roberta": "the authors' released weights, converted (audioretrieval.model.released_checkpoint)",
    "dcase2025_baseline": (
        "the DCASE 2025 baseline's released weights, converted (audioretrieval.model.dcase2025_checkpoint)"
    ),
}


def read_metrics(path: str | os.PathLike) -> dict:
    with open(path) as f:
        return json.load(f)


def _row(model: str, weights: str, kind: str, metrics: dict, notes: str = "") -> dict:
    return {
        "model": model,
        "weights": weights,
        "kind": kind,
        "notes": notes,
        **{label: 100 * metrics[key] for key, label in METRICS.items() if key in metrics},
    }


def _mean_row(model: str, weights: str, kind: str, rows: list[dict], notes: str) -> dict:
    runs = pd.DataFrame(rows)
    columns = [label for label in METRICS.values() if label in runs]
    return {
        "model": model,
        "weights": weights,
        "kind": kind,
        "notes": notes,
        **runs[columns].mean().to_dict(),
        **{f"{c} sd": v for c, v in runs[columns].std().items()},
    }


def _model_rows(groups: dict[str, dict[str, dict]], weights: str, stage2_jobs: list[Stage2Job]) -> list[dict]:
    """The rows of one kind of weights: each stage-1 run and the mean of model.audio's seeds (and of
    each other encoder's, stage1.encoders), each ensemble, each stage-2 job and the mean of every
    stage-2 run with several seeds."""
    rows, by_encoder = [], {}
    for name, m in groups.get("stage1", {}).items():
        rows.append(_row(name, weights, "stage 1", m))
        by_encoder.setdefault(encoder_of(name), []).append(rows[-1])
    for encoder, members in by_encoder.items():  # model.audio's seeds (None), each of stage1.encoders'
        if len(members) > 1:
            label, kind = (
                ("stage 1", "stage 1 mean") if encoder is None else (f"stage 1 {encoder}", f"stage 1 {encoder} mean")
            )
            rows.append(_mean_row(f"{label}, mean of {len(members)} seeds", weights, kind, members, "± sd over seeds"))
    rows += [
        _row(f"ensemble {name}", weights, "ensemble", m, "members' similarities averaged (their best weights)")
        for name, m in groups.get("ensembles", {}).items()
    ]
    jobs = {job.name: job for job in stage2_jobs}
    families: dict[str, list[dict]] = {}
    for name, m in groups.get("stage2", {}).items():
        job = jobs.get(name)
        kind = "control" if job and job.control_of else "stage 2"
        row = _row(name, weights, kind, m, job_notes(job) if job else "")
        rows.append(row)
        families.setdefault(job.family if job else name, []).append(row)
    for family, members in families.items():
        if len(members) > 1:
            rows.append(
                _mean_row(
                    f"{family}, mean of {len(members)} seeds",
                    weights,
                    f"{members[0]['kind']} mean",
                    members,
                    "± sd over seeds",
                )
            )
    return rows


def summary_table(
    best: dict[str, dict[str, dict]],
    last: dict[str, dict[str, dict]] | None = None,
    stage2_jobs: list[Stage2Job] | None = None,
    reference: list[dict] | None = None,
) -> pd.DataFrame:
    """Every model's metrics in %: `best` and `last` map a group ("stage1", "ensembles", "stage2") to
    model name -> metrics dict, of the best and of the last weights of each run; the rows of each
    come with mean and standard deviation rows over seeds (see _model_rows), then the rows of the
    authors' released checkpoint(s) (group "released" of `best`: the one set of weights released,
    converted by audioretrieval.model.released_checkpoint), then the reference rows
    (already in %; `compare_with` names the row of this table to hold each against). stage2_jobs
    (pipeline.study.stage2_jobs) describes the stage-2 models. Columns: model, weights, kind, notes, the
    metrics, and for mean rows their standard deviations ('<metric> sd')."""
    rows = _model_rows(best, "best", stage2_jobs or [])
    rows += _model_rows(last or {}, "last", stage2_jobs or [])
    rows += [
        _row(f"released {name}", "best", "released", m, RELEASED_NOTES.get(name, ""))
        for name, m in best.get("released", {}).items()
    ]
    for ref in reference or []:
        notes = "published" + (f"; compare with {ref['compare_with']}" if ref.get("compare_with") else "")
        rows.append(
            {
                "model": ref["model"],
                "weights": "",
                "kind": "reference",
                "notes": notes,
                **{METRICS[k]: v for k, v in ref.items() if k in METRICS},
            }
        )
    table = pd.DataFrame(rows)
    ordered = ["model", "weights", "kind", "notes"] + [
        c for label in METRICS.values() for c in (label, f"{label} sd") if c in table
    ]
    return table[ordered]


def job_notes(job: dict) -> str:
    """How a stage-2 job was trained, in a few words."""
    weights = f"w_dist {job.dist_weight:g}, w_sup {job.sup_weight:g}"
    if job.control_of:
        return f"control of {', '.join(job.control_of)}: from seed{job.init}, {weights}"
    return f"from seed{job.init} on {job.ensemble} targets at tau {job.target_tau:g}, {weights}"


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


def summary_text(table: pd.DataFrame, quality: pd.DataFrame | None = None, mass: pd.DataFrame | None = None) -> str:
    """The summary as a researcher reads it (Markdown): the metrics table of each test set (sets.stacked)
    and, on the demo, the quality of the estimated correspondences and where the targets' mass goes."""
    text = "\n".join(
        f"## Text-to-audio retrieval on {sets.title(name)} (%)\n\nweights: each run's best epoch by validation "
        "mAP@10, or its last epoch (the reference code tests the weights after the last epoch)\n\n"
        + summary_markdown(rows.drop(columns="set").dropna(axis="columns", how="all").reset_index(drop=True))
        for name, rows in table.groupby("set", sort=False)
    )
    if quality is not None:
        text += (
            "\n## Estimated correspondences of the training split against the demo's truth\n\n"
            + quality.to_markdown(index=False, floatfmt=".4f")
            + "\n"
        )
    if mass is not None:
        text += (
            "\n## Where the targets' mass goes in a training batch (share of each caption's target)\n\n"
            + mass.to_markdown(index=False, floatfmt=".3f")
            + "\n"
        )
    return text
