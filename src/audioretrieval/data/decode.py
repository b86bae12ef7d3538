"""Decoding an archive of audio files into one HDF5 file of 32 kHz mono clips."""

from __future__ import annotations

import os
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .archive import base_name, list_members, stream_members
from .audio_io import is_audio_name, load_mono
from .h5audio import AudioH5Writer
from .tables import write_table_atomically

ON_BAD_CLIP = ("fail", "skip")
SKIPPED_COLUMNS = ["archive", "member", "reason"]


class DecodeError(RuntimeError):
    pass


@dataclass
class DecodeSummary:
    decoded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def decode_archive(
    archive: str | os.PathLike,
    out_h5: str | os.PathLike,
    skipped_csv: str | os.PathLike,
    sample_rate: int = 32000,
    sample_format: str = "int16",
    threads: int = 1,
    on_bad_clip: str = "fail",
    progress: bool = True,
) -> DecodeSummary:
    """Decode every audio member of a 7z archive to mono `sample_rate` and store it in `out_h5`.

    Members are read straight from the archive and decoded on `threads` threads; rows keep
    archive order. A member that cannot be decoded raises DecodeError naming archive and member
    (no output file remains), unless on_bad_clip == "skip": then it is left out and listed in
    `skipped_csv`, which is written in either case.
    """
    if on_bad_clip not in ON_BAD_CLIP:
        raise ValueError(f"on_bad_clip {on_bad_clip!r}: expected one of {ON_BAD_CLIP}")
    archive = Path(archive)
    names = [m for m in list_members(archive) if is_audio_name(m)]
    if not names:
        raise DecodeError(f"{archive}: no audio members (.wav, .flac, .ogg, .mp3) in the archive")
    duplicates = sorted(name for name, n in Counter(map(base_name, names)).items() if n > 1)
    if duplicates:
        raise DecodeError(f"{archive}: several members share a file name: {duplicates[:5]}")

    summary = DecodeSummary()
    in_flight = max(2, 2 * threads)
    pending: deque[tuple[str, Future]] = deque()

    def store_oldest(writer: AudioH5Writer) -> None:
        member, future = pending.popleft()
        try:
            waveform, duration = future.result()
        except Exception as exc:
            if on_bad_clip == "fail":
                raise DecodeError(f"{archive}: member {member!r} cannot be decoded: {exc}") from exc
            summary.skipped.append((member, f"{type(exc).__name__}: {exc}"))
            return
        writer.append(base_name(member), waveform, duration)
        summary.decoded += 1

    with (
        ThreadPoolExecutor(max_workers=threads) as pool,
        AudioH5Writer(out_h5, sample_rate, sample_format) as writer,
        stream_members(archive, is_audio_name, max_buffered=in_flight) as members,
        tqdm(total=len(names), desc=f"decode {archive.name}", unit="clip", disable=not progress) as bar,
    ):
        for member, data in members:
            pending.append((member, pool.submit(load_mono, data, sample_rate)))
            while len(pending) > in_flight:
                store_oldest(writer)
                bar.update()
        while pending:
            store_oldest(writer)
            bar.update()
        if summary.decoded == 0:
            raise DecodeError(f"{archive}: none of its {len(names)} audio members could be decoded")

    skipped = pd.DataFrame(
        [(str(archive), member, reason) for member, reason in summary.skipped], columns=SKIPPED_COLUMNS
    )
    write_table_atomically(skipped, skipped_csv)
    return summary
