import hashlib

import pytest
from http_server import FileServer

from audioretrieval.data.download import (
    ChecksumError,
    TransientDownloadError,
    UnverifiableDownload,
    download,
    part_path,
)

DATA = bytes(range(256)) * 4000  # about 1 MB
MD5 = hashlib.md5(DATA).hexdigest()
FAST = dict(backoff_s=0.01, progress=False, timeout_s=10)


def test_download_verifies_and_moves_into_place(tmp_path):
    with FileServer({"clotho_audio_development.7z": DATA}) as server:
        dest = download(
            f"{server.url}/clotho_audio_development.7z", tmp_path / "clotho_audio_development.7z", MD5, **FAST
        )
    assert dest.read_bytes() == DATA
    assert not part_path(dest).exists()


def test_the_bytes_stored_are_the_files_even_where_a_server_would_compress_them(tmp_path):
    with FileServer({"metadata_eval.csv": DATA}, compress=True) as server:
        server.cut_after["metadata_eval.csv"] = len(DATA) // 2
        dest = download(f"{server.url}/metadata_eval.csv", tmp_path / "metadata_eval.csv", MD5, retries=2, **FAST)
    assert dest.read_bytes() == DATA  # lengths and resumed ranges count the file's bytes


def test_a_transfer_cut_off_halfway_resumes_where_it_stopped(tmp_path):
    with FileServer({"a.7z": DATA}) as server:
        server.cut_after["a.7z"] = len(DATA) // 2
        dest = download(f"{server.url}/a.7z", tmp_path / "a.7z", MD5, retries=2, **FAST)
    assert dest.read_bytes() == DATA
    assert server.requests[0] == ("a.7z", None)
    name, asked = server.requests[1]
    resumed_at = int(asked.removeprefix("bytes=").rstrip("-"))
    assert name == "a.7z" and len(DATA) // 2 - 2**16 <= resumed_at <= len(DATA) // 2  # only the rest


def test_a_partial_file_from_a_killed_run_is_continued(tmp_path):
    dest = tmp_path / "a.7z"
    part_path(dest).write_bytes(DATA[:300_000])
    with FileServer({"a.7z": DATA}) as server:
        download(f"{server.url}/a.7z", dest, MD5, **FAST)
    assert dest.read_bytes() == DATA
    assert server.requests == [("a.7z", "bytes=300000-")]


def test_a_server_without_range_support_restarts_the_file(tmp_path):
    dest = tmp_path / "a.7z"
    part_path(dest).write_bytes(b"stale bytes")
    with FileServer({"a.7z": DATA}, ranges=False) as server:
        download(f"{server.url}/a.7z", dest, MD5, **FAST)
    assert dest.read_bytes() == DATA


def test_server_errors_are_retried_with_backoff(tmp_path):
    with FileServer({"a.7z": DATA}) as server:
        server.fail_first["a.7z"] = 2
        download(f"{server.url}/a.7z", tmp_path / "a.7z", MD5, retries=3, **FAST)
        assert len(server.requests) == 3
    with FileServer({"a.7z": DATA}) as server:
        server.fail_first["a.7z"] = 5
        with pytest.raises(RuntimeError, match="HTTP 503"):
            download(f"{server.url}/a.7z", tmp_path / "b.7z", MD5, retries=2, **FAST)
        assert len(server.requests) == 3
    assert not (tmp_path / "b.7z").exists()


def test_missing_file_fails_at_once_naming_the_url(tmp_path):
    with FileServer({}) as server:
        with pytest.raises(RuntimeError, match=r"/nothing.7z: HTTP 404"):
            download(f"{server.url}/nothing.7z", tmp_path / "nothing.7z", MD5, retries=3, **FAST)
        assert len(server.requests) == 1


