"""Caption tables: one row per caption, tied to its clip's row in the decoded-audio file."""

from __future__ import annotations

import logging
import os
import unicodedata

import pandas as pd

from audioretrieval.data.clotho import CAPTION_COLUMNS
from audioretrieval.data.h5audio import AudioH5

CAPTION_TABLE_COLUMNS = ["file_name", "clip_index", "caption_index", "caption"]

log = logging.getLogger(__name__)


def nfc(name: str) -> str:
    """A text in Unicode NFC, so that a name written decomposed (as some systems store file names)
    matches the same name composed."""
    return unicodedata.normalize("NFC", str(name))


def read_captions_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A ClothoV2 captions file (file_name, caption_1..caption_5), every text exactly as published."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    missing = [c for c in ["file_name", *CAPTION_COLUMNS] if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected file_name, {', '.join(CAPTION_COLUMNS)}")
    repeated = table.loc[table["file_name"].map(nfc).duplicated(), "file_name"].tolist()
    if repeated:
        raise ValueError(f"{path}: file names listed more than once: {repeated[:5]}")
    empty = [
        (name, column) for column in CAPTION_COLUMNS for name in table.loc[table[column].str.strip() == "", "file_name"]
    ]
    if empty:
        raise ValueError(
            f"{path}: {len(empty)} empty captions, e.g. {empty[:3]} (file_name, column); "
            f"expected a caption in every cell"
        )
    return table


def _first(names, n: int = 5) -> str:
    names = sorted(names)
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(repr(x) for x in names[:n]) + more


def build_caption_table(
    captions_csv: str | os.PathLike, audio: AudioH5, skipped_files: set[str] = frozenset()
) -> pd.DataFrame:
    """Long table of captions in clip-row order; captions of clips skipped while decoding are dropped.

    Every clip in the audio file must have captions, and every captioned clip must be in the audio
    file (or among `skipped_files`); otherwise a ValueError lists the first offenders.
    """
    wide = read_captions_csv(captions_csv)
    in_audio = {nfc(n) for n in audio.file_names}
    captioned = {nfc(n) for n in wide["file_name"]}
    unknown = captioned - in_audio - {nfc(n) for n in skipped_files}
    if unknown:
        raise ValueError(f"{captions_csv}: captions for clips not in {audio.path}: {_first(unknown)}")
    uncaptioned = in_audio - captioned
    if uncaptioned:
        raise ValueError(f"{audio.path}: clips without captions in {captions_csv}: {_first(uncaptioned)}")
    # melted column by column, so each clip's captions come in caption_1..caption_5 order
    long = wide.melt(id_vars="file_name", value_vars=CAPTION_COLUMNS, value_name="caption")
    return caption_table_of_clips(long, audio)


def caption_table_of_clips(captions: pd.DataFrame, audio: AudioH5) -> pd.DataFrame:
    """Caption table of the clips in `audio` from a long table (file_name, caption; any number
    of rows per clip, numbered 1, 2, ... in their order); captions of clips not in `audio`
    (missing, skipped or excluded) are dropped, and so are empty captions (logged). Every clip in
    `audio` must have a caption. Names match whatever their Unicode normal form; the table uses
    the audio file's."""
    name_in_audio = {nfc(n): n for n in audio.file_names}
    named = captions.assign(file_name=captions["file_name"].map(lambda n: name_in_audio.get(nfc(n))))
    kept = named.loc[named["file_name"].notna(), ["file_name", "caption"]].copy()
    empty = kept["caption"].astype(str).str.strip() == ""
    if empty.any():
        log.warning(
            "%d empty captions dropped, e.g. of %s", int(empty.sum()), kept.loc[empty, "file_name"].head(3).tolist()
        )
        kept = kept.loc[~empty]
    uncaptioned = set(audio.file_names) - set(kept["file_name"])
    if uncaptioned:
        raise ValueError(f"{audio.path}: clips without captions: {_first(uncaptioned)}")
    kept["caption_index"] = (kept.groupby("file_name").cumcount() + 1).astype("int64")
    kept["clip_index"] = kept["file_name"].map(audio.row_of).astype("int64")
    return kept.sort_values(["clip_index", "caption_index"], kind="stable", ignore_index=True)[CAPTION_TABLE_COLUMNS]
