"""audioretrieval-search: indexing a folder of sounds and querying it, with the tiny model."""

import hashlib
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import forked
import h5py
import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from browser import rendered_dom
from system_packages import Unavailable
from tiny import tiny_model_config

from audioretrieval.data.audio_io import load_mono
from audioretrieval.data.demo import DemoSpec, draw_clip, synthesize
from audioretrieval.files import save_torch_atomically
from audioretrieval.model.checkpoint import checkpoint_of, load_model
from audioretrieval.model.dual_encoder import DualEncoder
from audioretrieval.search import indexing, main
from audioretrieval.search.indexing import Segmenter, cut_segments
from audioretrieval.search.store import read_index, shown

SEGMENT_S = 2.0
SEGMENT = int(SEGMENT_S * 32000)
QUERIES = ["a loud high tone", "a quiet low hum with hiss", "some clicking"]


def tiny_checkpoint(path: Path, tokenizer: Path, seed: int) -> Path:
    cfg = tiny_model_config(tokenizer)
    torch.manual_seed(seed)
    save_torch_atomically(checkpoint_of(DualEncoder(cfg, SEGMENT_S), cfg, SEGMENT_S, 0, {}, seed), path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tiny_tokenizer, tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "best.pt", tiny_tokenizer, seed=0)


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_model(checkpoint)[0].eval()


def write_sound(path: Path, seconds: float, seed: int, rate: int = 44100) -> Path:
    """A demo-like synthetic sound, written with soundfile in the format its extension names."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, synthesize(rng, draw_clip(rng, DemoSpec()), seconds, rate), rate)
    return path


def sounds(folder: Path, seconds: dict[str, float]) -> Path:
    for k, (name, duration) in enumerate(seconds.items()):
        write_sound(folder / name, duration, seed=k)
    return folder


def index_folder(folder: Path, checkpoint: Path, index: Path, *options: str) -> None:
    main(["index", str(folder), "--checkpoint", str(checkpoint), "--index", str(index), "--device", "cpu", *options])


def query(index: Path, checkpoint: Path, *args: str) -> None:
    main(["query", str(index), *args, "--checkpoint", str(checkpoint), "--device", "cpu"])


def error_of(*argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return str(exit_info.value.code)


@torch.no_grad()
def direct_embeddings(model, path: Path) -> tuple[np.ndarray, list[float]]:
    """Each 2 s crop of the decoded file (the last zero-padded) embedded by the model itself; the
    crops' fractions of real signal."""
    waveform, _ = load_mono(path.read_bytes(), 32000)
    crops = [waveform[start : start + SEGMENT] for start in range(0, len(waveform), SEGMENT)]
    fractions = [len(crop) / SEGMENT for crop in crops]
    padded = np.stack([np.pad(crop, (0, SEGMENT - len(crop))) for crop in crops])
    return model.embed_audio(torch.from_numpy(padded), torch.tensor(fractions)).numpy(), fractions


