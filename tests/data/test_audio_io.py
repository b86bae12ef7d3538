"""Decoding a file block by block (what indexing does) gives what decoding it whole gives, and a
WAV or RF64 file whose header announces more frames than it holds is refused either way."""

import io
import struct

import numpy as np
import pytest
import soundfile
from conftest import encode, tone

from audioretrieval.data.audio_io import BadAudio, decode_bytes, load_mono, stream_mono


def rf64(frames: int, announced: int | None = None) -> bytes:
    """A stereo 16-bit RF64 file of `frames` frames whose ds64 chunk announces `announced`."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.full((frames, 2), 0.1, np.float32), 44100, format="RF64", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    if announced is not None:
        struct.pack_into("<Q", data, data.index(b"ds64") + 16, announced * 4)  # data size in bytes
    return bytes(data)


@pytest.mark.parametrize(
    "extension, rate, channels",
    [("wav", 44100, 2), ("wav", 32000, 1), ("flac", 48000, 1), ("ogg", 22050, 2), ("mp3", 44100, 2)],
)
@pytest.mark.parametrize("block_frames", [1000, 1 << 16])
def test_decoding_block_by_block_equals_decoding_the_whole_file(extension, rate, channels, block_frames):
    signal = np.stack([tone(440.0 * (c + 1), 2.3, rate) for c in range(channels)], axis=1)
    data = encode(signal, rate, extension)
    whole, _ = load_mono(data, 32000)
    chunks = list(stream_mono(io.BytesIO(data), 32000, block_frames))
    assert all(chunk.dtype == np.float32 for chunk in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_a_file_cut_short_is_refused_once_its_last_block_is_out():
    data = encode(tone(440.0, 3.0, 44100), 44100)
    with pytest.raises(BadAudio, match=r"its WAV header announces 132300 frames but 66139 could be decoded"):
        list(stream_mono(io.BytesIO(data[: len(data) // 2]), 32000))


def test_an_rf64_file_whose_header_announces_more_frames_than_it_holds_is_refused():
    assert decode_bytes(rf64(16000))[0].shape == (16000, 2)
    lying = rf64(16000, announced=10**12)
    expected = r"its RF64 header announces 1000000000000 frames but 16000 could be decoded \(the file is cut short"
    with pytest.raises(BadAudio, match=expected):
        decode_bytes(lying)
    with pytest.raises(BadAudio, match=expected):
        list(stream_mono(io.BytesIO(lying), 32000))
