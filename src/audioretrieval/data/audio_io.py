"""Decoding encoded audio (wav, flac, ogg, mp3) to mono float32 at a target rate: whole, from bytes
held in memory, or block by block from an open file (`stream_mono`), in memory that does not grow
with the file's length."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import soundfile
import soxr

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
RESAMPLE_QUALITY = "HQ"


def is_audio_name(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTENSIONS)


class BadAudio(ValueError):
    pass


def decode_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode an encoded audio file held in memory; returns (samples × channels float32, rate).

    BadAudio if it cannot be read, holds no samples, or holds fewer frames than its header says (a
    file cut short: MP3 is exempt, its frame count is an estimate).
    """
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            rate, announced, kind = f.samplerate, f.frames, f.format
            samples = f.read(dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as exc:
        raise BadAudio(f"not a readable audio file ({exc.error_string}; {len(data)} bytes)") from exc
    check_complete(kind, wav_data_frames(data) if kind in WAV_KINDS else None, announced, samples.shape[0], len(data))
    return samples, rate


WAV_KINDS = ("WAV", "WAVEX", "RF64")  # soundfile's names of RIFF/WAVE files, whose data chunk says how long they are
HEADER_BYTES = 1 << 16  # read for a streamed WAV's data chunk (after its fmt, ds64 and any metadata chunks)


def check_complete(kind: str, header_frames: int | None, announced: int, decoded: int, size: int) -> None:
    """BadAudio where a file holds no samples or fewer frames than announced; `header_frames`, read
    from a WAV's own header, stands for libsndfile's count, which it shrinks to what a cut-short file holds."""
    if decoded == 0:
        raise BadAudio("the file holds no audio samples")
    announced = header_frames or announced
    if kind != "MP3" and decoded != announced:
        raise BadAudio(
            f"its {kind} header announces {announced} frames but {decoded} could be decoded "
            f"(the file is cut short or damaged; {size} bytes)"
        )


def stream_mono(file: BinaryIO, target_rate: int, block_frames: int = 1 << 16) -> Iterator[np.ndarray]:
    """`file` (open, seekable) decoded `block_frames` source frames at a time, downmixed and
    resampled: consecutive float32 chunks at `target_rate`, equal when joined to `load_mono` of its
    bytes. An MP3 file is read whole: libsndfile 1.2 decodes it differently read in blocks (samples
    shifted after some block boundaries; tests/data/test_audio_io.py). Raises BadAudio as
    `decode_bytes` does, a cut-short file once its last chunk is out."""
    header = file.read(HEADER_BYTES)
    size = file.seek(0, io.SEEK_END)
    file.seek(0)
    try:
        with soundfile.SoundFile(file) as f:
            rate, announced, kind = f.samplerate, f.frames, f.format
            resampler = (
                None
                if rate == target_rate
                else soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
            )
            decoded, whole = 0, kind == "MP3"  # libsndfile 1.2's MP3 reads in blocks shift the samples
            while True:
                block = f.read(-1 if whole else block_frames, dtype="float32", always_2d=True)
                decoded += block.shape[0]
                last = whole or block.shape[0] < block_frames
                mono = to_mono(block)
                chunk = mono if resampler is None else resampler.resample_chunk(mono, last=last)
                if len(chunk):
                    yield np.ascontiguousarray(chunk, dtype=np.float32)
                if last:
                    break
    except soundfile.LibsndfileError as exc:
        raise BadAudio(f"not a readable audio file ({exc.error_string}; {size} bytes)") from exc
    check_complete(kind, wav_data_frames(header) if kind in WAV_KINDS else None, announced, decoded, size)


def wav_data_frames(data: bytes) -> int | None:
    """Frames that a RIFF/WAVE (or RF64/BW64) file's data chunk announces, from the file's first
    bytes; None where its header does not say (or `data` ends before the data chunk)."""
    if data[:4] not in (b"RIFF", b"RF64", b"BW64") or data[8:12] != b"WAVE":
        return None
    block_align, data_size, at = None, None, 12
    while at + 8 <= len(data):
        chunk, size = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        if chunk == b"ds64" and at + 24 <= len(data):  # RF64: the 64-bit sizes the 32-bit fields cannot hold
            data_size = struct.unpack_from("<Q", data, at + 16)[0]
        if chunk == b"fmt " and at + 22 <= len(data):
            block_align = struct.unpack_from("<H", data, at + 20)[0]
        if chunk == b"data":
            if size == 0xFFFFFFFF and data_size is not None:
                size = data_size
            streamed = size in (0, 0xFFFFFFFF)  # written before its length was known
            return None if streamed or not block_align else size // block_align
        at += 8 + size + (size & 1)
    return None


def to_mono(samples: np.ndarray) -> np.ndarray:
    return samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]


def resample(mono: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    if rate == target_rate:
        return np.ascontiguousarray(mono, dtype=np.float32)
    return soxr.resample(mono, rate, target_rate, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)


def load_mono(data: bytes, target_rate: int) -> tuple[np.ndarray, float]:
    """Decode, downmix and resample; returns (waveform at target_rate, source duration in seconds)."""
    samples, rate = decode_bytes(data)
    return resample(to_mono(samples), rate, target_rate), samples.shape[0] / rate
