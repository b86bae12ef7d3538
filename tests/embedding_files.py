"""Small embeddings files for tests: a few clips with awkward names, their captions, random unit vectors."""

import numpy as np
import pandas as pd

from audioretrieval.data.embeddings import write_embeddings

CLIPS = [f"clip {i}, é.wav" for i in range(6)]


def caption_table(clips=CLIPS, per_clip=2):
    rows = [(name, i, k, f"caption {k} of {name}") for i, name in enumerate(clips) for k in range(1, per_clip + 1)]
    return pd.DataFrame(rows, columns=["file_name", "clip_index", "caption_index", "caption"])


def member(path, seed, clips=CLIPS, captions=None, dim=8):
    rng = np.random.default_rng(seed)
    captions = caption_table(clips) if captions is None else captions

    def unit(n):
        x = rng.standard_normal((n, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    audio, text = unit(len(clips)), unit(len(captions))
    write_embeddings(path, audio, text, clips, captions)
    return audio, text
