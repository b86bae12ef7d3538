"""Preparing the AudioCaps and WavCaps sets (extra stage-1 sets; AudioCaps test a test set): decoding
their audio to HDF5 and writing their caption tables, with their missing-file policy and the
exclusion of clips that are in a test set (ClothoV2's, through the DCASE list; AudioCaps test's)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from audioretrieval.data import audiocaps, wavcaps
from audioretrieval.data.archive import base_name
from audioretrieval.data.audio_io import is_audio_name
from audioretrieval.data.captions import caption_table_of_clips
from audioretrieval.data.decode import DecodeSummary, Expected, decode_members, files_in_folder
from audioretrieval.data.h5audio import AudioH5
from audioretrieval.data.zip_parts import stream_zip_members
from audioretrieval.files import write_table_atomically

log = logging.getLogger(__name__)


def prepare_audiocaps(
    captions_csv,
    audio_dir,
    settings: dict,
    out: dict,
    threads: int = 1,
    progress: bool = True,
    held_out: set[str] = frozenset(),
) -> DecodeSummary:
    """Decode the clips of an AudioCaps caption file found in `audio_dir` (named by
    settings["file_name"]), leaving out the rows of a `held_out` YouTube id (a test clip; listed in
    out["excluded"]); `out` names the outputs: audio, captions, skipped, missing (and excluded)."""
    listed = audiocaps.read_captions(captions_csv, settings["file_name"])
    leaked = listed["youtube_id"].isin(held_out)
    captions = listed.loc[~leaked]
    log.info("%d captions of held-out clips left out", int(leaked.sum()))
    if not Path(audio_dir).is_dir():
        raise FileNotFoundError(
            f"audiocaps.audio_dir {os.fspath(audio_dir)!r}: no such folder (the AudioCaps audio you supply)"
        )
    names = list(dict.fromkeys(captions["file_name"]))
    expected = Expected(frozenset(names), settings["max_missing_fraction"])
    summary = decode_members(
        os.fspath(audio_dir),
        files_in_folder(audio_dir, names),
        len(names),
        out["audio"],
        out["skipped"],
        settings["sample_rate"],
        settings["sample_format"],
        threads,
        settings["on_bad_clip"],
        expected=expected,
        missing_csv=out["missing"],
        progress=progress,
    )
    if "excluded" in out:  # written once the audio is (a failed decode leaves nothing that looks finished)
        write_table_atomically(listed.loc[leaked, ["audiocap_id", "youtube_id", "file_name"]], out["excluded"])
    _write_captions(captions, out)
    return summary


def prepare_wavcaps(
    source: str,
    captions_json,
    parts_list,
    exclusion_csv,
    settings: dict,
    out: dict,
    threads: int = 1,
    progress: bool = True,
    held_out: set[str] = frozenset(),
) -> DecodeSummary:
    """Decode one WavCaps source's captioned clips from its archive parts, leaving out the clips the
    exclusion list names (the list is needed for FreeSound only) and AudioSet_SL's of a `held_out`
    YouTube id (listed in out["excluded"]); outputs as for prepare_audiocaps."""
    captions = wavcaps.read_captions(captions_json, source)
    if exclusion_csv is None and source == wavcaps.EXCLUDED_SOURCE:
        raise ValueError(f"WavCaps {source}: the exclusion list of ClothoV2 Freesound ids is required")
    excluded_ids = wavcaps.read_exclusion_list(exclusion_csv) if exclusion_csv is not None else set()
    wanted, excluded = wavcaps.clips_to_decode(captions, source, excluded_ids, held_out)
    log.info("%s: %d captioned clips, %d left out (exclusion list, test clips)", source, len(captions), len(excluded))
    parts = wavcaps.read_parts_list(parts_list)
    members = stream_zip_members(parts, lambda name: is_audio_name(name) and base_name(name) in wanted)
    summary = decode_members(
        os.fspath(parts[-1]),
        members,
        len(wanted),
        out["audio"],
        out["skipped"],
        settings["sample_rate"],
        settings["sample_format"],
        threads,
        settings["on_bad_clip"],
        expected=Expected(frozenset(wanted), settings["max_missing_fraction"]),
        missing_csv=out["missing"],
        progress=progress,
    )
    write_table_atomically(captions.loc[captions["file_name"].isin(excluded), ["id", "file_name"]], out["excluded"])
    _write_captions(captions, out)
    return summary


def _write_captions(captions, out: dict) -> None:
    table = caption_table_of_clips(captions, AudioH5(out["audio"]))
    write_table_atomically(table, out["captions"])
    log.info("%d captions of %d clips", len(table), table["clip_index"].nunique())
