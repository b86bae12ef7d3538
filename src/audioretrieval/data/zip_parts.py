"""Reading the members of a ZIP archive split into parts (name.z01, name.z02, ..., name.zip),
as the WavCaps release publishes its audio, straight from the parts: no merged copy on disk."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

from stream_unzip import stream_unzip

_END = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_SPLIT_MARKER = b"PK\x07\x08"
_BLOCK = 1 << 20


def part_names(last_part: str | os.PathLike) -> list[str]:
    """File names of every part, in order, read from the end record of the last part (`.zip`),
    which says how many parts ("disks") came before it."""
    last_part = Path(last_part)
    with open(last_part, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - (1 << 16) - 22))
        tail = f.read()
    at = tail.rfind(_END)
    if at < 0:
        raise ValueError(f"{last_part}: no ZIP end record; expected the last part (.zip) of a ZIP archive")
    disks = struct.unpack_from("<H", tail, at + 4)[0]
    locator = tail.rfind(_ZIP64_LOCATOR, 0, at)
    if disks == 0xFFFF and locator >= 0:
        disks = struct.unpack_from("<I", tail, locator + 16)[0] - 1
    stem = last_part.stem
    return [f"{stem}.z{k:02d}" for k in range(1, disks + 1)] + [last_part.name]


def _chunks(parts: list[Path]) -> Iterator[bytes]:
    first = True
    for part in parts:
        with open(part, "rb") as f:
            while block := f.read(_BLOCK):
                if first and block.startswith(_SPLIT_MARKER):
                    block = block[len(_SPLIT_MARKER) :]
                first = False
                yield block


def stream_zip_members(parts: list[str | os.PathLike], select: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of the selected file members, in archive order, reading the parts as
    one stream (local headers only, so a split archive needs no merging)."""
    parts = [Path(p) for p in parts]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"parts of the archive are missing: {missing}")
    try:
        for raw_name, _, chunks in stream_unzip(_chunks(parts)):
            name = raw_name.decode("utf-8", errors="replace")
            if name.endswith("/") or not select(name):
                for _ in chunks:
                    pass
                continue
            yield name, b"".join(chunks)
    except Exception as exc:
        raise ValueError(
            f"{parts[-1]}: cannot read the archive ({len(parts)} parts): {type(exc).__name__}: {exc}"
        ) from exc
