"""AudioCaps and WavCaps: compressed storage, split archives, the missing-file policy, the
exclusion of ClothoV2 clips from WavCaps, downloads, and training on the union of the sets."""

import io
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from http_server import FileServer

from audioretrieval.data import audiocaps, wavcaps
from audioretrieval.data.dataset import CaptionedAudio, CaptionedAudioUnion, training_set
from audioretrieval.data.decode import DecodeError, decode_members
from audioretrieval.data.demo import DemoSpec
from audioretrieval.data.demo_extra import ExtraSpec, generate_audiocaps, generate_audiocaps_test, generate_wavcaps
from audioretrieval.data.h5audio import AudioH5, AudioH5Writer
from audioretrieval.data.prepare import prepare_audiocaps, prepare_wavcaps
from audioretrieval.data.zip_parts import part_names, stream_zip_members

SPEC = DemoSpec(seed=7, min_duration_s=1.0, max_duration_s=2.0)
EXTRA = ExtraSpec(
    audiocaps_clips=12,
    audiocaps_missing=2,
    audiocaps_test_clips=4,
    audiocaps_leaked=2,
    wavcaps_clips={"FreeSound": 10, "SoundBible": 4},
    wavcaps_excluded=3,
)
TEMPLATE = "{youtube_id}_{start_time}.wav"
CLOTHO_IDS = list(range(500, 540))
SETTINGS = {
    "sample_rate": 32000,
    "sample_format": "flac",
    "on_bad_clip": "fail",
    "file_name": TEMPLATE,
    "max_missing_fraction": 0.2,
}


def outputs(directory):
    return {
        name: directory / file
        for name, file in [
            ("audio", "audio.h5"),
            ("captions", "captions.parquet"),
            ("skipped", "skipped_clips.csv"),
            ("missing", "missing_clips.csv"),
            ("excluded", "excluded_clips.csv"),
        ]
    }


def noisy_clips(n, rng):
    return [
        np.clip(0.3 * np.sin(np.arange(m) * 0.01 * (k + 1)) + 0.005 * rng.standard_normal(m), -1, 1).astype(np.float32)
        for k, m in enumerate(rng.integers(20_000, 90_000, size=n))
    ]


@pytest.mark.parametrize("compressed", ["zstd", "flac"])
def test_compressed_storage_reads_back_exactly_what_int16_storage_holds(tmp_path, compressed):
    clips = noisy_clips(6, np.random.default_rng(0))
    readers = {}
    for fmt in ("int16", compressed):
        with AudioH5Writer(tmp_path / f"{fmt}.h5", 32000, fmt) as writer:
            for k, clip in enumerate(clips):
                writer.append(f"clip {k}.wav", clip, clip.size / 32000)
        readers[fmt] = AudioH5(tmp_path / f"{fmt}.h5")
    pcm, packed = readers["int16"], readers[compressed]
    assert packed.sample_dtype == np.int16 and list(packed.lengths) == [c.size for c in clips]
    for row in range(len(clips)):
        assert np.array_equal(packed.read(row), pcm.read(row))
        for start, num in [(0, 1000), (12_345, 8000), (int(packed.lengths[row]) - 50, 400)]:
            a, b = np.zeros(num, np.int16), np.zeros(num, np.int16)
            assert packed.read_into(row, start, a) == pcm.read_into(row, start, b)
            assert np.array_equal(a, b)
    assert (tmp_path / f"{compressed}.h5").stat().st_size < 0.8 * (tmp_path / "int16.h5").stat().st_size


