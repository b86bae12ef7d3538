import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from audioretrieval.data.captions import build_caption_table
from audioretrieval.data.dataset import CaptionedAudio, as_float
from audioretrieval.data.h5audio import AudioH5, AudioH5Writer
from audioretrieval.files import write_table_atomically

RATE = 1000
CLIPS = {"short, it's.wav": 2.0, "exact &amp; é.wav": 4.0, "long.wav": 10.0}


@pytest.fixture
def audio_file(tmp_path):
    """Clips whose sample values are their own positions, so a crop shows where it came from."""
    path = tmp_path / "audio.h5"
    with AudioH5Writer(path, RATE, "float32") as writer:
        for name, seconds in CLIPS.items():
            n = int(seconds * RATE)
            writer.append(name, np.arange(1, n + 1, dtype=np.float32) / 1e5, seconds)
    return path


def captions_csv(tmp_path, names, texts=None):
    rows = []
    for name in names:
        rows.append([name] + [f'{name}: "caption" {i}, with commas' if texts is None else texts for i in range(1, 6)])
    path = tmp_path / "captions.csv"
    pd.DataFrame(rows, columns=["file_name"] + [f"caption_{i}" for i in range(1, 6)]).to_csv(path, index=False)
    return path


def test_caption_table_has_one_row_per_caption_with_the_clip_row(tmp_path, audio_file):
    names = list(CLIPS)
    table = build_caption_table(captions_csv(tmp_path, names[::-1]), AudioH5(audio_file))
    assert list(table.columns) == ["file_name", "clip_index", "caption_index", "caption"]
    assert len(table) == 15
    assert table["clip_index"].tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert table["caption_index"].tolist() == [1, 2, 3, 4, 5] * 3
    assert table["file_name"].tolist() == [n for n in names for _ in range(5)]
    assert table.loc[7, "caption"] == f'{names[1]}: "caption" 3, with commas'


def test_captions_of_clips_missing_from_the_audio_are_an_error_unless_skipped(tmp_path, audio_file):
    csv = captions_csv(tmp_path, [*CLIPS, "gone.wav"])
    with pytest.raises(ValueError, match="clips not in .*audio.h5: 'gone.wav'"):
        build_caption_table(csv, AudioH5(audio_file))
    table = build_caption_table(csv, AudioH5(audio_file), skipped_files={"gone.wav"})
    assert "gone.wav" not in set(table["file_name"])


def test_clips_without_captions_and_malformed_files_are_errors(tmp_path, audio_file):
    with pytest.raises(ValueError, match="clips without captions .*'long.wav'"):
        build_caption_table(captions_csv(tmp_path, list(CLIPS)[:2]), AudioH5(audio_file))
    (tmp_path / "bad.csv").write_text("file_name,caption_1\nx.wav,hello\n")
    with pytest.raises(ValueError, match="bad.csv: missing columns .*caption_2"):
        build_caption_table(tmp_path / "bad.csv", AudioH5(audio_file))


@pytest.fixture
def dataset_files(tmp_path, audio_file):
    table = build_caption_table(captions_csv(tmp_path, list(CLIPS)), AudioH5(audio_file))
    write_table_atomically(table, tmp_path / "captions.parquet")
    return audio_file, tmp_path / "captions.parquet"


def item_of_clip(dataset, name):
    return dataset[dataset.captions.index[dataset.captions["file_name"] == name][0]]


def test_evaluation_crops_from_the_start_and_pads_short_clips(dataset_files):
    dataset = CaptionedAudio(*dataset_files, segment_s=4.0, train=False)
    assert len(dataset) == 15
    short = item_of_clip(dataset, "short, it's.wav")
    assert short["audio"].shape == (4000,)
    assert torch.equal(short["audio"][:2000], torch.arange(1, 2001) / 1e5)
    assert torch.all(short["audio"][2000:] == 0)
    assert short["fraction"].item() == pytest.approx(0.5)
    exact = item_of_clip(dataset, "exact &amp; é.wav")
    assert exact["fraction"].item() == 1.0 and exact["audio"][-1].item() == pytest.approx(4000 / 1e5)
    long = item_of_clip(dataset, "long.wav")
    assert long["audio"][0].item() == pytest.approx(1 / 1e5) and long["fraction"].item() == 1.0
    assert long["caption"].startswith("long.wav") and long["caption_index"] == 1 and long["clip_index"] == 2


