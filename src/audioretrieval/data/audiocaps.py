"""AudioCaps: captions from the published CSV files, audio from a folder the user supplies (the
clips are YouTube excerpts and not publicly downloadable).

A caption file (`train.csv`, `test.csv` of github.com/cdjkim/audiocaps) has the columns audiocap_id,
youtube_id, start_time, caption; a clip is named by a template over youtube_id, start_time and
audiocap_id (config `audiocaps.file_name`), e.g. "{youtube_id}_{start_time}.wav". A test clip is
known by its YouTube id wherever it turns up (AudioCaps train, WavCaps AudioSet_SL).
"""

from __future__ import annotations

import os
import string

import pandas as pd

COLUMNS = ["audiocap_id", "youtube_id", "start_time", "caption"]
TEMPLATE_FIELDS = {"youtube_id", "start_time", "audiocap_id"}


def check_template(template: str) -> None:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = fields - TEMPLATE_FIELDS
    if unknown or "youtube_id" not in fields or "/" in template:
        raise ValueError(
            f"audiocaps.file_name {template!r}: expected a file name (no folder: set audiocaps.audio_dir) using "
            f"{{youtube_id}} and optionally {{start_time}} and {{audiocap_id}}; unknown fields {sorted(unknown)}"
        )


def read_captions(path: str | os.PathLike, template: str) -> pd.DataFrame:
    """The caption CSV with each caption's clip file name: audiocap_id, youtube_id, start_time,
    caption, file_name (captions of one clip keep their file order)."""
    check_template(template)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {COLUMNS}")
    table["file_name"] = [
        template.format(youtube_id=y, start_time=s, audiocap_id=a)
        for y, s, a in zip(table["youtube_id"], table["start_time"], table["audiocap_id"])
    ]
    return table


def youtube_ids(*paths: str | os.PathLike) -> set[str]:
    """The YouTube ids of the clips of caption files (of the test split: what no training set may hold)."""
    ids = set()
    for path in paths:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "youtube_id" not in table.columns:
            raise ValueError(f"{path}: missing column 'youtube_id'; expected {COLUMNS}")
        ids |= set(table["youtube_id"])
    return ids
