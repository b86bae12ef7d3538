"""The search index file: one HDF5 file, rewritten whole under a temporary name and renamed on success.

/embeddings         float32 [segments, D]  L2-normalised audio embeddings, the segments of a file
                                           consecutive, files in /files order
/segment_start_s    float64 [segments]     where each segment starts in its file, in seconds
/files/path         utf-8 [files]          path relative to the indexed folder, '/'-separated
/files/size         int64 [files]          size in bytes and modification time (ns) of the file
/files/mtime_ns     int64 [files]          when it was embedded: a file that differs is re-embedded
/files/duration_s   float64 [files]        duration of the decoded audio
/files/segments     int64 [files]          how many rows of /embeddings are the file's
/skipped/path, /skipped/size, /skipped/mtime_ns   files that could not be decoded ...
/skipped/reason     utf-8 [skipped]        ... and why; retried only once they change
attrs: format_version (1), checkpoint_sha256 (digest of the checkpoint file's bytes), checkpoint
       (its path when the index was built), segment_s, sample_rate, folder (the folder indexed)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from audioretrieval.files import written_atomically

FORMAT_VERSION = 1
_STR = h5py.string_dtype("utf-8")


class SearchError(ValueError):
    """A problem with the user's input: names the path and what was expected."""


@dataclass
class FileEntry:
    size: int
    mtime_ns: int
    duration_s: float
    starts_s: np.ndarray  # float64 [segments]
    embeddings: np.ndarray  # float32 [segments, D]


@dataclass
class SkippedEntry:
    size: int
    mtime_ns: int
    reason: str


@dataclass
class SearchIndex:
    checkpoint_sha256: str
    checkpoint: str
    segment_s: float
    sample_rate: int
    folder: str
    files: dict[str, FileEntry] = field(default_factory=dict)
    skipped: dict[str, SkippedEntry] = field(default_factory=dict)


@dataclass
class SegmentTable:
    """What a query needs: every segment's embedding, file and start."""

    embeddings: np.ndarray  # float32 [segments, D]
    file_of_segment: np.ndarray  # int64 [segments], row in `paths`
    starts_s: np.ndarray  # float64 [segments]
    paths: list[str]
    first_segment: np.ndarray  # int64 [files]: the file's first row (its rows are consecutive)


def _strings(group: h5py.Group, key: str) -> list[str]:
    return [s.decode() for s in group[key][:]]


def write_index(path: str | os.PathLike, index: SearchIndex) -> None:
    paths = sorted(index.files)
    entries = [index.files[p] for p in paths]
    dim = entries[0].embeddings.shape[1] if entries else 0
    with written_atomically(path) as tmp, h5py.File(tmp, "w") as f:
        f["embeddings"] = (
            np.concatenate([e.embeddings for e in entries]) if entries else np.zeros((0, dim), np.float32)
        ).astype(np.float32, copy=False)
        f["segment_start_s"] = np.concatenate([e.starts_s for e in entries]) if entries else np.zeros(0)
        files = f.create_group("files")
        files.create_dataset("path", data=paths, dtype=_STR)
        files["size"] = np.array([e.size for e in entries], dtype=np.int64)
        files["mtime_ns"] = np.array([e.mtime_ns for e in entries], dtype=np.int64)
        files["duration_s"] = np.array([e.duration_s for e in entries], dtype=np.float64)
        files["segments"] = np.array([len(e.starts_s) for e in entries], dtype=np.int64)
        skipped_paths = sorted(index.skipped)
        skipped = [index.skipped[p] for p in skipped_paths]
        group = f.create_group("skipped")
        group.create_dataset("path", data=skipped_paths, dtype=_STR)
        group["size"] = np.array([s.size for s in skipped], dtype=np.int64)
        group["mtime_ns"] = np.array([s.mtime_ns for s in skipped], dtype=np.int64)
        group.create_dataset("reason", data=[s.reason for s in skipped], dtype=_STR)
        f.attrs.update(
            format_version=FORMAT_VERSION,
            checkpoint_sha256=index.checkpoint_sha256,
            checkpoint=index.checkpoint,
            segment_s=index.segment_s,
            sample_rate=index.sample_rate,
            folder=index.folder,
        )


def _open_index(path: str | os.PathLike) -> h5py.File:
    """The index file opened for reading, or an error saying what is wrong with it."""
    if not Path(path).is_file():
        raise SearchError(
            f"{path}: no such index file; build one with `audioretrieval-search index FOLDER "
            f"--checkpoint CKPT --index {path}`"
        )
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise SearchError(
            f"{path}: not a search index (cannot be read as HDF5: {exc}); expected a file written "
            f"by `audioretrieval-search index`"
        ) from exc
    if f.attrs.get("format_version") != FORMAT_VERSION or "embeddings" not in f or "files" not in f:
        f.close()
        raise SearchError(
            f"{path}: not a search index of format {FORMAT_VERSION}; expected a file written by "
            f"`audioretrieval-search index`"
        )
    return f


def read_index(path: str | os.PathLike) -> SearchIndex:
    """The whole index, per file (for updating it)."""
    with _open_index(path) as f:
        attrs = f.attrs
        index = SearchIndex(
            str(attrs["checkpoint_sha256"]),
            str(attrs["checkpoint"]),
            float(attrs["segment_s"]),
            int(attrs["sample_rate"]),
            str(attrs["folder"]),
        )
        counts = f["files/segments"][:]
        bounds = np.cumsum(counts)[:-1]
        embeddings = np.split(f["embeddings"][:], bounds)
        starts = np.split(f["segment_start_s"][:], bounds)
        rows = zip(_strings(f["files"], "path"), f["files/size"][:], f["files/mtime_ns"][:], f["files/duration_s"][:])
        for k, (path_, size, mtime_ns, duration) in enumerate(rows):
            index.files[path_] = FileEntry(int(size), int(mtime_ns), float(duration), starts[k], embeddings[k])
        skipped = f["skipped"]
        for path_, size, mtime_ns, reason in zip(
            _strings(skipped, "path"), skipped["size"][:], skipped["mtime_ns"][:], _strings(skipped, "reason")
        ):
            index.skipped[path_] = SkippedEntry(int(size), int(mtime_ns), reason)
    return index


def read_identity(path: str | os.PathLike) -> dict:
    """The index's attributes: which checkpoint built it, segment length, folder."""
    with _open_index(path) as f:
        return {key: (value.item() if isinstance(value, np.generic) else value) for key, value in f.attrs.items()}


def read_segments(path: str | os.PathLike) -> SegmentTable:
    with _open_index(path) as f:
        counts = f["files/segments"][:]
        return SegmentTable(
            embeddings=f["embeddings"][:],
            file_of_segment=np.repeat(np.arange(len(counts), dtype=np.int64), counts),
            starts_s=f["segment_start_s"][:],
            paths=_strings(f["files"], "path"),
            first_segment=(np.cumsum(counts) - counts).astype(np.int64),
        )
