"""What the demo's ground truth makes possible beyond scoring: oracle targets, and where the target
mass of estimated targets goes."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from audioretrieval.correspondences import target_rules
from audioretrieval.correspondences.ensemble import EnsembleTargets
from audioretrieval.correspondences.quality import truth_matrix
from audioretrieval.correspondences.target_rules import TargetRule, loss_target
from audioretrieval.data.embeddings import identities_of, read_identities, write_identities
from audioretrieval.files import HDF5Output


def write_oracle_targets(
    file_names: list[str], captions: pd.DataFrame, correspondences: pd.DataFrame, out_h5: str | os.PathLike
) -> None:
    """A targets file (ensemble.py's format) for the training split whose block S[clips, captions] is
    1 where the caption truly describes the clip and 0 elsewhere: audio rows are one-hot, text rows
    the truth. Under the softmax rule with a small tau, a caption's target is uniform over the clips
    it describes. file_names and captions are the training split's clips and caption table."""
    identities = identities_of(file_names, captions)
    truth = truth_matrix(identities, correspondences)
    with HDF5Output(out_h5) as f:
        f.create_dataset("audio", data=np.eye(truth.shape[1], dtype=np.float32))
        f.create_dataset("text", data=truth.astype(np.float32))
        write_identities(f, identities)
        f.attrs["members"] = ["oracle: the demo's ground truth"]


def target_mass(
    targets: str | os.PathLike,
    correspondences: pd.DataFrame,
    batch_size: int,
    rule: TargetRule,
    weights: tuple[float, float] = (1.0, 0.0),
    rule_targets: dict | None = None,
    batches: int = 200,
    seed: int = 0,
) -> dict:
    """Where the target a stage-2 loss trains towards puts a caption's mass, over the clips of a
    random training batch: the mean share on its own clip, on other clips it truly describes and on
    clips it does not describe, and the precision of the mass off its own clip, other-true /
    (other-true + false) of those means. The target is the rule's (target_rules) for the estimates
    in `targets` (and, for a rule that reads another ensemble, `rule_targets`: setting -> its file),
    mixed with L_sup's as the loss weights (dist, sup) mix them (target_rules.loss_target)."""
    identities = read_identities(targets)
    truth = torch.from_numpy(truth_matrix(identities, correspondences))
    clip_of_caption = torch.as_tensor(identities["clip_of_caption"])
    source = EnsembleTargets(targets)
    others = {key: EnsembleTargets(path) for key, path in (rule_targets or {}).items()}
    rng = np.random.default_rng(seed)
    shares = []
    for _ in range(batches):
        captions = torch.from_numpy(
            rng.choice(len(clip_of_caption), min(batch_size, len(clip_of_caption)), replace=False)
        )
        clips = clip_of_caption[captions]
        scores = {key: s.block(clips, captions, captions).double() for key, s in {"": source, **others}.items()}
        own = clips.unsqueeze(1) == clips.unsqueeze(0)  # [clips, captions]
        target = loss_target(rule.over(scores.pop(""), own, 0, scores), own, 0, *weights)
        parts = target_rules.shares(target, own, truth[captions][:, clips].T)
        true = truth[captions][:, clips].T & ~own
        shares.append([*(part.mean() for part in parts.values()), true.sum(0).double().mean()])
    own_share, true_share, false_share, true_count = np.mean(np.asarray(shares, dtype=np.float64), axis=0)
    return {
        "own_clip": own_share,
        "other_true_clips": true_share,
        "false_clips": false_share,
        "off_own_precision": true_share / (true_share + false_share) if true_share + false_share > 0 else np.nan,
        "other_true_clips_in_batch": true_count,
    }