def test_training_crops_from_flac_storage_equal_int16_crops(tmp_path):
    clips = noisy_clips(4, np.random.default_rng(1))
    captions = pd.DataFrame(
        {
            "file_name": [f"c{k}.wav" for k in range(4)],
            "clip_index": range(4),
            "caption_index": 1,
            "caption": [f"caption {k}" for k in range(4)],
        }
    )
    captions.to_parquet(tmp_path / "captions.parquet")
    for fmt in ("int16", "flac"):
        with AudioH5Writer(tmp_path / f"{fmt}.h5", 32000, fmt) as writer:
            for k, clip in enumerate(clips):
                writer.append(f"c{k}.wav", clip, 1.0)
    items = {}
    for fmt in ("int16", "flac"):
        torch.manual_seed(3)
        data = CaptionedAudio(tmp_path / f"{fmt}.h5", tmp_path / "captions.parquet", segment_s=1.5, train=True)
        items[fmt] = [data[i] for i in range(4)]
    for a, b in zip(items["int16"], items["flac"]):
        assert (
            b["audio"].dtype == torch.int16 and torch.equal(a["audio"], b["audio"]) and a["fraction"] == b["fraction"]
        )


@pytest.mark.skipif(shutil.which("zip") is None, reason="needs Info-ZIP's zip to write a split archive")
def test_members_of_a_split_archive_are_read_from_its_parts(tmp_path):
    source = tmp_path / "FreeSound"
    source.mkdir()
    rng = np.random.default_rng(2)
    files = {f"{k}.flac": rng.bytes(150_000) for k in range(5)}
    for name, data in files.items():
        (source / name).write_bytes(data)
    subprocess.run(["zip", "-q", "-r", "-s", "100k", "FreeSound.zip", "FreeSound"], cwd=tmp_path, check=True)
    names = part_names(tmp_path / "FreeSound.zip")
    assert len(names) > 3 and names[0] == "FreeSound.z01" and names[-1] == "FreeSound.zip"
    assert sorted(p.name for p in tmp_path.glob("FreeSound.z*")) == sorted(names)
    parts = [tmp_path / n for n in names]
    read = dict(stream_zip_members(parts, lambda name: not name.endswith("3.flac")))
    assert read == {f"FreeSound/{k}": v for k, v in files.items() if k != "3.flac"}
    with pytest.raises(ValueError, match=r"FreeSound.zip: cannot read the archive \(\d+ parts\)"):
        list(stream_zip_members(parts[1:2] + parts[:1] + parts[2:], lambda n: True))  # parts out of order
    (tmp_path / "FreeSound.z02").unlink()
    with pytest.raises(FileNotFoundError, match="FreeSound.z02"):
        list(stream_zip_members(parts, lambda n: True))


def test_flac_crops_are_the_same_when_seeking_is_not_supported(tmp_path, monkeypatch):
    clip = noisy_clips(1, np.random.default_rng(4))[0]
    with AudioH5Writer(tmp_path / "a.h5", 32000, "flac") as writer:
        writer.append("a.wav", clip, 1.0)
    audio = AudioH5(tmp_path / "a.h5")
    expected = np.zeros(5000, np.int16)
    audio.read_into(0, 12_345, expected)

    seek, failed = soundfile.SoundFile.seek, []

    def seek_fails_once(self, frames, whence=0):  # as on libsndfile versions that cannot seek in FLAC
        if frames and not failed:
            failed.append(frames)
            raise soundfile.LibsndfileError(1, "internal psf_fseek() failed")
        return seek(self, frames, whence)

    monkeypatch.setattr(soundfile.SoundFile, "seek", seek_fails_once)
    got = np.zeros(5000, np.int16)
    assert audio.read_into(0, 12_345, got) == 5000 and np.array_equal(got, expected)
    assert failed == [12_345]


def test_sets_of_different_sample_types_are_not_mixed_in_one_training_set(tmp_path):
    clips = noisy_clips(2, np.random.default_rng(5))
    captions = pd.DataFrame(
        {"file_name": ["c0.wav", "c1.wav"], "clip_index": [0, 1], "caption_index": 1, "caption": ["a", "b"]}
    )
    captions.to_parquet(tmp_path / "captions.parquet")
    for fmt in ("float32", "flac"):
        with AudioH5Writer(tmp_path / f"{fmt}.h5", 32000, fmt) as writer:
            for k, clip in enumerate(clips):
                writer.append(f"c{k}.wav", clip, 1.0)
    with pytest.raises(ValueError, match="different sample types.*float32.*int16"):
        training_set(
            [str(tmp_path / "float32.h5"), str(tmp_path / "flac.h5")], [str(tmp_path / "captions.parquet")] * 2, 1.0
        )