def test_checksum_mismatch_names_the_file_and_both_hashes_and_leaves_nothing(tmp_path):
    corrupted = DATA[:-1] + b"\0"
    with FileServer({"clotho_captions_evaluation.csv": corrupted}) as server:
        with pytest.raises(ChecksumError) as error:
            download(
                f"{server.url}/clotho_captions_evaluation.csv", tmp_path / "clotho_captions_evaluation.csv", MD5, **FAST
            )
    message = str(error.value)
    assert "clotho_captions_evaluation.csv" in message
    assert MD5 in message and hashlib.md5(corrupted).hexdigest() in message
    assert list(tmp_path.iterdir()) == []


def test_a_partial_reply_that_starts_elsewhere_is_not_appended_even_without_an_md5(tmp_path):
    dest = tmp_path / "metadata_eval.csv"
    part_path(dest).write_bytes(DATA[:300_000])
    with FileServer({"metadata_eval.csv": DATA}, lie_about_ranges=True) as server:
        download(f"{server.url}/metadata_eval.csv", dest, None, retries=2, **FAST)
        assert server.requests == [("metadata_eval.csv", "bytes=300000-"), ("metadata_eval.csv", None)]  # then afresh
    assert dest.read_bytes() == DATA


def test_a_reply_without_a_length_is_refused_without_an_md5_and_checked_with_one(tmp_path):
    with FileServer({"train.csv": DATA}, announce_length=False) as server:
        server.cut_after["train.csv"] = 1000  # ends early; nothing in the reply can tell
        with pytest.raises(
            UnverifiableDownload, match=r"train.csv: the server announced no length .* set the file's MD5"
        ):
            download(f"{server.url}/train.csv", tmp_path / "train.csv", None, **FAST)
        assert list(tmp_path.iterdir()) == []
        server.cut_after["train.csv"] = 1000
        with pytest.raises(ChecksumError, match=rf"expected {MD5}, got \w+ for the 1000 bytes received"):
            download(f"{server.url}/train.csv", tmp_path / "train.csv", MD5, **FAST)
        assert list(tmp_path.iterdir()) == []
        assert download(f"{server.url}/train.csv", tmp_path / "train.csv", MD5, **FAST).read_bytes() == DATA


FILE = (bytes(range(256)) * 1200)[:300_000]  # a file without a published MD5 (the AudioCaps captions, say)
KEPT = 131_072  # what a killed run left in the part


def test_a_resumed_reply_whose_body_is_the_whole_file_is_refused_and_the_download_starts_afresh(tmp_path):
    dest = tmp_path / "train.csv"
    part_path(dest).write_bytes(FILE[:KEPT])
    with FileServer({"train.csv": FILE}, whole_body_on_ranges=True) as server:
        url = f"{server.url}/train.csv"
        with pytest.raises(TransientDownloadError) as error:
            download(url, dest, None, retries=0, **FAST)
        assert str(error.value) == (
            f"{url}: the server's resumed reply announces bytes {KEPT}-299999 (Content-Range "
            f"'bytes {KEPT}-299999/300000') but a body of 300000 bytes (Content-Length); the partial file was "
            f"removed, so the next try starts afresh"
        )
        assert list(tmp_path.iterdir()) == []  # neither the file nor a part that a rerun would resume

        part_path(dest).write_bytes(FILE[:KEPT])
        assert download(url, dest, None, retries=1, **FAST).read_bytes() == FILE
        assert server.requests[-2:] == [("train.csv", f"bytes={KEPT}-"), ("train.csv", None)]


def test_a_resumed_reply_without_a_length_is_held_to_its_content_range_total(tmp_path):
    dest = tmp_path / "train.csv"
    part_path(dest).write_bytes(FILE[:KEPT])
    with FileServer({"train.csv": FILE}, whole_body_on_ranges=True, announce_length=False) as server:
        url = f"{server.url}/train.csv"
        with pytest.raises(TransientDownloadError) as error:
            download(url, dest, hashlib.md5(FILE).hexdigest(), retries=0, **FAST)  # checked with an MD5 too
    assert str(error.value) == (
        f"{url}: the part holds {KEPT + 300_000} bytes, more than the 300000 the server said the file has; "
        f"the partial file was removed, so the next try starts afresh"
    )
    assert list(tmp_path.iterdir()) == []
