"""The embeddings file format: normalised embeddings of every clip and caption of a split, with
their identities. Written by the embedding of a split (model.embed), read by the ensemble targets,
evaluation, the correspondence quality and the figures; an ensemble's targets file has the same
layout (correspondences.ensemble).

Embeddings file (HDF5):
  /audio            float32 [clips, D]     /text  float32 [captions, D]   (L2-normalised)
  /file_name        utf-8 [clips]          the clips, in the decoded-audio file's order
  /caption_file_name utf-8 [captions], /caption_index int64 [captions], /clip_of_caption int64 [captions],
  /caption utf-8 [captions]  (the caption texts, which relevance tables are matched by)
  attrs: checkpoint
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pandas as pd
import torch

from audioretrieval.files import HDF5Output

_STR = h5py.string_dtype("utf-8")


IDENTITY_KEYS = ("file_name", "caption_file_name", "caption_index", "clip_of_caption")


def identities_of(file_names: list[str], captions: pd.DataFrame) -> dict:
    """The clip and caption identities of a split: its clips in file order, its caption table's rows."""
    return {
        "file_name": list(file_names),
        "caption_file_name": captions["file_name"].tolist(),
        "caption_index": captions["caption_index"].to_numpy(np.int64),
        "clip_of_caption": captions["clip_index"].to_numpy(np.int64),
        "caption": captions["caption"].tolist(),
    }


def write_identities(f: h5py.File, identities: dict) -> None:
    for key in ("file_name", "caption_file_name", "caption"):
        f.create_dataset(key, data=identities[key], dtype=_STR)
    for key in ("caption_index", "clip_of_caption"):
        f[key] = np.asarray(identities[key], dtype=np.int64)


def read_identities(path: str | os.PathLike) -> dict:
    """The clip and caption identities of an embeddings or targets file (everything but the vectors)."""
    with h5py.File(path, "r") as f:
        missing = [key for key in (*IDENTITY_KEYS, "caption") if key not in f]
        if missing:
            raise KeyError(f"{path}: no {missing} datasets; expected an embeddings or targets file of this pipeline")
        return {
            **{key: [n.decode() for n in f[key][:]] for key in ("file_name", "caption_file_name", "caption")},
            "caption_index": f["caption_index"][:],
            "clip_of_caption": f["clip_of_caption"][:],
        }


def first_difference(reference: dict, other: dict) -> str | None:
    """The first identity key on which two splits' identities differ, or None when they agree."""
    for key in IDENTITY_KEYS:
        if not np.array_equal(np.asarray(reference[key], dtype=object), np.asarray(other[key], dtype=object)):
            return key
    return None


def write_embeddings(
    path: str | os.PathLike, audio: np.ndarray, text: np.ndarray, file_names: list[str], captions: pd.DataFrame, **attrs
) -> None:
    with HDF5Output(path) as f:
        f["audio"] = np.asarray(audio, dtype=np.float32)
        f["text"] = np.asarray(text, dtype=np.float32)
        write_identities(f, identities_of(file_names, captions))
        f.attrs.update(attrs)


def read_similarity(path: str | os.PathLike) -> torch.Tensor:
    """[captions, clips] cosine similarities of an embeddings file (or of an ensemble of embeddings
    files: the mean cosine of its members)."""
    with h5py.File(path, "r") as f:
        if "caption_text" in f:
            raise ValueError(
                f"{path}: holds caption estimates (correspondences.captions), which cannot score clips "
                f"without their captions; expected an embeddings file of audio and text"
            )
        for key in ("audio", "text"):
            if key not in f:
                raise KeyError(f"{path}: no '{key}' dataset; expected an embeddings file of this pipeline")
        return torch.from_numpy(f["text"][:]) @ torch.from_numpy(f["audio"][:]).T
