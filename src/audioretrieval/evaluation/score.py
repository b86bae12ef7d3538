"""Scoring an embeddings file (data.embeddings's format): text-to-audio retrieval of every caption.

Writes the metrics as JSON and, per caption, the rank of its own clip and its AP@10 (plus, given a
relevance table, the DCASE 2025 Task 6 multi-positive AP@16 and AP@10 of the captions that are its
queries) as Parquet, so that models can be compared query by query. Works on any embeddings file,
including ones made elsewhere:

    python -m audioretrieval.evaluation.score embeddings.h5 --metrics metrics.json --ranks ranks.parquet \
        [--relevance metadata_eval.csv]
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pandas as pd
import torch

from audioretrieval.data.embeddings import read_identities, read_similarity
from audioretrieval.evaluation.metrics import (
    RECALL_AT,
    audio_to_text_ranks,
    multi_positive_aps,
    own_clip_ranks,
    reciprocal_rank_at,
    retrieval_metrics,
)
from audioretrieval.evaluation.relevance import match_queries, read_relevance
from audioretrieval.files import write_table_atomically, write_text_atomically

DCASE2025_AT = (16, 10)  # DCASE 2025 Task 6 ranks systems by mAP@16


def score(
    similarity: torch.Tensor, identities: dict, relevance: pd.DataFrame | None = None, source: str = "relevance table"
) -> tuple[dict, pd.DataFrame]:
    """Metrics and the per-caption table of one similarity matrix; with a relevance table
    (relevance.read_relevance), the DCASE 2025 Task 6 mAP@16 and mAP@10 over its queries."""
    clip_of_caption = torch.as_tensor(identities["clip_of_caption"])
    captions = identities["caption"]
    ranks = own_clip_ranks(similarity, clip_of_caption)
    metrics = {**retrieval_metrics(ranks), "captions": len(ranks), "clips": similarity.shape[1]}
    a2t = audio_to_text_ranks(similarity, clip_of_caption)
    metrics.update({f"a2t_r@{k}": float((a2t <= k).double().mean()) for k in RECALL_AT})
    per_query = pd.DataFrame(
        {
            "file_name": identities["caption_file_name"],
            "caption_index": identities["caption_index"],
            "caption": captions,
            "rank": ranks.numpy(),
            "ap@10": reciprocal_rank_at(ranks, 10),
        }
    )
    if relevance is not None:
        rows, relevant = match_queries(relevance, identities["file_name"], captions, source)
        metrics["dcase2025_queries"] = len(rows)
        metrics["mean_relevant_clips"] = float(relevant.sum(1).double().mean())
        aps = multi_positive_aps(similarity[torch.from_numpy(rows)], relevant, DCASE2025_AT)
        for k in DCASE2025_AT:
            ap = np.full(len(ranks), np.nan)
            ap[rows] = aps[k]
            per_query[f"dcase2025_ap@{k}"] = ap
            metrics[f"dcase2025_map@{k}"] = float(aps[k].mean())
    return metrics, per_query


def score_file(embeddings: str | os.PathLike, relevance: str | os.PathLike | None = None) -> tuple[dict, pd.DataFrame]:
    """Metrics and per-caption table of an embeddings file, optionally with a correspondence table."""
    identities = read_identities(embeddings)
    table = read_relevance(relevance) if relevance else None
    metrics, per_query = score(read_similarity(embeddings), identities, table, source=str(relevance))
    return {"embeddings": str(embeddings), **metrics}, per_query


def write_scores(
    metrics: dict, per_query: pd.DataFrame, metrics_json: str | os.PathLike, ranks_parquet: str | os.PathLike
) -> None:
    write_table_atomically(per_query, ranks_parquet)
    write_text_atomically(json.dumps(metrics, indent=1) + "\n", metrics_json)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score text-to-audio retrieval from an embeddings file.")
    parser.add_argument("embeddings", help="HDF5 embeddings file (audio, text, identities, caption texts)")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    parser.add_argument("--ranks", required=True, help="per-caption Parquet to write")
    parser.add_argument(
        "--relevance",
        help="relevance table (CSV or Parquet; the DCASE 2025 Task 6 layout "
        "query,audio_filenames or one row per relevant file) for DCASE 2025 mAP@16/@10",
    )
    args = parser.parse_args(argv)
    metrics, per_query = score_file(args.embeddings, args.relevance)
    write_scores(metrics, per_query, args.metrics, args.ranks)
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
