"""Per-model export: normalised embeddings of every clip and caption of a split, and each caption's top-k clips.

Embeddings file (HDF5):
  /audio            float32 [clips, D]     /text  float32 [captions, D]   (L2-normalised)
  /file_name        utf-8 [clips]          the clips, in the decoded-audio file's order
  /caption_file_name utf-8 [captions], /caption_index int64 [captions], /clip_of_caption int64 [captions],
  /caption utf-8 [captions]  (the caption texts, which correspondence tables are matched by)
  attrs: checkpoint
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pandas as pd
import torch

from .checkpoint import load_model
from .data.dataset import read_caption_table
from .data.h5audio import AudioH5
from .data.tables import write_table_atomically
from .embed import embed_split, resolve_precision
from .files import written_atomically

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


def write_embeddings(path: str | os.PathLike, audio: np.ndarray, text: np.ndarray, file_names: list[str],
                     captions: pd.DataFrame, **attrs) -> None:
    with written_atomically(path) as tmp, h5py.File(tmp, "w") as f:
        f["audio"] = np.asarray(audio, dtype=np.float32)
        f["text"] = np.asarray(text, dtype=np.float32)
        write_identities(f, identities_of(file_names, captions))
        f.attrs.update(attrs)


def top_k_table(audio: torch.Tensor, text: torch.Tensor, file_names: list[str], captions: pd.DataFrame, k: int,
                chunk: int = 1024) -> pd.DataFrame:
    """Per caption, its k most similar clips: rank, clip, cosine similarity, whether it is the own clip."""
    k = min(k, audio.shape[0])
    names = np.asarray(file_names, dtype=object)
    parts = []
    for start in range(0, text.shape[0], chunk):
        scores, clips = (text[start : start + chunk] @ audio.T).topk(k, dim=1)
        rows = captions.iloc[start : start + chunk]
        own = rows["clip_index"].to_numpy()[:, None] == clips.numpy()
        parts.append(pd.DataFrame({
            "file_name": np.repeat(rows["file_name"].to_numpy(), k),
            "caption_index": np.repeat(rows["caption_index"].to_numpy(), k),
            "caption": np.repeat(rows["caption"].to_numpy(), k),
            "rank": np.tile(np.arange(1, k + 1), len(rows)),
            "clip_file_name": names[clips.numpy().ravel()],
            "similarity": scores.numpy().ravel(),
            "is_own_clip": own.ravel(),
        }))
    return pd.concat(parts, ignore_index=True)


def embed_checkpoint(checkpoint: str | os.PathLike, audio_h5: str | os.PathLike, captions: str | os.PathLike,
                     out_h5: str | os.PathLike, batch_size: int, device: str = "cpu",
                     precision: str = "auto") -> tuple[dict, list[str], pd.DataFrame]:
    """Embed every clip and caption of a split with a checkpoint (evaluation mode: no patchout, no
    random crop) into an embeddings file, under autocast of `precision` on a GPU (train.precision;
    the seed embeds in fp16); returns the embeddings, clip names and caption table."""
    device = torch.device(device)
    model, meta = load_model(checkpoint, device)
    precision = resolve_precision(precision, device)
    embeddings = embed_split(model, audio_h5, captions, meta["segment_s"], batch_size, device, precision)
    table = read_caption_table(captions, len(embeddings["audio"]), audio_h5)
    file_names = AudioH5(audio_h5).file_names
    write_embeddings(out_h5, embeddings["audio"].numpy(), embeddings["text"].numpy(), file_names, table,
                     checkpoint=str(checkpoint))
    return embeddings, file_names, table


def export_model(checkpoint: str | os.PathLike, audio_h5: str | os.PathLike, captions: str | os.PathLike,
                 out_h5: str | os.PathLike, top_k_parquet: str | os.PathLike, k: int, batch_size: int,
                 device: str = "cpu", precision: str = "auto") -> None:
    """The embeddings file of a split and each caption's top-k clips."""
    embeddings, file_names, table = embed_checkpoint(checkpoint, audio_h5, captions, out_h5, batch_size, device, precision)
    write_table_atomically(top_k_table(embeddings["audio"], embeddings["text"], file_names, table, k), top_k_parquet)
