"""Building and updating a search index over a folder of sounds.

Every audio file below the folder is decoded as the pipeline decodes (mono, 32 kHz, soxr HQ) and cut
into consecutive segments of the checkpoint's `segment_s` seconds, the last zero-padded with its
fraction of real signal set so the model masks the padding windows; each segment is embedded.
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

import os
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

from audioretrieval.data.audio_io import AUDIO_EXTENSIONS, is_audio_name, load_mono
from audioretrieval.device import autocast_for, choose_device, resolve_precision
from audioretrieval.files import sole_writer
from audioretrieval.model.audio import SAMPLE_RATE
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
READ_BLOCK = 1 << 20


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
    """Every audio file below `folder` (relative '/'-separated path -> stat), in sorted order."""
    if not folder.is_dir():
        raise SearchError(f"{folder}: no such folder; expected a folder of audio files ({' '.join(AUDIO_EXTENSIONS)})")
    found = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
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


def decode_bytes(data: bytes) -> np.ndarray:
    """A file's audio as the pipeline decodes it: mono float32 at 32 kHz."""
    waveform, _ = load_mono(data, SAMPLE_RATE)
    if not np.isfinite(waveform).all():
        raise ValueError("the decoded samples are not all finite (NaN or inf)")
    return waveform


class FileDecoding:
    """One file read and decoded on a daemon thread, so that a read that blocks for ever cannot keep
    the process from stopping; `wait` gives up on a read that makes no progress for `stall_s`."""

    def __init__(self, name: str, path: Path, decode_slots: threading.Semaphore):
        self.name, self.path = name, path
        self.reading, self.progress_at = True, time.monotonic()
        self.result: np.ndarray | Exception | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(decode_slots,), daemon=True, name=f"decode {name}").start()

    def _run(self, decode_slots: threading.Semaphore) -> None:
        try:
            data = self._read()
            self.reading = False
            with decode_slots:  # decoding takes the CPU: `threads` at a time
                self.result = decode_bytes(data)
        except Exception as exc:
            self.result = exc
        finally:
            self.done.set()

    def _read(self) -> bytes:
        """The file's bytes; a non-regular file is refused before any read (O_NONBLOCK: opening a FIFO
        does not wait for a writer)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                kind = FILE_KINDS.get(stat.S_IFMT(mode), "not a file")
                raise NotRegularFile(f"not a regular file ({kind}): not read, as reading it could block for ever")
            chunks = []
            while chunk := os.read(fd, READ_BLOCK):
                chunks.append(chunk)
                self.progress_at = time.monotonic()
            return b"".join(chunks)
        finally:
            os.close(fd)

    def wait(self, stall_s: float) -> np.ndarray | Exception:
        """The waveform or the error; ReadStalled once the read has made no progress for `stall_s`
        (the thread is left to its blocked read)."""
        while not self.done.wait(timeout=min(1.0, stall_s)):
            if self.reading and time.monotonic() - self.progress_at > stall_s:
                return ReadStalled(
                    f"reading stalled: no data for {stall_s:g} s (a blocked file or a hung mount); tried again "
                    f"on the next run"
                )
        return self.result


def reason_of(exc: Exception) -> str:
    message = getattr(exc, "error_string", None) or str(exc)  # soundfile's str() names a BytesIO object
    return f"{type(exc).__name__}: {message}"


def decoded_files(
    folder: Path, paths: list[str], stall_s: float, threads: int = 2
) -> Iterator[tuple[str, np.ndarray | Exception]]:
    """(path, waveform or the reason it could not be had) for each path in order; read and decoded
    ahead, `threads` files decoding at a time. Nothing waits for a blocked read, on an interruption
    neither."""
    slots = threading.BoundedSemaphore(threads)
    remaining = iter(paths)
    pending = deque(FileDecoding(p, folder / p, slots) for p in islice(remaining, 2 * threads))
    while pending:
        decoding = pending.popleft()
        following = next(remaining, None)
        if following is not None:
            pending.append(FileDecoding(following, folder / following, slots))
        yield decoding.name, decoding.wait(stall_s)


def segment_count(samples: int, segment: int) -> int:
    return max(1, -(-samples // segment))


def cut_segments(waveform: np.ndarray, segment: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive segments [k, segment] (the last zero-padded), their fractions of real signal, and
    their start samples."""
    count = segment_count(len(waveform), segment)
    padded = np.zeros(count * segment, dtype=np.float32)
    padded[: len(waveform)] = waveform
    starts = np.arange(count, dtype=np.int64) * segment
    fractions = (np.minimum(len(waveform) - starts, segment) / segment).astype(np.float32)
    return padded.reshape(count, segment), fractions, starts


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


def add_files(
    index: SearchIndex, embedder: Embedder, group: list[tuple[str, np.ndarray]], found: dict[str, Stat]
) -> None:
    """Embed the segments of a group of decoded files together and add the files to the index."""
    cuts = [cut_segments(waveform, embedder.segment) for _, waveform in group]
    embeddings = embed_segments(embedder, np.concatenate([c[0] for c in cuts]), np.concatenate([c[1] for c in cuts]))
    bounds = np.cumsum([len(c[2]) for c in cuts])[:-1]
    for (path, waveform), cut, rows in zip(group, cuts, np.split(embeddings, bounds)):
        if not np.isfinite(rows).all():
            raise SearchError(
                f"{embedder.checkpoint}: its model embeds {shown(path)} as NaN or inf (numbers that are not numbers), "
                f"so it cannot be searched; the index holds the files embedded before it"
            )
        size, mtime_ns = found[path]
        index.files[path] = FileEntry(size, mtime_ns, len(waveform) / SAMPLE_RATE, cut[2] / SAMPLE_RATE, rows)


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


def embed_files(
    index: SearchIndex,
    folder: Path,
    paths: list[str],
    found: dict[str, Stat],
    embedder: Embedder,
    saver: PeriodicSaver,
    summary: UpdateSummary,
) -> None:
    """Decode and embed `paths` into `index`, a batch's worth of segments at a time; skip what fails."""
    group: list[tuple[str, np.ndarray]] = []

    def embed_group() -> None:
        add_files(index, embedder, group, found)
        progress.update(len(group))
        summary.embedded_files += len(group)
        group.clear()

    with (
        tqdm(total=len(paths), unit="file", desc="indexing", dynamic_ncols=True) as progress,
        closing(decoded_files(folder, paths, embedder.stall_s)) as decoded,
    ):
        for path, result in decoded:
            if isinstance(result, Exception):
                record_skip(index, path, found[path], result, folder, summary)
                progress.update(1)
            else:
                group.append((path, result))
            if sum(segment_count(len(w), embedder.segment) for _, w in group) >= embedder.batch_size:
                embed_group()
            saver.maybe_save(index)
        if group:
            embed_group()


def existing_index(index_path: Path, checkpoint: Path, digest: str) -> SearchIndex | None:
    """The index at `index_path` if there is one, refusing one built with another checkpoint."""
    if not index_path.exists():
        return None
    index = read_index(index_path)
    check_same_checkpoint(
        index_path, {"checkpoint": index.checkpoint, "checkpoint_sha256": index.checkpoint_sha256}, checkpoint, digest
    )
    return index


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
            index = SearchIndex(digest, "", float(contents["segment_s"]), SAMPLE_RATE, "")
        index.checkpoint, index.folder = str(checkpoint.resolve()), str(folder.resolve())  # found again by query
        embedder = Embedder(
            model,
            checkpoint,
            torch_device,
            resolve_precision("auto", torch_device),
            batch_size,
            int(round(index.segment_s * SAMPLE_RATE)),
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
