"""How well similarities separate true from false audio-caption correspondences (demo ground truth)."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pandas as pd

from .export import read_identities


def truth_matrix(identities: dict, correspondences: pd.DataFrame) -> np.ndarray:
    """Boolean [captions, clips] in the order of an embeddings file, from a long correspondence table
    (file_name, caption_index, relevant_file_name)."""
    clip_row = {name: i for i, name in enumerate(identities["file_name"])}
    caption_row = {(n, int(k)): j for j, (n, k) in enumerate(zip(identities["caption_file_name"], identities["caption_index"]))}
    truth = np.zeros((len(caption_row), len(clip_row)), dtype=bool)
    keys = list(zip(correspondences["file_name"], correspondences["caption_index"].astype(int)))
    unknown = [k for k in keys if k not in caption_row] + [n for n in correspondences["relevant_file_name"] if n not in clip_row]
    if unknown:
        raise ValueError(f"correspondence table names captions or clips not in the embeddings: {unknown[:5]}")
    truth[[caption_row[k] for k in keys], [clip_row[n] for n in correspondences["relevant_file_name"]]] = True
    return truth


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2
    positives = labels.sum()
    negatives = len(labels) - positives
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(-scores, kind="mergesort")
    hits = labels[order]
    precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return float(precision_at_hits.mean())


def correspondence_quality(similarity: np.ndarray, truth: np.ndarray, clip_of_caption: np.ndarray) -> dict:
    """ROC AUC and average precision over all pairs (caption j, clip i) with i not j's own clip."""
    other = np.ones_like(truth)
    other[np.arange(len(clip_of_caption)), clip_of_caption] = False
    scores, labels = similarity[other], truth[other]
    return {"roc_auc": roc_auc(scores, labels), "average_precision": average_precision(scores, labels),
            "true_pairs": int(labels.sum()), "pairs": int(labels.size)}


def similarity_of(path: str | os.PathLike) -> np.ndarray:
    """[captions, clips] similarities of an embeddings or targets file (mean cosine for an ensemble)."""
    with h5py.File(path, "r") as f:
        return f["text"][:] @ f["audio"][:].T


def quality_table(sources: dict[str, str], correspondences: pd.DataFrame) -> pd.DataFrame:
    """One row per model or ensemble (name -> embeddings or targets file); all must share identities."""
    rows = []
    for name, path in sources.items():
        identities = read_identities(path)
        truth = truth_matrix(identities, correspondences)
        rows.append({"model": name, **correspondence_quality(similarity_of(path), truth, identities["clip_of_caption"])})
    return pd.DataFrame(rows)
