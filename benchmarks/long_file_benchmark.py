"""Peak memory of indexing one long recording: 1 minute (the baseline, measured in the same run),
1 hour and 10 hours.

    python benchmarks/long_file_benchmark.py [--workdir DIR] [--hours 1 10] [--quick]

Each recording is a 44.1 kHz 16-bit mono WAV (the demo's synthetic sounds, a minute repeated;
written once into --workdir: 10 hours is 3.2 GB), indexed by `update_index` (what
`audioretrieval-search index` runs) with the demo model (random weights, config/demo.yaml's 3 s
segments) in a child process, whose peak memory is the proportional set size of its process tree.
A file is decoded, resampled and cut a block at a time as its segments are embedded, so the peak
should not grow with the length: the ratio to the 1-minute file's peak is the measure (read whole,
an hour took about 1.4 GB more, and 10 hours would take about 14 GB; see benchmarks/README.md).
--quick: 1 and 2 minutes (a check that it runs, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from common import run_measured
from search_benchmark import demo_checkpoint

from audioretrieval.data.demo import DemoSpec, draw_clip, synthesize

RATE = 44100


def recording(path: Path, minutes: int) -> Path:
    """`minutes` minutes of the demo's sounds at 44.1 kHz, written a minute at a time (cached)."""
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    minute = (0.5 * synthesize(rng, draw_clip(rng, DemoSpec()), 60.0, RATE)).astype(np.float32)
    partial = path.with_name(path.name + ".partial")
    with soundfile.SoundFile(partial, "w", RATE, 1, "PCM_16", format="WAV") as file:
        for _ in range(minutes):
            file.write(minute)
    partial.rename(path)
    return path


def child(folder: str, checkpoint: str, index: str) -> None:
    from audioretrieval.search.indexing import update_index

    started = time.perf_counter()
    summary = update_index(folder, checkpoint, index, device="cpu")
    print(json.dumps({"seconds": time.perf_counter() - started, "segments": summary.segments}))


def label(minutes: int) -> str:
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "long-file-benchmark")
    parser.add_argument("--hours", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--quick", action="store_true", help="1 and 2 minutes")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    lengths = [1, 2] if args.quick else [1, *(int(round(hours * 60)) for hours in args.hours)]
    args.workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = demo_checkpoint(args.workdir / "demo.pt")
    baseline = None
    for minutes in lengths:
        folder = args.workdir / label(minutes)
        folder.mkdir(exist_ok=True)
        recording(folder / "recording.wav", minutes)
        index = args.workdir / f"{label(minutes)}.h5"
        index.unlink(missing_ok=True)
        result = run_measured([__file__, "--child", str(folder), str(checkpoint), str(index)])
        baseline = baseline or result["peak_mb"]
        print(
            f"{label(minutes)}: {result['segments']} segments in {result['seconds']:.0f} s; "
            f"peak memory {result['peak_mb']:.0f} MB, ratio to 1 min {result['peak_mb'] / baseline:.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
