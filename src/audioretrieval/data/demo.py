"""A synthetic dataset in the exact ClothoV2 release format, with known audio-caption correspondences.

Every clip mixes one or two synthetic sound sources, each with a pitch, a rhythm and a loudness,
over an optional background hiss. Each caption names some of its clip's sources and some of their
properties in varied words, so a caption also truly describes every other clip that has what it
mentions. The generator knows each clip's content, so it writes that ground truth too:
a caption describes a clip iff, for every source it mentions, the clip holds a source of that kind
with every property mentioned for it, and, if it mentions the hiss, the clip has the hiss.

Outputs, per split, beside each other in one directory:
  clotho_audio_{split}.7z          wav files (PCM 16 bit) under "{split}/"
  clotho_captions_{split}.csv      file_name, caption_1..caption_5 (UTF-8)
  clotho_metadata_{split}.csv      the ClothoV2 metadata columns (ISO-8859-1)
  demo_clips_{split}.parquet       file_name, sources (JSON list), hiss
  demo_captions_{split}.parquet    file_name, caption_index, caption, mentions (JSON list), hiss
  demo_correspondences_{split}.parquet   file_name, caption_index, caption, relevant_file_name:
                                   one row per (caption, clip it truly describes), own clip included
"""

from __future__ import annotations

import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import py7zr
import soundfile

from audioretrieval.data.clotho import (
    CAPTION_COLUMNS,
    CAPTIONS_PER_CLIP,
    METADATA_COLUMNS,
    METADATA_ENCODING,
    SPLITS,
    audio_archive,
    captions_csv,
    metadata_csv,
)
from audioretrieval.files import write_bytes_atomically, write_table_atomically, written_atomically

KINDS = ("tone", "chirp", "noise burst", "hum", "clicks", "siren", "beeps", "rumble")
PROPERTIES = {
    "pitch": ("high", "low"),
    "rhythm": ("steady", "intermittent"),
    "loudness": ("loud", "quiet"),
}

NOUNS = {
    "tone": ["tone", "pure tone", "sine tone", "whistle-like tone"],
    "chirp": ["chirp", "rising sweep", "chirping sound", "upward glide"],
    "noise burst": ["noise burst", "burst of noise", "blast of static", "noisy burst"],
    "hum": ["hum", "electrical hum", "buzzing hum", "droning hum"],
    "clicks": ["clicking", "clicking sound", "ticking", "series of clicks"],
    "siren": ["siren", "wailing siren", "alarm siren", "warbling siren"],
    "beeps": ["beeping", "beeping sound", "electronic beeping", "series of beeps"],
    "rumble": ["rumble", "rumbling", "rumbling noise", "roar"],
}
ADJECTIVES = {
    ("pitch", "high"): ["high-pitched", "high", "shrill"],
    ("pitch", "low"): ["low-pitched", "low", "deep-toned"],
    ("rhythm", "steady"): ["steady", "continuous", "constant"],
    ("rhythm", "intermittent"): ["intermittent", "pulsing", "sporadic"],
    ("loudness", "loud"): ["loud", "powerful", "booming"],
    ("loudness", "quiet"): ["quiet", "faint", "soft"],
}
RHYTHM_CLAUSES = {
    "steady": ["that never stops", "that goes on without pause"],
    "intermittent": ["that stops and starts", "that comes and goes"],
}
HISS_PHRASES = ["with hiss in the background", "over a background hiss", "with static hissing behind it"]
ONE_SOURCE = ["{a} can be heard.", "{a} sounds.", "There is {a}.", "Someone recorded {a}.", "{a} plays nearby."]
TWO_SOURCES = ["{a} and {b}.", "{a} together with {b}.", "{a} while {b} plays.", "{a} is heard along with {b}."]

NAME_WORDS = [
    "Kitchen",
    "Café terrace",
    "Bahnhof",
    "Straße at night",
    "garden",
    "naïve synth",
    "rain",
    "Ölmühle",
    "harbour",
    "forêt",
    "Mühle",
    "señor's radio",
    "workshop",
    "Place de l'église",
    "Søndag",
    "fan",
    "tram",
]
NAME_DECORATIONS = [
    "",
    ", take",
    " (edit)",
    " &amp; friends",
    " &#39;live&#39;",
    " n°",
    "'s loop",
    " - copy",
    "  double",
    ", 2",
]
LICENSE = "http://creativecommons.org/publicdomain/zero/1.0/"