def test_the_index_holds_every_audio_file_below_the_folder_and_the_checkpoints_identity(tmp_path, checkpoint):
    names = {
        "a.wav": 1.0,
        "deep/er/B.WAV": 1.5,
        "c.flac": 0.7,
        "d.ogg": 1.2,
        **{f"more/{k}.wav": 0.5 for k in range(5)},
    }
    folder = sounds(tmp_path / "sounds", names)
    (folder / "notes.txt").write_text("not a sound")
    index_folder(folder, checkpoint, tmp_path / "index.h5")

    index = read_index(tmp_path / "index.h5")
    assert sorted(index.files) == sorted(names)
    assert index.checkpoint_sha256 == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert index.segment_s == SEGMENT_S and not index.skipped
    for path, entry in index.files.items():
        stat = (folder / path).stat()
        assert (entry.size, entry.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
        assert entry.starts_s.tolist() == [0.0]
        assert np.allclose(np.linalg.norm(entry.embeddings, axis=1), 1.0, atol=1e-5)
    assert index.files["c.flac"].duration_s == pytest.approx(0.7, abs=1e-3)


def test_a_long_file_is_cut_into_segments_each_embedded_as_the_model_embeds_its_crop(tmp_path, checkpoint, model):
    folder = sounds(tmp_path / "sounds", {"long.wav": 4.5, "short.flac": 0.8})
    index_folder(folder, checkpoint, tmp_path / "index.h5", "--batch-size", "2")

    index = read_index(tmp_path / "index.h5")
    long, short = index.files["long.wav"], index.files["short.flac"]
    assert long.starts_s.tolist() == [0.0, 2.0, 4.0] and short.starts_s.tolist() == [0.0]
    expected, fractions = direct_embeddings(model, folder / "long.wav")
    assert fractions == [1.0, 1.0, 0.25]  # the last segment: 0.5 s of signal, 1.5 s of padding
    np.testing.assert_allclose(long.embeddings, expected, atol=1e-5)
    expected, fractions = direct_embeddings(model, folder / "short.flac")
    assert fractions == [0.4]
    np.testing.assert_allclose(short.embeddings, expected, atol=1e-5)


def test_reindexing_embeds_only_new_and_changed_files_and_drops_deleted_ones(tmp_path, checkpoint, model, capsys):
    folder = sounds(tmp_path / "sounds", {"same.wav": 1.0, "changed.wav": 1.0, "deleted.wav": 1.0})
    index_folder(folder, checkpoint, tmp_path / "index.h5")
    before = read_index(tmp_path / "index.h5")

    # same.wav keeps its size and time but not its content: re-reading it would skip it as corrupt
    stat = (folder / "same.wav").stat()
    (folder / "same.wav").write_bytes(b"\0" * stat.st_size)
    os.utime(folder / "same.wav", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    write_sound(folder / "changed.wav", 2.5, seed=7)
    (folder / "deleted.wav").unlink()
    write_sound(folder / "sub" / "added.flac", 1.0, seed=8)
    capsys.readouterr()
    index_folder(folder, checkpoint, tmp_path / "index.h5")

    assert (
        "1 new, 1 changed, 0 previously skipped (2 embedded, 0 skipped), 1 unchanged, 1 removed"
        in capsys.readouterr().out
    )
    after = read_index(tmp_path / "index.h5")
    assert sorted(after.files) == ["changed.wav", "same.wav", "sub/added.flac"] and not after.skipped
    assert np.array_equal(after.files["same.wav"].embeddings, before.files["same.wav"].embeddings)
    assert after.files["changed.wav"].starts_s.tolist() == [0.0, 2.0]
    for name in ("changed.wav", "sub/added.flac"):
        np.testing.assert_allclose(after.files[name].embeddings, direct_embeddings(model, folder / name)[0], atol=1e-5)


def test_a_corrupt_file_is_listed_and_skipped_and_retried_only_once_it_changes(tmp_path, checkpoint, capsys):
    folder = sounds(tmp_path / "sounds", {"good.wav": 1.0, "also good.flac": 1.0})
    (folder / "broken.wav").write_bytes(b"RIFF and then nothing useful")
    (folder / "empty.mp3").write_bytes(b"")
    index_folder(folder, checkpoint, tmp_path / "index.h5")

    out = capsys.readouterr().out
    assert f"skipped {folder / 'broken.wav'}: " in out and f"skipped {folder / 'empty.mp3'}: " in out
    index = read_index(tmp_path / "index.h5")
    assert sorted(index.files) == ["also good.flac", "good.wav"]
    assert sorted(index.skipped) == ["broken.wav", "empty.mp3"]
    assert all(entry.reason for entry in index.skipped.values())
    main(["info", str(tmp_path / "index.h5")])
    assert f"broken.wav: {index.skipped['broken.wav'].reason}" in capsys.readouterr().out

    index_folder(folder, checkpoint, tmp_path / "index.h5")  # unchanged: not tried again
    assert "0 previously skipped (0 embedded, 0 skipped)" in capsys.readouterr().out
    write_sound(folder / "broken.wav", 1.0, seed=3)
    index_folder(folder, checkpoint, tmp_path / "index.h5")
    assert "1 previously skipped (1 embedded, 0 skipped)" in capsys.readouterr().out
    index = read_index(tmp_path / "index.h5")
    assert "broken.wav" in index.files and sorted(index.skipped) == ["empty.mp3"]


def interrupt_on_call(monkeypatch, call: int) -> None:
    """Simulated Ctrl-C: embedding raises KeyboardInterrupt on its `call`-th use."""
    real, calls = indexing.embed_segments, []

    def embed_segments(*args):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(indexing, "embed_segments", embed_segments)


def test_an_interrupted_run_leaves_a_usable_index_and_a_rerun_completes_it(tmp_path, checkpoint, monkeypatch, capsys):
    folder = sounds(tmp_path / "sounds", {f"clip {k}.wav": 1.0 for k in range(5)})
    interrupt_on_call(monkeypatch, 3)
    with pytest.raises(SystemExit) as exit_info:  # one file per batch: two files embedded, then Ctrl-C
        index_folder(folder, checkpoint, tmp_path / "index.h5", "--batch-size", "1", "--save-every", "3600")
    assert exit_info.value.code == 130
    assert "run the same command again" in capsys.readouterr().err
    assert sorted(read_index(tmp_path / "index.h5").files) == ["clip 0.wav", "clip 1.wav"]
    query(tmp_path / "index.h5", checkpoint, "a tone", "--format", "csv")
    assert set(pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))["file"]) == {"clip 0.wav", "clip 1.wav"}

    monkeypatch.undo()
    index_folder(folder, checkpoint, tmp_path / "index.h5", "--batch-size", "1")
    assert "3 new, 0 changed, 0 previously skipped (3 embedded, 0 skipped), 2 unchanged" in capsys.readouterr().out
    assert len(read_index(tmp_path / "index.h5").files) == 5
    assert not list(tmp_path.glob("*.partial"))


