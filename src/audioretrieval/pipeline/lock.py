"""The results folder's own lock: one run of the pipeline at a time writes an out_dir.

Snakemake locks its working directory, not out_dir: two clones, or two working directories, with
the same absolute out_dir would otherwise train into the same resume/ state. The controlling
Snakemake process takes `{out_dir}/.audioretrieval.lock` when it starts executing (the Snakefile's
onstart handler: not in dry runs, not for --unlock, not in the jobs it submits, not in a map's
modules) and removes it when it ends (onsuccess, onerror, and at exit). The file names the holder:
host, pid (with the process's start time, so that a reused pid is not taken for it), working
directory and since when. Another run refuses to share the folder while the holder runs; a lock
whose holder is gone (its pid ended, on this host) is taken over. A holder on another host cannot be
checked from here: its lock is removed by hand once that run is known to be gone.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".audioretrieval.lock"


class OutDirInUse(RuntimeError):
    """Another run of the pipeline holds the results folder."""


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks after boot, from /proc); None where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19]  # field 22 of proc(5); the fields after the command's ")" start at field 3


def holder_here() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": process_start(os.getpid()),
        "cwd": os.getcwd(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def alive(holder: dict) -> bool | None:
    """Whether the holder still runs: None where it cannot be told (it runs on another host)."""
    if holder.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    started = process_start(int(holder["pid"]))
    return started is None or holder.get("started") in (None, started)


def read_holder(lock: Path) -> dict | None:
    """The lock's holder; None if there is no lock, or none that can be read (taken over)."""
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) and {"host", "pid"} <= holder.keys() else None


@contextlib.contextmanager
def _guarded(folder: Path) -> Iterator[None]:
    """Serialise checking and taking the lock among runs starting at once (flock on the folder; where
    the file system has no flock, unguarded: only two runs starting in the same instant could both win)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def in_use(folder: Path, lock: Path, holder: dict) -> OutDirInUse:
    where = "on this host" if alive(holder) else f"on host {holder['host']}, which cannot be checked from here"
    return OutDirInUse(
        f"{folder} is in use by another run of this pipeline ({where}): pid {holder['pid']}, working directory "
        f"{holder.get('cwd')}, since {holder.get('since')}; two runs would write the same files and training state. "
        f"Wait for it to end or stop it; if it is gone, remove {lock}."
    )


def acquire(out_dir: str | os.PathLike) -> Path:
    """Take out_dir's lock for this process (released at exit), or raise OutDirInUse naming the
    holder; a lock whose holder is gone is taken over."""
    folder = Path(out_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    me = holder_here()
    with _guarded(folder):
        holder = read_holder(lock)
        if holder is not None and not is_mine(holder) and alive(holder) is not False:
            raise in_use(folder, lock, holder)
        if holder is not None and not is_mine(holder):
            print(
                f"{folder}: taking over the lock of a run that is gone (pid {holder['pid']}, working directory "
                f"{holder.get('cwd')}, since {holder.get('since')}); if a job it started still runs, stop it first",
                file=sys.stderr,
            )
        partial = lock.with_name(f"{LOCK_NAME}.{me['pid']}")
        partial.write_text(json.dumps(me, indent=1) + "\n", encoding="utf-8")
        os.replace(partial, lock)
    atexit.register(release, folder)
    return lock


def is_mine(holder: dict) -> bool:
    return holder.get("host") == socket.gethostname() and holder.get("pid") == os.getpid()


def release(out_dir: str | os.PathLike) -> None:
    """Remove out_dir's lock if this process holds it."""
    folder = Path(out_dir).resolve()
    lock = folder / LOCK_NAME
    if not folder.is_dir():
        return
    with _guarded(folder):
        holder = read_holder(lock)
        if holder is not None and is_mine(holder):
            lock.unlink(missing_ok=True)
