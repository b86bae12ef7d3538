"""Resumable, retried, checksum-verified downloads.

The file grows under `<name>.part`; an interrupted transfer continues from its size with an HTTP
Range request. Every reply is checked on its own terms, MD5 or not: a partial (206) reply must
start where the part ends (its Content-Range), and the bytes received must be as many as the reply
announced (Content-Length, or the Content-Range total); a reply that announces no length can only
be trusted with an MD5. Only a file that passes, and whose MD5 matches where one is given, is
renamed to its final name.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from tqdm import tqdm

from audioretrieval.files import file_digest

log = logging.getLogger(__name__)
_BLOCK = 1 << 16


class ChecksumError(RuntimeError):
    pass


class TransientDownloadError(RuntimeError):
    """A failure worth retrying: connection lost, timeout, server error, short transfer."""


class UnverifiableDownload(RuntimeError):
    pass


def md5sum(path: str | os.PathLike) -> str:
    return file_digest(path, "md5")


def verify_md5(path: str | os.PathLike, expected: str, hint: str = "") -> str:
    """The file's MD5, after checking it is `expected`; ChecksumError names the file, both MD5s, its
    size and `hint` (what to do about it)."""
    path = Path(path)
    actual = md5sum(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path}: MD5 {actual} ({path.stat().st_size} bytes), expected {expected.lower()}"
            + (f"; {hint}" if hint else "")
        )
    return actual


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _range_start(content_range: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a Content-Range header "bytes first-last/total" (None: absent or *)."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (content_range or "").strip())
    if not match:
        return None, None
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> bool:
    """Append the rest of `url` to `part` (starting fresh if the server ignores the Range); returns
    whether the reply announced its length, so that a complete transfer could be checked."""
    have = part.stat().st_size if part.exists() else 0
    # identity: lengths and ranges then count the file's own bytes (a server may otherwise gzip it)
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416 and have:
                whole = re.fullmatch(r"bytes \*/(\d+)", response.headers.get("Content-Range", "").strip())
                if whole and int(whole.group(1)) == have:
                    return True  # the part already holds the whole file
                part.unlink()
                raise TransientDownloadError(
                    f"{url}: the part holds {have} bytes, the server's file "
                    f"{whole.group(1) + ' bytes' if whole else 'an unknown size'}; starting over"
                )
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientDownloadError(f"{url}: HTTP {response.status_code}")
            if response.status_code >= 400:
                raise RuntimeError(f"{url}: HTTP {response.status_code} {response.reason}")
            total = None
            if response.status_code == 206:
                first, total = _range_start(response.headers.get("Content-Range"))
                if first != have:
                    part.unlink(missing_ok=True)  # the next try starts over without a Range
                    raise TransientDownloadError(
                        f"{url}: asked for the bytes from {have} on, the server sent a part starting at {first} "
                        f"(Content-Range {response.headers.get('Content-Range')!r}); starting over"
                    )
            else:
                have = 0  # no range support: start over
            remaining = response.headers.get("Content-Length")
            if remaining is not None:
                total = have + int(remaining)
            with (
                open(part, "ab" if have else "wb") as f,
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name, disable=not progress) as bar,
            ):
                for block in response.iter_content(_BLOCK):
                    f.write(block)
                    bar.update(len(block))
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientDownloadError(f"{url}: {type(exc).__name__}: {exc}") from exc
    size = part.stat().st_size
    if total is not None and size < total:
        raise TransientDownloadError(f"{url}: transfer ended at {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink()
        raise RuntimeError(f"{url}: received {size} bytes, more than the {total} the server announced")
    return total is not None


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
    announced = retrying(_transfer, url, part, timeout_s, progress)
    actual, size = md5sum(part), part.stat().st_size
    if md5 is None:
        if not announced:
            part.unlink()
            raise UnverifiableDownload(
                f"{dest.name}: the server announced no length for {url}, so a transfer cut short cannot be told "
                f"from a complete one, and no MD5 is configured to check it; set the file's MD5 in the configuration"
            )
        log.warning("%s: no MD5 to verify against (%d bytes, as announced); it has MD5 %s", dest.name, size, actual)
    elif actual != md5.lower():
        part.unlink()
        raise ChecksumError(
            f"{dest.name}: MD5 mismatch: expected {md5.lower()}, got {actual} for the {size} bytes received from {url}"
        )
    os.replace(part, dest)
    return dest
