import numpy as np
import pandas as pd
import py7zr
import pytest
import yaml
from conftest import REPO, encode, make_archive, run_snakemake, tone

from audioretrieval.data.archive import ArchiveUnreadable
from audioretrieval.data.decode import DecodeError, decode_archive
from audioretrieval.data.h5audio import AudioH5, AudioH5Writer
from audioretrieval.files import partial_files

AWKWARD = [
    "Kitchen, take 2.wav",
    "Place de l'église &amp; friends.flac",
    "naïve synth &#39;live&#39;.ogg",
    "Søndag  double (edit).mp3",
]


def decode(archive, out_dir, **kwargs):
    out = out_dir / "audio.h5"
    summary = decode_archive(archive, out, out_dir / "skipped.csv", progress=False, **kwargs)
    return summary, out


def dominant_frequency(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    return float(np.fft.rfftfreq(signal.size, 1 / rate)[spectrum.argmax()])


def test_every_format_and_awkward_name_decodes_to_32k_mono(tmp_path):
    sources = {}
    for i, name in enumerate(AWKWARD):
        rate = [44100, 48000, 22050, 44100][i]
        signal = tone(440.0 * (i + 1), 1.5, rate)
        if i == 0:  # stereo: the tone on the left, silence on the right
            signal = np.stack([signal, np.zeros_like(signal)], axis=1)
        sources[f"development/{name}"] = encode(signal, rate, name.rsplit(".", 1)[1])
    archive = make_archive(tmp_path / "clips.7z", sources)
    summary, out = decode(archive, tmp_path, threads=2)
    assert summary.decoded == 4 and summary.skipped == []
    audio = AudioH5(out)
    assert audio.sample_rate == 32000
    assert audio.file_names == AWKWARD  # archive order, directory stripped, names untouched
    for i, name in enumerate(AWKWARD):
        row = audio.row_of(name)
        assert audio.durations[row] == pytest.approx(1.5, abs=0.06)  # mp3 adds encoder padding
        assert audio.lengths[row] == pytest.approx(1.5 * 32000, abs=0.06 * 32000)
        assert dominant_frequency(audio.read(row), 32000) == pytest.approx(440.0 * (i + 1), abs=3)
    downmixed = audio.read(0)[2000:-2000]
    assert np.sqrt(np.mean(downmixed**2)) == pytest.approx(0.25 / np.sqrt(2), rel=0.01)  # mean of L and R
    assert pd.read_csv(tmp_path / "skipped.csv").empty


def test_resampling_keeps_a_tone_frequency_amplitude_and_duration(tmp_path):
    archive = make_archive(tmp_path / "tone.7z", {"a/tone.wav": encode(tone(1000.0, 3.0, 44100, 0.5), 44100)})
    _, out = decode(archive, tmp_path)
    audio = AudioH5(out)
    signal = audio.read(0)
    assert signal.size == 96000 and audio.durations[0] == pytest.approx(3.0)
    assert dominant_frequency(signal, 32000) == pytest.approx(1000.0, abs=0.5)
    middle = signal[1000:-1000]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    expected = tone(1000.0, 3.0, 32000, 0.5)
    assert np.max(np.abs(middle - expected[1000:-1000])) < 2e-3  # phase and shape preserved


def test_reading_a_crop_gives_the_same_samples_as_the_whole_clip(tmp_path):
    members = {f"s/{i}.wav": encode(tone(300 + 50 * i, 0.5 + 0.25 * i, 44100), 44100) for i in range(5)}
    _, out = decode(make_archive(tmp_path / "c.7z", members), tmp_path, sample_format="float32")
    audio = AudioH5(out)
    whole = audio.read(3)
    assert np.array_equal(audio.read(3, 1000, 5000), whole[1000:6000])
    assert audio.read(3, whole.size - 10, 100).size == 10


def test_a_member_that_cannot_be_decoded_stops_the_job_and_leaves_nothing(tmp_path):
    members = {
        "dev/good.wav": encode(tone(440, 0.5, 44100), 44100),
        "dev/broken, it's bad.wav": b"not audio at all" * 100,
    }
    archive = make_archive(tmp_path / "bad.7z", members)
    with pytest.raises(DecodeError) as error:
        decode(archive, tmp_path, threads=2)
    assert "bad.7z" in str(error.value) and "dev/broken, it's bad.wav" in str(error.value)
    assert not (tmp_path / "audio.h5").exists()
    assert not partial_files(tmp_path / "audio.h5")
    assert not (tmp_path / "skipped.csv").exists()


def test_skipping_bad_clips_lists_them_next_to_the_output(tmp_path):
    members = {"dev/good.wav": encode(tone(440, 0.5, 44100), 44100), "dev/broken.wav": b"RIFF" + b"\0" * 100}
    summary, out = decode(make_archive(tmp_path / "bad.7z", members), tmp_path, on_bad_clip="skip")
    assert AudioH5(out).file_names == ["good.wav"]
    skipped = pd.read_csv(tmp_path / "skipped.csv")
    assert skipped["member"].tolist() == ["dev/broken.wav"]
    assert skipped["archive"].str.endswith("bad.7z").all()
    assert skipped["reason"].str.len().gt(0).all()


def test_archive_without_audio_and_duplicate_names_are_errors(tmp_path):
    with pytest.raises(DecodeError, match="no audio members"):
        decode(make_archive(tmp_path / "none.7z", {"readme.txt": b"hello"}), tmp_path)
    twice = {"a/x.wav": encode(tone(440, 0.2, 8000), 8000), "b/x.wav": encode(tone(440, 0.2, 8000), 8000)}
    with pytest.raises(DecodeError, match="share a file name.*x.wav"):
        decode(make_archive(tmp_path / "twice.7z", twice), tmp_path)


def test_unreadable_file_is_named_when_opening_the_decoded_audio(tmp_path):
    (tmp_path / "fake.h5").write_bytes(b"")
    with pytest.raises(OSError):
        AudioH5(tmp_path / "fake.h5")
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["audio"] = np.zeros(3)
    with pytest.raises(ValueError, match="other.h5.*missing"):
        AudioH5(tmp_path / "other.h5")


def test_damaged_archives_fail_naming_the_archive_the_member_and_the_cause(tmp_path):
    archive = tmp_path / "clotho_audio_validation.7z"
    with py7zr.SevenZipFile(
        archive, "w", filters=[{"id": py7zr.FILTER_COPY}]
    ) as z:  # stored, so a flipped byte is a CRC error
        z.writestr(encode(tone(440, 0.2, 8000), 8000), "validation/a.wav")
        z.writestr(encode(tone(660, 0.2, 8000), 8000), "validation/b.wav")
    data = bytearray(archive.read_bytes())
    data[32 + len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(
        ArchiveUnreadable,
        match=r"clotho_audio_validation.7z: cannot read member 'validation/b.wav': "
        r"CRC check failed \(stored \d+, computed \d+\): the data is damaged",
    ):
        decode_archive(archive, tmp_path / "audio.h5", tmp_path / "skipped.csv", sample_rate=8000)
    archive.write_bytes(bytes(data[:1000]))  # half copied
    with pytest.raises(
        ArchiveUnreadable,
        match=r"clotho_audio_validation.7z: not a readable 7z archive \(1000 bytes; "
        r"a partial download or copy\?\): Bad7zFile",
    ):
        decode_archive(archive, tmp_path / "audio.h5", tmp_path / "skipped.csv", sample_rate=8000)
    assert not (tmp_path / "audio.h5").exists()


def test_skip_reasons_say_what_is_wrong_in_words(tmp_path):
    archive = make_archive(
        tmp_path / "a.7z", {"x/good.wav": encode(tone(440, 0.5, 8000), 8000), "x/bad.wav": b"not audio" * 50}
    )
    summary = decode_archive(
        archive, tmp_path / "audio.h5", tmp_path / "skipped.csv", sample_rate=8000, on_bad_clip="skip"
    )
    ((member, reason),) = summary.skipped
    assert member == "x/bad.wav" and reason == "BadAudio: not a readable audio file (Format not recognised.; 450 bytes)"
    assert "0x" not in pd.read_csv(tmp_path / "skipped.csv")["reason"][0]


def test_int16_storage_is_within_half_a_quantisation_step_and_float32_storage_is_exact(tmp_path):
    """ClothoV2 is stored as int16 after resampling (data.sample_format in config/config.yaml; the
    reference code keeps librosa's float32): each sample within 1/65536 of full scale; float32 keeps
    the resampled samples exactly."""
    signal = np.random.default_rng(0).uniform(-0.9, 0.9, 32000).astype(np.float32)
    for sample_format in ("int16", "float32"):
        with AudioH5Writer(tmp_path / f"{sample_format}.h5", 32000, sample_format) as writer:
            writer.append("clip.wav", signal, 1.0)
        stored = AudioH5(tmp_path / f"{sample_format}.h5").read(0)
        error = np.abs(stored - signal).max()
        assert error <= (0.5 / 32768 if sample_format == "int16" else 0.0) and stored.dtype == np.float32
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert config["data"]["sample_format"] == "int16"


@pytest.mark.snakemake
def test_a_full_disk_while_decoding_fails_the_job_in_one_line_and_leaves_no_partial_file(tmp_path, tiny_demo_config):
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(tiny_demo_config))
    run_snakemake(
        tmp_path / "results" / "raw" / "clotho_audio_development.7z",
        "--cores",
        1,
        "--configfile",
        configfile,
        cwd=tmp_path,
    )
    target = tmp_path / "results" / "data" / "clothov2" / "development" / "audio.h5"
    command = (target, "--cores", 1, "--configfile", configfile)
    result = run_snakemake(*command, cwd=tmp_path, check=False, max_file_size=100_000)  # the audio needs ~700 kB
    assert result.returncode != 0
    sentence = f"WriteFailed: {target}: cannot be written: File too large (its partial file was removed)"
    assert f"error: {sentence} (log: " in result.stderr and "Traceback" not in result.stderr
    log = tmp_path / "results" / "logs" / "decode_audio" / "development.log"
    assert f"failed: {sentence}" in log.read_text()
    assert not target.exists() and not partial_files(target)

    run_snakemake(*command, cwd=tmp_path)  # with room, the same command completes
    assert len(AudioH5(target)) == tiny_demo_config["demo"]["clips"]["development"]
