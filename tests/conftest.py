import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import py7zr
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[1]

FORMAT_SUBTYPES = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}


def encode(signal: np.ndarray, rate: int, extension: str = "wav") -> bytes:
    fmt, subtype = FORMAT_SUBTYPES[extension]
    buffer = io.BytesIO()
    soundfile.write(buffer, signal, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def make_archive(path: Path, members: dict) -> Path:
    """A 7z archive holding `members` (archive name -> bytes)."""
    with py7zr.SevenZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(data, name)
    return path


def run_snakemake(*args, cwd=REPO, check=True, snakefile=REPO / "Snakefile"):
    """The real Snakemake CLI on this repository's Snakefile (or another copy of the workflow)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), *map(str, args)]
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def tiny_demo_config(tmp_path) -> dict:
    """The demo configuration shrunk to seconds of work, writing below tmp_path."""
    import yaml

    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config["out_dir"] = str(tmp_path / "results")
    config["data"]["raw_dir"] = str(tmp_path / "results" / "raw")
    config["demo"].update(clips={"development": 8, "validation": 4, "evaluation": 4}, min_duration_s=1.0, max_duration_s=2.5)
    from tiny import tiny_model_config

    config["model"] = tiny_model_config()  # random init, with the tokenizer the pipeline builds
    config["train"].update(segment_s=2.0, batch_size=8, eval_batch_size=16, epochs=2, warmup_epochs=1,
                           rampdown_start=1, rampdown_stop=2, num_workers=0)
    config["stage1"]["seeds"] = [1, 2]
    config["correspondences"]["ensembles"] = {"all": [1, 2]}
    config["stage2"]["train"] = {"epochs": 1, "rampdown_stop": 1}
    return config


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    from tiny import make_tokenizer

    return make_tokenizer(tmp_path_factory.mktemp("tokenizer"))
