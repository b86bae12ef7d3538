"""Training objectives on a batch's logits C[i, j] = cos(audio_i, caption_j) / tau."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def positives(clip_ids: torch.Tensor) -> torch.Tensor:
    """[B, B] bool: pair (i, j) is positive when audio i and caption j come from the same clip."""
    return clip_ids.unsqueeze(1) == clip_ids.unsqueeze(0)


def contrastive_loss(logits: torch.Tensor, clip_ids: torch.Tensor) -> torch.Tensor:
    """L_sup: -1/2 (mean over positives of log_softmax over audios + the same over captions).

    Row i of `logits` is audio i, column j caption j. Every pair of one clip is a positive, so two
    captions of a clip in one batch are both positives for its audio. The means are masked sums
    (not `[mask]`, whose size the host would have to read from a GPU).
    """
    mask = positives(clip_ids).to(logits.dtype)
    pairs = mask.sum()
    over_audios = (F.log_softmax(logits, dim=0) * mask).sum() / pairs
    over_captions = (F.log_softmax(logits, dim=1) * mask).sum() / pairs
    return -(over_audios + over_captions) / 2


def distillation_loss(logits: torch.Tensor, over_audios: torch.Tensor, over_captions: torch.Tensor) -> torch.Tensor:
    """L_dist: soft-target cross-entropy in both retrieval directions.

    1/2 (CE(rows of C, over_captions) + CE(columns of C, over_audios)): rows of C are audios (a
    distribution over the batch's captions), columns captions. The targets come from a target rule
    (correspondences.target_rules): over_audios sums to 1 down each column, over_captions along each row.
    """
    audio_to_text = -(over_captions * F.log_softmax(logits, dim=1)).sum(1).mean()
    text_to_audio = -(over_audios * F.log_softmax(logits, dim=0)).sum(0).mean()
    return (audio_to_text + text_to_audio) / 2
