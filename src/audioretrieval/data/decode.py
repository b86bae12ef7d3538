"""Decoding a stream of encoded audio files into one HDF5 file of 32 kHz mono clips."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from audioretrieval.data.archive import base_name, list_members, stream_members
from audioretrieval.data.audio_io import is_audio_name, load_mono
from audioretrieval.data.h5audio import AudioH5Writer
from audioretrieval.files import write_table_atomically

log = logging.getLogger(__name__)

ON_BAD_CLIP = ("fail", "skip")
SKIPPED_COLUMNS = ["archive", "member", "reason"]
MISSING_COLUMNS = ["file_name"]


class DecodeError(RuntimeError):
    pass


@dataclass
class DecodeSummary:
    decoded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Expected:
    """The clips a source should hold: their file names, and the share of them that may be
    absent (YouTube-sourced sets always miss some) before decoding fails."""

    file_names: frozenset[str]
    max_missing_fraction: float = 0.0


def _decode_clip(data: bytes, sample_rate: int, writer: AudioH5Writer):
    waveform, duration = load_mono(data, sample_rate)
    return writer.encode(waveform), waveform.size, duration


def decode_members(
    source: str,
    members: Iterable[tuple[str, bytes]],
    total: int,
    out_h5: str | os.PathLike,
    skipped_csv: str | os.PathLike,
    sample_rate: int = 32000,
    sample_format: str = "int16",
    threads: int = 1,
    on_bad_clip: str = "fail",
    expected: Expected | None = None,
    missing_csv: str | os.PathLike | None = None,
    progress: bool = True,
) -> DecodeSummary:
    """Decode (member name, encoded bytes) pairs to mono `sample_rate` clips stored in `out_h5`,
    named by the member's base name, in stream order; decoding and encoding run on `threads`.

    A member that cannot be decoded raises DecodeError naming `source` and member (no output file
    remains), unless on_bad_clip == "skip": then it is left out and listed in `skipped_csv`, which
    is written in either case. With `expected`, the expected clips the stream did not hold are
    listed in `missing_csv`; more than the allowed share raises DecodeError (no output remains).
    """
    if on_bad_clip not in ON_BAD_CLIP:
        raise ValueError(f"on_bad_clip {on_bad_clip!r}: expected one of {ON_BAD_CLIP}")
    summary = DecodeSummary()
    seen: set[str] = set()
    in_flight = max(2, 2 * threads)
    pending: deque[tuple[str, Future]] = deque()

    def store_oldest(writer: AudioH5Writer) -> None:
        _store(*pending.popleft(), writer, summary, source, on_bad_clip)

    with (
        ThreadPoolExecutor(max_workers=threads) as pool,
        AudioH5Writer(out_h5, sample_rate, sample_format) as writer,
        tqdm(total=total, desc=f"decode {Path(source).name}", unit="clip", disable=not progress) as bar,
    ):
        for member, data in members:
            name = base_name(member)
            if name in seen:
                raise DecodeError(f"{source}: several members share a file name: {name!r}")
            seen.add(name)
            pending.append((member, pool.submit(_decode_clip, data, sample_rate, writer)))
            while len(pending) > in_flight:
                store_oldest(writer)
                bar.update()
        while pending:
            store_oldest(writer)
            bar.update()
        if expected is not None:
            summary.missing = sorted(expected.file_names - seen)
            _check_missing(source, summary.missing, len(expected.file_names), expected.max_missing_fraction)
        if summary.decoded == 0:
            raise DecodeError(f"{source}: none of its {total} audio members could be decoded")
        _write_lists(summary, source, skipped_csv, missing_csv)  # before the audio file is renamed into place
    return summary


def _store(
    member: str, future: Future, writer: AudioH5Writer, summary: DecodeSummary, source: str, on_bad_clip: str
) -> None:
    """Append a decoded member to the file, or fail / list it as skipped when it could not be decoded."""
    try:
        encoded, samples, duration = future.result()
    except Exception as exc:
        if on_bad_clip == "fail":
            raise DecodeError(f"{source}: member {member!r} cannot be decoded: {exc}") from exc
        summary.skipped.append((member, f"{type(exc).__name__}: {exc}"))
        return
    writer.append_encoded(base_name(member), encoded, samples, duration)
    summary.decoded += 1


def _write_lists(summary: DecodeSummary, source: str, skipped_csv, missing_csv) -> None:
    skipped = pd.DataFrame(
        [(str(source), member, reason) for member, reason in summary.skipped], columns=SKIPPED_COLUMNS
    )
    write_table_atomically(skipped, skipped_csv)
    if missing_csv is not None:
        write_table_atomically(pd.DataFrame({"file_name": summary.missing}, columns=MISSING_COLUMNS), missing_csv)


def _check_missing(source: str, missing: list[str], expected: int, max_fraction: float) -> None:
    if missing:
        log.warning("%s: %d of %d expected clips are missing: %s", source, len(missing), expected, missing)
    fraction = len(missing) / expected if expected else 0.0
    if fraction > max_fraction:
        raise DecodeError(
            f"{source}: {len(missing)} of {expected} expected clips are missing ({fraction:.1%}, more than "
            f"the allowed max_missing_fraction {max_fraction:.1%}); first: {missing[:5]} (all listed in the log)"
        )


def decode_archive(
    archive: str | os.PathLike, out_h5: str | os.PathLike, skipped_csv: str | os.PathLike, threads: int = 1, **options
) -> DecodeSummary:
    """Decode every audio member of a 7z archive (read straight from it, in archive order);
    `options` as for decode_members."""
    archive = Path(archive)
    names = [m for m in list_members(archive) if is_audio_name(m)]
    if not names:
        raise DecodeError(f"{archive}: no audio members (.wav, .flac, .ogg, .mp3) in the archive")
    with stream_members(archive, is_audio_name, max_buffered=max(2, 2 * threads)) as members:
        return decode_members(str(archive), members, len(names), out_h5, skipped_csv, threads=threads, **options)


def files_in_folder(folder: str | os.PathLike, file_names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of those of `file_names` that exist in `folder`, in the given order."""
    folder = Path(folder)
    for name in file_names:
        path = folder / name
        if path.is_file():
            yield name, path.read_bytes()
