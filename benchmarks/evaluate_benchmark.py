"""Scoring the real test-set size: 5,225 captions x 1,045 clips.

    python benchmarks/evaluate_benchmark.py [--captions 5225] [--clips 1045] [--dim 1024] [--repeats 5] [--quick]

Writes an embeddings file of random unit vectors (the paper's 1024 dimensions) and a correspondence
table with 1-6 relevant clips per caption, then times (best of --repeats) score_file, which reads the
file and computes mAP@10, R@k, audio-to-text R@k and the per-caption table, without and with the
multi-positive mAP@16/@10. Baseline from the same run: the similarity matrix and one full sort of its
rows, the least a sort-based evaluation must do. Target: scoring under 1 s.
--quick: 500 captions x 100 clips, 64-d, once (a check that the benchmark runs, not a measurement).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audioretrieval.data.embeddings import write_embeddings
from audioretrieval.evaluation.score import score_file


def unit(rng, rows, dim):
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def best_of(repeats, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captions", type=int, default=5225)
    parser.add_argument("--clips", type=int, default=1045)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500 captions x 100 clips, once: check that it runs")
    args = parser.parse_args()
    if args.quick:
        args.captions, args.clips, args.dim, args.repeats = 500, 100, 64, 1
    rng = np.random.default_rng(0)
    names = [f"clip {i}.wav" for i in range(args.clips)]
    clip_of_caption = np.arange(args.captions) % args.clips
    captions = pd.DataFrame(
        {
            "file_name": [names[c] for c in clip_of_caption],
            "clip_index": clip_of_caption,
            "caption_index": np.arange(args.captions) // args.clips + 1,
            "caption": [f"caption number {j}" for j in range(args.captions)],
        }
    )
    audio, text = unit(rng, args.clips, args.dim), unit(rng, args.captions, args.dim)
    relevant = [
        (captions["caption"][j], names[c])
        for j in range(args.captions)
        for c in rng.choice(args.clips, rng.integers(1, 7), replace=False)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        embeddings, table = Path(tmp) / "embeddings.h5", Path(tmp) / "relevance.parquet"
        write_embeddings(embeddings, audio, text, names, captions)
        pd.DataFrame(relevant, columns=["query", "relevant_file_name"]).to_parquet(table)

        def baseline():
            similarity = torch.from_numpy(text) @ torch.from_numpy(audio).T
            torch.sort(similarity, dim=1)

        base = best_of(args.repeats, baseline)
        plain = best_of(args.repeats, lambda: score_file(embeddings))
        multi = best_of(args.repeats, lambda: score_file(embeddings, table))
    print(f"{args.captions} captions x {args.clips} clips, dim {args.dim}, {torch.get_num_threads()} threads")
    print(f"baseline (similarity + one sort):         {base:.3f} s")
    print(f"score_file (mAP@10, R@k, a2t R@k):        {plain:.3f} s   ratio to baseline {plain / base:.2f}")
    print(f"score_file + multi-positive mAP@16/@10:   {multi:.3f} s   ratio to baseline {multi / base:.2f}")
    print(f"target: under 1 s -> {'met' if multi < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
