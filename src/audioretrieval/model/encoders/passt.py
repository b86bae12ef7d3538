"""PaSST (hear21passt), the paper's audio encoder: the Kaldi log-mel front end at 32 kHz and PaSST over
each window; a window's token is the mean of its class and distillation tokens (768-d for PaSST-S)."""

from __future__ import annotations

import hear21passt.models.passt as passt_module
import torch
from hear21passt.models.passt import PaSST, checkpoint_filter_fn, default_cfgs
from torch import nn

from audioretrieval.model.attention import use_fused_attention
from audioretrieval.model.audio import AudioEncoder, published_weights
from audioretrieval.model.mel import N_MELS, MelFrontEnd, frames_of

passt_module.first_RUN = False  # PaSST prints tensor shapes on its first forward otherwise


def fetch_passt_weights(arch: str, weights: str | None) -> dict:
    """AudioSet weights of a hear21passt architecture: from `weights` (a local file) if given, else
    downloaded (and cached) from hear21passt's address."""
    return published_weights("PaSST AudioSet weights", default_cfgs[arch]["url"], None, weights)


class PasstAudioEncoder(AudioEncoder):
    """Structured patchout in training only; the AudioSet classifiers are dropped."""

    family = "passt"
    sample_rate = 32000

    def __init__(self, cfg: dict, segment_s: float, out_dim: int):
        super().__init__(cfg, segment_s)
        self.width = cfg["embed_dim"]
        self.mel = MelFrontEnd()
        self.passt = PaSST(
            img_size=(N_MELS, frames_of(self.window)),
            patch_size=16,
            stride=16,
            in_chans=1,
            num_classes=527,
            embed_dim=cfg["embed_dim"],
            depth=cfg["depth"],
            num_heads=cfg["num_heads"],
            distilled=True,
            s_patchout_t=cfg["patchout_t"],
            s_patchout_f=cfg["patchout_f"],
        )
        if cfg.get("pretrained"):
            state = checkpoint_filter_fn(fetch_passt_weights(cfg["arch"], cfg.get("weights")), self.passt)
            self.passt.load_state_dict(state)
        self.passt.head = nn.Identity()  # the AudioSet classifiers are not used
        self.passt.head_dist = None
        if cfg.get("fused_attention"):
            use_fused_attention(self.passt)
        self.projection = nn.Linear(self.width, out_dim)

    def fixed_features(self, windows: torch.Tensor) -> torch.Tensor:
        return self.mel.power(windows)

    def tokens(self, power: torch.Tensor) -> torch.Tensor:
        mel = self.mel.mel_in_fp32(power)
        with torch.device(mel.device):  # patchout's torch.randperm on the model's device: no copy from the host
            cls_token, dist_token = self.passt.forward_features(mel.unsqueeze(1))
        return ((cls_token + dist_token) / 2).unsqueeze(1)

    def compile_network(self) -> None:
        self.passt.forward_features = torch.compile(self.passt.forward_features)
