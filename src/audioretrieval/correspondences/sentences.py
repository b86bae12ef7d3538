"""The caption estimator's sentence embeddings (correspondences.captions): every training caption
embedded by a sentence-transformers model, written as a caption file."""

from __future__ import annotations

import os

import numpy as np

from audioretrieval.correspondences.captions import write_caption_file
from audioretrieval.data.dataset import read_caption_table
from audioretrieval.data.h5audio import AudioH5
from audioretrieval.resources import resolve_name


def sentence_model(name: str, device: str):
    """A sentence-transformers model: a hub name (loaded from the hub, or its cache), a local
    directory, or pkg://package/dir for one shipped on PyPI (resources.resolve_name)."""
    from sentence_transformers import SentenceTransformer  # only the job that embeds captions pays for it

    try:
        return SentenceTransformer(resolve_name(name), device=str(device))
    except OSError as exc:
        raise OSError(
            f"correspondences.captions.model {name!r} could not be loaded ({exc}); on a machine without network, "
            f"download it (`huggingface-cli download {name} --local-dir DIR` where there is one) and set "
            f"correspondences.captions.model to that directory"
        ) from exc


def embed_captions(model_name: str, texts: list[str], batch_size: int, device: str = "cpu") -> np.ndarray:
    """[captions, D] normalised sentence embeddings of the captions as published (no preprocessing:
    sentence models are trained on written text)."""
    model = sentence_model(model_name, device)
    embeddings = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(embeddings, dtype=np.float32)


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
