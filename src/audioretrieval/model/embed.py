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


@torch.no_grad()
def embed_split(
    model: DualEncoder,
    audio_h5: str | os.PathLike,
    captions: str | os.PathLike,
    segment_s: float,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    num_workers: int = 0,
    cache: SpectrogramCache | None = None,
) -> dict:
    """Normalised embeddings {audio: [clips, D], text: [captions, D]} and each caption's clip row;
    `cache` keeps the clips' spectrograms for the next call (validation after every epoch)."""
    was_training = model.training
    model.eval()
    clips = ClipAudio(audio_h5, segment_s)
    if cache is not None and num_workers == 0:
        clips.unread = cache.stored
    table = read_caption_table(captions, len(clips), audio_h5)
    audio, text = [], []
    with autocast_for(device, precision):
        for batch in DataLoader(
            clips, batch_size=batch_size, num_workers=num_workers, pin_memory=device.type == "cuda"
        ):
            waveform = as_float(batch["audio"].to(device, non_blocking=True))
            spectrograms = cache(model.audio, waveform, batch["clip_index"]) if cache else None
            fraction = batch["fraction"].to(device, non_blocking=True)
            audio.append(model.embed_audio(waveform, fraction, spectrograms).float())
        texts = table["caption"].tolist()
        for start in range(0, len(texts), batch_size):
            text.append(model.embed_text(texts[start : start + batch_size]).float())
    model.train(was_training)
    return {
        "audio": torch.cat(audio).cpu(),
        "text": torch.cat(text).cpu(),
        "clip_of_caption": torch.as_tensor(table["clip_index"].to_numpy().copy()),
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
    embeddings = embed_split(
        model,
        audio_h5,
        captions,
        meta["segment_s"],
        batch_size,
        device,
        resolve_precision(precision, device),
        num_workers,
    )
    table = read_caption_table(captions, len(embeddings["audio"]), audio_h5)
    write_embeddings(
        out_h5,
        embeddings["audio"].numpy(),
        embeddings["text"].numpy(),
        AudioH5(audio_h5).file_names,
        table,
        checkpoint=str(checkpoint),
    )
