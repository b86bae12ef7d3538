"""The WavCaps release (Hugging Face dataset cvssp/WavCaps): its files, caption JSON and the
DCASE list of Freesound ids that must not be used because they are in ClothoV2 (and, where AudioCaps
test is a test set, the AudioSet_SL clips of its YouTube ids).

Per source, the release holds caption files `json_files/{source}/*.json`
({"data": [{"id", "caption", "duration", ...}, ...]}) and the 32 kHz FLAC audio in a ZIP archive
`Zip_files/{source}/{source}.zip`, split into parts `{source}.z01`, `{source}.z02`, ... where it is
large. A clip's file name is "{id}.flac" (AudioSet_SL ids end in ".wav", replaced by ".flac").
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd

from audioretrieval.data.download import download
from audioretrieval.data.zip_parts import part_names
from audioretrieval.files import write_text_atomically

log = logging.getLogger(__name__)

# The caption file the reference code reads per source (salsa data/datasets/wavcaps.py); for FreeSound it reads
# fsd_final_2s.json, where the DCASE 2025 baseline reads fsd_final.json (config wavcaps.caption_files).
SOURCES = {
    "AudioSet_SL": "as_final.json",
    "BBC_Sound_Effects": "bbc_final.json",
    "FreeSound": "fsd_final_2s.json",
    "SoundBible": "sb_final.json",
}
EXCLUDED_SOURCE = "FreeSound"  # the DCASE list names Freesound ids
YOUTUBE_SOURCE = "AudioSet_SL"  # clips of AudioSet, named by their YouTube ids
EXCLUSION_FILE = "dcase2024_task6_excluded_freesound_ids.csv"
PARTS_FILE = "parts.txt"


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"WavCaps source {source!r}: expected one of {list(SOURCES)}")


def json_file(source: str, caption_files: dict | None = None) -> str:
    """The source's caption file: SOURCES's, unless `caption_files` (config wavcaps.caption_files) names another."""
    _check_source(source)
    return f"json_files/{source}/{(caption_files or {}).get(source, SOURCES[source])}"


def last_part(source: str) -> str:
    _check_source(source)
    return f"Zip_files/{source}/{source}.zip"


def parts_file(source: str) -> str:
    """The list of the source's archive parts, written once every part is on disk."""
    _check_source(source)
    return f"Zip_files/{source}/{PARTS_FILE}"


def release_files(source: str, caption_files: dict | None = None) -> list[str]:
    """What a complete source leaves in the raw folder that the pipeline tracks: its caption file
    and its parts list (which is written after every part)."""
    return [json_file(source, caption_files), parts_file(source)]


def file_name_of(source: str, clip_id: str) -> str:
    clip_id = str(clip_id)
    return clip_id[: -len(".wav")] + ".flac" if clip_id.endswith(".wav") else f"{clip_id}.flac"


def read_captions(path: str | os.PathLike, source: str) -> pd.DataFrame:
    """A source's caption JSON as a table: id, file_name, caption (one per clip)."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
        table = pd.DataFrame({"id": [str(r["id"]) for r in rows], "caption": [str(r["caption"]) for r in rows]})
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f'{path}: expected WavCaps JSON {{"data": [{{"id": ..., "caption": ...}}, ...]}}: {exc!r}'
        ) from exc
    table["file_name"] = [file_name_of(source, i) for i in table["id"]]
    repeated = table.loc[table["file_name"].duplicated(), "file_name"].tolist()
    if repeated:
        raise ValueError(f"{path}: clips listed more than once: {repeated[:5]}")
    return table


def read_exclusion_list(path: str | os.PathLike) -> set[str]:
    """The Freesound ids of the DCASE exclusion list (CSV, header row, ids in the first column)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if table.shape[1] == 0 or table.empty:
        raise ValueError(f"{path}: expected a CSV with a header and one Freesound id per row; found no ids")
    ids = table.iloc[:, 0].str.strip()
    bad = ids[~ids.str.fullmatch(r"\d+")].tolist()
    if bad:
        raise ValueError(f"{path}: Freesound ids must be integers; found {bad[:5]} in column {table.columns[0]!r}")
    return set(ids)


def youtube_id_of(clip_id: str) -> str:
    """The YouTube id of an AudioSet_SL clip ("Y" + the id + ".wav", as AudioSet names its files)."""
    stem = clip_id[: -len(".wav")] if clip_id.endswith(".wav") else clip_id
    return stem[1:] if stem.startswith("Y") and len(stem) == 12 else stem


def clips_to_decode(
    captions: pd.DataFrame, source: str, excluded_ids: set[str], held_out_youtube_ids: set[str] = frozenset()
) -> tuple[set[str], set[str]]:
    """(file names to decode, file names left out: FreeSound's that the exclusion list names,
    AudioSet_SL's of a held-out YouTube clip, such as AudioCaps test's)."""
    excluded = set()
    if source == EXCLUDED_SOURCE:
        excluded = set(captions.loc[captions["id"].isin(excluded_ids), "file_name"])
    if source == YOUTUBE_SOURCE and held_out_youtube_ids:
        held_out = captions["id"].map(youtube_id_of).isin(held_out_youtube_ids)
        excluded |= set(captions.loc[held_out, "file_name"])
    return set(captions["file_name"]) - excluded, excluded


def download_source(
    base_url: str, raw_dir: str | os.PathLike, source: str, settings: dict, caption_files: dict | None = None
) -> list[str]:
    """Download a source's caption JSON and every archive part (each resumable); the parts list is
    written last, so its presence means the source is complete. Returns the part names."""
    raw_dir = Path(raw_dir)
    base_url = base_url.rstrip("/")
    options = {k: settings[k] for k in ("retries", "backoff_s", "timeout_s")}

    def fetch(relative: str) -> Path:
        # a file under its final name is complete (downloads grow under <name>.part), so a rerun
        # after a failed part fetches only what is missing
        dest = raw_dir / relative
        if not dest.exists():
            download(f"{base_url}/{relative}", dest, None, **options)
        return dest

    fetch(json_file(source, caption_files))
    names = part_names(fetch(last_part(source)))
    for name in names[:-1]:
        fetch(f"Zip_files/{source}/{name}")
    write_parts_list(raw_dir / parts_file(source), names)
    return names


def write_parts_list(path: str | os.PathLike, names: list[str]) -> None:
    write_text_atomically("".join(f"{name}\n" for name in names), path)


def read_parts_list(path: str | os.PathLike) -> list[Path]:
    path = Path(path)
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: lists no archive parts")
    return [path.with_name(name) for name in names]
