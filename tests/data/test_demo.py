import json

import pandas as pd
import pytest

from audioretrieval.data import clotho
from audioretrieval.data.archive import stream_members
from audioretrieval.data.demo import ADJECTIVES, NOUNS, PROPERTIES, RHYTHM_CLAUSES, DemoSpec, generate_demo

SMALL = dict(clips={"development": 40, "validation": 10, "evaluation": 10}, min_duration_s=0.5, max_duration_s=1.0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    generate_demo(out, DemoSpec(seed=7, **SMALL))
    return out


def archive_contents(path):
    with stream_members(path, lambda name: True) as members:
        return dict(members)


def test_release_files_have_the_clotho_layout(demo):
    for split in clotho.SPLITS:
        captions = pd.read_csv(demo / clotho.captions_csv(split), dtype=str, keep_default_na=False)
        assert list(captions.columns) == ["file_name", *clotho.CAPTION_COLUMNS]
        assert (captions[clotho.CAPTION_COLUMNS] != "").all().all()
        raw = (demo / clotho.metadata_csv(split)).read_bytes()
        metadata = pd.read_csv(demo / clotho.metadata_csv(split), encoding="ISO-8859-1", dtype=str)
        assert list(metadata.columns) == clotho.METADATA_COLUMNS
        assert list(metadata["file_name"]) == list(captions["file_name"])
        members = archive_contents(demo / clotho.audio_archive(split))
        assert sorted(members) == sorted(f"{split}/{name}" for name in captions["file_name"])
        if any(ord(c) > 127 for name in captions["file_name"] for c in name):
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")  # Latin-1 bytes, as in the real release


def test_file_names_are_as_awkward_as_the_real_ones(demo):
    names = pd.concat(
        pd.read_csv(demo / clotho.captions_csv(s), dtype=str)["file_name"] for s in clotho.SPLITS
    ).tolist()
    assert len(set(names)) == len(names)
    for needle in (" ", ",", "'", "&amp;"):
        assert any(needle in n for n in names), needle
    assert any(any(ord(c) > 127 for c in n) for n in names)


@pytest.mark.slow
def test_same_seed_same_dataset_other_seed_other_dataset(demo, tmp_path):
    generate_demo(tmp_path / "again", DemoSpec(seed=7, **SMALL), workers=2)  # splits in parallel: the same files
    generate_demo(tmp_path / "other", DemoSpec(seed=8, **SMALL))
    for split in clotho.SPLITS:
        for name in (clotho.captions_csv(split), clotho.metadata_csv(split)):
            assert (tmp_path / "again" / name).read_bytes() == (demo / name).read_bytes()
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "again" / f"demo_correspondences_{split}.parquet"),
            pd.read_parquet(demo / f"demo_correspondences_{split}.parquet"),
        )
        archive = clotho.audio_archive(split)
        assert archive_contents(tmp_path / "again" / archive) == archive_contents(demo / archive)
        assert archive_contents(tmp_path / "other" / archive) != archive_contents(demo / archive)


def words_in(text: str) -> dict:
    """Property values a caption's words express, found independently of the generator's choices."""
    text = text.lower()
    found = {}
    for (prop, value), adjectives in ADJECTIVES.items():
        if any(f" {a} " in f" {text} " for a in adjectives):
            found.setdefault(prop, set()).add(value)
    for value, clauses in RHYTHM_CLAUSES.items():
        if any(c in text for c in clauses):
            found.setdefault("rhythm", set()).add(value)
    return found


def satisfies(sources: list, hiss: bool, mentions: list, mentions_hiss: bool) -> bool:
    """Independent statement of the ground truth rule."""
    if mentions_hiss and not hiss:
        return False
    return all(
        any(s["kind"] == m["kind"] and all(s[p] == m[p] for p in PROPERTIES if p in m) for s in sources)
        for m in mentions
    )


def test_ground_truth_marks_exactly_the_clips_with_everything_a_caption_mentions(demo):
    for split in clotho.SPLITS:
        clips = pd.read_parquet(demo / f"demo_clips_{split}.parquet").set_index("file_name")
        captions = pd.read_parquet(demo / f"demo_captions_{split}.parquet")
        truth = pd.read_parquet(demo / f"demo_correspondences_{split}.parquet")
        relevant = truth.groupby(["file_name", "caption_index"])["relevant_file_name"].apply(set)
        for row in captions.itertuples():
            mentions = json.loads(row.mentions)
            expected = {
                name
                for name, clip in clips.iterrows()
                if satisfies(json.loads(clip.sources), clip.hiss, mentions, row.hiss)
            }
            assert relevant[(row.file_name, row.caption_index)] == expected
            assert row.file_name in expected  # a caption always describes its own clip


def test_caption_words_name_only_what_every_relevant_clip_has(demo):
    clips = pd.read_parquet(demo / "demo_clips_development.parquet").set_index("file_name")
    truth = pd.read_parquet(demo / "demo_correspondences_development.parquet")
    captions = pd.read_parquet(demo / "demo_captions_development.parquet")
    checked = 0
    for row in captions.itertuples():
        mentions = json.loads(row.mentions)
        if len(mentions) != 1:
            continue
        kind = mentions[0]["kind"]
        assert any(noun in row.caption.lower() for noun in NOUNS[kind])
        said = words_in(row.caption)
        assert said == {p: {mentions[0][p]} for p in PROPERTIES if p in mentions[0]}
        for clip_name in truth.loc[
            (truth.file_name == row.file_name) & (truth.caption_index == row.caption_index), "relevant_file_name"
        ]:
            sources = json.loads(clips.loc[clip_name, "sources"])
            assert any(s["kind"] == kind and all(s[p] in v for p, v in said.items()) for s in sources)
            if "hiss" in row.caption:
                assert clips.loc[clip_name, "hiss"]
        checked += 1
    assert checked > 50


def test_captions_are_ambiguous_like_real_ones(demo):
    truth = pd.read_parquet(demo / "demo_correspondences_development.parquet")
    per_caption = truth.groupby(["file_name", "caption_index"]).size()
    assert per_caption.mean() > 2  # a caption truly describes several clips on average
    assert (per_caption > 1).mean() > 0.5


def test_bad_spec_is_rejected_with_its_values():
    with pytest.raises(ValueError, match="min_duration_s"):
        DemoSpec(min_duration_s=5, max_duration_s=2)
    with pytest.raises(ValueError, match="clips"):
        DemoSpec(clips={"development": 3})