KILLED_RUN = """
import os, signal, sys
from audioretrieval.search import indexing, main
from audioretrieval.search.indexing import Segmenter, cut_segments
real, calls = indexing.embed_segments, []
def embed_segments(*args):
    calls.append(1)
    if len(calls) == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args)
indexing.embed_segments = embed_segments
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_killed_run_keeps_what_its_periodic_saves_wrote(tmp_path, checkpoint, capsys):
    folder = sounds(tmp_path / "sounds", {f"clip {k}.wav": 1.0 for k in range(6)})
    command = [
        "-c",
        KILLED_RUN,
        "index",
        str(folder),
        "--checkpoint",
        str(checkpoint),
        "--index",
        str(tmp_path / "index.h5"),
        "--batch-size",
        "1",
        "--save-every",
        "0",
        "--device",
        "cpu",
    ]
    result = forked.run(command)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert len(read_index(tmp_path / "index.h5").files) == 3  # saved after each of the three embedded files

    index_folder(folder, checkpoint, tmp_path / "index.h5")
    assert "3 new, 0 changed, 0 previously skipped (3 embedded, 0 skipped), 3 unchanged" in capsys.readouterr().out


def hits_of(capsys) -> pd.DataFrame:
    return pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))


def test_the_hits_are_the_best_segments_by_a_direct_computation_with_the_model(tmp_path, checkpoint, model, capsys):
    names = {"long.wav": 7.0, "a.wav": 1.0, "b/c.flac": 3.0, "d.ogg": 0.5}
    folder = sounds(tmp_path / "sounds", names)
    index_folder(folder, checkpoint, tmp_path / "index.h5", "--batch-size", "3")
    segments = [
        (name, 2.0 * k, row)
        for name in sorted(names)
        for k, row in enumerate(direct_embeddings(model, folder / name)[0])
    ]
    with torch.no_grad():
        scores = model.embed_text(QUERIES).numpy() @ np.stack([row for *_, row in segments]).T
    capsys.readouterr()

    query(tmp_path / "index.h5", checkpoint, *QUERIES, "--top", "5", "--format", "csv")
    hits = hits_of(capsys)
    for q, text in enumerate(QUERIES):
        mine = hits[hits["query"] == text]
        order = np.argsort(-scores[q])[:5]
        assert mine["rank"].tolist() == [1, 2, 3, 4, 5]
        assert list(zip(mine["file"], mine["start_s"])) == [segments[i][:2] for i in order]
        np.testing.assert_allclose(mine["score"], scores[q, order], atol=1e-5)

    query(tmp_path / "index.h5", checkpoint, *QUERIES, "--top", "3", "--per-file", "--format", "csv")
    hits = hits_of(capsys)
    for q, text in enumerate(QUERIES):
        best = {}
        for (name, start, _), score in zip(segments, scores[q]):
            best[name] = max(best.get(name, (-2.0, 0.0)), (score, start))
        expected = sorted(best.items(), key=lambda item: -item[1][0])[:3]
        mine = hits[hits["query"] == text]
        assert list(zip(mine["file"], mine["start_s"])) == [(name, start) for name, (_, start) in expected]


def test_an_index_refuses_another_checkpoints_queries_naming_both(tmp_path, checkpoint, tiny_tokenizer):
    folder = sounds(tmp_path / "sounds", {"a.wav": 1.0})
    index_folder(folder, checkpoint, tmp_path / "index.h5")
    other = tiny_checkpoint(tmp_path / "other.pt", tiny_tokenizer, seed=1)
    message = error_of("query", str(tmp_path / "index.h5"), "a tone", "--checkpoint", str(other))
    assert str(tmp_path / "index.h5") in message and str(checkpoint) in message and str(other) in message
    assert "cannot be compared" in message
    message = error_of("index", str(folder), "--checkpoint", str(other), "--index", str(tmp_path / "index.h5"))
    assert str(checkpoint) in message and str(other) in message


@pytest.fixture(scope="module")
def small_index(checkpoint, tmp_path_factory) -> Path:
    folder = sounds(tmp_path_factory.mktemp("formats") / "sounds", {"a.wav": 1.0, "b.wav": 3.0, "c.wav": 1.0})
    index_folder(folder, checkpoint, folder.parent / "index.h5")
    return folder.parent / "index.h5"


def test_the_table_shows_each_query_with_its_hits(small_index, checkpoint, capsys):
    query(small_index, checkpoint, "a loud tone", "some clicking", "--top", "2")
    blocks = capsys.readouterr().out.strip().split("\n\n")
    assert [block.splitlines()[0] for block in blocks] == ["a loud tone", "some clicking"]
    for block in blocks:
        header, *rows = block.splitlines()[1:]
        assert header.split() == ["rank", "score", "start_s", "file"]
        assert [row.split()[0] for row in rows] == ["1", "2"]
        assert all(row.split()[3] in ("a.wav", "b.wav", "c.wav") for row in rows)


def test_csv_and_json_hold_the_same_hits(small_index, checkpoint, capsys):
    query(small_index, checkpoint, "a loud tone", "some clicking", "--top", "3", "--format", "csv")
    table = hits_of(capsys)
    assert list(table.columns) == ["query", "rank", "file", "start_s", "score"] and len(table) == 6
    assert (table.groupby("query")["score"].diff().dropna() <= 0).all()  # best first
    query(small_index, checkpoint, "a loud tone", "some clicking", "--top", "3", "--format", "json")
    answers = json.loads(capsys.readouterr().out)
    assert [a["query"] for a in answers] == ["a loud tone", "some clicking"]
    flat = [(a["query"], h["rank"], h["file"], h["start_s"]) for a in answers for h in a["hits"]]
    assert flat == list(table[["query", "rank", "file", "start_s"]].itertuples(index=False, name=None))


def test_a_query_finds_the_checkpoint_the_index_recorded_and_says_what_to_do_once_it_moved(
    tmp_path, checkpoint, capsys
):
    folder = sounds(tmp_path / "sounds", {"a.wav": 1.0, "b.wav": 3.0})
    moved = shutil.copy(checkpoint, tmp_path / "best.pt")
    index_folder(folder, moved, tmp_path / "index.h5")
    capsys.readouterr()
    query(tmp_path / "index.h5", checkpoint, "a loud tone", "--top", "3", "--format", "csv")
    with_checkpoint = capsys.readouterr().out
    main(["query", str(tmp_path / "index.h5"), "a loud tone", "--top", "3", "--format", "csv", "--device", "cpu"])
    assert capsys.readouterr().out == with_checkpoint  # the same hits, the checkpoint found by its recorded path
    Path(moved).rename(tmp_path / "elsewhere.pt")
    message = error_of("query", str(tmp_path / "index.h5"), "a loud tone")
    assert f"{tmp_path / 'index.h5'} was built with checkpoint {moved}, which is no longer there" in message
    assert "pass --checkpoint with its new path" in message
    index_folder(folder, tmp_path / "elsewhere.pt", tmp_path / "index.h5")  # nothing to embed: records the new path
    assert "2 unchanged" in capsys.readouterr().out
    main(["query", str(tmp_path / "index.h5"), "a loud tone", "--top", "3", "--format", "csv", "--device", "cpu"])
    assert capsys.readouterr().out == with_checkpoint


@pytest.mark.slow
def test_the_html_format_is_a_page_with_a_player_for_every_hit_that_a_browser_plays(small_index, checkpoint, tmp_path):
    page = tmp_path / "pages" / "hits.html"
    query(
        small_index, checkpoint, "a loud tone", "some clicking", "--top", "3", "--format", "html", "--output", str(page)
    )
    text = page.read_text()
    sources = re.findall(r'<audio [^>]*src="([^"]+)"', text)
    assert len(sources) == 6 and all(s.startswith("../") for s in sources)  # relative to the page
    assert any("#t=" in s for s in sources)  # b.wav's later segments start where the segment does
    for source in sources:
        assert (page.parent / unquote(source.split("#")[0])).is_file()
    try:
        dom = rendered_dom(page)
    except Unavailable as exc:
        pytest.skip(f"no headless browser here: {exc}")
    assert dom.count('data-state="loaded"') == 6


def test_a_queries_file_answers_every_query_as_csv(small_index, checkpoint, tmp_path, capsys):
    (tmp_path / "queries.txt").write_text("a loud tone\n\nsome clicking\na loud tone\n")
    query(small_index, checkpoint, "--queries-file", str(tmp_path / "queries.txt"), "--top", "2")
    assert hits_of(capsys)["query"].tolist() == ["a loud tone"] * 2 + ["some clicking"] * 2
    pd.DataFrame({"file_name": ["x.wav", "y.wav"], "caption": ["a hum", "a siren, far away"]}).to_csv(
        tmp_path / "captions.csv", index=False
    )
    query(
        small_index,
        checkpoint,
        "--queries-file",
        str(tmp_path / "captions.csv"),
        "--top",
        "1",
        "--output",
        str(tmp_path / "hits.csv"),
    )
    assert pd.read_csv(tmp_path / "hits.csv")["query"].tolist() == ["a hum", "a siren, far away"]


def test_relevance_marks_the_hits_a_table_lists_for_the_query(small_index, checkpoint, tmp_path, capsys):
    pd.DataFrame(
        {"caption": ["a loud tone", "a loud tone"], "relevant_file_name": ["b.wav", "elsewhere.wav"]}
    ).to_parquet(tmp_path / "truth.parquet")
    query(
        small_index,
        checkpoint,
        "a loud tone",
        "no such query",
        "--top",
        "3",
        "--per-file",
        "--format",
        "csv",
        "--relevance",
        str(tmp_path / "truth.parquet"),
    )
    hits = hits_of(capsys)
    listed = hits[hits["query"] == "a loud tone"]
    assert dict(zip(listed["file"], listed["relevant"])) == {"a.wav": False, "b.wav": True, "c.wav": False}
    assert hits.loc[hits["query"] == "no such query", "relevant"].isna().all()


def test_bad_input_is_refused_naming_the_path_and_what_was_expected(tmp_path, checkpoint, small_index):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no sounds here")
    index = str(tmp_path / "index.h5")
    assert "no such folder" in error_of(
        "index", str(tmp_path / "nowhere"), "--checkpoint", str(checkpoint), "--index", index
    )
    assert f"{empty}: no audio files" in error_of(
        "index", str(empty), "--checkpoint", str(checkpoint), "--index", index
    )
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("hello")
    folder = sounds(tmp_path / "sounds", {"a.wav": 1.0})
    message = error_of("index", str(folder), "--checkpoint", str(not_a_checkpoint), "--index", index)
    assert f"{not_a_checkpoint}: not a usable checkpoint" in message and "best.pt" in message
    assert "no such checkpoint file" in error_of(
        "query", str(small_index), "x", "--checkpoint", str(tmp_path / "no.pt")
    )
    assert f"{index}: no such index file" in error_of("query", index, "x", "--checkpoint", str(checkpoint))

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["audio"] = np.zeros((2, 4), np.float32)
    assert f"{foreign}: not a search index" in error_of("query", str(foreign), "x", "--checkpoint", str(checkpoint))
    before = foreign.read_bytes()
    assert f"{foreign}: not a search index" in error_of(
        "index", str(folder), "--checkpoint", str(checkpoint), "--index", str(foreign)
    )
    assert foreign.read_bytes() == before  # never overwritten
    assert "no queries" in error_of("query", str(small_index), "--checkpoint", str(checkpoint))
    before = small_index.read_bytes()
    message = error_of("index", str(folder), "--checkpoint", str(checkpoint), "--index", str(small_index))
    assert f"{small_index}: an index of {small_index.parent / 'sounds'}, not of {folder}" in message
    assert small_index.read_bytes() == before  # another folder's files never mixed into it


# --- inputs that lie: names that are not UTF-8, files that block, numbers that are not numbers, a full disk ---


def search_cli(*args, timeout: float = 120, max_file_size: int | None = None) -> subprocess.CompletedProcess:
    """The `audioretrieval-search` command in a process of its own (its real standard output and signals);
    max_file_size: writes beyond that many bytes fail (EFBIG), as on a full disk."""
    return forked.run(["-m", "audioretrieval.search", *map(str, args)], timeout=timeout, max_file_size=max_file_size)


@pytest.mark.parametrize("samples", [1, 4000, 12000, 12001])
def test_segments_cut_from_chunks_of_any_size_are_those_cut_from_the_whole_waveform(samples):
    waveform = np.random.default_rng(samples).standard_normal(samples).astype(np.float32)
    segments, fractions = cut_segments(waveform, 4000)
    assert len(segments) == max(1, -(-samples // 4000)) and fractions[:-1].tolist() == [1.0] * (len(segments) - 1)
    assert fractions[-1] == pytest.approx((samples - 4000 * (len(segments) - 1)) / 4000)
    np.testing.assert_array_equal(segments.reshape(-1)[:samples], waveform)
    assert not segments.reshape(-1)[samples:].any()
    for chunk in (1, 999, 4000, 5000):
        cutter = Segmenter(4000)
        cut = [segment for start in range(0, samples, chunk) for segment in cutter.add(waveform[start : start + chunk])]
        last = cutter.end()
        cut += [last[0]] if last is not None else []
        np.testing.assert_array_equal(np.stack(cut), segments)


@pytest.mark.slow
def test_a_file_that_fails_part_way_is_skipped_and_none_of_its_segments_reach_another_file(
    tmp_path, checkpoint, model, capsys
):
    folder = sounds(tmp_path / "sounds", {"a before.wav": 3.0, "b cut short.wav": 7.0, "c after.wav": 5.0})
    cut = folder / "b cut short.wav"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # 3.5 s of 7: two segments decode, then it fails
    (folder / "d rf64.wav").write_bytes(rf64_announcing(folder / "c after.wav", 10**9))
    index_folder(folder, checkpoint, tmp_path / "index.h5", "--batch-size", "3")
    out = capsys.readouterr().out
    index = read_index(tmp_path / "index.h5")
    assert sorted(index.skipped) == ["b cut short.wav", "d rf64.wav"] and sorted(index.files) == [
        "a before.wav",
        "c after.wav",
    ]
    assert f"skipped {folder / 'b cut short.wav'}: BadAudio: its WAV header announces 308700 frames" in out
    assert f"skipped {folder / 'd rf64.wav'}: BadAudio: its RF64 header announces 1000000000 frames" in out
    for name in index.files:
        np.testing.assert_allclose(index.files[name].embeddings, direct_embeddings(model, folder / name)[0], atol=1e-5)


def rf64_announcing(wav: Path, frames: int) -> bytes:
    """`wav` rewritten as RF64 whose ds64 chunk announces `frames` frames."""
    samples, rate = soundfile.read(wav, dtype="float32")
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="RF64", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    struct.pack_into("<Q", data, data.index(b"ds64") + 16, frames * 2)
    return bytes(data)


@pytest.mark.slow
def test_links_to_files_are_indexed_under_their_own_names_and_links_to_folders_are_not_followed(
    tmp_path, checkpoint, capsys
):
    folder = sounds(tmp_path / "sounds", {"real.wav": 1.0})
    outside = sounds(tmp_path / "elsewhere", {"linked.wav": 1.0, "folder/inside.wav": 1.0})
    (folder / "link to a file.wav").symlink_to(outside / "linked.wav")
    (folder / "link to a folder").symlink_to(outside / "folder")
    (folder / "loop").symlink_to(folder)
    (folder / "broken link.wav").symlink_to(tmp_path / "nowhere.wav")
    index_folder(folder, checkpoint, tmp_path / "index.h5")
    index = read_index(tmp_path / "index.h5")
    assert sorted(index.files) == ["link to a file.wav", "real.wav"] and list(index.skipped) == ["broken link.wav"]
    assert "FileNotFoundError" in index.skipped["broken link.wav"].reason
    out = capsys.readouterr().out
    for name in ("link to a folder", "loop"):
        assert f"not followed: {folder / name} links to a folder; index that folder itself" in out


PEAK_MEMORY = """
import resource, sys
from audioretrieval.search.indexing import update_index
update_index(sys.argv[1], sys.argv[2], sys.argv[3], device="cpu")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def long_recording(path: Path, minutes: float, rate: int = 44100) -> Path:
    """A recording of `minutes` minutes, written a minute at a time (one of demo sources, repeated)."""
    rng = np.random.default_rng(0)
    minute = (synthesize(rng, draw_clip(rng, DemoSpec()), 60.0, rate) * 0.5).astype(np.float32)
    with soundfile.SoundFile(path, "w", rate, 1, "PCM_16") as file:
        for _ in range(int(minutes)):
            file.write(minute)
    return path


