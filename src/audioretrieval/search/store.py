"""The search index file: one HDF5 file, rewritten whole under a temporary name and renamed on success.

/embeddings         float32 [segments, D]  L2-normalised audio embeddings, the segments of a file
                                           consecutive, files in /files order
/segment_start_s    float64 [segments]     where each segment starts in its file, in seconds
/files/path         bytes [files]          path relative to the indexed folder, '/'-separated: the
                                           name's bytes as the file system holds them (any bytes)
/files/size         int64 [files]          size in bytes and modification time (ns) of the file
/files/mtime_ns     int64 [files]          when it was embedded: a file that differs is re-embedded
/files/duration_s   float64 [files]        duration of the decoded audio
/files/segments     int64 [files]          how many rows of /embeddings are the file's
/skipped/path, /skipped/size, /skipped/mtime_ns   files that could not be decoded ...
/skipped/reason     utf-8 [skipped]        ... and why; retried only once they change (RETRY_STAT:
                                           on every run, e.g. a read that stalled)
attrs: format_version (2), checkpoint_sha256 (digest of the checkpoint file's bytes), checkpoint
       (its path when the index was built, bytes), segment_s, sample_rate, folder (the folder
       indexed, bytes)

Format 1 stored the paths as UTF-8, which names that are not UTF-8 cannot be; it is still read.
Names are held in memory as Python does (os.fsdecode: undecodable bytes as surrogate escapes) and
shown with those bytes as \\xNN (`shown`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from audioretrieval.files import HDF5Output

FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
_STR = h5py.string_dtype("utf-8")
_BYTES = h5py.string_dtype("ascii")  # h5py's variable-length byte strings: any bytes, stored as given
RETRY_STAT = (-2, -2)  # the size and time of a skipped entry to try again on every run: no file has them


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


def name_bytes(name: str) -> bytes:
    """A file name's bytes (the inverse of os.fsdecode on POSIX)."""
    return name.encode("utf-8", "surrogateescape")


