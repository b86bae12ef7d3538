"""Training batches through the dataset class: 64 random 30 s crops, 2 DataLoader workers.

    python benchmarks/loader_benchmark.py [--clips 200] [--batches 40] [--workdir /tmp/loader-bench]

Builds (once) an HDF5 file of `--clips` clips of 20-40 s at 32 kHz and its caption table, then
reads shuffled training batches as a training loop would and prints samples per second (target:
at least 500 on 2 workers here), next to a baseline measured in the same run: the raw HDF5 read
of the same crops straight into one reused buffer in the main process (no dataset class, no
padding, no batching), the floor the loader's cost is set against.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from audioretrieval.data.dataset import CaptionedAudio
from audioretrieval.data.h5audio import AudioH5, AudioH5Writer
from audioretrieval.data.tables import write_table_atomically

RATE = 32000
SEGMENT_S = 30.0


def build(workdir: Path, clips: int, sample_format: str) -> tuple[Path, Path]:
    audio, captions = workdir / f"audio_{clips}_{sample_format}.h5", workdir / f"captions_{clips}.parquet"
    if not audio.exists():
        rng = np.random.default_rng(0)
        with AudioH5Writer(audio, RATE, sample_format) as writer:
            for k in range(clips):
                seconds = rng.uniform(20, 40)
                writer.append(f"clip {k}.wav", (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32), seconds)
    if not captions.exists():
        rows = [(f"clip {k}.wav", k, i, f"caption {i} of clip {k}") for k in range(clips) for i in range(1, 6)]
        write_table_atomically(pd.DataFrame(rows, columns=["file_name", "clip_index", "caption_index", "caption"]), captions)
    return audio, captions


def loader_rate(audio: Path, captions: Path, batches: int, workers: int) -> float:
    dataset = CaptionedAudio(audio, captions, segment_s=SEGMENT_S, train=True)
    loader = DataLoader(dataset, batch_size=64, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)  # workers started
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        seen += batch["audio"].shape[0]
    return seen / (time.perf_counter() - start)


def raw_read_rate(audio: Path, samples: int) -> float:
    reader = AudioH5(audio)
    buffer = np.zeros(int(SEGMENT_S * RATE), dtype=reader.sample_format)
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    for _ in range(samples):
        row = int(rng.integers(len(reader)))
        offset = int(rng.integers(max(1, reader.lengths[row] - buffer.size)))
        reader.read_into(row, offset, buffer)
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "loader-bench")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    print(f"batches of 64 random {SEGMENT_S:.0f} s crops at {RATE} Hz, {torch.get_num_threads()} torch threads")
    for sample_format in ("int16", "float32"):
        audio, captions = build(args.workdir, args.clips, sample_format)
        baseline = raw_read_rate(audio, 64 * 5)
        for workers in (0, 2):
            rate = loader_rate(audio, captions, args.batches, workers)
            print(
                f"{sample_format:<8} workers={workers}: {rate:7.0f} samples/s "
                f"(raw HDF5 crop reads in one process: {baseline:.0f}/s; ratio {rate / baseline:.2f})"
                + ("  target >= 500" if workers == 2 else "")
            )


if __name__ == "__main__":
    main()
