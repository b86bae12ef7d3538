"""Building and updating a search index over a folder of sounds.

Every audio file below the folder is decoded as the pipeline decodes (mono, 32 kHz, soxr HQ) and cut
into consecutive segments of the checkpoint's `segment_s` seconds, the last zero-padded with its
fraction of real signal set so the model masks the padding windows; each segment is embedded. A file
is decoded a block at a time as its segments are embedded, so memory does not grow with its length.
Re-indexing keeps files whose size and modification time are unchanged, embeds new and changed ones,
and drops the entries of files that are gone. A file that cannot be decoded is listed with the
reason and retried only once it changes. Files are read on daemon threads: a FIFO, device or socket
is skipped without being read, a read that makes no progress for the stall limit is skipped (and
tried again next run), and nothing waits for a blocked read, so Ctrl-C and SIGTERM always stop.
The index is written whole, atomically, every `save_every_s` seconds and at the end (also on Ctrl-C
or an error), so an interrupted run loses at most the files embedded since the last save, and a
rerun embeds only what is missing. One run at a time updates an index: a second on the same index
is refused, naming the first's process.
"""

from __future__ import annotations

import ctypes
import os
import queue
import stat
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audioretrieval.data.audio_io import AUDIO_EXTENSIONS, is_audio_name, stream_mono
from audioretrieval.device import autocast_for, choose_device, resolve_precision
from audioretrieval.files import sole_writer
from audioretrieval.model.audio import STORED_RATE
from audioretrieval.model.dual_encoder import DualEncoder
from audioretrieval.search.checkpoints import check_same_checkpoint, checkpoint_digest, load_search_model
from audioretrieval.search.store import (
    RETRY_STAT,
    FileEntry,
    SearchError,
    SearchIndex,
    SkippedEntry,
    read_index,
    shown,
    write_index,
)

Stat = tuple[int, int]  # (size in bytes, modification time in ns); (-1, -1) where stat failed


@dataclass
class UpdateSummary:
    unchanged: int = 0
    new: int = 0
    changed: int = 0
    removed: int = 0
    retried: int = 0
    embedded_files: int = 0
    skipped_now: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0
    segments: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Embedder:
    model: DualEncoder
    checkpoint: Path
    device: torch.device
    precision: str
    batch_size: int
    segment: int  # samples per segment
    stall_s: float  # a read without progress for this long is given up (ReadStalled)


def scan_folder(folder: Path) -> dict[str, Stat]:
    """Every audio file below `folder` (relative '/'-separated path -> stat), in sorted order; a link
    to a file counts as a file of its own name wherever it points, a link to a folder is not followed."""
    if not folder.is_dir():
        raise SearchError(f"{folder}: no such folder; expected a folder of audio files ({' '.join(AUDIO_EXTENSIONS)})")
    found = {}
    for root, dirs, names in os.walk(folder):  # links to folders are not followed: no loops, no file twice
        dirs.sort()
        for name in dirs:
            if (Path(root) / name).is_symlink():
                tqdm.write(f"not followed: {shown(str(Path(root) / name))} links to a folder; index that folder itself")
        for name in sorted(filter(is_audio_name, names)):
            path = Path(root) / name
            try:
                info = path.stat()
                found[path.relative_to(folder).as_posix()] = (info.st_size, info.st_mtime_ns)
            except OSError:  # e.g. a broken link: listed as skipped when decoding fails
                found[path.relative_to(folder).as_posix()] = (-1, -1)
    if not found:
        raise SearchError(f"{folder}: no audio files ({' '.join(AUDIO_EXTENSIONS)}, any case) in it or below it")
    return found


