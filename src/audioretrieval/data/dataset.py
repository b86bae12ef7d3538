"""A training-ready dataset over a decoded-audio HDF5 file and its caption table."""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Container

import numpy as np
import pandas as pd
import torch
from torch.utils.data import ConcatDataset, Dataset, DistributedSampler, Sampler

from audioretrieval.data.captions import CAPTION_TABLE_COLUMNS
from audioretrieval.data.h5audio import INT16_SCALE, AudioH5


def as_float(audio: torch.Tensor) -> torch.Tensor:
    """Waveforms from CaptionedAudio as float32 in [-1, 1), whatever the stored sample type."""
    if audio.dtype == torch.int16:
        return audio.float() / INT16_SCALE
    return audio.float()


class Segments:
    """Fixed-length segments of the clips of a decoded-audio file."""

    def __init__(self, audio_h5: str | os.PathLike, segment_s: float):
        if segment_s <= 0:
            raise ValueError(f"segment_s {segment_s!r}: expected a positive number of seconds")
        self.audio = AudioH5(audio_h5)
        self.segment = int(round(segment_s * self.audio.sample_rate))

    def crop(
        self, clip_index: int, random_offset: bool, crop_seed: int | None = None, read: bool = True
    ) -> tuple[torch.Tensor, float]:
        """The clip's segment (zero-padded at the end) and its fraction of real signal; a random
        offset is drawn from `crop_seed` when given (CropSeeds), else from torch's generator.
        `read=False`: the same fraction with a silent segment, for a caller that holds the segment's
        spectrogram already."""
        length = int(self.audio.lengths[clip_index])
        start = 0
        if random_offset and length > self.segment:
            generator = None if crop_seed is None else torch.Generator().manual_seed(crop_seed)
            start = int(torch.randint(0, length - self.segment + 1, (), generator=generator).item())
        segment = torch.from_numpy(np.zeros(self.segment, dtype=self.audio.sample_dtype))
        copied = self.audio.read_into(clip_index, start, segment.numpy()) if read else min(length - start, self.segment)
        return segment, copied / self.segment


class CaptionedAudio(Dataset):
    """One item per caption: its clip cropped or zero-padded to `segment_s` seconds.

    Training (`train=True`) takes a random crop offset (from the seed CropSeeds hands with the
    index, so any worker and a resumed run draw the same crop; else from torch's generator);
    evaluation crops from the start. Each item holds:
      audio       tensor [segment samples] of the file's sample type: int16 files give int16
                  (half the bytes through the DataLoader; `as_float` converts, best on the GPU)
      fraction    the share of `audio` that is real signal rather than padding (0, 1]
      caption     the caption text as published
      clip_index  the clip's row in the HDF5 file; file_name; caption_index (1-5)
      caption_row the caption's row in the caption table
    `unread`: clips whose audio is not read (silence instead), as their segments' spectrograms are
    held (a SpectrogramCache's stored clips, in a process without DataLoader workers).
    """

    def __init__(self, audio_h5: str | os.PathLike, captions: str | os.PathLike, segment_s: float, train: bool):
        self.segments = Segments(audio_h5, segment_s)
        self.audio = self.segments.audio
        self.captions = read_caption_table(captions, len(self.audio), audio_h5)
        self.train = train
        self.unread: Container[int] = ()

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def clip_lengths(self) -> np.ndarray:
        """Samples of each clip, by clip_index."""
        return self.audio.lengths

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        """Item `index`, or `(index, crop_seed)` from CropSeeds."""
        index, crop_seed = item if isinstance(item, tuple) else (item, None)
        row = self.captions.iloc[index]
        clip_index = int(row["clip_index"])
        audio, fraction = self.segments.crop(clip_index, self.train, crop_seed, read=clip_index not in self.unread)
        return {
            "audio": audio,
            "fraction": torch.tensor(fraction, dtype=torch.float32),
            "caption": row["caption"],
            "clip_index": clip_index,
            "file_name": row["file_name"],
            "caption_index": int(row["caption_index"]),
            "caption_row": index,
        }


