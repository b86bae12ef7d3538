"""A frozen text encoder's pooled states of every caption of a split, computed once (rule
text_states) and read by every job that would otherwise compute them again: each training run,
export and evaluation. Only the projection head learns on top of a frozen encoder, so these states
are all its jobs ever take from it; on the demo they were a tenth of a training run's time.

States file (HDF5):
  /caption  utf-8 [n]           the distinct normalised captions (tokenizer.normalize_caption)
  /state    float32 [n, hidden] their pooled encoder states, computed in fp32
  attrs: encoder, tokenizer, max_tokens, pooling   (TextEncoder.state_key of the encoder that wrote them)

A job reads them only into an encoder with the same key (`preload`), so a file written by another
encoder, tokenizer, token limit or pooling is refused by name rather than used.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pandas as pd
import torch

from audioretrieval.files import HDF5Output
from audioretrieval.model.text import TextEncoder
from audioretrieval.model.tokenizer import normalize_caption

_STR = h5py.string_dtype("utf-8")


def write_text_states(
    text_cfg: dict, captions: str | os.PathLike, out: str | os.PathLike, batch_size: int = 256
) -> int:
    """The pooled states of every distinct caption of a caption table, by the frozen encoder of
    `text_cfg` (model.text) with its pretrained weights; the number of captions written."""
    encoder = TextEncoder(text_cfg, out_dim=1).eval()  # the projection head plays no part
    published = pd.read_parquet(captions, columns=["caption"])["caption"]
    # batches of similar lengths, little padding (padding moves a state by float rounding only)
    texts = sorted({normalize_caption(c) for c in published}, key=lambda t: (len(t), t))
    with torch.no_grad():
        states = [encoder.pooled_states(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    with HDF5Output(out) as f:
        f.create_dataset("caption", data=texts, dtype=_STR)
        f["state"] = torch.cat(states).numpy().astype(np.float32) if states else np.zeros((0, 0), np.float32)
        f.attrs.update(encoder.state_key())
    return len(texts)


def preload(encoder: TextEncoder, *paths: str | os.PathLike) -> int:
    """Give a frozen encoder the states of these files (written by write_text_states with the same
    encoder, tokenizer, token limit and pooling); the number of captions taken."""
    key = encoder.state_key()
    taken = 0
    for path in paths:
        with h5py.File(path, "r") as f:
            for name in ("caption", "state"):
                if name not in f:
                    raise KeyError(f"{path}: no '{name}' dataset; expected a text states file of this pipeline")
            for name, expected in key.items():
                found = f.attrs.get(name)
                if found != expected:
                    raise ValueError(
                        f"{path}: written with {name} {found!r}, but this model's text encoder has {expected!r}; "
                        f"its pooled states would not be this encoder's (rerun the text_states rule)"
                    )
            texts = [t.decode() for t in f["caption"][:]]
            states = torch.from_numpy(f["state"][:])
        encoder.remember(dict(zip(texts, states)))
        taken += len(texts)
    return taken