def test_a_clip_whose_spectrogram_is_held_is_not_read_and_keeps_its_fraction(dataset_files, monkeypatch):
    dataset = CaptionedAudio(*dataset_files, segment_s=4.0, train=True)
    read = item_of_clip(dataset, "short, it's.wav")
    dataset.unread = {0}  # the short clip's row
    reads, read_into = [], AudioH5.read_into
    monkeypatch.setattr(
        AudioH5, "read_into", lambda self, clip, *args: reads.append(clip) or read_into(self, clip, *args)
    )
    held = item_of_clip(dataset, "short, it's.wav")
    assert reads == [] and torch.all(held["audio"] == 0) and held["audio"].shape == read["audio"].shape
    assert held["fraction"] == read["fraction"] and held["caption"] == read["caption"]
    item_of_clip(dataset, "long.wav")
    assert reads == [2]  # every other clip is still read


def test_training_crops_are_random_contiguous_windows(dataset_files):
    dataset = CaptionedAudio(*dataset_files, segment_s=4.0, train=True)
    torch.manual_seed(0)
    starts = set()
    for _ in range(20):
        audio = item_of_clip(dataset, "long.wav")["audio"].numpy()
        start = int(round(audio[0] * 1e5)) - 1
        assert np.allclose(audio, (np.arange(4000) + start + 1) / 1e5)
        assert 0 <= start <= 6000
        starts.add(start)
    assert len(starts) > 10
    torch.manual_seed(0)
    first = item_of_clip(dataset, "long.wav")["audio"]
    torch.manual_seed(0)
    assert torch.equal(first, item_of_clip(dataset, "long.wav")["audio"])  # seeded, reproducible


def test_several_dataloader_workers_read_their_own_handles(dataset_files):
    dataset = CaptionedAudio(*dataset_files, segment_s=3.0, train=True)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, shuffle=True, generator=torch.Generator().manual_seed(1))
    batches = list(loader)
    assert sum(b["audio"].shape[0] for b in batches) == 15
    assert all(b["audio"].shape[1] == 3000 for b in batches)
    fractions = torch.cat([b["fraction"] for b in batches])
    assert sorted(set(fractions.tolist())) == pytest.approx([2 / 3, 1.0])


def test_bad_dataset_inputs_are_named(dataset_files, tmp_path):
    audio, captions = dataset_files
    with pytest.raises(ValueError, match="segment_s"):
        CaptionedAudio(audio, captions, segment_s=0, train=False)
    table = pd.read_parquet(captions)
    table.loc[0, "clip_index"] = 99
    table.to_parquet(tmp_path / "broken.parquet")
    with pytest.raises(ValueError, match="broken.parquet: clip_index values outside"):
        CaptionedAudio(audio, tmp_path / "broken.parquet", segment_s=1, train=False)


def test_int16_files_give_int16_waveforms_that_convert_to_the_stored_signal(tmp_path):
    path = tmp_path / "pcm.h5"
    signal = (0.5 * np.sin(np.arange(3000) / 7)).astype(np.float32)
    with AudioH5Writer(path, RATE, "int16") as writer:
        writer.append("a.wav", signal, 3.0)
    write_table_atomically(
        build_caption_table(captions_csv(tmp_path, ["a.wav"]), AudioH5(path)), tmp_path / "c.parquet"
    )
    item = CaptionedAudio(path, tmp_path / "c.parquet", segment_s=4.0, train=False)[0]
    assert item["audio"].dtype == torch.int16
    waveform = as_float(item["audio"])
    assert waveform.dtype == torch.float32
    assert torch.allclose(waveform[:3000], torch.from_numpy(AudioH5(path).read(0)))
    assert np.abs(waveform[:3000].numpy() - signal).max() <= 1 / 32768
    assert torch.all(waveform[3000:] == 0) and item["fraction"].item() == pytest.approx(0.75)