@pytest.mark.slow
def test_a_file_is_decoded_window_by_window_so_peak_memory_does_not_grow_with_its_length(tmp_path, checkpoint):
    peaks = {}
    for minutes in (1, 20):
        folder = tmp_path / f"{minutes} min"
        folder.mkdir()
        long_recording(folder / "field recording.wav", minutes)
        index = tmp_path / f"{minutes}.h5"
        result = forked.run(["-c", PEAK_MEMORY, str(folder), str(checkpoint), str(index)], timeout=300)
        assert result.returncode == 0, result.stderr
        peaks[minutes] = int(result.stdout.split()[-1])
        entry = read_index(index).files["field recording.wav"]
        assert len(entry.starts_s) == minutes * 30 and entry.duration_s == pytest.approx(60 * minutes)
    # read whole, the 20-minute file (106 MB as int16) took 0.47 GB more: a ratio of 1.69
    assert peaks[20] / peaks[1] < 1.1, peaks


@pytest.mark.slow
def test_a_file_name_holding_terminal_escape_codes_is_shown_escaped_in_every_table(tmp_path, checkpoint, capsys):
    name = "title\x1b]0;pwned\x07 \x1b[31mred\x1b[0m\u202eevaw.wav"  # sets a terminal's title, colour, direction
    folder = sounds(tmp_path / "sounds", {"plain.wav": 1.0})
    (folder / "plain.wav").rename(folder / name)
    index = tmp_path / "index.h5"
    index_folder(folder, checkpoint, index)
    assert list(read_index(index).files) == [name]  # kept as it is
    escaped = "title\\x1b]0;pwned\\x07 \\x1b[31mred\\x1b[0m\\u202eevaw.wav"
    assert shown(name) == escaped and shown("Mühle & é.wav") == "Mühle & é.wav"
    capsys.readouterr()
    for output in ("table", "csv"):
        query(index, checkpoint, "a tone", "--format", output)
        out = capsys.readouterr().out
        assert escaped in out and "\x1b" not in out and "\u202e" not in out, output


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_is_indexed_kept_and_shown_with_its_bytes(tmp_path, checkpoint, capsys):
    folder = sounds(tmp_path / "sounds", {"plain.wav": 1.0})
    (folder / "plain.wav").rename(os.fsdecode(bytes(folder) + b"/caf\xe9.wav"))
    write_sound(folder / "plain.wav", 1.5, seed=4)
    index = tmp_path / "index.h5"
    index_folder(folder, checkpoint, index)
    assert f"{index}: 2 files, 2 segments" in capsys.readouterr().out
    assert sorted(read_index(index).files) == [os.fsdecode(b"caf\xe9.wav"), "plain.wav"]  # the name's own bytes

    index_folder(folder, checkpoint, index)
    assert "0 new, 0 changed, 0 previously skipped (0 embedded, 0 skipped), 2 unchanged" in capsys.readouterr().out
    query(index, checkpoint, "a tone", "--format", "csv")
    assert sorted(pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))["file"]) == ["caf\\xe9.wav", "plain.wav"]
    shown = search_cli("query", index, "a tone", "--checkpoint", checkpoint, "--device", "cpu")  # a real stdout
    assert shown.returncode == 0 and "caf\\xe9.wav" in shown.stdout, shown.stderr


