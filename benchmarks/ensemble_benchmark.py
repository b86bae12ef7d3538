"""Ensemble targets at WavCaps scale: building them, and one batch's target block.

    python benchmarks/ensemble_benchmark.py [--captions 400000] [--clips 100000] [--members 5] [--dim 1024]
                                            [--workdir /tmp/ensemble-bench] [--quick]

Writes `--members` embeddings files of random unit vectors (about 2 GB each at the defaults), then
measures in a child process the time and peak memory (RSS of the process) of build_targets, and
the time of EnsembleTargets.block for 200 random batches of 64 clips x 64 captions (memory-mapped
targets, no N x N matrix anywhere). Baseline from the same run: reading the members' files once
(the least any build must do). Targets: peak memory under 4 GB while building; a block under 5 ms.
The members carry the identities the pipeline's embeddings files carry (written by its own
writer), so build_targets checks them as in a real run. --quick: 2,000 captions, 500 clips,
2 members, 64-d (a check that the benchmark runs, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from audioretrieval.data.embeddings import identities_of, write_identities

sys.path.insert(0, str(Path(__file__).resolve().parent))


def write_member(path: Path, clips: int, captions: int, dim: int, seed: int) -> None:
    """Random unit vectors streamed in blocks, with the identities of an embeddings file."""
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    tmp = path.with_name(path.name + ".partial")
    with h5py.File(tmp, "w") as f:
        for key, rows in (("audio", clips), ("text", captions)):
            data = f.create_dataset(key, shape=(rows, dim), dtype=np.float32)
            for start in range(0, rows, 20000):
                block = rng.standard_normal((min(rows, start + 20000) - start, dim), dtype=np.float32)
                data[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        names = [f"clip {i}.flac" for i in range(clips)]
        clip_of_caption = np.arange(captions) % clips
        table = pd.DataFrame(
            {
                "file_name": [names[c] for c in clip_of_caption],
                "clip_index": clip_of_caption,
                "caption_index": np.arange(captions) // clips + 1,
                "caption": [f"caption {j}" for j in range(captions)],
            }
        )
        write_identities(f, identities_of(names, table))
    tmp.rename(path)


def child(step: str, members: list[str], out: str) -> None:
    import resource

    from audioretrieval.correspondences.ensemble import EnsembleTargets, build_targets

    result = {}
    if step == "read":
        start = time.perf_counter()
        for member in members:
            with h5py.File(member, "r") as f:
                for key in ("audio", "text"):
                    for first in range(0, f[key].shape[0], 8192):
                        f[key][first : first + 8192]
        result["seconds"] = time.perf_counter() - start
    elif step == "build":
        start = time.perf_counter()
        build_targets(members, out)
        result["seconds"] = time.perf_counter() - start
    else:
        targets = EnsembleTargets(out, in_memory=False)
        rng = np.random.default_rng(0)
        times = []
        for _ in range(200):
            clips = rng.integers(0, targets.audio.shape[0], 64)
            captions = rng.integers(0, targets.text.shape[0], 64)
            start = time.perf_counter()
            targets.block(clips, captions)
            times.append(time.perf_counter() - start)
        result.update(median_ms=1000 * float(np.median(times)), p95_ms=1000 * float(np.percentile(times, 95)))
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=400_000)
    parser.add_argument("--clips", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ensemble-bench")
    parser.add_argument(
        "--quick", action="store_true", help="2,000 captions, 500 clips, 2 members, 64-d: check that it runs"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[2:], args.child[1])
    if args.quick:
        args.captions, args.clips, args.members, args.dim = 2000, 500, 2, 64
    import subprocess

    args.workdir.mkdir(parents=True, exist_ok=True)
    members = [str(args.workdir / f"member{m}_{args.clips}_{args.captions}_{args.dim}.h5") for m in range(args.members)]
    print(f"writing {args.members} members of {args.clips} clips, {args.captions} captions, {args.dim}-d ...")
    for m, path in enumerate(members):
        write_member(Path(path), args.clips, args.captions, args.dim, m)
    out = str(args.workdir / "targets.h5")

    def run(step: str) -> dict:
        done = subprocess.run(
            [sys.executable, __file__, "--child", step, out, *members], check=True, capture_output=True, text=True
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    read, build, block = run("read"), run("build"), run("block")
    print(f"read the members once (baseline): {read['seconds']:.1f} s, peak {read['peak_mb']:.0f} MB")
    print(
        f"build_targets:                    {build['seconds']:.1f} s, peak {build['peak_mb']:.0f} MB "
        f"(target < 4096 MB); build/read time {build['seconds'] / read['seconds']:.2f}"
    )
    print(
        f"block of 64 x 64 (memory-mapped): median {block['median_ms']:.2f} ms, p95 {block['p95_ms']:.2f} ms "
        f"(target < 5 ms)"
    )
    if "--keep" not in sys.argv:
        Path(out).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
