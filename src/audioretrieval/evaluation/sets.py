"""The test sets every model is scored on (evaluation.sets): the main dataset's evaluation split
first (the one that selects, compares in the map and plays on the listening page), then further
benchmarks, each scored with one relevant clip per caption (its own)."""

from __future__ import annotations

import pandas as pd

FURTHER = {"audiocaps": "AudioCaps test"}  # a further test set: its title


def main_set(config: dict) -> str:
    """The name of the main dataset's evaluation split: its data folder's (data/{name}/evaluation),
    clothov2 for ClothoV2 and the demo, else the dataset source's name."""
    source = config["data"]["source"]
    return "clothov2" if source in ("demo", "clotho") else source


def further_sets(config: dict) -> list[str]:
    return config["evaluation"]["sets"][1:]


def title(name: str) -> str:
    if name in FURTHER:
        return FURTHER[name]
    return "ClothoV2 evaluation" if name == "clothov2" else f"the {name} dataset's evaluation split"


def check_sets(config: dict) -> str | None:
    """What is wrong with evaluation.sets (one sentence), or None."""
    sets, main = config["evaluation"]["sets"], main_set(config)
    if sets[0] != main:
        return (
            f"evaluation.sets {sets}: the first set must be the main dataset's evaluation split, {main!r} "
            f"(data.source {config['data']['source']}): e.g. [{main}]"
        )
    unknown = [name for name in sets[1:] if name not in FURTHER]
    if unknown:
        return f"evaluation.sets: {unknown} cannot be a further test set; expected any of {sorted(FURTHER)}"
    if "audiocaps" in sets and "audiocaps" not in config:
        return "evaluation.sets names audiocaps, but there is no audiocaps section (its test captions and audio_dir)"
    return None


def stacked(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One table of each test set's (name -> table, the main set first), each row led by its set."""
    columns = dict.fromkeys(column for table in tables.values() for column in table.columns)
    return pd.concat([table.assign(set=name) for name, table in tables.items()], ignore_index=True)[["set", *columns]]