@pytest.mark.slow
def test_a_fifo_with_an_audio_name_is_skipped_at_once_and_never_read(tmp_path, checkpoint, capsys):
    folder = sounds(tmp_path / "sounds", {"a.wav": 1.0})
    os.mkfifo(folder / "p.wav")  # nobody writes to it: opening it to read would wait for ever
    index = tmp_path / "index.h5"
    # in a process of its own, which the timeout ends should a read of the FIFO wait after all
    run = search_cli("index", folder, "--checkpoint", checkpoint, "--index", index, "--device", "cpu", timeout=60)
    assert run.returncode == 0, run.stderr
    assert f"skipped {folder / 'p.wav'}: NotRegularFile: not a regular file (a FIFO)" in run.stdout
    assert sorted(read_index(index).files) == ["a.wav"]
    main(["info", str(index)])
    assert "p.wav: NotRegularFile: not a regular file (a FIFO): not read" in capsys.readouterr().out


STALLED_READ = """
import os, pathlib, sys, threading
never = threading.Event()
real_read, real_read_bytes = os.read, pathlib.Path.read_bytes
def read(fd, n):  # as on a hung network mount: reading {name} never returns, whichever way it is read
    if os.readlink(f"/proc/self/fd/{{fd}}").endswith("{name}"):
        never.wait()
    return real_read(fd, n)
def read_bytes(path):
    if path.name == "{name}":
        never.wait()
    return real_read_bytes(path)
os.read, pathlib.Path.read_bytes = read, read_bytes
from audioretrieval.search import main
main(sys.argv[1:])
"""