def test_two_members_with_one_file_name_fail_decoding(tmp_path):
    data = io.BytesIO()
    soundfile.write(data, noisy_clips(1, np.random.default_rng(6))[0], 32000, format="FLAC")
    members = [("FreeSound/1.flac", data.getvalue()), ("other/1.flac", data.getvalue())]
    with pytest.raises(DecodeError, match="several members share a file name: '1.flac'"):
        decode_members("archive.zip", members, 2, tmp_path / "a.h5", tmp_path / "skipped.csv", progress=False)
    assert not (tmp_path / "a.h5").exists()


def test_an_audiocaps_template_must_be_a_file_name():
    with pytest.raises(ValueError, match="expected a file name \\(no folder"):
        audiocaps.check_template("train/{youtube_id}.wav")
    audiocaps.check_template("Y{youtube_id}_{start_time}.flac")


def generated_audiocaps(raw, extra=EXTRA):
    generate_audiocaps_test(raw / "test.csv", raw / "audio", TEMPLATE, SPEC, extra)
    generate_audiocaps(raw / "train.csv", raw / "test.csv", raw / "audio", TEMPLATE, SPEC, extra)


def test_audiocaps_missing_files_are_listed_and_tolerated_up_to_the_configured_share(tmp_path):
    generated_audiocaps(tmp_path / "raw", replace(EXTRA, audiocaps_leaked=0))
    out = outputs(tmp_path / "ok")
    summary = prepare_audiocaps(tmp_path / "raw/train.csv", tmp_path / "raw/audio", SETTINGS, out, progress=False)
    listed = pd.read_csv(tmp_path / "raw/train.csv", dtype=str)
    expected_missing = sorted(
        f"{y}_{s}.wav"
        for y, s in zip(listed.youtube_id, listed.start_time)
        if not (tmp_path / "raw/audio" / f"{y}_{s}.wav").exists()
    )
    assert len(expected_missing) == 2 and summary.missing == expected_missing
    assert pd.read_csv(out["missing"])["file_name"].tolist() == expected_missing
    captions = pd.read_parquet(out["captions"])
    assert len(captions) == 10 and not set(expected_missing) & set(captions.file_name)
    assert AudioH5(out["audio"]).sample_format == "flac"

    strict = outputs(tmp_path / "strict")
    with pytest.raises(DecodeError, match=r"2 of 12 expected clips are missing \(16.7%.*max_missing_fraction 10.0%"):
        prepare_audiocaps(
            tmp_path / "raw/train.csv",
            tmp_path / "raw/audio",
            {**SETTINGS, "max_missing_fraction": 0.1},
            strict,
            progress=False,
        )
    assert not any(path.exists() for path in strict.values())


