"""What the demo's ground truth makes possible beyond scoring: oracle targets, and where the target
mass of estimated targets goes."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from audioretrieval.correspondences.ensemble import EnsembleTargets
from audioretrieval.correspondences.quality import truth_matrix
from audioretrieval.data.embeddings import identities_of, read_identities, write_identities
from audioretrieval.files import HDF5Output


def write_oracle_targets(
    file_names: list[str], captions: pd.DataFrame, correspondences: pd.DataFrame, out_h5: str | os.PathLike
) -> None:
    """A targets file (ensemble.py's format) for the training split whose block S[clips, captions] is
    1 where the caption truly describes the clip and 0 elsewhere: audio rows are one-hot, text rows
    the truth. Under softmax(S / tau) with a small tau, a caption's target is uniform over the clips
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
    tau: float,
    batches: int = 200,
    seed: int = 0,
) -> dict:
    """Mean share of a caption's target mass, softmax(S / tau) over the clips of a random training
    batch, on its own clip, on other clips it truly describes, and on clips it does not describe."""
    identities = read_identities(targets)
    truth = torch.from_numpy(truth_matrix(identities, correspondences))
    clip_of_caption = torch.as_tensor(identities["clip_of_caption"])
    source = EnsembleTargets(targets)
    rng = np.random.default_rng(seed)
    shares = []
    for _ in range(batches):
        captions = torch.from_numpy(
            rng.choice(len(clip_of_caption), min(batch_size, len(clip_of_caption)), replace=False)
        )
        clips = clip_of_caption[captions]
        mass = torch.softmax(source.block(clips.numpy(), captions.numpy()).double() / tau, dim=0)  # [clips, captions]
        own = clips.unsqueeze(1) == clips.unsqueeze(0)
        true = truth[captions][:, clips].T & ~own
        shares.append(
            [
                (mass * own).sum(0).mean(),
                (mass * true).sum(0).mean(),
                (mass * ~(own | true)).sum(0).mean(),
                true.sum(0).double().mean(),
            ]
        )
    own_share, true_share, false_share, true_count = np.mean(np.asarray(shares, dtype=np.float64), axis=0)
    return {
        "own_clip": own_share,
        "other_true_clips": true_share,
        "false_clips": false_share,
        "other_true_clips_in_batch": true_count,
    }