def stall_reads_of(monkeypatch, name: str) -> threading.Event:
    """Reads of files named `name` block until the returned event is set, as on a hung network mount."""
    release, real_read = threading.Event(), os.read

    def read(fd, n):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(name):
            release.wait()
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", read)
    return release


@pytest.mark.slow
def test_a_read_that_stalls_is_skipped_with_its_reason_and_tried_again_next_run(
    tmp_path, checkpoint, monkeypatch, capsys
):
    folder = sounds(tmp_path / "sounds", {"a.wav": 1.0, "stalled.wav": 1.0, "z.wav": 1.0})
    release = stall_reads_of(monkeypatch, "stalled.wav")
    try:
        index_folder(folder, checkpoint, tmp_path / "index.h5", "--read-timeout", "1")
    finally:
        release.set()
    assert f"skipped {folder / 'stalled.wav'}: ReadStalled: reading stalled: no data for 1 s" in capsys.readouterr().out
    index = read_index(tmp_path / "index.h5")
    assert sorted(index.files) == ["a.wav", "z.wav"] and list(index.skipped) == ["stalled.wav"]

    monkeypatch.undo()
    index_folder(folder, checkpoint, tmp_path / "index.h5")
    assert "1 previously skipped (1 embedded, 0 skipped), 2 unchanged" in capsys.readouterr().out


