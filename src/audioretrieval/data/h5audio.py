"""The decoded-audio HDF5 layout: one file per dataset split.

Layout (format 1):
  /audio       1-D int16 or float32, every clip's samples back to back (chunked)
  /offset      int64 [N], first sample of clip i in /audio
  /length      int64 [N], number of samples of clip i
  /duration    float64 [N], duration in seconds of the source file (before resampling)
  /file_name   utf-8 str [N], the clip's file name as published (no directory)
  attrs: format_version, sample_rate, sample_format

Storing clips back to back lets a reader fetch a crop without reading the whole clip.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from ..files import partial_path

FORMAT_VERSION = 1
SAMPLE_FORMATS = ("int16", "float32")
INT16_SCALE = 32768.0
CHUNK_SAMPLES = 1 << 16
_FLUSH_SAMPLES = 1 << 22
_INDEX_KEYS = ("audio", "offset", "length", "duration", "file_name")


class AudioH5Writer:
    """Appends clips to a new HDF5 file that appears under its final name only when complete."""

    def __init__(self, path: str | os.PathLike, sample_rate: int, sample_format: str = "int16"):
        if sample_format not in SAMPLE_FORMATS:
            raise ValueError(f"sample_format {sample_format!r}: expected one of {SAMPLE_FORMATS}")
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.sample_format = sample_format
        self._names: list[str] = []
        self._lengths: list[int] = []
        self._durations: list[float] = []
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._written = 0
        self._file: h5py.File | None = None

    def __enter__(self) -> "AudioH5Writer":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = h5py.File(partial_path(self.path), "w")
        self._file.attrs.update(
            format_version=FORMAT_VERSION, sample_rate=self.sample_rate, sample_format=self.sample_format
        )
        self._audio = self._file.create_dataset(
            "audio", shape=(0,), maxshape=(None,), dtype=self.sample_format, chunks=(CHUNK_SAMPLES,)
        )
        return self

    def append(self, file_name: str, waveform: np.ndarray, duration: float) -> int:
        """Add one clip (mono float32 at the file's sample rate); returns its row."""
        if waveform.ndim != 1 or waveform.size == 0:
            raise ValueError(f"{file_name!r}: expected a non-empty mono waveform, got shape {waveform.shape}")
        self._pending.append(self._encode(waveform))
        self._pending_samples += waveform.size
        self._names.append(file_name)
        self._lengths.append(int(waveform.size))
        self._durations.append(float(duration))
        if self._pending_samples >= _FLUSH_SAMPLES:
            self._flush()
        return len(self._names) - 1

    def _encode(self, waveform: np.ndarray) -> np.ndarray:
        if self.sample_format == "float32":
            return waveform.astype(np.float32, copy=False)
        return np.clip(np.rint(waveform * INT16_SCALE), -32768, 32767).astype(np.int16)

    def _flush(self) -> None:
        if not self._pending:
            return
        block = np.concatenate(self._pending)
        self._audio.resize((self._written + block.size,))
        self._audio[self._written :] = block
        self._written += block.size
        self._pending, self._pending_samples = [], 0

    def __exit__(self, exc_type, exc, tb) -> None:
        tmp = partial_path(self.path)
        try:
            if exc_type is None:
                self._flush()
                lengths = np.asarray(self._lengths, dtype=np.int64)
                self._file.create_dataset("length", data=lengths)
                self._file.create_dataset("offset", data=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
                self._file.create_dataset("duration", data=np.asarray(self._durations, dtype=np.float64))
                self._file.create_dataset("file_name", data=self._names, dtype=h5py.string_dtype("utf-8"))
        finally:
            self._file.close()
        if exc_type is None:
            os.replace(tmp, self.path)
        else:
            tmp.unlink(missing_ok=True)


class AudioH5:
    """Read access to a decoded-audio file; safe to use from several DataLoader workers.

    The index is read once; the HDF5 handle for samples is opened lazily in each process.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with h5py.File(self.path, "r") as f:
            missing = [key for key in _INDEX_KEYS if key not in f]
            if missing or f.attrs.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"{self.path}: not a decoded-audio file of format {FORMAT_VERSION} "
                    f"(missing {missing or 'nothing'}, format_version={f.attrs.get('format_version')})"
                )
            self.sample_rate = int(f.attrs["sample_rate"])
            self.sample_format = str(f.attrs["sample_format"])
            self.file_names: list[str] = [n.decode("utf-8") for n in f["file_name"][:]]
            self.offsets = f["offset"][:]
            self.lengths = f["length"][:]
            self.durations = f["duration"][:]
        self._row = {name: i for i, name in enumerate(self.file_names)}
        self._handle: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.file_names)

    def row_of(self, file_name: str) -> int:
        return self._row[file_name]

    def _audio(self) -> h5py.Dataset:
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle["audio"]

    def _span(self, row: int, start: int, num: int | None) -> tuple[int, int]:
        length = int(self.lengths[row])
        stop = length if num is None else min(length, start + num)
        if not 0 <= start <= stop:
            raise IndexError(f"{self.path}: clip {row} has {length} samples; cannot read from {start}")
        offset = int(self.offsets[row])
        return offset + start, offset + stop

    def read(self, row: int, start: int = 0, num: int | None = None) -> np.ndarray:
        """Samples [start, start + num) of clip `row` as float32 (fewer if the clip ends first)."""
        first, last = self._span(row, start, num)
        samples = self._audio()[first:last]
        if self.sample_format == "int16":
            return samples.astype(np.float32) / INT16_SCALE
        return samples.astype(np.float32, copy=False)

    def read_into(self, row: int, start: int, out: np.ndarray) -> int:
        """Copy samples of clip `row` from `start` into the front of `out` (of the stored sample
        type, no conversion); returns how many were copied (fewer than out.size at the clip's end)."""
        first, last = self._span(row, start, out.size)
        if last > first:
            self._audio().read_direct(out, np.s_[first:last], np.s_[0 : last - first])
        return last - first

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_pid"] = None
        return state
