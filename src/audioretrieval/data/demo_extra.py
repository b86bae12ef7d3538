"""Small synthetic stand-ins for AudioCaps and WavCaps in their published layouts, generated like
the demo ClothoV2 (same sources, properties and caption grammar), so the full setting runs on a
laptop. They carry what the real sets bring to the pipeline:

  AudioCaps  caption CSVs (audiocap_id, youtube_id, start_time, caption): train, one caption per
             clip, and test, five per clip, as the real splits; the audio files of both in one
             folder, named by the configured template. A few train clips have no file (as for the
             real set, whose YouTube sources disappear), and a few train rows name a test clip (the
             real splits share none; these give the exclusion work to do).
  WavCaps    per source `json_files/{source}/{name}_final.json` and the FLAC clips (32 kHz) in
             `Zip_files/{source}/{source}.zip` with its parts list, plus the DCASE exclusion list
             `dcase2024_task6_excluded_freesound_ids.csv` holding the Freesound ids of the demo
             ClothoV2; a few FreeSound stand-ins carry those ids, so the exclusion has work to do.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile

from audioretrieval.data import wavcaps
from audioretrieval.data.demo import DemoSpec, caption_text, draw_clip, draw_mentions, synthesize
from audioretrieval.files import write_text_atomically, written_atomically

AUDIOCAPS_RATE = 44100
WAVCAPS_RATE = 32000
_ID_CHARS = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"))


@dataclass(frozen=True)
class ExtraSpec:
    audiocaps_clips: int = 60
    audiocaps_missing: int = 4
    audiocaps_test_clips: int = 40
    audiocaps_leaked: int = 3
    wavcaps_clips: dict = field(default_factory=lambda: {"FreeSound": 40, "SoundBible": 20})
    wavcaps_excluded: int = 4

    def __post_init__(self):
        if not 0 <= self.audiocaps_missing < self.audiocaps_clips:
            raise ValueError(
                f"demo.extra: audiocaps_missing {self.audiocaps_missing} must be below "
                f"audiocaps_clips {self.audiocaps_clips}"
            )
        unknown = set(self.wavcaps_clips) - set(wavcaps.SOURCES)
        if unknown:
            raise ValueError(
                f"demo.extra.wavcaps_clips: unknown sources {sorted(unknown)}; expected some of {list(wavcaps.SOURCES)}"
            )
        if self.wavcaps_excluded > self.wavcaps_clips.get(wavcaps.EXCLUDED_SOURCE, 0):
            raise ValueError(f"demo.extra: wavcaps_excluded {self.wavcaps_excluded} exceeds the FreeSound stand-ins")


def _clip_and_caption(rng: np.random.Generator, spec: DemoSpec, rate: int) -> tuple[np.ndarray, str, float]:
    clip = draw_clip(rng, spec)
    caption = caption_text(rng, draw_mentions(rng, clip, spec))
    duration = float(rng.uniform(spec.min_duration_s, spec.max_duration_s))
    return synthesize(rng, clip, duration, rate), caption, duration


def _encoded(audio: np.ndarray, rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


def _youtube_id(rng: np.random.Generator) -> str:
    return "".join(rng.choice(_ID_CHARS, size=11))


def _write_clip(audio_dir: Path, name: str, audio: np.ndarray) -> None:
    with written_atomically(audio_dir / name) as tmp:
        tmp.write_bytes(_encoded(audio, AUDIOCAPS_RATE, "WAV"))


def generate_audiocaps_test(
    test_csv: str | os.PathLike, audio_dir: str | os.PathLike, template: str, spec: DemoSpec, extra: ExtraSpec
) -> dict:
    """Write the AudioCaps test stand-in: five captions of each clip, every clip's file; the caption
    CSV comes last (its presence means the split is complete)."""
    audio_dir = Path(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([spec.seed, 103])
    rows = []
    for k in range(extra.audiocaps_test_clips):
        youtube_id, start_time, first_id = _youtube_id(rng), int(rng.integers(0, 300)), 900_000 + 5 * k
        clip = draw_clip(rng, spec)
        duration = float(rng.uniform(spec.min_duration_s, spec.max_duration_s))
        name = template.format(youtube_id=youtube_id, start_time=start_time, audiocap_id=first_id)
        _write_clip(audio_dir, name, synthesize(rng, clip, duration, AUDIOCAPS_RATE))
        rows += [
            {
                "audiocap_id": first_id + c,
                "youtube_id": youtube_id,
                "start_time": start_time,
                "caption": caption_text(rng, draw_mentions(rng, clip, spec)),
            }
            for c in range(5)
        ]
    with written_atomically(Path(test_csv)) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return {"set": "audiocaps test", "clips": extra.audiocaps_test_clips}


def generate_audiocaps(
    captions_csv: str | os.PathLike,
    test_csv: str | os.PathLike,
    audio_dir: str | os.PathLike,
    template: str,
    spec: DemoSpec,
    extra: ExtraSpec,
) -> dict:
    """Write the AudioCaps train stand-in, with extra.audiocaps_leaked rows naming a clip of the test
    stand-in `test_csv` (one caption of each of its first clips); the caption CSV comes last."""
    audio_dir = Path(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    test = pd.read_csv(test_csv, dtype={"youtube_id": str}, keep_default_na=False).drop_duplicates("youtube_id")
    if extra.audiocaps_leaked > len(test):
        raise ValueError(f"demo.extra: audiocaps_leaked {extra.audiocaps_leaked} exceeds the {len(test)} test clips")
    rng = np.random.default_rng([spec.seed, 101])
    missing = set(rng.choice(extra.audiocaps_clips, size=extra.audiocaps_missing, replace=False).tolist())
    rows = []
    for k in range(extra.audiocaps_clips):
        youtube_id = _youtube_id(rng)
        start_time = int(rng.integers(0, 300))
        audio, caption, _ = _clip_and_caption(rng, spec, AUDIOCAPS_RATE)
        if k not in missing:
            _write_clip(
                audio_dir, template.format(youtube_id=youtube_id, start_time=start_time, audiocap_id=k + 1), audio
            )
        rows.append({"audiocap_id": k + 1, "youtube_id": youtube_id, "start_time": start_time, "caption": caption})
    leaked = test.head(extra.audiocaps_leaked)[["youtube_id", "start_time", "caption"]].to_dict("records")
    rows += [{"audiocap_id": extra.audiocaps_clips + i + 1, **row} for i, row in enumerate(leaked)]
    with written_atomically(Path(captions_csv)) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return {"set": "audiocaps", "clips": extra.audiocaps_clips, "missing": len(missing), "leaked": len(leaked)}


def generate_wavcaps(
    out_dir: str | os.PathLike,
    clotho_sound_ids: list[int],
    spec: DemoSpec,
    extra: ExtraSpec,
    caption_files: dict | None = None,
    test_youtube_ids: list[str] = (),
) -> list[dict]:
    """Write the WavCaps stand-in: per source its caption JSON (named as wavcaps.json_file names it),
    archive and parts list, and the exclusion list of the ClothoV2 Freesound ids. AudioSet_SL's
    clips are named as AudioSet's ("Y" + YouTube id + ".wav"), the first extra.audiocaps_leaked of
    them by AudioCaps test's `test_youtube_ids` where given."""
    out_dir = Path(out_dir)
    stats = []
    for s, (source, count) in enumerate(extra.wavcaps_clips.items()):
        rng = np.random.default_rng([spec.seed, 202, s])
        ids = [str(i) for i in rng.choice(np.arange(1_000_000, 2_000_000), size=count, replace=False)]
        excluded = 0
        if source == wavcaps.EXCLUDED_SOURCE:
            leaked = rng.choice(clotho_sound_ids, size=extra.wavcaps_excluded, replace=False)
            ids[: extra.wavcaps_excluded] = [str(i) for i in leaked]
            excluded = extra.wavcaps_excluded
        if source == wavcaps.YOUTUBE_SOURCE:
            excluded = min(extra.audiocaps_leaked, len(test_youtube_ids), count)
            youtube = [*sorted(test_youtube_ids)[:excluded], *(_youtube_id(rng) for _ in range(count - excluded))]
            ids = [f"Y{youtube_id}.wav" for youtube_id in youtube]
        entries, archive = [], io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
            for clip_id in ids:
                audio, caption, duration = _clip_and_caption(rng, spec, WAVCAPS_RATE)
                name = wavcaps.file_name_of(source, clip_id)
                z.writestr(f"{source}/{name}", _encoded(audio, WAVCAPS_RATE, "FLAC"))
                entries.append(
                    {
                        "id": clip_id,
                        "caption": caption,
                        "duration": round(duration, 3),
                        "download_link": f"https://example.org/demo/{source}/{name}",
                    }
                )
        last = out_dir / wavcaps.last_part(source)
        with written_atomically(last) as tmp:
            tmp.write_bytes(archive.getvalue())
        write_text_atomically(
            json.dumps({"num_captions_per_audio": 1, "data": entries}),
            out_dir / wavcaps.json_file(source, caption_files),
        )
        wavcaps.write_parts_list(out_dir / wavcaps.parts_file(source), [last.name])
        stats.append(
            {
                "set": f"wavcaps {source}",
                "clips": count,
                "excluded": excluded,
            }
        )
    with written_atomically(out_dir / wavcaps.EXCLUSION_FILE) as tmp:
        pd.DataFrame({"freesound_id": sorted(clotho_sound_ids)}).to_csv(tmp, index=False)
    return stats
