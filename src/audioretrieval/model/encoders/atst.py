"""ATST-Frame (Li et al. 2024; `atst` in the reference code, models/audio/atst.py): the stored 32 kHz audio
resampled to 16 kHz, a 64-band log-mel front end scaled to [-1, 1], and a transformer over patches of
64 bands x 4 frames (40 ms); every patch is a token (768-d for ATST-Frame base), so a 10 s window
gives 250.

The module layout is the reference code's FrameAST (models/audio/external/atst/audio_transformer.py),
so the ATST-Frame checkpoint the reference code loads (atstframe_base_as2M.ckpt) loads key for key
after the reference code's own renaming (load_atst); `mask_embed`, used only in ATST's masked
pretraining, is not built here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchaudio.functional import amplitude_to_DB
from torchaudio.transforms import MelSpectrogram

from audioretrieval.model.audio import AudioEncoder, WeightsUnavailable, published_weights

MEL = dict(sample_rate=16000, n_fft=1024, win_length=1024, hop_length=160, f_min=60.0, f_max=7800.0, n_mels=64)
TOP_DB = 80.0
CLAMP_DB = (-50.0, 80.0)
SCALE_DB = (-79.6482, 50.6842)  # the reference code's MinMax: these dB values map to -1 and 1
PATCH_FRAMES = 4
MAX_FRAMES = 1001  # the positional embeddings cover 10 s (1,001 frames at 16 kHz, hop 160): 250 patches
UNUSED = ("mask_embed",)
# The reference code loads atstframe_base_as2M.ckpt from a local folder and names no address; ATST-Frame's
# own release (github.com/Audio-WestlakeU/audiossl, methods/atstframe) links atstframe_base.ckpt.
WHAT = (
    "ATST-Frame checkpoint (atstframe_base_as2M.ckpt as the reference code loads it, or audiossl's atstframe_base.ckpt)"
)


def log_mel(spec_power: torch.Tensor) -> torch.Tensor:
    """Power mel spectrograms [N, 64, frames] -> dB, floored TOP_DB below each clip's peak, clamped
    and scaled as the reference code's ATSTMel does."""
    db = amplitude_to_DB(spec_power.unsqueeze(1), 10.0, 1e-10, 0.0, TOP_DB).squeeze(1)
    low, high = SCALE_DB
    return (db.clamp(*CLAMP_DB) - low) / (high - low) * 2.0 - 1.0


class PatchEmbedding(nn.Module):
    def __init__(self, mels: int, width: int):
        super().__init__()
        self.patch_embed = nn.Linear(mels * PATCH_FRAMES, width)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """[N, mels, frames] -> [N, frames // 4, width]: each patch's values band by band, frame by frame."""
        n, mels, frames = spec.shape
        patches = frames // PATCH_FRAMES
        x = spec[:, :, : patches * PATCH_FRAMES].reshape(n, mels, patches, PATCH_FRAMES).transpose(1, 2)
        return self.patch_embed(x.reshape(n, patches, mels * PATCH_FRAMES))


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, tokens, width = x.shape
        q, k, v = self.qkv(x).reshape(n, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, tokens, width))


class Mlp(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class FrameTransformer(nn.Module):
    """[N, 64, frames] log-mel -> per-patch tokens [N, frames // 4, width] of the last block, normalised."""

    def __init__(self, width: int, depth: int, heads: int, mels: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, MAX_FRAMES // PATCH_FRAMES + 1, width))
        self.patch_embed = PatchEmbedding(mels, width)
        self.blocks = nn.ModuleList([Block(width, heads) for _ in range(depth)])
        self.norm_frame = nn.LayerNorm(width, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(spec)
        x = x + self.pos_embed[:, 1 : x.shape[1] + 1]  # index 0 belonged to a class token ATST-Frame drops
        for block in self.blocks:
            x = block(x)
        return self.norm_frame(x)


def renamed(state: dict) -> dict:
    """An ATST-Frame Lightning checkpoint's state_dict in FrameAST's names, as the reference code's
    load_atst renames them (the teacher's encoder of ATST pretraining, or the frame encoder of a
    fine-tuned model); a state dict already in those names passes unchanged."""
    out = {}
    for key, value in state.items():
        if "model.teacher.encoder." in key:
            if "encoder.norm." in key:  # the clip-level ATST names its last norm `norm`, ATST-Frame `norm_frame`
                out[key.replace("model.teacher.encoder.norm", "norm_frame")] = value
            elif "cls_token" not in key:
                out[key.replace("model.teacher.encoder.", "")] = value
        elif "encoder.encoder.frame_encoder." in key:
            out[key.replace("encoder.encoder.frame_encoder.", "")] = value
        elif "encoder.encoder.teacher_module." in key:
            continue
        elif "encoder.encoder." in key:
            out[key.replace("encoder.encoder.", "")] = value
        elif not any(marker in key for marker in ("model.", "encoder.encoder")):
            out[key] = value
    return out


def load_published(network: FrameTransformer, checkpoint: dict) -> None:
    state = renamed(checkpoint.get("state_dict", checkpoint))
    kept = {key: value for key, value in state.items() if not key.startswith(UNUSED)}
    try:
        network.load_state_dict(kept)
    except RuntimeError as exc:
        raise WeightsUnavailable(f"model.audio.weights: not an ATST-Frame checkpoint of this size ({exc})") from exc


class AtstAudioEncoder(AudioEncoder):
    family = "atst"
    sample_rate = 16000

    def __init__(self, cfg: dict, segment_s: float, out_dim: int):
        super().__init__(cfg, segment_s)
        if cfg["window_s"] > (MAX_FRAMES - 1) * MEL["hop_length"] / self.sample_rate:
            raise ValueError(
                f"model.audio.window_s ({cfg['window_s']}) exceeds ATST-Frame's 10 s positional embeddings"
            )
        self.mel = MelSpectrogram(**MEL)
        self.width = cfg["embed_dim"]
        self.atst = FrameTransformer(cfg["embed_dim"], cfg["depth"], cfg["num_heads"], MEL["n_mels"])
        if cfg.get("pretrained"):
            load_published(self.atst, published_weights(WHAT, None, None, cfg.get("weights")))
        self.projection = nn.Linear(self.width, out_dim)

    def fixed_features(self, windows: torch.Tensor) -> torch.Tensor:
        return log_mel(self.mel(windows))

    def tokens(self, spec: torch.Tensor) -> torch.Tensor:
        return self.atst(spec)

    def compile_network(self) -> None:
        self.atst.compile()