def name_of(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", "surrogateescape")


def shown(text: str) -> str:
    """`text` safe to print: the bytes of a name that are not UTF-8 written as \\xNN, and characters
    a terminal would act on or not show (escape codes, newlines, bidirectional overrides) as their
    Python escapes (\\x1b, \\n, \\u202e)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no byte stands for
        raw = text.encode("utf-8", "backslashreplace")
    decoded = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in decoded)


def _names(group: h5py.Group, key: str) -> list[str]:
    return [name_of(raw) for raw in group[key][:]]


def _check_finite(path: str | os.PathLike, paths: list[str], embeddings: np.ndarray, counts: np.ndarray) -> None:
    """Refuse an index whose embeddings hold NaN or inf (overwritten, or written by a broken model)."""
    bad_rows = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
    if len(bad_rows):
        file = paths[int(np.searchsorted(np.cumsum(counts), bad_rows[0], side="right"))]
        more = f" (and {len(bad_rows) - 1} more segments)" if len(bad_rows) > 1 else ""
        raise SearchError(
            f"{path}: the embeddings of {shown(file)}{more} are not finite (NaN or inf): the index is damaged; "
            f"remove it and index the folder again"
        )


def write_index(path: str | os.PathLike, index: SearchIndex) -> None:
    """Write the whole index atomically; a write that fails for want of room raises WriteFailed naming
    `path`, and the index there stays as the last save left it."""
    with HDF5Output(path) as f:
        _write(f, index)


def _write(f: h5py.File, index: SearchIndex) -> None:
    paths = sorted(index.files)
    entries = [index.files[p] for p in paths]
    dim = entries[0].embeddings.shape[1] if entries else 0
    f["embeddings"] = (
        np.concatenate([e.embeddings for e in entries]) if entries else np.zeros((0, dim), np.float32)
    ).astype(np.float32, copy=False)
    f["segment_start_s"] = np.concatenate([e.starts_s for e in entries]) if entries else np.zeros(0)
    files = f.create_group("files")
    files.create_dataset("path", data=[name_bytes(p) for p in paths], dtype=_BYTES)
    files["size"] = np.array([e.size for e in entries], dtype=np.int64)
    files["mtime_ns"] = np.array([e.mtime_ns for e in entries], dtype=np.int64)
    files["duration_s"] = np.array([e.duration_s for e in entries], dtype=np.float64)
    files["segments"] = np.array([len(e.starts_s) for e in entries], dtype=np.int64)
    skipped_paths = sorted(index.skipped)
    skipped = [index.skipped[p] for p in skipped_paths]
    group = f.create_group("skipped")
    group.create_dataset("path", data=[name_bytes(p) for p in skipped_paths], dtype=_BYTES)
    group["size"] = np.array([s.size for s in skipped], dtype=np.int64)
    group["mtime_ns"] = np.array([s.mtime_ns for s in skipped], dtype=np.int64)
    group.create_dataset("reason", data=[shown(s.reason) for s in skipped], dtype=_STR)
    f.attrs.update(
        format_version=FORMAT_VERSION,
        checkpoint_sha256=index.checkpoint_sha256,
        checkpoint=np.bytes_(name_bytes(index.checkpoint)),
        segment_s=index.segment_s,
        sample_rate=index.sample_rate,
        folder=np.bytes_(name_bytes(index.folder)),
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
    if f.attrs.get("format_version") not in READ_VERSIONS or "embeddings" not in f or "files" not in f:
        f.close()
        raise SearchError(
            f"{path}: not a search index of format {' or '.join(map(str, READ_VERSIONS))}; expected a file "
            f"written by `audioretrieval-search index`"
        )
    return f


def _attribute(value):
    """An attribute as a plain value; names (stored as bytes) as Python holds names."""
    value = value.item() if isinstance(value, np.generic) else value
    return name_of(value) if isinstance(value, bytes) else value


def read_identity(path: str | os.PathLike) -> dict:
    """The index's attributes: which checkpoint built it, segment length, folder."""
    with _open_index(path) as f:
        return {key: _attribute(value) for key, value in f.attrs.items()}


def read_index(path: str | os.PathLike) -> SearchIndex:
    """The whole index, per file (for updating it); refused if its embeddings are not finite."""
    attrs = read_identity(path)
    index = SearchIndex(
        str(attrs["checkpoint_sha256"]),
        str(attrs["checkpoint"]),
        float(attrs["segment_s"]),
        int(attrs["sample_rate"]),
        str(attrs["folder"]),
    )
    with _open_index(path) as f:
        counts, paths, all_embeddings = f["files/segments"][:], _names(f["files"], "path"), f["embeddings"][:]
        _check_finite(path, paths, all_embeddings, counts)
        bounds = np.cumsum(counts)[:-1]
        embeddings = np.split(all_embeddings, bounds)
        starts = np.split(f["segment_start_s"][:], bounds)
        rows = zip(paths, f["files/size"][:], f["files/mtime_ns"][:], f["files/duration_s"][:])
        for k, (path_, size, mtime_ns, duration) in enumerate(rows):
            index.files[path_] = FileEntry(int(size), int(mtime_ns), float(duration), starts[k], embeddings[k])
        skipped = f["skipped"]
        reasons = [raw.decode("utf-8") for raw in skipped["reason"][:]]
        for path_, size, mtime_ns, reason in zip(
            _names(skipped, "path"), skipped["size"][:], skipped["mtime_ns"][:], reasons
        ):
            index.skipped[path_] = SkippedEntry(int(size), int(mtime_ns), reason)
    return index


def read_segments(path: str | os.PathLike) -> SegmentTable:
    """What a query needs; refused if the embeddings are not finite (naming the first such file)."""
    with _open_index(path) as f:
        counts, paths, embeddings = f["files/segments"][:], _names(f["files"], "path"), f["embeddings"][:]
        _check_finite(path, paths, embeddings, counts)
        return SegmentTable(
            embeddings=embeddings,
            file_of_segment=np.repeat(np.arange(len(counts), dtype=np.int64), counts),
            starts_s=f["segment_start_s"][:],
            paths=paths,
            first_segment=(np.cumsum(counts) - counts).astype(np.int64),
        )
