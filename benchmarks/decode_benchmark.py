"""Decoding a 7z archive of 30 s, 44.1 kHz clips to 32 kHz HDF5: this pipeline against the reference code's way.

    python benchmarks/decode_benchmark.py [--clips 60] [--workdir /tmp/decode-bench] [--quick]

Variants, each in its own process (peak memory: PSS summed over its process tree):
  pipeline   this pipeline's decode rule (audioretrieval.data.decode.decode_archive), 2 threads
  reference  the reference code's approach: extract with the 7z program, librosa.load(path, sr=32000) per
             file in a 2-process pool, all clips held in memory until one HDF5 write
  decompress the unavoidable part 1: decompressing the archive (py7zr, as the pipeline does)
  decode     the unavoidable part 2: decoding + resampling the already decompressed bytes, 1 thread
Runs on N and 2N clips, and prints ratios: pipeline / reference time (target <= 1), pipeline /
((decompress + decode) / 2 cores) (target <= 1.3), and peak memory growth from N to 2N clips.
A solid 7z archive is one LZMA stream that only one thread can decompress, so no decoder can
beat max(decompress, (decompress + decode) / cores); the ratio to that bound is printed too.
--quick: 2 and 4 clips of 5 s (a check that the benchmark runs, not a measurement); without the
7z program the reference code's variant is then left out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CORES = 2


def variant_pipeline(archive: Path, work: Path) -> None:
    from audioretrieval.data.decode import decode_archive

    decode_archive(archive, work / "audio.h5", work / "skipped.csv", threads=CORES, progress=False)


def _librosa_load(path: str):
    import librosa

    return librosa.load(path, sr=32000)[0]


def variant_reference(archive: Path, work: Path) -> None:
    from multiprocessing import Pool

    import h5py
    import numpy as np

    extracted = work / "extracted"
    subprocess.run(["7z", "x", "-y", f"-o{extracted}", str(archive)], check=True, stdout=subprocess.DEVNULL)
    paths = sorted(str(p) for p in extracted.rglob("*.wav"))
    with Pool(CORES) as pool:
        clips = pool.map(_librosa_load, paths)
    with h5py.File(work / "reference.h5", "w") as f:
        f["audio"] = np.concatenate(clips)
        f["length"] = [c.size for c in clips]


def variant_decompress(archive: Path, work: Path) -> None:
    from audioretrieval.data.archive import stream_members

    with stream_members(archive, lambda name: True) as members:
        for _ in members:
            pass


def variant_decode(archive: Path, work: Path) -> dict:
    from audioretrieval.data.archive import stream_members
    from audioretrieval.data.audio_io import load_mono

    with stream_members(archive, lambda name: True) as members:
        data = [b for _, b in members]
    start = time.perf_counter()
    for b in data:
        load_mono(b, 32000)
    return {"seconds": time.perf_counter() - start}  # excludes decompression


VARIANTS = {
    "pipeline": variant_pipeline,
    "reference": variant_reference,
    "decompress": variant_decompress,
    "decode": variant_decode,
}


def child(name: str, archive: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        start = time.perf_counter()
        extra = VARIANTS[name](archive, work) or {}
        print(json.dumps({"seconds": time.perf_counter() - start, **extra}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=60, help="N: clips in the smaller archive (default 60)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "decode-bench")
    parser.add_argument("--quick", action="store_true", help="2 and 4 clips of 5 s: check that it runs")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "ARCHIVE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], Path(args.child[1]))
    variants = list(VARIANTS)
    if shutil.which("7z") is None:
        if not args.quick:
            sys.exit("the reference code's variant needs the 7z program (Debian/Ubuntu: apt-get install p7zip-full)")
        print("reference variant left out: no 7z program here")
        variants.remove("reference")
    clips, seconds = (2, 5.0) if args.quick else (args.clips, 30.0)
    from common import make_clips_archive, run_measured

    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs; clips of {seconds:.0f} s at 44.1 kHz; {CORES} threads/processes each")
    if "reference" in variants:  # librosa's JIT cache
        run_measured(
            [__file__, "--child", "reference", str(make_clips_archive(args.workdir / "warmup.7z", 2, seconds))]
        )
    print(f"{'variant':<11} {'clips':>5} {'seconds':>8} {'files/s':>8} {'peak MB':>8}")
    results = {}
    for count in (clips, 2 * clips):
        archive = make_clips_archive(args.workdir / f"clips_{count}_{seconds:.0f}s.7z", count, seconds)
        for name in variants:
            r = run_measured([__file__, "--child", name, str(archive)])
            results[name, count] = r
            print(f"{name:<11} {count:>5} {r['seconds']:>8.2f} {count / r['seconds']:>8.1f} {r['peak_mb']:>8.0f}")
    for count in (clips, 2 * clips):
        t = {name: results[name, count]["seconds"] for name in variants}
        ideal = (t["decompress"] + t["decode"]) / CORES
        bound = max(t["decompress"], ideal)
        versus = (
            f"pipeline/reference time {t['pipeline'] / t['reference']:.2f} (target <= 1); " if "reference" in t else ""
        )
        print(
            f"N={count}: {versus}"
            f"pipeline/((decompress+decode)/{CORES}) {t['pipeline'] / ideal:.2f} (target <= 1.3); "
            f"pipeline/max(decompress, (decompress+decode)/{CORES}) {t['pipeline'] / bound:.2f}"
        )
    for name in [v for v in ("pipeline", "reference") if v in variants]:
        growth = results[name, 2 * clips]["peak_mb"] / results[name, clips]["peak_mb"]
        print(f"{name}: peak memory 2N/N {growth:.2f} (pipeline target: about 1, not growing with clips)")


if __name__ == "__main__":
    main()
