"""Inputs that lie, through the real Snakemake CLI: release files that differ from what is expected,
damaged archive members, captions that are wrong in ways a reader cannot see. Each failure names
the file, member or key and the expectation, and leaves nothing that looks finished. (Settings
checked at load time: tests/pipeline/test_study.py.)"""

import hashlib
import shutil
import unicodedata

import pandas as pd
import pytest
import yaml
from conftest import REPO, make_archive, run_snakemake

from audioretrieval.data import clotho
from audioretrieval.data.archive import stream_members
from audioretrieval.data.demo import DemoSpec, generate_demo

pytestmark = pytest.mark.snakemake

SPLIT = "validation"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A ClothoV2 release in its published layout (the demo generator's files), three clips a split."""
    raw = tmp_path_factory.mktemp("release")
    generate_demo(raw, DemoSpec(seed=5, clips={s: 3 for s in clotho.SPLITS}, min_duration_s=1.0, max_duration_s=1.5))
    return raw


def md5_of(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def clotho_config(tmp_path, release, md5=None) -> tuple[str, dict]:
    """The paper's configuration on a copy of `release`, with data.md5 as for a mirror: the copy's
    files' own MD5s, except where `md5` says otherwise."""
    raw = tmp_path / "raw"
    shutil.copytree(release, raw)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["out_dir"] = str(tmp_path / "results")
    config["data"].update(
        raw_dir=str(raw), decode_threads=1, md5={name: md5_of(raw / name) for name in clotho.MD5} | (md5 or {})
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return str(path), config


def build(configfile, tmp_path, *targets, check=False):
    return run_snakemake(*targets, "--cores", 1, "--configfile", configfile, cwd=tmp_path, check=check)


def split_output(tmp_path, name):
    return tmp_path / "results" / "data" / "clothov2" / SPLIT / name


def rewrite_archive(path, edit):
    """The archive with `edit(name, data) -> data` applied to its members."""
    with stream_members(path, lambda name: True) as stream:
        members = dict(stream)
    path.unlink()
    make_archive(path, {name: edit(name, data) for name, data in members.items()})


def test_a_mirror_with_its_own_md5s_decodes_and_each_file_is_verified_once(tmp_path, release):
    configfile, _ = clotho_config(tmp_path, release)
    targets = [split_output(tmp_path, "captions.parquet")]
    build(configfile, tmp_path, *targets, check=True)
    verified = tmp_path / "results" / "data" / "clothov2" / "verified"
    assert sorted(p.name for p in verified.iterdir()) == [
        f"clotho_audio_{SPLIT}.7z.md5",
        f"clotho_captions_{SPLIT}.csv.md5",
    ]
    again = build(configfile, tmp_path, "-n", *targets, check=True)
    assert "Nothing to be done" in again.stdout + again.stderr  # unchanged files are not checked again


def test_a_file_placed_by_hand_that_differs_fails_naming_it_and_both_md5s(tmp_path, release):
    configfile, config = clotho_config(tmp_path, release)
    captions = tmp_path / "raw" / clotho.captions_csv(SPLIT)
    expected = config["data"]["md5"][captions.name]
    captions.write_text(captions.read_text().replace("a", "e"))  # a user's edited or wrong copy
    result = build(configfile, tmp_path, split_output(tmp_path, "captions.parquet"))
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "verify_release_file" / f"{captions.name}.log").read_text()
    assert f"{captions}: MD5 {md5_of(captions)} ({captions.stat().st_size} bytes), expected {expected}" in log
    assert "set data.md5" in log
    assert not split_output(tmp_path, "captions.parquet").exists()
    assert not (tmp_path / "results" / "data" / "clothov2" / "verified" / f"{captions.name}.md5").exists()


def test_a_half_copied_archive_fails_at_its_check_with_its_size(tmp_path, release):
    configfile, config = clotho_config(tmp_path, release)
    archive = tmp_path / "raw" / clotho.audio_archive(SPLIT)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    result = build(configfile, tmp_path, split_output(tmp_path, "audio.h5"))
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "verify_release_file" / f"{archive.name}.log").read_text()
    assert (
        f"({archive.stat().st_size} bytes), expected {config['data']['md5'][archive.name]}; a partial download" in log
    )
    assert not split_output(tmp_path, "audio.h5").exists()


def test_a_wav_member_cut_short_is_a_bad_clip(tmp_path, release):
    configfile, _ = clotho_config(tmp_path, release)
    archive = tmp_path / "raw" / clotho.audio_archive(SPLIT)
    victim = []

    def cut_first(name, data):
        if victim:
            return data
        victim.append(name)
        return data[: len(data) // 2]

    rewrite_archive(archive, cut_first)
    configfile, _ = clotho_config(tmp_path / "again", tmp_path / "raw")  # the damaged copy, with its own MD5
    result = build(configfile, tmp_path / "again", split_output(tmp_path / "again", "audio.h5"))
    assert result.returncode != 0
    log = (tmp_path / "again" / "results" / "logs" / "decode_audio" / f"{SPLIT}.log").read_text()
    assert f"member {victim[0]!r} cannot be decoded: its WAV header announces" in log and "the file is cut short" in log
    assert not split_output(tmp_path / "again", "audio.h5").exists()


def test_an_empty_caption_fails_naming_the_file_the_clip_and_the_column(tmp_path, release):
    captions = release / clotho.captions_csv(SPLIT)
    table = pd.read_csv(captions, dtype=str, keep_default_na=False)
    table.loc[1, "caption_3"] = ""
    configfile, _ = clotho_config(tmp_path, release)
    table.to_csv(tmp_path / "raw" / captions.name, index=False)
    configfile, _ = clotho_config(tmp_path / "again", tmp_path / "raw")
    result = build(configfile, tmp_path / "again", split_output(tmp_path / "again", "captions.parquet"))
    assert result.returncode != 0
    log = (tmp_path / "again" / "results" / "logs" / "caption_table" / f"{SPLIT}.log").read_text()
    assert f"1 empty captions, e.g. [({table.loc[1, 'file_name']!r}, 'caption_3')]" in log
    assert not split_output(tmp_path / "again", "captions.parquet").exists()


def test_caption_file_names_in_another_unicode_form_still_find_their_clips(tmp_path, release):
    captions = release / clotho.captions_csv(SPLIT)
    table = pd.read_csv(captions, dtype=str, keep_default_na=False)
    assert any(unicodedata.normalize("NFD", n) != n for n in table["file_name"])  # the demo's names have accents
    table["file_name"] = [unicodedata.normalize("NFD", n) for n in table["file_name"]]
    configfile, _ = clotho_config(tmp_path, release)
    table.to_csv(tmp_path / "raw" / captions.name, index=False)
    configfile, _ = clotho_config(tmp_path / "again", tmp_path / "raw")
    build(configfile, tmp_path / "again", split_output(tmp_path / "again", "captions.parquet"), check=True)
    written = pd.read_parquet(split_output(tmp_path / "again", "captions.parquet"))
    assert len(written) == 15 and all(unicodedata.is_normalized("NFC", n) for n in written["file_name"])
