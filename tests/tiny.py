"""The smallest dual-encoder configuration, for tests: the model section of tests/config/tiny.yaml."""

from pathlib import Path

import pandas as pd
import yaml

from audioretrieval.model.tokenizer import build_tokenizer

TINY = Path(__file__).parent / "config" / "tiny.yaml"


def tiny_model_config(tokenizer=None) -> dict:
    config = yaml.safe_load(TINY.read_text())["model"]
    config["text"]["tokenizer"] = str(tokenizer) if tokenizer else None
    return config


def make_tokenizer(directory: Path) -> Path:
    words = (
        "a loud quiet high low tone chirp hum siren beeps rumble clicks noise burst with hiss plays can be heard"
    ).split()
    captions = [" ".join(words[i % len(words)] for i in range(k, k + 6)) for k in range(60)]
    pd.DataFrame({"caption": captions}).to_parquet(directory / "captions.parquet")
    build_tokenizer(directory / "captions.parquet", directory / "tokenizer", 300)
    return directory / "tokenizer"
