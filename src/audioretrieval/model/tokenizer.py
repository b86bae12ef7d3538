"""Caption text as the text encoder reads it: the reference code's normalisation, and a RoBERTa-style
byte-level BPE tokenizer trained offline on a caption table (for random-init text encoders)."""

from __future__ import annotations

import os
import string

import pandas as pd
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import RobertaTokenizerFast

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]

_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_caption(text: str) -> str:
    """The reference code's caption preprocessing: lower-cased, ASCII punctuation deleted ("man's" -> "mans",
    "a - b" -> "a  b"); nothing else changes."""
    return text.lower().translate(_DELETE_PUNCTUATION)


def build_tokenizer(captions: str | os.PathLike, out_dir: str | os.PathLike, vocab_size: int) -> int:
    """Train on the (normalised) captions and save a tokenizer AutoTokenizer can load; returns its size."""
    texts = [normalize_caption(t) for t in pd.read_parquet(captions, columns=["caption"])["caption"]]
    if not texts:
        raise ValueError(f"{captions}: no captions to build a tokenizer from")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = RobertaTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    tokenizer.save_pretrained(out_dir)
    return len(tokenizer)
