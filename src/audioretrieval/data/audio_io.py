"""Decoding encoded audio bytes (wav, flac, ogg, mp3) to mono float32 at a target rate."""

from __future__ import annotations

import io
import struct

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
    if samples.shape[0] == 0:
        raise BadAudio("the file holds no audio samples")
    if kind == "WAV":
        announced = wav_data_frames(data) or announced  # libsndfile shrinks the count of a truncated file
    if kind != "MP3" and samples.shape[0] != announced:
        raise BadAudio(
            f"its {kind} header announces {announced} frames but {samples.shape[0]} could be decoded "
            f"(the file is cut short or damaged; {len(data)} bytes)"
        )
    return samples, rate


def wav_data_frames(data: bytes) -> int | None:
    """Frames that a RIFF/WAVE file's data chunk announces (None where its header does not say)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    block_align, at = None, 12
    while at + 8 <= len(data):
        chunk, size = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        if chunk == b"fmt " and at + 22 <= len(data):
            block_align = struct.unpack_from("<H", data, at + 20)[0]
        if chunk == b"data":
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
