"""data.source: table: a folder of audio and a manifest read into the same decoded products as ClothoV2's,
and what a broken manifest says."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from conftest import REPO, check_at_load

from audioretrieval.data.h5audio import AudioH5
from audioretrieval.data.source import (
    ManifestError,
    checked,
    held_out_files,
    prepare_extra,
    prepare_split,
    sources,
    split_by_rule,
)
from audioretrieval.data.sources.table import TableSource
from audioretrieval.pipeline.config import ConfigError

DECODING = {"sample_rate": 32000, "sample_format": "int16", "on_bad_clip": "fail", "max_missing_fraction": 0.0}
# (file, format, seconds, rate, captions, split): three formats, three rates, clips of 0.4 s to 3 s, in folders
CLIPS = [
    ("dogs/bark.wav", "WAV", 1.2, 44100, ["a dog barks twice", "barking nearby"], "development"),
    ("dogs/growl.flac", "FLAC", 3.0, 16000, ["a low growl"], "development"),
    ("rain.ogg", "OGG", 2.0, 22050, ["rain on a roof", "steady rain", "water drips"], "development"),
    ("street/car.wav", "WAV", 0.4, 32000, ["a car passes"], "development"),
    ("street/horn.flac", "FLAC", 1.5, 48000, ["a horn honks", "a loud horn"], "validation"),
    ("bell.wav", "WAV", 1.0, 32000, ["a bell rings"], "validation"),
    ("birds/chirp.wav", "WAV", 2.5, 44100, ["birds chirp", "a bird sings"], "evaluation"),
    ("wind.flac", "FLAC", 1.8, 16000, ["wind howls"], "evaluation"),
]


def make_dataset(folder: Path, clips=CLIPS) -> Path:
    """Sound files of `clips` below folder/audio and their manifest folder/manifest.csv."""
    rng = np.random.default_rng(0)
    rows = []
    for k, (file, fmt, seconds, rate, captions, split) in enumerate(clips):
        path = folder / "audio" / file
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * rate)) / rate
        tone = 0.3 * np.sin(2 * np.pi * (200 + 90 * k) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(path, tone.astype(np.float32), rate, format=fmt)
        rows += [{"file": file, "caption": caption, "split": split} for caption in captions]
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def table_settings(manifest: Path, **changes) -> dict:
    return {"manifest": str(manifest), "audio_dir": str(manifest.parent / "audio"), "split": "column",
            "max_missing_fraction": 0.0, **changes}  # fmt: skip


def outputs(folder: Path) -> dict:
    names = {"audio": "audio.h5", "captions": "captions.parquet", "skipped": "skipped.csv", "missing": "missing.csv"}
    return {key: str(folder / name) for key, name in names.items()}


def test_every_source_module_has_its_schema_section_and_data_source_value():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    assert set(schema["properties"]["data"]["properties"]["source"]["enum"]) == {"demo", "clotho", *sources()}
    for name in sources():
        assert name in schema["properties"], f"config/schema.yaml has no section {name!r} for data.source {name}"


def test_a_split_holds_every_caption_of_its_clips_in_any_format_rate_and_length(tmp_path):
    manifest = checked(TableSource(table_settings(make_dataset(tmp_path)), "table").read())
    out = outputs(tmp_path / "development")
    prepare_split(manifest, "development", DECODING, out, progress=False)
    audio = AudioH5(out["audio"])
    assert list(audio.file_names) == ["bark.wav", "growl.flac", "rain.ogg", "car.wav"]
    assert [round(len(audio.read(i)) / 32000, 2) for i in range(4)] == [1.2, 3.0, 2.0, 0.4]
    captions = pd.read_parquet(out["captions"])
    assert captions.groupby("file_name", sort=False)["caption"].agg(list).to_dict() == {
        "bark.wav": ["a dog barks twice", "barking nearby"],
        "growl.flac": ["a low growl"],
        "rain.ogg": ["rain on a roof", "steady rain", "water drips"],
        "car.wav": ["a car passes"],
    }
    assert captions["clip_index"].tolist() == [0, 0, 1, 2, 2, 2, 3]


def test_a_split_rule_assigns_a_file_the_same_split_however_it_is_written_and_whatever_else_is_listed():
    files = pd.Series([f"clips/{k}.wav" for k in range(2000)])
    splits = split_by_rule(files, {"validation": 0.1, "evaluation": 0.2})
    assert splits.value_counts(normalize=True).round(1).to_dict() == {"development": 0.7, "evaluation": 0.2,
                                                                       "validation": 0.1}  # fmt: skip
    again = split_by_rule(pd.Series(["./clips/7.wav", "clips//1999.wav"]), {"validation": 0.1, "evaluation": 0.2})
    assert again.tolist() == [splits[7], splits[1999]]


def broken(tmp_path: Path, change) -> Path:
    manifest = make_dataset(tmp_path)
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    change(table)
    table.to_csv(manifest, index=False)
    return manifest


def set_cell(row: int, column: str, value: str):
    def change(table):
        table.loc[row, column] = value

    return change


def add_row(file: str, caption: str, split: str):
    def change(table):
        table.loc[len(table)] = [file, caption, split]

    return change


BROKEN = {
    "missing file": (
        set_cell(3, "file", "rain.wav"),
        r"\b1 of the 5 development files are not in .*'rain.wav' \(.*row 4\)",
    ),
    "empty caption": (set_cell(2, "caption", "  "), r"manifest.csv row 3: empty caption \(1 such rows\)"),
    "duplicate path": (
        add_row("birds/bark.wav", "a bark", "development"),
        r"'dogs/bark.wav' and 'birds/bark.wav' would be the same clip 'bark.wav'",
    ),
    "unknown split": (
        set_cell(9, "split", "test"),
        r"manifest.csv row 10: unknown split 'test' of 'bell.wav'; expected",
    ),
    "two splits": (
        add_row("./rain.ogg", "rain", "evaluation"),
        r"'rain.ogg' is listed in development and evaluation \(.*row 4, .*row 14\)",
    ),
}


@pytest.mark.parametrize("change, message", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_manifest_is_one_sentence_naming_its_row_and_writes_nothing(tmp_path, change, message):
    manifest = broken(tmp_path, change)
    out = outputs(tmp_path / "out")
    with pytest.raises(ManifestError, match=message) as error:
        prepare_split(checked(TableSource(table_settings(manifest), "table").read()), "development", DECODING, out)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_manifest_without_its_columns_or_its_file_says_what_it_expected(tmp_path):
    manifest = make_dataset(tmp_path)
    pd.read_csv(manifest).rename(columns={"caption": "text"}).to_csv(manifest, index=False)
    expected = r"no column caption \(found \['file', 'text', 'split'\]\); expected file, caption, split"
    with pytest.raises(ManifestError, match=expected):
        TableSource(table_settings(manifest), "table").read()
    with pytest.raises(ManifestError, match=r"table.manifest '.*none.csv': no such file"):
        TableSource(table_settings(tmp_path / "none.csv"), "table").read()
    manifest = make_dataset(tmp_path / "whole")
    with pytest.raises(ManifestError, match="no clip in the validation split"):
        checked(TableSource(table_settings(manifest, split={"validation": 0.0, "evaluation": 0.5}), "t").read())


def test_an_extra_set_trains_on_its_rows_less_the_main_datasets_held_out_files(tmp_path):
    main = make_dataset(tmp_path / "main")
    extra = tmp_path / "extra.csv"
    pd.DataFrame(
        {"file": ["dogs/bark.wav", "wind.flac", "../main/audio/rain.ogg"], "caption": ["a bark", "wind", "rain"]}
    ).to_csv(extra, index=False)
    settings = {"manifest": str(extra), "audio_dir": str(tmp_path / "main" / "audio"), "max_missing_fraction": 0.0}
    with pytest.raises(ManifestError, match="not below"):  # a path must stay below audio_dir
        prepare_extra(TableSource(settings, "extra_tables.x").read(), frozenset(), DECODING, {})
    pd.DataFrame({"file": ["dogs/bark.wav", "wind.flac"], "caption": ["a bark", "wind"]}).to_csv(extra, index=False)
    out = outputs(tmp_path / "extra") | {"excluded": str(tmp_path / "extra" / "excluded.csv")}
    held_out = held_out_files("table", table_settings(main))
    prepare_extra(TableSource(settings, "extra_tables.x").read(), held_out, DECODING, out, progress=False)
    assert list(AudioH5(out["audio"]).file_names) == ["bark.wav"]
    assert pd.read_csv(out["excluded"])["file"].tolist() == ["wind.flac"]  # an evaluation clip of the main set


def test_the_configuration_needs_a_table_section_and_no_clotho_relevance_download(
    tiny_demo_config, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # where the relative paths of the configuration would be
    config = {**tiny_demo_config, "data": {**tiny_demo_config["data"], "source": "table"}}
    with pytest.raises(Exception, match="'table' is a required property"):
        check_at_load(config)
    config["table"] = table_settings(tmp_path / "manifest.csv")
    with pytest.raises(ConfigError, match=r"the first set must be the main dataset's evaluation split, 'table'"):
        check_at_load(config)  # still the demo's [clothov2]
    config["evaluation"] = {**config["evaluation"], "sets": ["table", "audiocaps"]}
    with pytest.raises(
        ConfigError, match=r"audiocaps.test_captions_csv 'results/demo/raw/audiocaps/test.csv': no such"
    ):
        check_at_load(config)  # the demo's AudioCaps section: its stand-in is the demo's only
    config["evaluation"] = {**config["evaluation"], "sets": ["table"]}
    check_at_load(config)
    with pytest.raises(ConfigError, match="a table section is set, but data.source is demo"):
        check_at_load({**config, "data": tiny_demo_config["data"]})
    config["table"]["split"] = {"validation": 0.6, "evaluation": 0.5}
    with pytest.raises(ConfigError, match=r"table.split: validation \(0.6\) and evaluation \(0.5\) must each be"):
        check_at_load(config)
    config["table"]["split"] = "column"
    config["evaluation"] = {**config["evaluation"], "relevance_url": "https://example.org/metadata_eval.csv"}
    with pytest.raises(ConfigError, match="the table dataset's relevance table is table.relevance"):
        check_at_load(config)


def test_a_parquet_null_is_an_empty_cell_and_a_windows_path_is_a_path(tmp_path):
    manifest = make_dataset(tmp_path)
    table = pd.read_csv(manifest, dtype=str)
    table.loc[0, "file"] = "dogs\\bark.wav"  # written on Windows
    table.to_parquet(tmp_path / "manifest.parquet")
    settings = table_settings(tmp_path / "manifest.parquet")
    assert checked(TableSource(settings, "table").read()).rows["file"].iloc[0] == "dogs/bark.wav"
    table.loc[2, "caption"] = None
    table.to_parquet(tmp_path / "manifest.parquet")
    with pytest.raises(ManifestError, match=r"manifest.parquet row 3: empty caption"):
        checked(TableSource(settings, "table").read())
    table.loc[2, "caption"] = "a low growl"
    table.loc[3, "file"] = "C:/sounds/rain.ogg"
    table.to_parquet(tmp_path / "manifest.parquet")
    with pytest.raises(ManifestError, match=r"row 4: file 'C:/sounds/rain.ogg' is not below"):
        checked(TableSource(settings, "table").read())
    (tmp_path / "latin1.csv").write_bytes("file,caption,split\nb.wav,caf\xe9,development\n".encode("latin-1"))
    with pytest.raises(ManifestError, match="cannot be read as a UTF-8 csv table"):
        TableSource(table_settings(tmp_path / "latin1.csv"), "table").read()
