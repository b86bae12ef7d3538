"""The test sets every model is scored on (evaluation.sets): the main dataset's evaluation split
first (the one that selects, compares in the map and plays on the listening page), then further
benchmarks, each scored with one relevant clip per caption (its own)."""

from __future__ import annotations

FURTHER = {"audiocaps": "AudioCaps test"}  # a further test set: its title
MAIN_TITLES = {"clothov2": "ClothoV2 evaluation", "table": "the table's evaluation split"}


def main_set(config: dict) -> str:
    """The name of the main dataset's evaluation split: its data folder's (data/{name}/evaluation)."""
    return "table" if config["data"]["source"] == "table" else "clothov2"


def further_sets(config: dict) -> list[str]:
    return config["evaluation"]["sets"][1:]


def title(name: str) -> str:
    return {**MAIN_TITLES, **FURTHER}[name]


def check_sets(config: dict) -> str | None:
    """What is wrong with evaluation.sets (one sentence), or None."""
    sets, main = config["evaluation"]["sets"], main_set(config)
    if sets[0] != main:
        return (
            f"evaluation.sets {sets}: the first set must be the main dataset's evaluation split, {main!r} "
            f"(data.source {config['data']['source']})"
        )
    unknown = [name for name in sets[1:] if name not in FURTHER]
    if unknown:
        return f"evaluation.sets: {unknown} cannot be a further test set; expected any of {sorted(FURTHER)}"
    if "audiocaps" in sets and "audiocaps" not in config:
        return "evaluation.sets names audiocaps, but there is no audiocaps section (its test captions and audio_dir)"
    return None
