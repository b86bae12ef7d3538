"""Text-to-audio retrieval metrics."""

from __future__ import annotations

import numpy as np
import torch


def own_clip_ranks(similarity: torch.Tensor, clip_of_caption: torch.Tensor) -> torch.Tensor:
    """1-based rank of each caption's own clip; similarity is [captions, clips].

    Ties count against the own clip (a clip scoring the same ranks above it).
    """
    own = similarity.gather(1, clip_of_caption.unsqueeze(1))
    return (similarity >= own).sum(1)


def retrieval_metrics(ranks: torch.Tensor | np.ndarray) -> dict[str, float]:
    """mAP@10 (mean of 1/rank within the top 10, else 0), R@1, R@5, R@10."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    return {
        "map@10": float(torch.where(ranks <= 10, 1.0 / ranks, torch.zeros_like(ranks)).mean()),
        "r@1": float((ranks <= 1).double().mean()),
        "r@5": float((ranks <= 5).double().mean()),
        "r@10": float((ranks <= 10).double().mean()),
    }