def plan_update(index: SearchIndex, found: dict[str, Stat]) -> tuple[list[str], UpdateSummary]:
    """Drop from `index` every entry whose file is gone or changed; the files to embed, in order."""
    summary = UpdateSummary()
    for path in list(index.files):
        entry = index.files[path]
        if found.get(path) != (entry.size, entry.mtime_ns):
            del index.files[path]
            summary.changed += path in found
            summary.removed += path not in found
    for path in list(index.skipped):
        entry = index.skipped[path]
        if found.get(path) != (entry.size, entry.mtime_ns):
            del index.skipped[path]
            summary.retried += path in found
            summary.removed += path not in found
    to_embed = [path for path in found if path not in index.files and path not in index.skipped]
    summary.unchanged = len(index.files)
    summary.new = len(to_embed) - summary.changed - summary.retried
    return to_embed, summary


class NotRegularFile(OSError):
    """A FIFO, device or socket with an audio file's name: reading it could block for ever."""


class ReadStalled(TimeoutError):
    """A read that made no progress for the stall limit (a blocked file, a hung network mount)."""


FILE_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


class Segmenter:
    """Consecutive chunks of a waveform cut into segments of `segment` samples; the last one
    zero-padded, with its fraction of real signal (the model masks the padding)."""

    def __init__(self, segment: int):
        self.segment, self.buffer, self.fill, self.samples, self.cut = segment, np.zeros(segment, np.float32), 0, 0, 0

    def add(self, chunk: np.ndarray) -> Iterator[np.ndarray]:
        """The segments that `chunk` completes."""
        self.samples += len(chunk)
        at = 0
        while at < len(chunk):
            take = min(self.segment - self.fill, len(chunk) - at)
            self.buffer[self.fill : self.fill + take] = chunk[at : at + take]
            self.fill, at = self.fill + take, at + take
            if self.fill == self.segment:
                self.fill, self.cut = 0, self.cut + 1
                yield self.buffer.copy()

    def end(self) -> tuple[np.ndarray, float] | None:
        """The last, padded segment and its fraction of signal; None where the segments ended exactly."""
        if self.fill == 0 and self.cut:
            return None
        last = np.zeros(self.segment, np.float32)
        last[: self.fill] = self.buffer[: self.fill]
        return last, self.fill / self.segment


def cut_segments(waveform: np.ndarray, segment: int) -> tuple[np.ndarray, np.ndarray]:
    """A whole waveform's segments [k, segment] and their fractions of signal, as Segmenter cuts them."""
    cutter = Segmenter(segment)
    segments = list(cutter.add(waveform))
    fractions = [1.0] * len(segments)
    if (last := cutter.end()) is not None:
        segments.append(last[0])
        fractions.append(last[1])
    return np.stack(segments), np.array(fractions, np.float32)


@dataclass(frozen=True)
class Ended:
    duration_s: float  # of the decoded signal at the index's rate


class WatchedFile:
    """An open file read with os.read, each read counting as progress (the stall limit); what
    soundfile needs of a file object."""

    def __init__(self, fd: int, on_read):
        self.fd, self.on_read = fd, on_read

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int) -> bytes:
        data = os.read(self.fd, size)
        self.on_read()
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self.fd, offset, whence)

    def tell(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR)

    def __enter__(self) -> WatchedFile:
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