class ClipAudio(Dataset):
    """One item per clip, in file order, cropped from the start (for embedding a whole split);
    `unread` as CaptionedAudio's."""

    def __init__(self, audio_h5: str | os.PathLike, segment_s: float):
        self.segments = Segments(audio_h5, segment_s)
        self.unread: Container[int] = ()

    def __len__(self) -> int:
        return len(self.segments.audio)

    def __getitem__(self, clip_index: int) -> dict:
        audio, fraction = self.segments.crop(clip_index, random_offset=False, read=clip_index not in self.unread)
        return {"audio": audio, "fraction": torch.tensor(fraction, dtype=torch.float32), "clip_index": clip_index}


class CaptionedAudioUnion(ConcatDataset):
    """Several caption sets (each an audio file and its caption table) as one training set, e.g.
    ClothoV2 + AudioCaps + WavCaps: items as CaptionedAudio's, with clip_index and caption_row
    offset so that they stay unique across the sets (captions of one clip are positives of
    each other; clips of different sets never are). Every set must hand on one sample type."""

    def __init__(self, parts: list[CaptionedAudio]):
        types = {str(part.audio.path): np.dtype(part.audio.sample_dtype).name for part in parts}
        if len(set(types.values())) > 1:
            raise ValueError(f"training sets store different sample types, which cannot share a batch: {types}")
        super().__init__(parts)
        self.parts = parts
        self._clip_offsets = np.concatenate([[0], np.cumsum([len(p.audio) for p in parts])[:-1]]).tolist()

    @property
    def clip_lengths(self) -> np.ndarray:
        """Samples of each clip, by the union's clip_index."""
        return np.concatenate([part.audio.lengths for part in self.parts])

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        index, crop_seed = item if isinstance(item, tuple) else (item, None)
        part = bisect_right(self.cumulative_sizes, index)
        first = self.cumulative_sizes[part - 1] if part else 0
        item = self.parts[part][(index - first, crop_seed)]
        item["clip_index"] += self._clip_offsets[part]
        item["caption_row"] += first
        return item


class CropSeeds(Sampler):
    """A DistributedSampler's indices, each paired with the seed of its random crop: a function of
    the run's seed, the epoch and the item alone, so that crops are the same whichever DataLoader
    worker draws them, with persistent workers and after a resume alike."""

    def __init__(self, sampler: DistributedSampler, seed: int):
        self.sampler, self.seed = sampler, seed

    def __iter__(self):
        epoch = self.sampler.epoch
        for index in self.sampler:
            yield index, int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1, np.uint64)[0] >> 1)

    def __len__(self) -> int:
        return len(self.sampler)


def training_set(
    audio_h5: str | list[str], captions: str | list[str], segment_s: float
) -> CaptionedAudio | CaptionedAudioUnion:
    """The training captions of one set, or of several (lists of equal length) as their union."""
    if isinstance(audio_h5, (str, os.PathLike)):
        return CaptionedAudio(audio_h5, captions, segment_s, train=True)
    if len(audio_h5) != len(captions) or not audio_h5:
        raise ValueError(f"training sets: {len(audio_h5)} audio files but {len(captions)} caption tables")
    parts = [CaptionedAudio(a, c, segment_s, train=True) for a, c in zip(audio_h5, captions)]
    return parts[0] if len(parts) == 1 else CaptionedAudioUnion(parts)


def read_caption_table(captions: str | os.PathLike, clips: int, audio_h5: str | os.PathLike = "") -> pd.DataFrame:
    """A caption table, checked against the number of clips of its audio file."""
    table = pd.read_parquet(captions)
    missing = [c for c in CAPTION_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{captions}: missing columns {missing}; expected {CAPTION_TABLE_COLUMNS}")
    out_of_range = table["clip_index"].lt(0) | table["clip_index"].ge(clips)
    if out_of_range.any():
        raise ValueError(
            f"{captions}: clip_index values outside the {clips} clips of {audio_h5}: "
            f"{table.loc[out_of_range, 'clip_index'].head().tolist()}"
        )
    return table
