"""The ClothoV2.1 release (Zenodo record 4783391): file names and published MD5 checksums."""

from __future__ import annotations

SPLITS = ("development", "validation", "evaluation")
CAPTIONS_PER_CLIP = 5
CAPTION_COLUMNS = [f"caption_{i}" for i in range(1, CAPTIONS_PER_CLIP + 1)]
METADATA_COLUMNS = [
    "file_name",
    "keywords",
    "sound_id",
    "sound_link",
    "start_end_samples",
    "manufacturer",
    "license",
]
METADATA_ENCODING = "ISO-8859-1"
ZENODO_BASE_URL = "https://zenodo.org/records/4783391/files"

MD5 = {
    "clotho_audio_development.7z": "c8b05bc7acdb13895bb3c6a29608667e",
    "clotho_audio_validation.7z": "7dba730be08bada48bd15dc4e668df59",
    "clotho_audio_evaluation.7z": "4569624ccadf96223f19cb59fe4f849f",
    "clotho_captions_development.csv": "d4090b39ce9f2491908eebf4d5b09bae",
    "clotho_captions_validation.csv": "5879e023032b22a2c930aaa0528bead4",
    "clotho_captions_evaluation.csv": "1b16b9e57cf7bdb7f13a13802aeb57e2",
    "clotho_metadata_development.csv": "170d20935ecfdf161ce1bb154118cda5",
    "clotho_metadata_validation.csv": "2e010427c56b1ce6008b0f03f41048ce",
    "clotho_metadata_evaluation.csv": "13946f054d4e1bf48079813aac61bf77",
}


def expected_md5(name: str, overrides: dict | None = None) -> str:
    """The MD5 a release file must have: the published one, unless config data.md5 gives another
    (a mirror or local copy whose files differ)."""
    return (overrides or {}).get(name, MD5[name]).lower()


def audio_archive(split: str) -> str:
    return f"clotho_audio_{split}.7z"


def captions_csv(split: str) -> str:
    return f"clotho_captions_{split}.csv"


def metadata_csv(split: str) -> str:
    return f"clotho_metadata_{split}.csv"


def release_files(split: str) -> list[str]:
    return [audio_archive(split), captions_csv(split), metadata_csv(split)]