@pytest.mark.slow
def test_sigterm_stops_a_run_whose_read_is_blocked_and_saves_what_it_embedded(tmp_path, checkpoint):
    folder = sounds(tmp_path / "sounds", {"a.wav": 1.0, "b.wav": 1.0})
    index = tmp_path / "index.h5"
    command = ["-c", STALLED_READ.format(name="b.wav"), "index", str(folder)]
    command += ["--checkpoint", str(checkpoint), "--index", str(index), "--device", "cpu", "--batch-size", "1"]
    process = forked.Process([*command, "--save-every", "0"])  # the default --read-timeout (60 s) outlasts the test
    try:
        deadline = time.monotonic() + 120
        while not (index.exists() and read_index(index).files):  # a.wav embedded and saved; b.wav's read blocks
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted; " in stderr and "run the same command again" in stderr
    assert sorted(read_index(index).files) == ["a.wav"] and not list(tmp_path.glob("*.partial"))


def test_a_second_index_run_on_the_same_index_is_refused_naming_the_first_while_queries_still_read_it(
    tmp_path, checkpoint, capsys
):
    folder = sounds(tmp_path / "sounds", {"a.wav": 1.0, "b.wav": 1.0})
    index = tmp_path / "index.h5"
    command = ["-c", STALLED_READ.format(name="b.wav"), "index", str(folder)]
    command += ["--checkpoint", str(checkpoint), "--index", str(index), "--device", "cpu", "--batch-size", "1"]
    first = forked.Process([*command, "--save-every", "0"])
    try:
        deadline = time.monotonic() + 120
        while not (index.exists() and read_index(index).files):  # a.wav saved; b.wav's read blocks the run
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.2)
        message = error_of("index", str(folder), "--checkpoint", str(checkpoint), "--index", str(index))
        assert message == (
            f"audioretrieval-search: error: {index}: another `index` run (process {first.pid}) is writing it; "
            "wait until it ends, or give another path"
        )
        query(index, checkpoint, "a loud high tone")  # meanwhile the last complete save answers
        assert "a.wav" in capsys.readouterr().out
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=20)
    finally:
        first.kill()
    index_folder(folder, checkpoint, index, "--read-timeout", "5")  # the first has ended: this one runs
    assert sorted(read_index(index).files) == ["a.wav", "b.wav"]


def nan_checkpoint(checkpoint: Path, path: Path) -> Path:
    contents = torch.load(checkpoint, weights_only=True)
    contents["state_dict"]["audio.projection.weight"][0, 0] = float("nan")
    save_torch_atomically(contents, path)
    return path


def test_a_checkpoint_with_a_nan_weight_is_refused_naming_it_and_the_weight(tmp_path, checkpoint):
    folder = sounds(tmp_path / "sounds", {"a.wav": 1.0, "b.wav": 1.0})
    broken = nan_checkpoint(checkpoint, tmp_path / "broken.pt")
    index = tmp_path / "index.h5"
    message = error_of("index", str(folder), "--checkpoint", str(broken), "--index", str(index), "--device", "cpu")
    assert message == (
        f"audioretrieval-search: error: {broken}: weight audio.projection.weight holds NaN or inf values "
        f"(numbers that are not numbers): its model cannot score anything; use another checkpoint"
    )
    assert not index.exists() and not list(tmp_path.glob("*.partial"))

    # an index an earlier version built with it: the query is refused too
    index_folder(folder, checkpoint, index)
    with h5py.File(index, "r+") as f:
        f.attrs["checkpoint_sha256"] = hashlib.sha256(broken.read_bytes()).hexdigest()
    message = error_of("query", str(index), "a tone", "--checkpoint", str(broken), "--device", "cpu")
    assert f"{broken}: weight audio.projection.weight holds NaN or inf values" in message


def test_an_index_whose_embeddings_are_not_numbers_is_refused_naming_the_file(tmp_path, checkpoint):
    folder = sounds(tmp_path / "sounds", {"a.wav": 1.0, "b.wav": 3.0, "c.wav": 1.0})
    index = tmp_path / "index.h5"
    index_folder(folder, checkpoint, index)
    with h5py.File(index, "r+") as f:
        f["embeddings"][2] = np.full(f["embeddings"].shape[1], np.nan, np.float32)  # b.wav's second segment
    expected = (
        f"{index}: the embeddings of b.wav are not finite (NaN or inf): the index is damaged; remove it and "
        f"index the folder again"
    )
    assert error_of("query", str(index), "a tone", "--checkpoint", str(checkpoint), "--device", "cpu") == (
        f"audioretrieval-search: error: {expected}"
    )
    assert expected in error_of(
        "index", str(folder), "--checkpoint", str(checkpoint), "--index", str(index), "--device", "cpu"
    )


