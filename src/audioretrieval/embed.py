"""Embedding a whole split: every clip once and every caption."""

from __future__ import annotations

import contextlib
import os

import torch
from torch.utils.data import DataLoader

from .data.dataset import ClipAudio, as_float, read_caption_table
from .metrics import own_clip_ranks, retrieval_metrics
from .model.audio import SpectrogramCache
from .model.dual_encoder import DualEncoder


def resolve_precision(setting: str, device: torch.device) -> str:
    """The precision a run uses on `device`: the setting ('fp16' is the seed's: Lightning precision=16),
    'auto' meaning bf16 where the GPU has it, else fp16; always fp32 on a CPU."""
    if device.type != "cuda":
        return "fp32"
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast_for(device: torch.device, precision: str):
    """Autocast context for a precision of 'fp32', 'bf16' or 'fp16'."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


@torch.no_grad()
def embed_split(model: DualEncoder, audio_h5: str | os.PathLike, captions: str | os.PathLike, segment_s: float,
                batch_size: int, device: torch.device, precision: str = "fp32", num_workers: int = 0,
                cache: SpectrogramCache | None = None) -> dict:
    """Normalised embeddings {audio: [clips, D], text: [captions, D]} and each caption's clip row;
    `cache` keeps the clips' spectrograms for the next call (validation after every epoch)."""
    was_training = model.training
    model.eval()
    clips = ClipAudio(audio_h5, segment_s)
    table = read_caption_table(captions, len(clips), audio_h5)
    audio, text = [], []
    with autocast_for(device, precision):
        for batch in DataLoader(clips, batch_size=batch_size, num_workers=num_workers):
            waveform = as_float(batch["audio"].to(device))
            spectrograms = cache(model.audio, waveform, batch["clip_index"]) if cache else None
            audio.append(model.embed_audio(waveform, batch["fraction"].to(device), spectrograms).float())
        texts = table["caption"].tolist()
        for start in range(0, len(texts), batch_size):
            text.append(model.embed_text(texts[start : start + batch_size]).float())
    model.train(was_training)
    return {
        "audio": torch.cat(audio).cpu(),
        "text": torch.cat(text).cpu(),
        "clip_of_caption": torch.as_tensor(table["clip_index"].to_numpy().copy()),
    }


def evaluate_embeddings(embeddings: dict) -> dict[str, float]:
    similarity = embeddings["text"] @ embeddings["audio"].T
    return retrieval_metrics(own_clip_ranks(similarity, embeddings["clip_of_caption"]))
