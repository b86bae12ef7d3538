"""The dual encoder and its four parameter groups."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audioretrieval.model.audio import audio_encoder
from audioretrieval.model.text import TextEncoder

PARAMETER_GROUPS = ("audio_encoder", "text_encoder", "audio_projection", "text_projection")


class DualEncoder(nn.Module):
    """Audio and captions mapped to L2-normalised vectors of one space; similarity = cosine / tau."""

    def __init__(self, cfg: dict, segment_s: float, text_hf_config: dict | None = None, load_weights: bool = True):
        super().__init__()
        self.tau = cfg["tau"]
        audio_cfg = cfg["audio"] if load_weights else {**cfg["audio"], "pretrained": False}
        self.audio = audio_encoder(audio_cfg, segment_s, cfg["embed_dim"])
        self.text = TextEncoder(cfg["text"], cfg["embed_dim"], text_hf_config, load_weights)

    def embed_audio(
        self, waveform: torch.Tensor, fraction: torch.Tensor, spectrograms: torch.Tensor | None = None
    ) -> torch.Tensor:
        return F.normalize(self.audio(waveform, fraction, spectrograms), dim=-1)

    def embed_text(self, captions: list[str]) -> torch.Tensor:
        return F.normalize(self.text(captions), dim=-1)

    def logits(self, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """C[i, j] = cos(audio_i, caption_j) / tau of normalised embeddings (the fixed temperature
        is the model's: model.tau)."""
        return audio @ text.T / self.tau

    def forward(
        self,
        waveform: torch.Tensor,
        fraction: torch.Tensor,
        captions: list[str],
        spectrograms: torch.Tensor | None = None,
    ):
        return self.embed_audio(waveform, fraction, spectrograms), self.embed_text(captions)

    def compile_encoders(self) -> None:
        """torch.compile the encoders' forward passes, in place (parameter names and checkpoints stay
        the same): the audio network and a trained text encoder."""
        self.audio.compile_network()
        if not self.text.frozen:
            self.text.encoder.compile()

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "audio_encoder": list(self.audio.encoder_parameters()),
            "text_encoder": list(self.text.encoder_parameters()),
            "audio_projection": list(self.audio.projection.parameters()),
            "text_projection": list(self.text.projection.parameters()),
        }
