"""Resumable, retried, checksum-verified downloads.

The file grows under `<name>.part`; an interrupted transfer continues from its size with an HTTP
Range request. Every reply is checked on its own terms, MD5 or not: a partial (206) reply must
start where the part ends, its Content-Length must agree with its Content-Range, and once received
the part must hold exactly the Content-Range total (else the part is removed and the download starts
over); a full (200) reply must deliver its Content-Length. A reply that announces no length can only
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


def verify_md5(path: str | os.PathLike, expected: str, hint: str = "") -> str:
    """The file's MD5, after checking it is `expected`; ChecksumError names the file, both MD5s, its
    size and `hint` (what to do about it)."""
    path = Path(path)
    actual = file_digest(path, "md5")
    if actual != expected.lower():
        raise ChecksumError(
            f"{path}: MD5 {actual} ({path.stat().st_size} bytes), expected {expected.lower()}"
            + (f"; {hint}" if hint else "")
        )
    return actual


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _content_range(header: str | None) -> tuple[int | None, int | None, int | None]:
    """(first byte, last byte, total size) of a Content-Range header "bytes first-last/total"
    (None: absent or *)."""
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (header or "").strip())
    if not match:
        return None, None, None
    return int(match.group(1)), int(match.group(2)), None if match.group(3) == "*" else int(match.group(3))


def _restart(url: str, part: Path, problem: str) -> TransientDownloadError:
    """The part cannot be trusted after `problem`: removed, so that the next try starts over without a Range."""
    part.unlink(missing_ok=True)
    return TransientDownloadError(f"{url}: {problem}; the partial file was removed, so the next try starts afresh")


def _expected_size(url: str, response: requests.Response, have: int, part: Path) -> tuple[int, int | None]:
    """(where the body goes in the part, the size the file must have once it is received: None where
    the reply does not say). A resumed (206) reply must start at the part's end, and its length must
    agree with its own Content-Range; its Content-Range total is the file's size."""
    length = response.headers.get("Content-Length")
    if response.status_code != 206:
        return 0, None if length is None else int(length)  # no range support: start over
    header = response.headers.get("Content-Range")
    first, last, total = _content_range(header)
    if first != have:
        raise _restart(
            url,
            part,
            f"asked for the bytes from {have} on, the server sent a part starting at {first} "
            f"(Content-Range {header!r})",
        )
    if length is not None and int(length) != last - first + 1:
        raise _restart(
            url,
            part,
            f"the server's resumed reply announces bytes {first}-{last} (Content-Range "
            f"{header!r}) but a body of {length} bytes (Content-Length)",
        )
    if total is None and length is not None:  # Content-Range "bytes first-last/*"
        total = have + int(length)
    return have, total


def _check_size(url: str, part: Path, expected: int | None) -> None:
    """The bytes on disk are as many as the reply said the file has: fewer is a transfer cut short
    (resumed on the next try), more a reply that lied (started over)."""
    size = part.stat().st_size
    if expected is not None and size < expected:
        raise TransientDownloadError(f"{url}: transfer ended at {size} of {expected} bytes")
    if expected is not None and size > expected:
        raise _restart(url, part, f"the part holds {size} bytes, more than the {expected} the server said the file has")


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> bool:
    """Append the rest of `url` to `part` (starting fresh if the server ignores the Range); returns
    whether the reply announced the file's size, so that a complete transfer could be checked."""
    have = part.stat().st_size if part.exists() else 0
    # identity: lengths and ranges then count the file's own bytes (a server may otherwise gzip it)
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416 and have:
                return _already_complete(url, response, have, part)
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientDownloadError(f"{url}: HTTP {response.status_code}")
            if response.status_code >= 400:
                raise RuntimeError(f"{url}: HTTP {response.status_code} {response.reason}")
            have, expected = _expected_size(url, response, have, part)
            with (
                open(part, "ab" if have else "wb") as f,
                tqdm(
                    total=expected, initial=have, unit="B", unit_scale=True, desc=part.name, disable=not progress
                ) as bar,
            ):
                for block in response.iter_content(_BLOCK):
                    f.write(block)
                    bar.update(len(block))
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientDownloadError(f"{url}: {type(exc).__name__}: {exc}") from exc
    _check_size(url, part, expected)
    return expected is not None


def _already_complete(url: str, response: requests.Response, have: int, part: Path) -> bool:
    """A 416 reply to a Range from the part's end: the part is the whole file if the server's size is its size."""
    whole = re.fullmatch(r"bytes \*/(\d+)", response.headers.get("Content-Range", "").strip())
    if whole and int(whole.group(1)) == have:
        return True
    raise _restart(
        url,
        part,
        f"the part holds {have} bytes, the server's file {whole.group(1) + ' bytes' if whole else 'an unknown size'}",
    )


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
    actual, size = file_digest(part, "md5"), part.stat().st_size
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
