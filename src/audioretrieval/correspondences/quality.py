"""How well similarities separate true from false audio-caption correspondences (demo ground truth)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics

from audioretrieval.correspondences.ensemble import EnsembleTargets
from audioretrieval.data.embeddings import read_identities


def truth_matrix(identities: dict, correspondences: pd.DataFrame) -> np.ndarray:
    """Boolean [captions, clips] in the order of an embeddings file, from a long correspondence table
    (file_name, caption_index, relevant_file_name)."""
    clip_row = {name: i for i, name in enumerate(identities["file_name"])}
    caption_row = {
        (n, int(k)): j for j, (n, k) in enumerate(zip(identities["caption_file_name"], identities["caption_index"]))
    }
    truth = np.zeros((len(caption_row), len(clip_row)), dtype=bool)
    keys = list(zip(correspondences["file_name"], correspondences["caption_index"].astype(int)))
    unknown = [k for k in keys if k not in caption_row] + [
        n for n in correspondences["relevant_file_name"] if n not in clip_row
    ]
    if unknown:
        raise ValueError(f"correspondence table names captions or clips not in the embeddings: {unknown[:5]}")
    truth[[caption_row[k] for k in keys], [clip_row[n] for n in correspondences["relevant_file_name"]]] = True
    return truth


def _checked(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finite scores and boolean labels (0/1 integers accepted), both classes present."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if labels.dtype != bool:
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f"correspondence labels must be true/false or 0/1, found {np.unique(labels)[:5].tolist()}")
        labels = labels.astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.shape} scores for {labels.shape} labels")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} of {scores.size} scores are NaN or infinite")
    if labels.all() or not labels.any():
        raise ValueError(
            f"ROC AUC and average precision need true and false pairs; found {int(labels.sum())} true of {labels.size}"
        )
    return scores, labels


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half)."""
    return float(metrics.roc_auc_score(*reversed(_checked(scores, labels))))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision of ranking the true pairs first (tied scores form one threshold)."""
    return float(metrics.average_precision_score(*reversed(_checked(scores, labels))))


def correspondence_quality(similarity: np.ndarray, truth: np.ndarray, clip_of_caption: np.ndarray) -> dict:
    """ROC AUC and average precision over all pairs (caption j, clip i) with i not j's own clip."""
    other = np.ones_like(truth)
    other[np.arange(len(clip_of_caption)), clip_of_caption] = False
    scores, labels = similarity[other], truth[other]
    return {
        "roc_auc": roc_auc(scores, labels),
        "average_precision": average_precision(scores, labels),
        "true_pairs": int(labels.sum()),
        "pairs": int(labels.size),
        "captions": len(clip_of_caption),
    }


def quality_table(sources: dict[str, str], correspondences: pd.DataFrame) -> pd.DataFrame:
    """One row per estimator (name -> an embeddings, caption or targets file); all must share identities."""
    rows = []
    for name, path in sources.items():
        identities = read_identities(path)
        truth = truth_matrix(identities, correspondences)
        similarity = EnsembleTargets(path).matrix().T
        rows.append({"model": name, **correspondence_quality(similarity, truth, identities["clip_of_caption"])})
    return pd.DataFrame(rows)