def test_excluded_freesound_ids_never_reach_the_training_set(tmp_path):
    generate_wavcaps(tmp_path / "wavcaps", CLOTHO_IDS, SPEC, EXTRA)
    generated_audiocaps(tmp_path / "audiocaps", replace(EXTRA, audiocaps_leaked=0))
    raw = tmp_path / "wavcaps"
    excluded_ids = wavcaps.read_exclusion_list(raw / wavcaps.EXCLUSION_FILE)
    listed = wavcaps.read_captions(raw / wavcaps.json_file("FreeSound"), "FreeSound")
    leaked = set(listed.loc[listed.id.isin(excluded_ids), "file_name"])
    parts = wavcaps.read_parts_list(raw / wavcaps.parts_file("FreeSound"))
    assert len(leaked) == 3 and leaked <= {n.split("/")[-1] for n, _ in stream_zip_members(parts, lambda n: True)}

    sets = []
    for source in ("FreeSound", "SoundBible"):
        out = outputs(tmp_path / source)
        prepare_wavcaps(
            source,
            raw / wavcaps.json_file(source),
            raw / wavcaps.parts_file(source),
            raw / wavcaps.EXCLUSION_FILE,
            SETTINGS,
            out,
            progress=False,
        )
        sets.append(out)
    free = sets[0]
    assert set(pd.read_csv(free["excluded"], dtype=str).file_name) == leaked
    assert not leaked & set(AudioH5(free["audio"]).file_names)
    assert pd.read_csv(free["missing"]).empty and len(AudioH5(free["audio"])) == 7

    ac = outputs(tmp_path / "ac")
    prepare_audiocaps(tmp_path / "audiocaps/train.csv", tmp_path / "audiocaps/audio", SETTINGS, ac, progress=False)
    union = training_set(
        [str(s["audio"]) for s in (ac, *sets)], [str(s["captions"]) for s in (ac, *sets)], segment_s=1.0
    )
    assert isinstance(union, CaptionedAudioUnion) and len(union) == 10 + 7 + 4
    items = [union[i] for i in range(len(union))]
    assert not leaked & {item["file_name"] for item in items}
    assert sorted(item["clip_index"] for item in items) == list(range(21))
    assert [item["caption_row"] for item in items] == list(range(21))


def test_audiocaps_test_clips_never_reach_training_through_audiocaps_train_or_audioset(tmp_path):
    extra = replace(EXTRA, wavcaps_clips={"AudioSet_SL": 6}, wavcaps_excluded=0)
    generated_audiocaps(tmp_path / "audiocaps", extra)
    test = pd.read_csv(tmp_path / "audiocaps/test.csv", dtype=str)
    assert len(test) == 4 * 5 and test.groupby("youtube_id").size().eq(5).all()  # five captions per clip
    test_ids = audiocaps.youtube_ids(tmp_path / "audiocaps/test.csv")
    train = pd.read_csv(tmp_path / "audiocaps/train.csv", dtype=str)
    assert train["youtube_id"].isin(test_ids).sum() == 2  # the stand-in's leaked rows

    ac = outputs(tmp_path / "ac")
    prepare_audiocaps(
        tmp_path / "audiocaps/train.csv", tmp_path / "audiocaps/audio", SETTINGS, ac, progress=False, held_out=test_ids
    )
    excluded = pd.read_csv(ac["excluded"], dtype=str)
    assert set(excluded["youtube_id"]) <= test_ids and len(excluded) == 2
    test_files = {f"{y}_{s}.wav" for y, s in zip(test.youtube_id, test.start_time)}
    assert set(excluded["file_name"]) <= test_files
    assert not test_files & set(AudioH5(ac["audio"]).file_names)
    assert len(pd.read_parquet(ac["captions"])) == 12 - 2  # the missing files' rows are gone too

    generate_wavcaps(tmp_path / "wavcaps", CLOTHO_IDS, SPEC, extra, test_youtube_ids=sorted(test_ids))
    raw = tmp_path / "wavcaps"
    listed = wavcaps.read_captions(raw / wavcaps.json_file("AudioSet_SL"), "AudioSet_SL")
    assert listed["id"].str.fullmatch(r"Y[A-Za-z0-9_-]{11}\.wav").all()  # AudioSet's naming, as in as_final.json
    as_sl = outputs(tmp_path / "as")
    prepare_wavcaps(
        "AudioSet_SL",
        raw / wavcaps.json_file("AudioSet_SL"),
        raw / wavcaps.parts_file("AudioSet_SL"),
        None,
        SETTINGS,
        as_sl,
        progress=False,
        held_out=test_ids,
    )
    left_out = pd.read_csv(as_sl["excluded"], dtype=str)
    assert {wavcaps.youtube_id_of(i) for i in left_out["id"]} <= test_ids and len(left_out) == 2
    assert len(AudioH5(as_sl["audio"])) == 4 and not set(left_out["file_name"]) & set(
        AudioH5(as_sl["audio"]).file_names
    )


