"""Retrieval metrics from a similarity matrix [captions, clips].

Ties are broken against the relevant clips, so a model that scores every clip alike gets no credit:
a clip whose similarity equals that of a relevant clip ranks above it.
"""

from __future__ import annotations

import numpy as np
import torch

RECALL_AT = (1, 5, 10)


class NonFiniteSimilarity(ValueError):
    pass


def check_finite(similarity: torch.Tensor) -> None:
    """Ranks of NaN or inf similarities mean nothing (a NaN would rank the own clip first)."""
    bad = ~torch.isfinite(similarity)
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(1)).squeeze(1)
        raise NonFiniteSimilarity(
            f"{int(bad.sum())} similarities of {len(rows)} captions (e.g. rows {rows[:5].tolist()}) "
            f"are NaN or infinite: the embeddings are not finite, so nothing can be ranked"
        )


def own_clip_ranks(similarity: torch.Tensor, clip_of_caption: torch.Tensor) -> torch.Tensor:
    """1-based rank of each caption's own clip among all clips."""
    check_finite(similarity)
    own = similarity.gather(1, clip_of_caption.unsqueeze(1))
    return (similarity >= own).sum(1)


def audio_to_text_ranks(similarity: torch.Tensor, clip_of_caption: torch.Tensor) -> torch.Tensor:
    """Per clip, the 1-based rank of its best-ranked own caption among all captions."""
    check_finite(similarity)
    clips = similarity.shape[1]
    best_own = torch.full((clips,), -torch.inf, dtype=similarity.dtype)
    own_scores = similarity.gather(1, clip_of_caption.unsqueeze(1)).squeeze(1)
    best_own = best_own.scatter_reduce(0, clip_of_caption, own_scores, reduce="amax")
    return (similarity >= best_own.unsqueeze(0)).sum(0)


def reciprocal_rank_at(ranks: torch.Tensor | np.ndarray, k: int = 10) -> np.ndarray:
    """Per query AP@k with one relevant item: 1/rank within the top k, else 0."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    return torch.where(ranks <= k, 1.0 / ranks, torch.zeros_like(ranks)).numpy()


def retrieval_metrics(ranks: torch.Tensor | np.ndarray) -> dict[str, float]:
    """mAP@10 (mean of 1/rank within the top 10, else 0) and R@1, R@5, R@10 of own-item ranks."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    return {
        "map@10": float(reciprocal_rank_at(ranks, 10).mean()),
        **{f"r@{k}": float((ranks <= k).double().mean()) for k in RECALL_AT},
    }


def multi_positive_ap(similarity: torch.Tensor, relevant: torch.Tensor, k: int) -> np.ndarray:
    """Per query AP@k with several relevant clips; see multi_positive_aps."""
    return multi_positive_aps(similarity, relevant, (k,))[k]


def multi_positive_aps(similarity: torch.Tensor, relevant: torch.Tensor, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Per query AP@k with several relevant clips (DCASE 2025 Task 6).

    AP@k = sum over relevant clips ranked within the top k of (relevant clips ranked at or above
    it) / its rank, divided by the number of relevant clips. relevant is a boolean [captions, clips];
    every query needs at least one relevant clip. Ties rank non-relevant clips first, then clips by
    their row, so the result does not depend on the sort implementation.
    """
    check_finite(similarity)
    relevant = relevant.bool()
    counts = relevant.sum(1)
    if bool((counts == 0).any()):
        raise ValueError(f"queries {torch.nonzero(counts == 0).squeeze(1)[:5].tolist()} have no relevant clip")
    depth = min(max(ks), similarity.shape[1])
    # stable sorts from the least to the most significant key: clip row, relevance, similarity
    order = torch.sort(relevant.to(torch.int8), dim=1, stable=True).indices
    order = order.gather(1, torch.sort(-similarity.gather(1, order), dim=1, stable=True).indices)
    hits = relevant.gather(1, order[:, :depth]).double()
    terms = hits.cumsum(1) / torch.arange(1, depth + 1, dtype=torch.float64) * hits
    return {k: (terms[:, : min(k, depth)].sum(1) / counts).numpy() for k in ks}


MULTI_POSITIVE_AT = 16  # DCASE 2025 Task 6 ranks systems by mAP@16


def embedding_metrics(embeddings: dict, relevance: tuple | None = None) -> dict[str, float]:
    """mAP@10 and R@k of embed_split's output (each caption's own clip); given a relevance table's
    (caption rows, relevant [queries, clips]) (relevance.match_queries), also its dcase2025_map@16."""
    similarity = embeddings["text"] @ embeddings["audio"].T
    metrics = retrieval_metrics(own_clip_ranks(similarity, embeddings["clip_of_caption"]))
    if relevance is not None:
        rows, relevant = relevance
        aps = multi_positive_ap(similarity[torch.as_tensor(rows)], relevant, MULTI_POSITIVE_AT)
        metrics[f"dcase2025_map@{MULTI_POSITIVE_AT}"] = float(aps.mean())
    return metrics
