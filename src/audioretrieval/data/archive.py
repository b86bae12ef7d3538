"""Streaming the members of a 7z archive one at a time, without extracting it to disk."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath

import py7zr
import py7zr.exceptions
from py7zr.io import Py7zIO, WriterFactory

_DONE = object()


class _Cancelled(Exception):
    pass


class _MemberBuffer(Py7zIO):
    """Collects one member's bytes; hands them over when py7zr reports the member complete."""

    def __init__(self, name: str, deliver: Callable[[str, bytes], None], cancelled: threading.Event):
        self.name = name
        self._deliver = deliver
        self._cancelled = cancelled
        self._data = bytearray()

    def write(self, s: bytes | bytearray) -> int:
        if self._cancelled.is_set():
            raise _Cancelled()
        self._data += s
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return len(self._data)

    def close(self) -> None:
        self._deliver(self.name, bytes(self._data))
        self._data = bytearray()


class _Factory(WriterFactory):
    def __init__(self, deliver: Callable[[str, bytes], None], cancelled: threading.Event):
        self._deliver = deliver
        self._cancelled = cancelled
        self.current: str | None = None

    def create(self, filename: str) -> Py7zIO:
        self.current = filename
        return _MemberBuffer(filename, self._deliver, self._cancelled)


class ArchiveUnreadable(RuntimeError):
    pass


def describe(exc: Exception) -> str:
    """An archive error in words (py7zr's CRC error is a bare tuple of numbers otherwise)."""
    if isinstance(exc, py7zr.exceptions.CrcError):
        return f"CRC check failed (stored {exc.expected}, computed {exc.actual}): the data is damaged"
    return f"{type(exc).__name__}: {exc}"


def list_members(archive: str | os.PathLike) -> list[str]:
    """Names of the archive's file members (directories excluded), in archive order."""
    try:
        with open(archive, "rb") as fp, py7zr.SevenZipFile(fp) as z:
            return [f.filename for f in z.list() if not f.is_directory]
    except (py7zr.exceptions.ArchiveError, EOFError, OSError) as exc:
        raise ArchiveUnreadable(
            f"{os.fspath(archive)}: not a readable 7z archive ({os.path.getsize(archive)} bytes; a partial download "
            f"or copy?): {describe(exc)}"
        ) from exc


@contextmanager
def stream_members(
    archive: str | os.PathLike, select: Callable[[str], bool], max_buffered: int = 8
) -> Iterator[Iterator[tuple[str, bytes]]]:
    """Yield (member name, bytes) for the selected members, in archive order.

    A background thread decompresses; at most `max_buffered` members wait in memory, so memory
    stays bounded however large the archive is. Leaving the context early stops the thread.
    Errors of the archive itself (CRC, truncation) are raised naming the member being read.
    """
    handoff: queue.Queue = queue.Queue(maxsize=max_buffered)
    cancelled = threading.Event()

    def deliver(name: str, data: bytes) -> None:
        if not _hand_over(handoff, cancelled, (name, data)):
            raise _Cancelled()

    factory = _Factory(deliver, cancelled)

    def produce() -> None:
        try:
            # A file object (not a path) makes py7zr extract sequentially, in archive order.
            with open(archive, "rb") as fp, py7zr.SevenZipFile(fp) as z:
                targets = [f.filename for f in z.list() if not f.is_directory and select(f.filename)]
                if targets:
                    z.extract(targets=targets, factory=factory)
            item = _DONE
        except _Cancelled:
            return
        except Exception as exc:  # handed to the consumer, raised there
            where = f"member {factory.current!r}" if factory.current else "the archive before its first member"
            item = ArchiveUnreadable(f"{os.fspath(archive)}: cannot read {where}: {describe(exc)}")
            item.__cause__ = exc
        _hand_over(handoff, cancelled, item)

    thread = threading.Thread(target=produce, name="7z-reader", daemon=True)
    thread.start()

    def consume() -> Iterator[tuple[str, bytes]]:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    try:
        yield consume()
    finally:
        cancelled.set()
        thread.join()


def _hand_over(handoff: queue.Queue, cancelled: threading.Event, item) -> bool:
    """Put `item` into the bounded queue, waiting for room unless the consumer has gone; whether it was put."""
    while not cancelled.is_set():
        try:
            handoff.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def base_name(member: str) -> str:
    return PurePosixPath(member).name