class FileDecoding:
    """One file read, decoded and cut into segments on a daemon thread, a block at a time, so that
    memory does not grow with the file's length (at most `capacity` segments wait for the embedder)
    and a read that blocks for ever cannot keep the process from stopping."""

    def __init__(self, name: str, path: Path, segment: int, capacity: int):
        self.name, self.path, self.segment = name, path, segment
        self.queue: queue.Queue = queue.Queue(maxsize=capacity)
        self.progress_at = time.monotonic()
        self.abandoned = threading.Event()
        threading.Thread(target=self._run, daemon=True, name=f"decode {name}").start()

    def _progress(self) -> None:
        self.progress_at = time.monotonic()

    def _run(self) -> None:
        try:
            with self._open() as file:
                cutter = Segmenter(self.segment)
                for chunk in stream_mono(file, STORED_RATE):
                    if not np.isfinite(chunk).all():
                        raise ValueError("the decoded samples are not all finite (NaN or inf)")
                    for segment in cutter.add(chunk):
                        self._put((segment, 1.0))
                if (last := cutter.end()) is not None:
                    self._put(last)
            self._put(Ended(cutter.samples / STORED_RATE))
        except _Abandoned:
            pass
        except Exception as exc:
            try:
                self._put(exc)
            except _Abandoned:
                pass

    def _put(self, item) -> None:
        while not self.abandoned.is_set():
            try:
                self.queue.put(item, timeout=0.5)
            except queue.Full:
                continue
            self._progress()
            return
        raise _Abandoned

    def _open(self) -> WatchedFile:
        """The file, refused before any read where it is not a regular file (O_NONBLOCK: opening a
        FIFO does not wait for a writer)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                kind = FILE_KINDS.get(stat.S_IFMT(mode), "not a file")
                raise NotRegularFile(f"not a regular file ({kind}): not read, as reading it could block for ever")
            return WatchedFile(fd, self._progress)
        except BaseException:
            os.close(fd)
            raise

    def items(self, stall_s: float) -> Iterator[tuple[np.ndarray, float] | Ended | Exception]:
        """(segment, fraction of signal) for each segment in order, then Ended, or the error that
        stopped the file: ReadStalled once it has made no progress for `stall_s` (its thread is left
        to its blocked read)."""
        while True:
            try:
                item = self.queue.get(timeout=min(1.0, stall_s))
            except queue.Empty:
                if time.monotonic() - self.progress_at > stall_s:
                    self.abandoned.set()
                    yield ReadStalled(
                        f"reading stalled: no data for {stall_s:g} s (a blocked file or a hung mount); tried again "
                        f"on the next run"
                    )
                    return
                continue
            yield item
            if isinstance(item, (Ended, Exception)):
                return


class _Abandoned(Exception):
    """The embedder stopped taking this file's segments (it stalled, or the run stopped)."""


def reason_of(exc: Exception) -> str:
    message = getattr(exc, "error_string", None) or str(exc)  # soundfile's str() names a BytesIO object
    return f"{type(exc).__name__}: {message}"


def file_decodings(folder: Path, paths: list[str], segment: int, capacity: int, ahead: int) -> Iterator[FileDecoding]:
    """Each path's FileDecoding, in order, `ahead` files decoding ahead of the one being embedded.
    Closing the iterator abandons them all: nothing waits for a blocked read, on an interruption neither."""
    remaining = iter(paths)
    pending = deque(FileDecoding(p, folder / p, segment, capacity) for p in islice(remaining, ahead))
    try:
        while pending:
            decoding = pending.popleft()
            following = next(remaining, None)
            if following is not None:
                pending.append(FileDecoding(following, folder / following, segment, capacity))
            try:
                yield decoding
            finally:
                decoding.abandoned.set()
    finally:
        for decoding in pending:
            decoding.abandoned.set()


