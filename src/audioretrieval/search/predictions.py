"""The DCASE 2025 Task 6 prediction file: every query's score for every audio file of a folder, as
the challenge baseline's `d25_t6/predict.py` writes it (CPJKU/dcase2025_task6_baseline).

Its layout: a CSV whose first column, `index`, holds the queries (each distinct query once, in the
order of the queries file), then one column per audio file named by its file name, each cell the
mean of the elementwise product of the query's and the file's normalised embeddings (their cosine
divided by the embedding size). The audio files are the folder's own (not its subfolders'); each is
embedded as evaluation embeds a clip: decoded to the stored rate, mono, its first segment (the
checkpoint's train.segment_s; the baseline crops a random 30 s of a longer file), zero-padded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audioretrieval.data.audio_io import is_audio_name, load_mono
from audioretrieval.device import choose_device
from audioretrieval.model.audio import STORED_RATE
from audioretrieval.search.checkpoints import load_search_model
from audioretrieval.search.query import embed_queries
from audioretrieval.search.store import SearchError

QUERY_COLUMN = "caption"  # the queries file's column, as the baseline reads it
INDEX_COLUMN = "index"


def read_prediction_queries(path: str | os.PathLike) -> list[str]:
    """The distinct queries of a CSV's `caption` column, in order."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise SearchError(f"{path}: cannot read it as a CSV of queries ({exc})") from exc
    if QUERY_COLUMN not in table:
        raise SearchError(f"{path}: no column {QUERY_COLUMN!r} (found {list(table.columns)}); the queries go there")
    if table.empty:
        raise SearchError(f"{path}: no queries")
    empty = [row + 2 for row, text in enumerate(table[QUERY_COLUMN]) if not text.strip()]
    if empty:
        raise SearchError(f"{path}: line {empty[0]} has an empty {QUERY_COLUMN!r}; every query needs a text")
    return list(dict.fromkeys(table[QUERY_COLUMN]))


def folder_audio_files(folder: str | os.PathLike) -> list[Path]:
    """The audio files directly in `folder`, by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SearchError(f"{folder}: no such folder of audio files")
    files = sorted(path for path in folder.iterdir() if path.is_file() and is_audio_name(path.name))
    if not files:
        raise SearchError(f"{folder}: no audio files in it (.wav .flac .ogg .mp3)")
    return files


def first_segment(path: Path, segment: int) -> tuple[np.ndarray, float]:
    """A file's first `segment` samples at the stored rate, zero-padded, and the share that is signal."""
    try:
        waveform, _ = load_mono(path.read_bytes(), STORED_RATE)
    except Exception as exc:
        raise SearchError(f"{path}: cannot decode it as audio ({type(exc).__name__}: {exc})") from exc
    crop = waveform[:segment]
    if not np.isfinite(crop).all():
        raise SearchError(f"{path}: holds samples that are not numbers (NaN or inf): it cannot be scored")
    return np.pad(crop, (0, segment - len(crop))), max(len(crop), 1) / segment


@torch.no_grad()
def prediction_table(
    folder: str | os.PathLike,
    queries_csv: str | os.PathLike,
    checkpoint: str | os.PathLike,
    device: str | None = None,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Queries (rows, `index`) by audio files (columns, by file name): cosine / embedding size."""
    queries = read_prediction_queries(queries_csv)
    files = folder_audio_files(folder)
    model, contents = load_search_model(checkpoint, choose_device(device))
    segment = int(round(contents["segment_s"] * STORED_RATE))
    audio = []
    for start in range(0, len(files), batch_size):
        crops, fractions = zip(*(first_segment(path, segment) for path in files[start : start + batch_size]))
        waveform = torch.from_numpy(np.stack(crops)).to(model_device(model))
        fraction = torch.tensor(fractions, dtype=torch.float32, device=waveform.device)
        audio.append(model.embed_audio(waveform, fraction).float().cpu())
    audio = torch.cat(audio)
    text = embed_queries(model, queries)
    scores = (text @ audio.T / audio.shape[1]).numpy()
    return pd.DataFrame(scores, index=pd.Index(queries, name=INDEX_COLUMN), columns=[path.name for path in files])


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