def test_a_test_clip_is_known_by_its_youtube_id_in_audioset_names():
    assert wavcaps.youtube_id_of("Y7fmOlUlwoNg.wav") == "7fmOlUlwoNg"
    assert wavcaps.youtube_id_of("Y-0Bk5dnObIc.wav") == "-0Bk5dnObIc"
    assert wavcaps.youtube_id_of("12345") == "12345"  # not an AudioSet name: itself


def test_the_train_stand_in_cannot_leak_more_test_clips_than_there_are(tmp_path):
    generate_audiocaps_test(tmp_path / "test.csv", tmp_path / "audio", TEMPLATE, SPEC, EXTRA)
    with pytest.raises(ValueError, match="audiocaps_leaked 5 exceeds the 4 test clips"):
        generate_audiocaps(
            tmp_path / "train.csv",
            tmp_path / "test.csv",
            tmp_path / "audio",
            TEMPLATE,
            SPEC,
            replace(EXTRA, audiocaps_leaked=5),
        )
    assert not (tmp_path / "train.csv").exists()


def test_an_exclusion_list_that_is_not_one_is_rejected(tmp_path):
    bad = tmp_path / "excluded.csv"
    bad.write_text("freesound_id\n123\nabc\n")
    with pytest.raises(ValueError, match=r"excluded.csv: Freesound ids must be integers; found \['abc'\]"):
        wavcaps.read_exclusion_list(bad)


@pytest.mark.skipif(shutil.which("zip") is None, reason="needs Info-ZIP's zip to write a split archive")
def test_a_wavcaps_source_downloads_every_part_of_its_archive(tmp_path):
    staged = tmp_path / "staged" / "FreeSound"
    staged.mkdir(parents=True)
    for k in range(4):
        (staged / f"{k}.flac").write_bytes(np.random.default_rng(k).bytes(120_000))
    subprocess.run(["zip", "-q", "-r", "-s", "100k", "FreeSound.zip", "FreeSound"], cwd=staged.parent, check=True)
    files = {f"Zip_files/FreeSound/{p.name}": p.read_bytes() for p in staged.parent.glob("FreeSound.z*")}
    files[wavcaps.json_file("FreeSound")] = b'{"data": [{"id": "0", "caption": "a"}]}'
    with FileServer(files) as server:
        names = wavcaps.download_source(
            server.url, tmp_path / "raw", "FreeSound", {"retries": 0, "backoff_s": 0, "timeout_s": 5}
        )
    raw = tmp_path / "raw"
    assert [p.name for p in wavcaps.read_parts_list(raw / wavcaps.parts_file("FreeSound"))] == names
    for name in names:
        assert (raw / "Zip_files/FreeSound" / name).read_bytes() == files[f"Zip_files/FreeSound/{name}"]

    # a rerun after a lost part fetches that part only
    (raw / "Zip_files/FreeSound" / names[1]).unlink()
    with FileServer(files) as server:
        wavcaps.download_source(server.url, raw, "FreeSound", {"retries": 0, "backoff_s": 0, "timeout_s": 5})
    assert [name for name, _ in server.requests] == [f"Zip_files/FreeSound/{names[1]}"]
    assert (raw / "Zip_files/FreeSound" / names[1]).read_bytes() == files[f"Zip_files/FreeSound/{names[1]}"]


def test_wavcaps_caption_files_are_the_reference_codes_unless_configured():
    # the files salsa's data/datasets/wavcaps.py reads
    seed = {
        "AudioSet_SL": "as_final.json",
        "BBC_Sound_Effects": "bbc_final.json",
        "FreeSound": "fsd_final_2s.json",
        "SoundBible": "sb_final.json",
    }
    for source, name in seed.items():
        assert wavcaps.json_file(source) == f"json_files/{source}/{name}"
    baseline = {"FreeSound": "fsd_final.json"}  # the DCASE 2025 baseline's choice
    assert wavcaps.json_file("FreeSound", baseline) == "json_files/FreeSound/fsd_final.json"
    assert wavcaps.release_files("SoundBible", baseline) == [
        "json_files/SoundBible/sb_final.json",
        "Zip_files/SoundBible/parts.txt",
    ]
