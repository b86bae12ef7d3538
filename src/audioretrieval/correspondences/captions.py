"""An audio-free estimate of audio-caption correspondences from the captions alone (Xie, Khorrami,
Räsänen, Virtanen, "Text-based Audio Retrieval by Learning from Similarities between Audio
Captions", arXiv 2412.01356): caption j describes clip i as far as it resembles the captions written
for clip i. A sentence-embedding model embeds every training caption (L2-normalised); clip i's score
for caption j aggregates the cosines of caption j with clip i's own captions: their maximum (the
default, measured best against the demo's truth) or their mean. Or, as Xie et al.'s code does,
`paired`: in a batch, audio i is scored by the cosine of caption j with the one caption audio i was
drawn with (their caption-caption matrix); where no batch pairs a caption with each clip (the
quality table's whole matrix), that is the mean over the clip's captions, what a batch's draw gives
on average.

With max, a caption is in its own clip's list, so the own clip scores the maximum cosine, 1, by
construction: the dataset's pairing says it describes that clip. Quality figures leave own-clip
pairs out.

Caption file (HDF5, like an embeddings file without audio): /caption_text float32 [captions, D]
(normalised), the split's identities (data.embeddings), attrs estimator "captions", model,
aggregation.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import torch

from audioretrieval.correspondences import CAPTIONS
from audioretrieval.data.embeddings import identities_of, write_identities
from audioretrieval.files import HDF5Output

AGGREGATIONS = ("max", "mean", "paired")
DATASET = "caption_text"


def write_caption_file(
    out_h5: str | os.PathLike, embeddings: np.ndarray, file_names: list[str], captions, model: str, aggregation: str
) -> None:
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"correspondences.captions.aggregation {aggregation!r}: expected one of {AGGREGATIONS}")
    identities = identities_of(file_names, captions)
    captionless = sorted(set(range(len(file_names))) - set(identities["clip_of_caption"].tolist()))
    if captionless:
        names = [file_names[i] for i in captionless[:5]]
        raise ValueError(f"{len(captionless)} clips have no caption, so captions cannot score them: {names}")
    with HDF5Output(out_h5) as f:
        f[DATASET] = np.asarray(embeddings, dtype=np.float32)
        write_identities(f, identities)
        f.attrs.update(estimator=CAPTIONS, model=model, aggregation=aggregation)


def is_caption_file(f: h5py.File) -> bool:
    return f.attrs.get("estimator") == CAPTIONS


class CaptionScores:
    """Blocks [clips, captions] of the caption estimator: for each clip, the maximum (or mean) cosine
    of each caption with the clip's own captions, or (paired) with the caption each clip row of a
    batch was drawn with. Nothing of size clips x captions is held."""

    def __init__(self, embeddings: np.ndarray, clip_of_caption: np.ndarray, clips: int, aggregation: str, device="cpu"):
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"caption aggregation {aggregation!r}: expected one of {AGGREGATIONS}")
        self.aggregation = aggregation
        clip_of_caption = np.asarray(clip_of_caption)
        counts = np.bincount(clip_of_caption, minlength=clips)
        # index[i, k]: the k-th caption row of clip i, padded with row 0 and masked
        index = np.zeros((clips, max(1, counts.max(initial=0))), dtype=np.int64)
        valid = np.arange(index.shape[1]) < counts[:, None]
        index[valid] = np.argsort(clip_of_caption, kind="stable")
        self.embeddings = torch.from_numpy(np.asarray(embeddings, dtype=np.float32)).to(device)
        self.index, self.valid = torch.from_numpy(index).to(device), torch.from_numpy(valid).to(device)

    @classmethod
    def from_file(cls, f: h5py.File, device="cpu", aggregation: str | None = None) -> CaptionScores:
        """The file's scores, aggregated as it says or as `aggregation` overrides."""
        aggregation = aggregation or str(f.attrs["aggregation"])
        return cls(f[DATASET][:], f["clip_of_caption"][:], len(f["file_name"]), aggregation, device)

    def block(self, clip_rows, caption_rows, paired_rows=None) -> torch.Tensor:
        """paired_rows: the caption each clip row was drawn with (a batch's); only `paired` reads it."""
        clip_rows = torch.as_tensor(clip_rows, device=self.embeddings.device)
        caption_rows = torch.as_tensor(caption_rows, device=self.embeddings.device)
        if self.aggregation == "paired" and paired_rows is not None:
            paired_rows = torch.as_tensor(paired_rows, device=self.embeddings.device)
            return self.embeddings[paired_rows] @ self.embeddings[caption_rows].T
        own = self.embeddings[self.index[clip_rows]]  # [clips, K, D]: each clip's captions
        cosines = torch.einsum("ckd,jd->ckj", own, self.embeddings[caption_rows])
        valid = self.valid[clip_rows].unsqueeze(-1)
        if self.aggregation == "max":
            return cosines.masked_fill(~valid, -torch.inf).amax(1)
        return (cosines * valid).sum(1) / valid.sum(1)