@pytest.mark.slow
def test_a_full_disk_while_saving_is_one_line_naming_the_index_and_leaves_no_partial_file(tmp_path, checkpoint):
    folder = sounds(tmp_path / "sounds", {"a.wav": 1.0})
    index = tmp_path / "index.h5"
    run = search_cli(
        "index", folder, "--checkpoint", checkpoint, "--index", index, "--device", "cpu", max_file_size=2000
    )
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == (
        f"audioretrieval-search: error: {index}: cannot be written: File too large (its partial file was removed)"
    )
    assert "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == [folder]


def test_a_queries_file_that_is_not_utf8_is_refused_naming_it(small_index, checkpoint, tmp_path):
    for name in ("queries.txt", "queries.csv"):
        (tmp_path / name).write_bytes("caption\nune cloche sonne à midi\n".encode("latin-1"))
        message = error_of("query", str(small_index), "--queries-file", str(tmp_path / name), "--checkpoint", "x.pt")
        assert message == (
            f"audioretrieval-search: error: {tmp_path / name}: not UTF-8 text (byte 0xe0 on line 2); "
            f"expected the queries as UTF-8, e.g. converted with `iconv -f LATIN1 -t UTF-8`"
        )


def test_any_other_error_is_one_line_and_its_traceback_comes_with_debug(small_index, checkpoint, tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("a file, not a folder")
    argv = ["query", str(small_index), "a tone", "--checkpoint", str(checkpoint), "--output", str(blocked / "hits.csv")]
    assert error_of(*argv) == (
        f"audioretrieval-search: error: FileExistsError: [Errno 17] File exists: '{blocked}' "
        f"(--debug shows the traceback)"
    )
    with pytest.raises(FileExistsError):
        main([*argv, "--debug"])
    monkeypatch.setenv("AUDIORETRIEVAL_DEBUG", "1")  # the same through the environment, as for the rules' scripts
    with pytest.raises(FileExistsError):
        main(argv)


def test_the_prediction_file_scores_every_query_for_every_file_in_the_challenge_baselines_layout(
    tmp_path, checkpoint, model
):
    """d25_t6/predict.py's CSV: column `index` the distinct queries in order, then one column per
    audio file of the folder by its name, each cell (query * audio).mean() of normalised embeddings."""
    folder = sounds(tmp_path / "retrieval_audio", {"b.wav": 1.0, "a.flac": 3.5, "c.ogg": 0.5})
    sounds(folder / "nested", {"not_ranked.wav": 1.0})
    (folder / "notes.txt").write_text("not audio")
    queries = tmp_path / "retrieval_captions.csv"
    pd.DataFrame({"caption": QUERIES + [QUERIES[0]], "other": range(4)}).to_csv(queries, index=False)
    out = tmp_path / "predictions.csv"
    main(
        ["predict", str(folder), str(queries), "--checkpoint", str(checkpoint), "--output", str(out), "--device", "cpu"]
    )
    header = out.read_text().splitlines()[0]
    assert header == "index,a.flac,b.wav,c.ogg"
    table = pd.read_csv(out, index_col="index")
    assert table.index.tolist() == QUERIES  # a repeated query once, as the baseline's dict keeps it
    with torch.no_grad():
        text = model.embed_text(QUERIES)
        for name in ("a.flac", "b.wav", "c.ogg"):
            audio = torch.from_numpy(direct_embeddings(model, folder / name)[0][:1])  # its first segment
            expected = (text * audio).mean(dim=1).numpy()
            np.testing.assert_allclose(table[name].to_numpy(), expected, rtol=1e-4, atol=1e-7)


def test_a_bad_queries_file_or_folder_for_predictions_is_one_sentence_and_writes_nothing(tmp_path, checkpoint):
    folder = sounds(tmp_path / "audio", {"a.wav": 1.0})
    out = tmp_path / "predictions.csv"
    cases = {
        "no_column.csv": ("query\na dog\n", "no column 'caption' (found ['query']); the queries go there"),
        "empty_query.csv": ("caption,id\na dog,1\n ,2\n", "line 3 has an empty 'caption'; every query needs a text"),
        "no_queries.csv": ("caption\n", "no queries"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        argv = ["predict", str(folder), str(tmp_path / name), "--checkpoint", str(checkpoint), "--output", str(out)]
        assert error_of(*argv) == f"audioretrieval-search: error: {tmp_path / name}: {message}"
    broken = tmp_path / "broken"
    broken.mkdir()
    soundfile.write(broken / "nan.wav", np.full(32000, np.nan, dtype=np.float32), 32000, subtype="FLOAT")
    (tmp_path / "ok.csv").write_text("caption\na dog\n")
    argv = ["predict", str(broken), str(tmp_path / "ok.csv"), "--checkpoint", str(checkpoint), "--output", str(out)]
    assert error_of(*argv).endswith("nan.wav: holds samples that are not numbers (NaN or inf): it cannot be scored")
    (tmp_path / "empty").mkdir()
    argv = ["predict", str(tmp_path / "empty"), str(tmp_path / "ok.csv"), "--checkpoint", str(checkpoint)]
    assert error_of(*argv, "--output", str(out)).endswith("empty: no audio files in it (.wav .flac .ogg .mp3)")
    assert not out.exists()