@torch.inference_mode()
def embed_segments(embedder: Embedder, segments: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Normalised embeddings [k, D] of segments [k, samples], in batches."""
    out = []
    with autocast_for(embedder.device, embedder.precision):
        for start in range(0, len(segments), embedder.batch_size):
            waveform = torch.from_numpy(segments[start : start + embedder.batch_size]).to(embedder.device)
            fraction = torch.from_numpy(fractions[start : start + embedder.batch_size]).to(embedder.device)
            out.append(embedder.model.embed_audio(waveform, fraction).float().cpu())
    return torch.cat(out).numpy()


TRIM_EVERY = 16  # batches embedded between two trim_heap calls


class SegmentBatches:
    """The segments of consecutive files, embedded a batch at a time; a file enters the index once
    it has ended and all its segments are embedded (in the order the files ended)."""

    def __init__(self, index: SearchIndex, embedder: Embedder, found: dict[str, Stat]):
        self.index, self.embedder, self.found = index, embedder, found
        self.held: list[tuple[str, np.ndarray, float]] = []  # (file, segment, fraction), not yet embedded
        self.rows: dict[str, list[np.ndarray]] = {}  # the embedded segments of each file not yet in the index
        self.ended: dict[str, float] = {}  # file -> duration, of the files whose segments are all out
        self.batches = 0

    def add(self, name: str, segment: np.ndarray, fraction: float) -> None:
        self.rows.setdefault(name, [])
        self.held.append((name, segment, fraction))
        if len(self.held) == self.embedder.batch_size:
            self.embed()

    def end(self, name: str, duration_s: float) -> None:
        self.ended[name] = duration_s

    def drop(self, name: str) -> None:
        """Forget a file that failed part way."""
        self.held = [item for item in self.held if item[0] != name]
        self.rows.pop(name, None)

    def embed(self) -> None:
        if not self.held:
            return
        segments = np.stack([item[1] for item in self.held])
        rows = embed_segments(self.embedder, segments, np.array([item[2] for item in self.held], np.float32))
        for (name, _, _), row in zip(self.held, rows):
            self.rows[name].append(row)
        self.held = []
        self.batches += 1
        if self.batches % TRIM_EVERY == 0:
            trim_heap()

    def complete(self) -> list[str]:
        """Add to the index the ended files none of whose segments are held; their names."""
        waiting = {item[0] for item in self.held}
        done = [name for name in self.ended if name not in waiting]
        for name in done:
            rows = np.stack(self.rows.pop(name))
            if not np.isfinite(rows).all():
                raise SearchError(
                    f"{self.embedder.checkpoint}: its model embeds {shown(name)} as NaN or inf (numbers that are not "
                    f"numbers), so it cannot be searched; the index holds the files embedded before it"
                )
            size, mtime_ns = self.found[name]
            starts_s = np.arange(len(rows)) * (self.embedder.segment / STORED_RATE)
            self.index.files[name] = FileEntry(size, mtime_ns, self.ended.pop(name), starts_s, rows)
        return done


class PeriodicSaver:
    """Writes the index when `every_s` seconds have passed since the last write."""

    def __init__(self, path: Path, every_s: float):
        self.path, self.every_s = path, every_s
        self.last = time.monotonic()

    def maybe_save(self, index: SearchIndex) -> None:
        if time.monotonic() - self.last >= self.every_s:
            self.save(index)

    def save(self, index: SearchIndex) -> None:
        write_index(self.path, index)
        self.last = time.monotonic()


def record_skip(
    index: SearchIndex, path: str, file_stat: Stat, error: Exception, folder: Path, summary: UpdateSummary
) -> None:
    """List a file that could not be had, with the reason; a stalled read is tried again on every run."""
    index.skipped[path] = SkippedEntry(*(RETRY_STAT if isinstance(error, ReadStalled) else file_stat), reason_of(error))
    summary.skipped_now.append((path, reason_of(error)))
    tqdm.write(f"skipped {shown(str(folder / path))}: {shown(reason_of(error))}")


DECODING_AHEAD = 4  # files read and decoded while an earlier one is embedded


def embed_files(
    index: SearchIndex,
    folder: Path,
    paths: list[str],
    found: dict[str, Stat],
    embedder: Embedder,
    saver: PeriodicSaver,
    summary: UpdateSummary,
) -> None:
    """Decode and embed `paths` into `index`, a batch of segments at a time, each file window by
    window; skip what fails."""
    batches = SegmentBatches(index, embedder, found)
    with (
        tqdm(total=len(paths), unit="file", desc="indexing", dynamic_ncols=True) as progress,
        closing(file_decodings(folder, paths, embedder.segment, embedder.batch_size, DECODING_AHEAD)) as decodings,
    ):

        def completed(files: int) -> None:
            progress.update(files)
            summary.embedded_files += files

        for decoding in decodings:
            for item in decoding.items(embedder.stall_s):
                if isinstance(item, Exception):
                    batches.drop(decoding.name)
                    record_skip(index, decoding.name, found[decoding.name], item, folder, summary)
                    progress.update(1)
                elif isinstance(item, Ended):
                    batches.end(decoding.name, item.duration_s)
                else:
                    batches.add(decoding.name, *item)
            completed(len(batches.complete()))
            saver.maybe_save(index)
        batches.embed()
        completed(len(batches.complete()))


def existing_index(index_path: Path, checkpoint: Path, digest: str) -> SearchIndex | None:
    """The index at `index_path` if there is one, refusing one built with another checkpoint."""
    if not index_path.exists():
        return None
    index = read_index(index_path)
    check_same_checkpoint(
        index_path, {"checkpoint": index.checkpoint, "checkpoint_sha256": index.checkpoint_sha256}, checkpoint, digest
    )
    return index


def trim_heap() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing): the
    blocks a long file's segments pass through are freed in another order than they were taken, so
    without it the heap fragments and grows with the file's length (0.4 GB over 10 hours)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def update_index(
    folder: str | os.PathLike,
    checkpoint: str | os.PathLike,
    index_path: str | os.PathLike,
    batch_size: int = 16,
    device: str | None = None,
    save_every_s: float = 60.0,
    stall_s: float = 60.0,
) -> UpdateSummary:
    """Create or update the index of `folder` at `index_path` with the model of `checkpoint`; a file
    whose read makes no progress for `stall_s` seconds is skipped (and tried again next time)."""
    folder, checkpoint, index_path = Path(folder), Path(checkpoint), Path(index_path)
    if batch_size < 1:
        raise SearchError(f"--batch-size {batch_size}: expected a positive number of segments")
    if not stall_s > 0:
        raise SearchError(f"--read-timeout {stall_s:g}: expected a positive number of seconds")
    with sole_writer(index_path, "another `index` run"):  # readers meanwhile see the last complete save
        return _update(folder, checkpoint, index_path, batch_size, device, save_every_s, stall_s)


def _update(folder, checkpoint, index_path, batch_size, device, save_every_s, stall_s) -> UpdateSummary:
    found = scan_folder(folder)
    digest = checkpoint_digest(checkpoint)
    index = existing_index(index_path, checkpoint, digest)
    if index is not None and index.folder != str(folder.resolve()):
        raise SearchError(
            f"{index_path}: an index of {index.folder}, not of {folder.resolve()}; give this folder "
            "an --index of its own"
        )
    if index is None:
        to_embed, summary = list(found), UpdateSummary(new=len(found))
    else:
        to_embed, summary = plan_update(index, found)
    up_to_date = index is not None and not to_embed and not summary.removed
    if up_to_date and index.checkpoint != str(checkpoint.resolve()):  # the same checkpoint, moved
        index.checkpoint = str(checkpoint.resolve())
        write_index(index_path, index)
    if not up_to_date:
        torch_device = choose_device(device)
        model, contents = load_search_model(checkpoint, torch_device)
        if index is None:
            index = SearchIndex(digest, "", float(contents["segment_s"]), STORED_RATE, "")
        index.checkpoint, index.folder = str(checkpoint.resolve()), str(folder.resolve())  # found again by query
        embedder = Embedder(
            model,
            checkpoint,
            torch_device,
            resolve_precision("auto", torch_device),
            batch_size,
            int(round(index.segment_s * STORED_RATE)),
            stall_s,
        )
        saver = PeriodicSaver(index_path, save_every_s)
        try:
            embed_files(index, folder, to_embed, found, embedder, saver, summary)
        finally:
            saver.save(index)
    summary.files, summary.skipped = len(index.files), len(index.skipped)
    summary.segments = sum(len(entry.starts_s) for entry in index.files.values())
    return summary
