"""The smallest dual-encoder configuration, for tests."""

from pathlib import Path

import pandas as pd

from audioretrieval.tokenizer import build_tokenizer


def tiny_model_config(tokenizer=None) -> dict:
    return {
        "embed_dim": 16,
        "tau": 0.05,
        "audio": {"arch": "passt_s_p16_s16_128_ap468", "pretrained": False, "weights": None, "embed_dim": 32,
                  "depth": 1, "num_heads": 2, "window_s": 1.0, "hop_s": 1.0, "patchout_t": 1, "patchout_f": 1},
        "text": {"name": None, "tokenizer": str(tokenizer) if tokenizer else None, "freeze": False,
                 "tokenizer_vocab_size": 300,
                 "dropout": 0.1, "max_tokens": 16, "pooling": "first", "head_layers": 1, "head_hidden": None,
                 "random_init": {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64}},
    }


def make_tokenizer(directory: Path) -> Path:
    words = "a loud quiet high low tone chirp hum siren beeps rumble clicks noise burst with hiss plays can be heard".split()
    captions = [" ".join(words[i % len(words)] for i in range(k, k + 6)) for k in range(60)]
    pd.DataFrame({"caption": captions}).to_parquet(directory / "captions.parquet")
    build_tokenizer(directory / "captions.parquet", directory / "tokenizer", 300)
    return directory / "tokenizer"