@dataclass(frozen=True)
class DemoSpec:
    seed: int = 1234
    clips: dict = field(default_factory=lambda: {"development": 300, "validation": 100, "evaluation": 100})
    sample_rate: int = 44100
    min_duration_s: float = 4.0
    max_duration_s: float = 8.0
    two_sources_prob: float = 0.6
    mention_both_prob: float = 0.4
    property_mention_prob: float = 0.4
    hiss_prob: float = 0.5
    hiss_mention_prob: float = 0.5
    compression_preset: int = 0

    def __post_init__(self):
        if set(self.clips) != set(SPLITS) or any(int(n) < 1 for n in self.clips.values()):
            raise ValueError(f"demo clips {self.clips!r}: expected a positive count for each of {SPLITS}")
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise ValueError(
                f"demo durations: expected 0 < min_duration_s <= max_duration_s, "
                f"got {self.min_duration_s} and {self.max_duration_s}"
            )


# --- content ---------------------------------------------------------------------------------


def draw_clip(rng: np.random.Generator, spec: DemoSpec) -> dict:
    n = 2 if rng.random() < spec.two_sources_prob else 1
    kinds = rng.choice(len(KINDS), size=n, replace=False)
    sources = [{"kind": KINDS[k], **{p: values[rng.integers(2)] for p, values in PROPERTIES.items()}} for k in kinds]
    return {"sources": sources, "hiss": bool(rng.random() < spec.hiss_prob)}


def draw_mentions(rng: np.random.Generator, clip: dict, spec: DemoSpec) -> dict:
    sources = clip["sources"]
    if len(sources) == 2 and rng.random() < spec.mention_both_prob:
        chosen = list(sources)
    else:
        chosen = [sources[rng.integers(len(sources))]]
    mentions = [
        {"kind": s["kind"], **{p: s[p] for p in PROPERTIES if rng.random() < spec.property_mention_prob}}
        for s in chosen
    ]
    return {"mentions": mentions, "hiss": clip["hiss"] and bool(rng.random() < spec.hiss_mention_prob)}


def _phrase(rng: np.random.Generator, mention: dict) -> str:
    words = [str(rng.choice(ADJECTIVES[("loudness", mention["loudness"])]))] if "loudness" in mention else []
    if "pitch" in mention:
        words.append(str(rng.choice(ADJECTIVES[("pitch", mention["pitch"])])))
    clause = ""
    if "rhythm" in mention:
        if rng.random() < 0.5:
            words.append(str(rng.choice(ADJECTIVES[("rhythm", mention["rhythm"])])))
        else:
            clause = " " + str(rng.choice(RHYTHM_CLAUSES[mention["rhythm"]]))
    noun = str(rng.choice(NOUNS[mention["kind"]]))
    head = " ".join([*words, noun])
    article = "an" if head[0] in "aeiou" else "a"
    if noun.endswith("ing"):
        article = "some"
    return f"{article} {head}{clause}"


def caption_text(rng: np.random.Generator, mentioned: dict) -> str:
    phrases = [_phrase(rng, m) for m in mentioned["mentions"]]
    if len(phrases) == 1:
        text = str(rng.choice(ONE_SOURCE)).format(a=phrases[0])
    else:
        text = str(rng.choice(TWO_SOURCES)).format(a=phrases[0], b=phrases[1])
    if mentioned["hiss"]:
        text = text[:-1] + " " + str(rng.choice(HISS_PHRASES)) + "."
    return text[0].upper() + text[1:]


def _bit(source: dict) -> int:
    index = KINDS.index(source["kind"])
    for p, values in PROPERTIES.items():
        index = 2 * index + values.index(source[p])
    return index


