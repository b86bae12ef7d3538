"""Decoding encoded audio bytes (wav, flac, ogg, mp3) to mono float32 at a target rate."""

from __future__ import annotations

import io

import numpy as np
import soundfile
import soxr

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
RESAMPLE_QUALITY = "HQ"


def is_audio_name(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTENSIONS)


def decode_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode an encoded audio file held in memory; returns (samples × channels float32, rate)."""
    with soundfile.SoundFile(io.BytesIO(data)) as f:
        rate = f.samplerate
        samples = f.read(dtype="float32", always_2d=True)
    if samples.shape[0] == 0:
        raise ValueError("the file holds no audio samples")
    return samples, rate


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
