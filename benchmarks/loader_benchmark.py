"""Training batches through the dataset class: 64 random 30 s crops, 2 DataLoader workers.

    python benchmarks/loader_benchmark.py [--clips 200] [--batches 40] [--workers 2] [--formats int16 zstd ...]
                                          [--workdir /tmp/loader-bench] [--quick]

Builds (once per storage) an HDF5 file of `--clips` clips of 20-40 s at 32 kHz (the demo's
synthetic sources, so FLAC compresses as it does on sounds, not on white noise) and its caption
table, then reads shuffled training batches as a training loop would and prints samples per second
for each storage side by side (targets on 2 workers here: int16 at least 500, the compressed
storages, zstd and flac, at least 300),
next to a baseline measured in the same run: the raw HDF5 read of the same crops straight into one
reused buffer in the main process (no dataset class, no padding, no batching; for flac it includes
the decoding). The file size per hour of audio shows what each storage costs on disk.
--quick: 13 clips, 2 batches (a check that the benchmark runs, not a measurement).
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
from audioretrieval.data.demo import DemoSpec, draw_clip, synthesize
from audioretrieval.data.h5audio import AudioH5, AudioH5Writer
from audioretrieval.files import write_table_atomically

RATE = 32000
SEGMENT_S = 30.0
TARGETS = {"int16": 500, "float32": None, "zstd": 300, "flac": 300}  # samples/s on 2 workers


def build(workdir: Path, clips: int, sample_format: str) -> tuple[Path, Path]:
    audio, captions = workdir / f"audio_{clips}_{sample_format}.h5", workdir / f"captions_{clips}.parquet"
    if not audio.exists():
        rng, spec = np.random.default_rng(0), DemoSpec()
        with AudioH5Writer(audio, RATE, sample_format) as writer:
            for k in range(clips):
                seconds = rng.uniform(20, 40)
                writer.append(f"clip {k}.wav", synthesize(rng, draw_clip(rng, spec), seconds, RATE), seconds)
    if not captions.exists():
        rows = [(f"clip {k}.wav", k, i, f"caption {i} of clip {k}") for k in range(clips) for i in range(1, 6)]
        write_table_atomically(
            pd.DataFrame(rows, columns=["file_name", "clip_index", "caption_index", "caption"]), captions
        )
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
    buffer = np.zeros(int(SEGMENT_S * RATE), dtype=reader.sample_dtype)
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
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the second measurement")
    parser.add_argument("--formats", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--quick", action="store_true", help="13 clips, 2 batches: check that it runs")
    args = parser.parse_args()
    if args.quick:
        args.clips, args.batches = 13, 2
    args.workdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    print(f"batches of 64 random {SEGMENT_S:.0f} s crops at {RATE} Hz, {torch.get_num_threads()} torch threads")
    rates = {}
    for sample_format in args.formats:
        target = TARGETS[sample_format]
        audio, captions = build(args.workdir, args.clips, sample_format)
        reader = AudioH5(audio)
        gb_per_hour = audio.stat().st_size / 1e9 / (reader.lengths.sum() / RATE / 3600)
        baseline = raw_read_rate(audio, 64 * min(5, args.batches))
        for workers in (0, args.workers):
            rates[sample_format, workers] = rate = loader_rate(audio, captions, args.batches, workers)
            print(
                f"{sample_format:<8} ({gb_per_hour:.3f} GB per hour of audio) workers={workers}: {rate:7.0f} samples/s "
                f"(raw HDF5 crop reads in one process: {baseline:.0f}/s; ratio {rate / baseline:.2f})"
                + (f"  target >= {target} on 2 workers" if workers == 2 and target else "")
            )
    for compressed in ("zstd", "flac"):
        if (compressed, args.workers) in rates and ("int16", args.workers) in rates:
            print(
                f"{compressed} / int16 on {args.workers} workers: "
                f"{rates[compressed, args.workers] / rates['int16', args.workers]:.2f}"
            )


if __name__ == "__main__":
    main()