def _accepting_mask(mention: dict) -> int:
    """Bit mask over (kind, pitch, rhythm, loudness) combinations that satisfy a mention."""
    mask = 0
    for combo in range(len(KINDS) * 8):
        source = {"kind": KINDS[combo // 8]}
        for shift, (p, values) in zip((2, 1, 0), PROPERTIES.items()):
            source[p] = values[(combo >> shift) & 1]
        if source["kind"] == mention["kind"] and all(source[p] == mention[p] for p in PROPERTIES if p in mention):
            mask |= 1 << combo
    return mask


def ground_truth(clips: list[dict], captions: list[dict]) -> np.ndarray:
    """Boolean [captions × clips]: does caption j truly describe clip i."""
    clip_masks = np.array([sum(1 << _bit(s) for s in c["sources"]) for c in clips], dtype=np.uint64)
    clip_hiss = np.array([c["hiss"] for c in clips], dtype=bool)
    truth = np.ones((len(captions), len(clips)), dtype=bool)
    for j, caption in enumerate(captions):
        for mention in caption["mentions"]:
            truth[j] &= (clip_masks & np.uint64(_accepting_mask(mention))) != 0
        if caption["hiss"]:
            truth[j] &= clip_hiss
    return truth


# --- audio -----------------------------------------------------------------------------------


def _band_noise(rng, n, rate, low_hz, high_hz):
    n_fft = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(rng.standard_normal(n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    return np.fft.irfft(spectrum, n_fft)[:n]


def _source_signal(rng: np.random.Generator, source: dict, n: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    high = source["pitch"] == "high"
    kind = source["kind"]
    if kind == "tone":
        f = rng.uniform(1200, 2000) if high else rng.uniform(150, 300)
        x = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)
    elif kind == "chirp":
        f0 = rng.uniform(1500, 2500) if high else rng.uniform(200, 400)
        period = rng.uniform(0.3, 0.7)
        phase_t = np.mod(t, period)
        x = np.sin(2 * np.pi * f0 * (phase_t + phase_t**2 / (2 * period)))
    elif kind == "noise burst":
        x = _band_noise(rng, n, rate, 4000, 9000) if high else _band_noise(rng, n, rate, 200, 700)
        x *= np.mod(t, rng.uniform(0.4, 0.9)) < 0.25
    elif kind == "hum":
        f = rng.uniform(220, 300) if high else rng.uniform(50, 70)
        x = sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 7))
    elif kind == "clicks":
        kernel_t = np.arange(int(0.01 * rate)) / rate
        kernel = np.sin(2 * np.pi * (5000 if high else 400) * kernel_t) * np.exp(-kernel_t * 600)
        x = np.zeros(n + kernel.size)
        for start in (np.arange(0, t[-1], 1 / rng.uniform(6, 14)) * rate).astype(int):
            x[start : start + kernel.size] += kernel
        x = x[:n]
    elif kind == "siren":
        f = rng.uniform(1300, 1800) if high else rng.uniform(400, 600)
        lfo = rng.uniform(0.4, 1.0)
        x = np.sin(2 * np.pi * f * t - 0.3 * f / lfo * np.cos(2 * np.pi * lfo * t))
    elif kind == "beeps":
        f = rng.uniform(2200, 3000) if high else rng.uniform(500, 700)
        x = np.sin(2 * np.pi * f * t) * (np.mod(t, 0.25) < 0.08)
    else:  # rumble
        x = _band_noise(rng, n, rate, 300, 900) if high else _band_noise(rng, n, rate, 20, 120)
    x = x / (np.sqrt(np.mean(x**2)) + 1e-9)
    if source["rhythm"] == "intermittent":
        period = rng.uniform(0.6, 1.6)
        # a square wave with soft (about 20 ms) edges
        gate = 0.5 + 0.5 * np.clip(8 * np.sin(2 * np.pi * (t / period + rng.uniform())), -1, 1)
        x *= gate
    return x * (0.2 if source["loudness"] == "loud" else 0.03)


def synthesize(rng: np.random.Generator, clip: dict, duration_s: float, rate: int) -> np.ndarray:
    n = int(round(duration_s * rate))
    mix = sum(_source_signal(rng, s, n, rate) for s in clip["sources"])
    if clip["hiss"]:
        mix = mix + 0.01 * _band_noise(rng, n, rate, 2000, rate / 2)
    return np.clip(mix, -1.0, 1.0).astype(np.float32)


# --- release files ---------------------------------------------------------------------------


def _file_names(rng: np.random.Generator, count: int) -> list[str]:
    names = []
    for k in range(count):
        word = NAME_WORDS[rng.integers(len(NAME_WORDS))]
        decoration = NAME_DECORATIONS[rng.integers(len(NAME_DECORATIONS))]
        names.append(f"{word}{decoration} {k + 1}.wav")
    return names


def _write_archive(path: Path, split: str, members: list[tuple[str, np.ndarray]], rate: int, preset: int) -> None:
    filters = [{"id": py7zr.FILTER_LZMA2, "preset": preset}]
    with written_atomically(path) as tmp, py7zr.SevenZipFile(tmp, "w", filters=filters) as z:
        for name, audio in members:
            buffer = io.BytesIO()
            soundfile.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
            z.writestr(buffer.getvalue(), f"{split}/{name}")


def _write_metadata(path: Path, names: list[str], clips: list[dict], sound_ids, durations, rate: int) -> None:
    """The split's metadata file in the ClothoV2 columns and encoding."""
    metadata = pd.DataFrame(
        {
            "file_name": names,
            "keywords": [";".join(s["kind"] for s in c["sources"]) + (";hiss" if c["hiss"] else "") for c in clips],
            "sound_id": sound_ids,
            "sound_link": [f"https://freesound.org/people/demo/sounds/{i}" for i in sound_ids],
            "start_end_samples": [f"[0, {int(round(d * rate))}]" for d in durations],
            "manufacturer": "demo generator",
            "license": LICENSE,
        }
    )[METADATA_COLUMNS]
    write_bytes_atomically(metadata.to_csv(index=False).encode(METADATA_ENCODING), path)


def generate_split(out_dir: Path, split: str, names: list[str], sound_ids: np.ndarray, spec: DemoSpec) -> dict:
    """Write one split's release files and ground truth; returns statistics for the log."""
    rng = np.random.default_rng([spec.seed, SPLITS.index(split)])
    clips = [draw_clip(rng, spec) for _ in names]
    captions = [draw_mentions(rng, clip, spec) for clip in clips for _ in range(CAPTIONS_PER_CLIP)]
    for caption in captions:
        caption["text"] = caption_text(rng, caption)
    durations = rng.uniform(spec.min_duration_s, spec.max_duration_s, size=len(names))

    members = [(name, synthesize(rng, clip, d, spec.sample_rate)) for name, clip, d in zip(names, clips, durations)]
    _write_archive(out_dir / audio_archive(split), split, members, spec.sample_rate, spec.compression_preset)
    del members

    texts = np.array([c["text"] for c in captions]).reshape(len(names), CAPTIONS_PER_CLIP)
    wide = pd.DataFrame(texts, columns=CAPTION_COLUMNS)
    wide.insert(0, "file_name", names)
    write_bytes_atomically(wide.to_csv(index=False).encode("utf-8"), out_dir / captions_csv(split))

    _write_metadata(out_dir / metadata_csv(split), names, clips, sound_ids, durations, spec.sample_rate)

    caption_rows = pd.DataFrame(
        {
            "file_name": np.repeat(names, CAPTIONS_PER_CLIP),
            "caption_index": np.tile(np.arange(1, CAPTIONS_PER_CLIP + 1), len(names)),
            "caption": [c["text"] for c in captions],
            "mentions": [json.dumps(c["mentions"]) for c in captions],
            "hiss": [c["hiss"] for c in captions],
        }
    )
    write_table_atomically(caption_rows, out_dir / f"demo_captions_{split}.parquet")
    clip_rows = pd.DataFrame(
        {
            "file_name": names,
            "sources": [json.dumps(c["sources"]) for c in clips],
            "hiss": [c["hiss"] for c in clips],
            "duration": durations,
        }
    )
    write_table_atomically(clip_rows, out_dir / f"demo_clips_{split}.parquet")

    truth = ground_truth(clips, captions)
    caption_j, clip_i = np.nonzero(truth)
    pairs = caption_rows.iloc[caption_j][["file_name", "caption_index", "caption"]].reset_index(drop=True)
    pairs["relevant_file_name"] = np.asarray(names)[clip_i]
    write_table_atomically(pairs, out_dir / f"demo_correspondences_{split}.parquet")
    return {
        "split": split,
        "clips": len(names),
        "captions": len(captions),
        "mean_clips_per_caption": float(truth.sum(axis=1).mean()),
        "mean_fraction_of_clips": float(truth.mean()),
    }


def generate_demo(out_dir: str | os.PathLike, spec: DemoSpec, workers: int = 1) -> list[dict]:
    """Write the whole demo release (all splits) into `out_dir`; deterministic given spec.seed
    (each split draws from its own generator, so splits can be written by parallel workers)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    counts = [int(spec.clips[s]) for s in SPLITS]
    names = _file_names(rng, sum(counts))
    sound_ids = rng.choice(np.arange(10_000, 800_000), size=sum(counts), replace=False)
    bounds = np.cumsum([0, *counts])
    jobs = [(out_dir, split, names[a:b], sound_ids[a:b], spec) for split, a, b in zip(SPLITS, bounds[:-1], bounds[1:])]
    if workers <= 1:
        return [generate_split(*job) for job in jobs]
    with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
        return list(pool.map(generate_split, *zip(*jobs)))
