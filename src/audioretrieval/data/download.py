"""Resumable, retried, checksum-verified downloads.

The file grows under `<name>.part`; an interrupted transfer continues from its size with an HTTP
Range request. Only a file whose MD5 matches is renamed to its final name.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from tqdm import tqdm

log = logging.getLogger(__name__)
_BLOCK = 1 << 16


class ChecksumError(RuntimeError):
    pass


class TransientDownloadError(RuntimeError):
    """A failure worth retrying: connection lost, timeout, server error, short transfer."""


def md5sum(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the rest of `url` to `part` (starting fresh if the server ignores the Range)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416 and have:
                return  # the part already holds the whole file; the checksum decides
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientDownloadError(f"{url}: HTTP {response.status_code}")
            if response.status_code >= 400:
                raise RuntimeError(f"{url}: HTTP {response.status_code} {response.reason}")
            if response.status_code != 206:
                have = 0  # no range support: start over
            remaining = response.headers.get("Content-Length")
            total = have + int(remaining) if remaining is not None else None
            with (
                open(part, "ab" if have else "wb") as f,
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name, disable=not progress) as bar,
            ):
                for block in response.iter_content(_BLOCK):
                    f.write(block)
                    bar.update(len(block))
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientDownloadError(f"{url}: {type(exc).__name__}: {exc}") from exc
    if total is not None and part.stat().st_size < total:
        raise TransientDownloadError(f"{url}: transfer ended at {part.stat().st_size} of {total} bytes")


def download(
    url: str,
    dest: str | os.PathLike,
    md5: str | None,
    retries: int = 5,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest`, resuming a previous partial transfer, and verify its MD5 (if given).

    Transient failures are retried `retries` times with exponential backoff, each try resuming
    where the last stopped. A checksum mismatch raises ChecksumError naming the file and both
    hashes; the partial file is removed and nothing exists under `dest`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    retrying = Retrying(
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential(multiplier=backoff_s, max=120),
        retry=retry_if_exception_type(TransientDownloadError),
        before_sleep=lambda state: log.warning("retrying %s after: %s", url, state.outcome.exception()),
        reraise=True,
    )
    retrying(_transfer, url, part, timeout_s, progress)
    actual = md5sum(part)
    if md5 is None:
        log.warning("%s: no MD5 to verify against; it has MD5 %s", dest.name, actual)
    elif actual != md5.lower():
        part.unlink()
        raise ChecksumError(f"{dest.name}: MD5 mismatch: expected {md5.lower()}, got {actual} (from {url})")
    os.replace(part, dest)
    return dest
