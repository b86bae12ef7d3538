"""Embedding a whole split with a model: every clip once and every caption."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader

from audioretrieval.data.dataset import ClipAudio, as_float, read_caption_table
from audioretrieval.data.embeddings import write_embeddings
from audioretrieval.data.h5audio import AudioH5
from audioretrieval.device import autocast_for, resolve_precision
from audioretrieval.model.audio import SpectrogramCache
from audioretrieval.model.checkpoint import load_model
from audioretrieval.model.dual_encoder import DualEncoder
from audioretrieval.model.text_states import preload as preload_text_states


class Split:
    """A split to embed, opened once: its clips through a DataLoader (whose workers, with
    `persistent`, live as long as it does: validation after every epoch starts none anew), its
    caption table, and `cache`, which keeps the clips' spectrograms for the next pass. It draws
    nothing from the global random generator, so training's random stream is the same whatever
    the workers, and whether a run was resumed."""

    def __init__(
        self,
        audio_h5: str | os.PathLike,
        captions: str | os.PathLike,
        segment_s: float,
        batch_size: int,
        device: torch.device,
        num_workers: int = 0,
        cache: SpectrogramCache | None = None,
        persistent: bool = False,
    ):
        clips = ClipAudio(audio_h5, segment_s)
        if cache is not None and num_workers == 0:
            clips.unread = cache.stored
        self.table = read_caption_table(captions, len(clips), audio_h5)
        self.batch_size, self.cache = batch_size, cache
        self.loader = DataLoader(
            clips,
            batch_size=batch_size,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=persistent and num_workers > 0,
            generator=torch.Generator(),  # its workers' seeds: the global generator is left to the model
        )


@torch.no_grad()
def embed_split(model: DualEncoder, split: Split, device: torch.device, precision: str = "fp32") -> dict:
    """Normalised embeddings {audio: [clips, D], text: [captions, D]} and each caption's clip row."""
    was_training = model.training
    model.eval()
    audio, text = [], []
    with autocast_for(device, precision):
        for batch in split.loader:
            waveform = as_float(batch["audio"].to(device, non_blocking=True))
            spectrograms = split.cache(model.audio, waveform, batch["clip_index"]) if split.cache else None
            fraction = batch["fraction"].to(device, non_blocking=True)
            audio.append(model.embed_audio(waveform, fraction, spectrograms).float())
        texts = split.table["caption"].tolist()
        for start in range(0, len(texts), split.batch_size):
            text.append(model.embed_text(texts[start : start + split.batch_size]).float())
    model.train(was_training)
    return {
        "audio": torch.cat(audio).cpu(),
        "text": torch.cat(text).cpu(),
        "clip_of_caption": torch.as_tensor(split.table["clip_index"].to_numpy().copy()),
    }


def embed_checkpoint(
    checkpoint: str | os.PathLike,
    audio_h5: str | os.PathLike,
    captions: str | os.PathLike,
    out_h5: str | os.PathLike,
    batch_size: int,
    device: str = "cpu",
    precision: str = "auto",
    num_workers: int = 0,
    text_states: tuple[str | os.PathLike, ...] = (),
) -> None:
    """Embed every clip and caption of a split with a checkpoint (evaluation mode: no patchout, no
    random crop) into an embeddings file, under autocast of `precision` on a GPU (train.precision;
    the reference code embeds in fp16), reading the audio with `num_workers` DataLoader workers;
    `text_states`: files of its frozen text encoder's states of the captions (model.text_states)."""
    device = torch.device(device)
    model, meta = load_model(checkpoint, device)
    if text_states:
        preload_text_states(model.text, *text_states)
    split = Split(audio_h5, captions, meta["segment_s"], batch_size, device, num_workers)
    embeddings = embed_split(model, split, device, resolve_precision(precision, device))
    write_embeddings(
        out_h5,
        embeddings["audio"].numpy(),
        embeddings["text"].numpy(),
        AudioH5(audio_h5).file_names,
        split.table,
        checkpoint=str(checkpoint),
    )
