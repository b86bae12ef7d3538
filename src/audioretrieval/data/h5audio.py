"""The decoded-audio HDF5 layout: one file per dataset split.

Layout (format 1):
  /audio       1-D, every clip back to back (chunked): int16 or float32 samples; "zstd": int16
               samples in chunks compressed losslessly (Blosc2: byte shuffle + Zstandard); "flac":
               the bytes (uint8) of each clip as a 16-bit FLAC file
  /offset      int64 [N], first sample of clip i (flac: as if its samples were stored)
  /length      int64 [N], number of samples of clip i
  /encoded_offset, /encoded_length   int64 [N], flac only: clip i's bytes in /audio
  /duration    float64 [N], duration in seconds of the source file (before resampling)
  /file_name   utf-8 str [N], the clip's file name as published (no directory)
  attrs: format_version, sample_rate, sample_format

Storing clips back to back lets a reader fetch a crop without reading the whole clip (FLAC: the
clip's bytes, then a seek to the crop, so only the frames up to its end are decoded). zstd and
FLAC are lossless: they read back exactly what int16 storage holds. FLAC stores real recordings
in about half the space but costs the most to decode; zstd saves less and decodes several times
faster (benchmarks/loader_benchmark.py). Both are decoded in the reading process (the DataLoader
workers).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import h5py
import hdf5plugin  # registers the Blosc2 filter of "zstd" storage with HDF5, for writing and reading
import numpy as np
import soundfile

from audioretrieval.files import HDF5Output

FORMAT_VERSION = 1
SAMPLE_FORMATS = ("int16", "float32", "zstd", "flac")
STORED_DTYPES = {"int16": np.int16, "float32": np.float32, "zstd": np.int16, "flac": np.uint8}
# what a reader hands on: FLAC decodes to the int16 samples it encoded
SAMPLE_DTYPES = {"int16": np.int16, "float32": np.float32, "zstd": np.int16, "flac": np.int16}
_FILTERS = {"zstd": lambda: hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)}
INT16_SCALE = 32768.0
CHUNK_SAMPLES = 1 << 16
_FLUSH_SAMPLES = 1 << 22
_INDEX_KEYS = ("audio", "offset", "length", "duration", "file_name")


class AudioH5Writer:
    """Appends clips to a new HDF5 file that appears under its final name only when complete (files.HDF5Output:
    whatever fails, no partial file remains)."""

    def __init__(self, path: str | os.PathLike, sample_rate: int, sample_format: str = "int16"):
        if sample_format not in SAMPLE_FORMATS:
            raise ValueError(f"sample_format {sample_format!r}: expected one of {SAMPLE_FORMATS}")
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.sample_format = sample_format
        self._names: list[str] = []
        self._lengths: list[int] = []
        self._encoded_lengths: list[int] = []
        self._durations: list[float] = []
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._written = 0
        self._file: h5py.File | None = None

    def __enter__(self) -> AudioH5Writer:
        self._output = HDF5Output(self.path)
        self._file = self._output.__enter__()
        try:
            self._file.attrs.update(
                format_version=FORMAT_VERSION, sample_rate=self.sample_rate, sample_format=self.sample_format
            )
            self._audio = self._file.create_dataset(
                "audio",
                shape=(0,),
                maxshape=(None,),
                dtype=STORED_DTYPES[self.sample_format],
                chunks=(CHUNK_SAMPLES,),
                **(_FILTERS[self.sample_format]() if self.sample_format in _FILTERS else {}),
            )
        except BaseException as error:
            self._output.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def encode(self, waveform: np.ndarray) -> np.ndarray:
        """A clip (mono float32 in [-1, 1]) as stored; pure, so decoding threads can call it."""
        if waveform.ndim != 1 or waveform.size == 0:
            raise ValueError(f"expected a non-empty mono waveform, got shape {waveform.shape}")
        if self.sample_format == "float32":
            return waveform.astype(np.float32, copy=False)
        samples = np.clip(np.rint(waveform * INT16_SCALE), -32768, 32767).astype(np.int16)
        if self.sample_format != "flac":
            return samples
        buffer = io.BytesIO()
        soundfile.write(buffer, samples, self.sample_rate, format="FLAC", subtype="PCM_16")
        return np.frombuffer(buffer.getbuffer(), dtype=np.uint8).copy()

    def append(self, file_name: str, waveform: np.ndarray, duration: float) -> int:
        """Add one clip (mono float32 at the file's sample rate); returns its row."""
        try:
            encoded = self.encode(waveform)
        except ValueError as exc:
            raise ValueError(f"{file_name!r}: {exc}") from exc
        return self.append_encoded(file_name, encoded, waveform.size, duration)

    def append_encoded(self, file_name: str, encoded: np.ndarray, samples: int, duration: float) -> int:
        """Add one clip already passed through `encode`; returns its row."""
        self._pending.append(encoded)
        self._pending_samples += encoded.size
        self._names.append(file_name)
        self._lengths.append(int(samples))
        self._encoded_lengths.append(int(encoded.size))
        self._durations.append(float(duration))
        if self._pending_samples >= _FLUSH_SAMPLES:
            self._flush()
        return len(self._names) - 1

    def _flush(self) -> None:
        if not self._pending:
            return
        block = np.concatenate(self._pending)
        self._audio.resize((self._written + block.size,))
        self._audio[self._written :] = block
        self._written += block.size
        self._pending, self._pending_samples = [], 0
        self._output.check()  # a full disk stops the writing here (WriteFailed naming the file)

    def _write_index(self) -> None:
        self._flush()
        lengths = np.asarray(self._lengths, dtype=np.int64)
        self._file.create_dataset("length", data=lengths)
        self._file.create_dataset("offset", data=_starts(lengths))
        if self.sample_format == "flac":
            encoded = np.asarray(self._encoded_lengths, dtype=np.int64)
            self._file.create_dataset("encoded_length", data=encoded)
            self._file.create_dataset("encoded_offset", data=_starts(encoded))
        self._file.create_dataset("duration", data=np.asarray(self._durations, dtype=np.float64))
        self._file.create_dataset("file_name", data=self._names, dtype=h5py.string_dtype("utf-8"))

    def __exit__(self, exc_type, exc, tb) -> None:
        """Complete the file and rename it into place; on any failure remove the partial file (a write
        that failed for want of room: files.WriteFailed, naming the file)."""
        if exc_type is None:
            try:
                self._write_index()
            except BaseException as error:
                self._output.__exit__(type(error), error, error.__traceback__)
                raise
        self._output.__exit__(exc_type, exc, tb)


def _decode_flac(data: bytes, start: int, out: np.ndarray) -> int:
    """Decode out.size frames from frame `start` of a FLAC file held in memory into `out`. Seeking
    fails on some libsndfile/libFLAC versions; then the frames before `start` are decoded and dropped."""
    with soundfile.SoundFile(io.BytesIO(data)) as f:
        try:
            if start:
                f.seek(start)
        except (RuntimeError, soundfile.LibsndfileError):
            f.seek(0)
            while start:
                start -= len(f.read(min(start, 1 << 16), dtype="int16"))
        return len(f.read(out.size, dtype="int16", out=out))


def _starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


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
            if self.sample_format == "flac":
                self.encoded_offsets = f["encoded_offset"][:]
                self.encoded_lengths = f["encoded_length"][:]
        self.sample_dtype = SAMPLE_DTYPES[self.sample_format]
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
        samples = np.empty(last - first, dtype=self.sample_dtype)
        self.read_into(row, start, samples)
        if samples.dtype == np.int16:
            return samples.astype(np.float32) / INT16_SCALE
        return samples

    def read_into(self, row: int, start: int, out: np.ndarray) -> int:
        """Copy samples of clip `row` from `start` into the front of `out` (of `sample_dtype`, no
        conversion); returns how many were copied (fewer than out.size at the clip's end)."""
        first, last = self._span(row, start, out.size)
        if last == first:
            return 0
        if self.sample_format != "flac":
            self._audio().read_direct(out, np.s_[first:last], np.s_[0 : last - first])
            return last - first
        begin = int(self.encoded_offsets[row])
        encoded = self._audio()[begin : begin + int(self.encoded_lengths[row])]
        copied = _decode_flac(encoded.tobytes(), start, out[: last - first])
        if copied != last - first:
            raise ValueError(f"{self.path}: clip {row} decodes to fewer samples than its stored length")
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
