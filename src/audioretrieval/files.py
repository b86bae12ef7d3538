"""Writing outputs so that a killed job never leaves a file that looks complete; a file's content digest."""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


def partial_path(path: str | os.PathLike) -> Path:
    """Where one writer writes `path` before it is complete (renamed to `path` on success): a name of
    its own beside it, so two writers of one file never write, rename or remove each other's."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")


def partial_files(path: str | os.PathLike) -> list[Path]:
    """The partial files of `path` that writers left or are writing."""
    path = Path(path)
    return sorted(path.parent.glob(f"{glob.escape(path.name)}.*.partial"))


# What a write fails with when the disk, the quota or the file-size limit is exhausted, or the
# file system is read-only: the file being written is the one to name.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


class WriteFailed(RuntimeError):
    """An output could not be written (disk full, quota, read-only): names the file and the cause."""


def write_failed(path: str | os.PathLike, exc: OSError) -> WriteFailed:
    cause = os.strerror(exc.errno) if exc.errno else str(exc)
    return WriteFailed(f"{path}: cannot be written: {cause} (its partial file was removed)")


def write_failure(path: str | os.PathLike, exc: BaseException) -> WriteFailed | None:
    """The WriteFailed naming `path` if `exc` is an OSError of writing (WRITE_ERRNOS), else None."""
    return write_failed(path, exc) if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS else None


@contextmanager
def written_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; it becomes `path` only if the block succeeds
    and is deleted otherwise. A write that fails for want of room (WRITE_ERRNOS) raises WriteFailed
    naming `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        failure = write_failure(path, exc)
        if failure is None:
            raise
        raise failure from exc
    finally:
        tmp.unlink(missing_ok=True)


class HeldByAnother(RuntimeError):
    """Another process is writing the same output."""


@contextmanager
def sole_writer(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold `path`.lock exclusively for the block (an flock: released when the process ends however it
    ends, and the file removed when the block ends); if another process holds it, raise HeldByAnother
    naming that process."""
    lock = Path(path).with_name(Path(path).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise HeldByAnother(
                f"{path}: {what} (process {holder}) is writing it; wait until it ends, or give another path"
            ) from None
        if _same_file(fd, lock):
            break
        os.close(fd)  # locked a file its holder had removed as it let go: take the one there now
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still held: a process that opened it meanwhile tries again
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def write_text_atomically(text: str, path: str | os.PathLike) -> None:
    with written_atomically(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomically(data: bytes, path: str | os.PathLike) -> None:
    with written_atomically(path) as tmp:
        tmp.write_bytes(data)


def write_table_atomically(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """A table as Parquet (.parquet) or CSV (.csv)."""
    path = Path(path)
    if path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"{path}: expected a .parquet or .csv file name")
    with written_atomically(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)


def save_torch_atomically(obj, path: str | os.PathLike) -> None:
    """An object torch.save can write (checkpoints, training state). Written through a file object of
    ours, so that a failed write (a full disk) is the OSError it is, which written_atomically names,
    not torch's "enforce fail ... unexpected pos"."""
    import torch  # only the jobs that write checkpoints pay for importing it

    with written_atomically(path) as tmp, open(tmp, "wb") as file:
        try:
            torch.save(obj, file)
        except RuntimeError as exc:
            if isinstance(exc.__context__, OSError):
                raise exc.__context__ from exc
            raise


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """The hex digest of a file's bytes (`algorithm`: md5, sha256, ...), read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


class _HDF5Sink:
    """The file object h5py writes an HDF5 file through (its fileobj driver). Once a write fails (a full
    disk), the failure is kept and the rest of the file is held in memory, so that HDF5 never sees it:
    HDF5 left with a failed write crashes the process when the file or its objects are closed, before
    anything could remove the partial file. The writer stops at the next `HDF5Output.check`."""

    def __init__(self, path: Path):
        self._file = open(path, "w+b", buffering=0)
        self.failure: OSError | None = None
        self._pos = self._size = 0
        self._kept: list[tuple[int, bytes]] = []  # (offset, bytes) written since the failure, in order

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = offset + {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        return self._pos

    def tell(self) -> int:
        return self._pos

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        if self.failure is None:
            try:
                self._file.seek(self._pos)
                done = 0
                while done < len(data):
                    done += self._file.write(data[done:])
            except OSError as exc:
                self.failure = exc
        if self.failure is not None:
            self._kept.append((self._pos, bytes(data)))
        self._pos += len(data)
        self._size = max(self._size, self._pos)
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if self.failure is None:
            try:
                self._file.truncate(size)
            except OSError as exc:
                self.failure = exc
        self._kept = [(offset, data[: size - offset]) for offset, data in self._kept if offset < size]
        self._size = size
        return size

    def flush(self) -> None:
        pass  # unbuffered

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        count = max(0, min(len(view), self._size - self._pos))
        self._file.seek(self._pos)
        got = 0
        while got < count and (n := self._file.readinto(view[got:count])):
            got += n
        view[got:count] = bytes(count - got)  # beyond what the disk holds: zeros, or what is kept below
        for offset, data in self._kept:
            low, high = max(offset, self._pos), min(offset + len(data), self._pos + count)
            if low < high:
                view[low - self._pos : high - self._pos] = data[low - offset : high - offset]
        self._pos += count
        return count

    def read(self, size: int = -1) -> bytes:
        buffer = bytearray(max(0, self._size - self._pos) if size is None or size < 0 else size)
        return bytes(buffer[: self.readinto(buffer)])

    def close(self) -> None:
        self._file.close()


class HDF5Output:
    """An HDF5 file written atomically (as written_atomically writes): under a partial name of its own,
    renamed on success, removed on any failure. A write that fails (a full disk) raises WriteFailed naming `path`
    and the cause, at `check` or when the block ends; the process never crashes in HDF5 over it.

        with HDF5Output(path) as f:
            f["x"] = ...
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self):
        import h5py  # only the jobs that write HDF5 pay for importing it

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = partial_path(self.path)
        self._sink = _HDF5Sink(self._tmp)
        try:
            self.file = h5py.File(self._sink, "w")
        except BaseException:
            self._sink.close()
            self._tmp.unlink(missing_ok=True)
            raise
        return self.file

    def check(self) -> None:
        """Raise WriteFailed if a write has failed (the writer should stop adding data)."""
        if self._sink.failure is not None:
            raise write_failed(self.path, self._sink.failure) from self._sink.failure

    def __exit__(self, exc_type, exc, tb) -> None:
        tmp = self._tmp
        try:
            self.file.close()  # cannot fail for want of room: the sink holds what the disk did not take
            self._sink.close()
            if exc_type is None:
                self.check()
                os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        if exc_type is not None and self._sink.failure is not None and not isinstance(exc, WriteFailed):
            raise write_failed(self.path, self._sink.failure) from exc
