"""The text branch: a Hugging Face encoder's token states pooled to one vector (the first token's, as
the reference code does, or their mean), then a projection head into the shared space."""

from __future__ import annotations

import hashlib
import json

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, RobertaConfig

from audioretrieval.device import to_device
from audioretrieval.model.tokenizer import normalize_caption
from audioretrieval.resources import resolve_name


def encoder_config(cfg: dict, vocab_size: int, pad_token_id: int) -> dict:
    """The Hugging Face config of the text encoder as a plain dict (stored in checkpoints)."""
    dropout = {"hidden_dropout_prob": cfg["dropout"], "attention_probs_dropout_prob": cfg["dropout"]}
    if cfg.get("name"):
        return AutoConfig.from_pretrained(resolve_name(cfg["name"]), **dropout).to_dict()
    small = cfg["random_init"]
    return RobertaConfig(  # a vocabulary at least the tokenizer's (random_init.vocab_size: a model's full size)
        vocab_size=max(vocab_size, small.get("vocab_size") or 0),
        pad_token_id=pad_token_id,
        hidden_size=small["hidden_size"],
        num_hidden_layers=small["layers"],
        num_attention_heads=small["heads"],
        intermediate_size=small["intermediate_size"],
        max_position_embeddings=cfg["max_tokens"] + 2,
        **dropout,
    ).to_dict()


POOLINGS = ("first", "mean")


def projection_head(in_dim: int, out_dim: int, layers: int, hidden: int) -> nn.Module:
    """One Linear layer, or `layers` Linear layers of width `hidden` with ReLU between them (the
    reference code's project_sentence with adopt_n_layers = layers - 1)."""
    if layers == 1:
        return nn.Linear(in_dim, out_dim)
    sizes = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    modules: list[nn.Module] = []
    for size_in, size_out in zip(sizes[:-1], sizes[1:]):
        modules += [nn.Linear(size_in, size_out), nn.ReLU()]
    return nn.Sequential(*modules[:-1])


class TextEncoder(nn.Module):
    """Captions -> embeddings [B, out_dim].

    The encoder's last hidden states are pooled (cfg["pooling"]): "first", the first token's
    (<s> / [CLS], the paper's), or "mean", the mean over the caption's tokens without padding (what
    sentence-embedding models such as all-MiniLM-L6-v2 are trained for); then a projection head of
    cfg["head_layers"] layers (1: one Linear layer, the paper's). With cfg["freeze"] the encoder is
    not trained: it stays in evaluation mode and its pooled states are computed once per distinct
    caption and reused (only the head learns). Configurations without pooling or head settings (older
    checkpoints) mean the paper's: first token, one layer.
    """

    def __init__(self, cfg: dict, out_dim: int, hf_config: dict | None = None, load_weights: bool = True):
        super().__init__()
        self.max_tokens = cfg["max_tokens"]
        self.frozen = bool(cfg.get("freeze", False))
        self.pooling = cfg.get("pooling", "first")
        if self.pooling not in POOLINGS:
            raise ValueError(f"model.text.pooling {self.pooling!r}: expected one of {POOLINGS}")
        name = resolve_name(cfg.get("name"))
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.get("tokenizer") or name)
        self.hf_config = hf_config or encoder_config(cfg, len(self.tokenizer), self.tokenizer.pad_token_id)
        config = AutoConfig.for_model(**self.hf_config)
        if name and load_weights:
            self.encoder = AutoModel.from_pretrained(name, config=config, add_pooling_layer=False)
        else:
            self.encoder = AutoModel.from_config(config, add_pooling_layer=False)
        self.projection = projection_head(
            config.hidden_size, out_dim, cfg.get("head_layers", 1), cfg.get("head_hidden") or config.hidden_size
        )
        self._cache: dict[str, torch.Tensor] = {}
        if self.frozen:
            self.encoder.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def encoder_parameters(self):
        return [] if self.frozen else list(self.encoder.parameters())

    def tokenize(self, captions: list[str], device: torch.device) -> dict:
        """input_ids and attention_mask [B, tokens] on `device`, and `attention`, the mask the encoder
        is given: None without padding, else the 4-D mask Hugging Face's SDPA attention builds from
        the 2-D one, built here on the host (Hugging Face checks `attention_mask.all()` on the
        device, which makes the host wait for the GPU at every step)."""
        tokens = self.tokenizer(
            captions,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        mask = tokens["attention_mask"]
        if self.encoder.config._attn_implementation != "sdpa":
            attention = mask
        elif bool(mask.all()):
            attention = None
        else:
            attention = mask.bool()[:, None, None, :].expand(-1, 1, mask.shape[1], -1).contiguous()
        return {
            "input_ids": to_device(tokens["input_ids"], device),
            "attention_mask": to_device(mask, device),
            "attention": None if attention is None else to_device(attention, device),
        }

    def _pooled(self, texts: list[str], device: torch.device) -> torch.Tensor:
        tokens = self.tokenize(texts, device)
        states = self.encoder(input_ids=tokens["input_ids"], attention_mask=tokens["attention"]).last_hidden_state
        if self.pooling == "first":
            return states[:, 0]
        mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1)

    def pooled_states(self, captions: list[str]) -> torch.Tensor:
        """[B, hidden] pooled encoder states of the preprocessed captions (cached when frozen)."""
        device = next(self.projection.parameters()).device
        texts = [normalize_caption(c) for c in captions]
        if not self.frozen:
            return self._pooled(texts, device)
        missing = sorted({t for t in texts if t not in self._cache})
        if missing:
            with torch.no_grad():
                self._cache.update(zip(missing, self._pooled(missing, device).float()))
        return torch.stack([self._cache[t] for t in texts])

    def forward(self, captions: list[str]) -> torch.Tensor:
        return self.projection(self.pooled_states(captions))

    def state_key(self) -> dict:
        """What a frozen encoder's pooled states depend on: its weights (a digest), its tokenizer, the
        token limit and the pooling. States computed under the same key are the same numbers."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.encoder.state_dict().items()):
            digest.update(name.encode() + b"\0")
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        vocabulary = json.dumps(sorted(self.tokenizer.get_vocab().items())).encode()
        return {
            "encoder": digest.hexdigest()[:16],
            "tokenizer": hashlib.sha256(vocabulary).hexdigest()[:16],
            "max_tokens": self.max_tokens,
            "pooling": self.pooling,
        }

    def remember(self, states: dict[str, torch.Tensor]) -> None:
        """Take pooled states computed elsewhere (by model.text_states) for these normalised captions,
        onto this encoder's device as its own are; captions not among them are still computed when
        first seen."""
        if not self.frozen:
            raise ValueError("pooled states computed elsewhere stand in only for a frozen encoder (model.text.freeze)")
        device = next(self.projection.parameters()).device
        self._cache.update((text, state.to(device)) for text, state in states.items())
