"""audioretrieval-search: indexing throughput and query latency with the demo model.

    python benchmarks/search_benchmark.py [--files 20] [--seconds 10] [--segments 100000] [--repeats 20]
        [--threads N] [--quick]

(a) Indexing: `update_index` (what `audioretrieval-search index` runs) on --files synthetic demo-like
    clips of --seconds s (44.1 kHz wav) with the demo model (config/demo.yaml's `model`: random PaSST
    weights, the pretrained all-MiniLM-L6-v2 text encoder shipped offline), in files/s. Baselines from
    the same run: loading the model, decoding the files alone, and the model's forward pass alone on the
    same segments; the ratio is indexing time / (load + decode + forward), so 1 means no overhead and
    below 1 means decoding overlapped the model.
(b) Query latency on an index of --segments random unit vectors of the demo model's size (256-d), written
    with the index writer: one query's text embedding, the query x segments product, the top 10 and the
    hits table, timed (median of --repeats different queries) against the bare matrix product. Target:
    under 100 ms per query.
--quick: 3 clips of 2 s and 2,000 segments, 2 repeats (a check that the benchmark runs, not a measurement).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
import transformers
import yaml

from audioretrieval.data.audio_io import load_mono
from audioretrieval.data.demo import DemoSpec, draw_clip, synthesize
from audioretrieval.files import save_torch_atomically
from audioretrieval.model.checkpoint import checkpoint_of
from audioretrieval.model.dual_encoder import DualEncoder
from audioretrieval.search.checkpoints import checkpoint_digest, load_search_model
from audioretrieval.search.indexing import cut_segments, update_index
from audioretrieval.search.query import embed_queries, hits_table, rank_segments, search
from audioretrieval.search.store import FileEntry, SearchIndex, read_segments, write_index

REPO = Path(__file__).resolve().parents[1]
WORDS = "a loud high tone with hiss low rumble quiet siren some beeping clicking chirp hum far away".split()


def demo_checkpoint(path: Path) -> Path:
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    model_cfg, segment_s = config["model"], config["train"]["segment_s"]
    torch.manual_seed(0)
    save_torch_atomically(checkpoint_of(DualEncoder(model_cfg, segment_s), model_cfg, segment_s, 0, {}, 0), path)
    return path


def write_clips(folder: Path, count: int, seconds: float, rate: int = 44100) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"clip {k:03d}.wav" for k in range(count)]
    for path in paths:
        soundfile.write(path, synthesize(rng, draw_clip(rng, DemoSpec()), seconds, rate), rate, subtype="PCM_16")
    return paths


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


@torch.inference_mode()
def forward_alone(model: DualEncoder, waveforms: list[np.ndarray], segment: int, batch: int) -> float:
    cuts = [cut_segments(w, segment) for w in waveforms]
    segments, fractions = np.concatenate([c[0] for c in cuts]), np.concatenate([c[1] for c in cuts])
    start = time.perf_counter()
    for k in range(0, len(segments), batch):
        model.embed_audio(torch.from_numpy(segments[k : k + batch]), torch.from_numpy(fractions[k : k + batch]))
    return time.perf_counter() - start


def indexing(tmp: Path, checkpoint: Path, files: int, seconds: float, batch: int) -> None:
    paths = write_clips(tmp / "clips", files, seconds)
    load, (model, contents) = timed(lambda: load_search_model(checkpoint, torch.device("cpu")))
    decode, waveforms = timed(lambda: [load_mono(p.read_bytes(), 32000)[0] for p in paths])
    segment = int(round(contents["segment_s"] * 32000))
    forward = forward_alone(model, waveforms, segment, batch)
    total, summary = timed(lambda: update_index(tmp / "clips", checkpoint, tmp / "clips.h5", batch, "cpu", 3600))
    print(
        f"(a) indexing {files} files of {seconds:g} s ({summary.segments} segments of {contents['segment_s']:g} s), "
        f"demo model, batch {batch}, {torch.get_num_threads()} threads"
    )
    print(f"    model loading (baseline part)       {load:7.2f} s")
    print(f"    decoding alone (baseline part)      {decode:7.2f} s   {files / decode:7.1f} files/s")
    print(f"    model forward alone (baseline part) {forward:7.2f} s   {files / forward:7.1f} files/s")
    print(
        f"    update_index, end to end            {total:7.2f} s   {files / total:7.1f} files/s   "
        f"ratio to load + decode + forward {total / (load + decode + forward):.2f}"
    )


def synthetic_index(path: Path, checkpoint: Path, segments: int, dim: int, segment_s: float) -> None:
    """`segments` random unit vectors, five segments per file, written with the index writer."""
    rng = np.random.default_rng(0)
    index = SearchIndex(checkpoint_digest(checkpoint), str(checkpoint), segment_s, 32000, "synthetic")
    per_file = 5
    for k in range(0, segments, per_file):
        rows = rng.standard_normal((min(per_file, segments - k), dim), dtype=np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        index.files[f"folder {k // 1000}/file {k}.wav"] = FileEntry(
            1, 1, per_file * segment_s, np.arange(len(rows)) * segment_s, rows
        )
    write_index(path, index)


def query_latency(tmp: Path, checkpoint: Path, segments: int, repeats: int) -> None:
    model, contents = load_search_model(checkpoint, torch.device("cpu"))
    dim = model.embed_text(["a tone"]).shape[1]
    synthetic_index(tmp / "large.h5", checkpoint, segments, dim, contents["segment_s"])
    read, table = timed(lambda: read_segments(tmp / "large.h5"))
    # distinct texts throughout: a frozen text encoder caches the texts it has seen
    rng = np.random.default_rng(1)
    fresh = iter(dict.fromkeys(" ".join(rng.choice(WORDS, 8)) for _ in range(10 * repeats + 1000)))
    matrix = torch.from_numpy(table.embeddings)
    vector = embed_queries(model, [next(fresh) for _ in range(3)])[:1]  # and warm-up

    def median_ms(fn) -> float:
        return 1000 * statistics.median(timed(lambda: fn(next(fresh)))[0] for _ in range(repeats))

    bare = median_ms(lambda q: vector @ matrix.T)
    text = median_ms(lambda q: embed_queries(model, [q]))
    ranking = median_ms(lambda q: hits_table([q], table, *rank_segments(vector, table, 10)))
    one = median_ms(lambda q: hits_table([q], table, *rank_segments(embed_queries(model, [q]), table, 10)))
    per_file = median_ms(lambda q: rank_segments(embed_queries(model, [q]), table, 10, per_file=True))
    many = [next(fresh) for _ in range(100)]
    batch, _ = timed(lambda: hits_table(many, table, *rank_segments(embed_queries(model, many), table, 10)))
    command, _ = timed(lambda: search(tmp / "large.h5", checkpoint, [next(fresh)], 10, device="cpu"))
    print(f"(b) query latency, {segments} segments x {dim}-d, top 10, median of {repeats} queries")
    print(f"    reading the index (once per command)     {1000 * read:8.1f} ms")
    print(f"    bare matrix product (baseline)           {bare:8.2f} ms")
    print(f"    text embedding of one query alone        {text:8.2f} ms")
    print(f"    ranking + table alone (product, top 10)  {ranking:8.2f} ms   ratio to baseline {ranking / bare:.2f}")
    print(
        f"    one query: text embedding + ranking + table {one:8.2f} ms   ratio to baseline {one / bare:.1f}   "
        f"target < 100 ms: {'met' if one < 100 else 'NOT met'}"
    )
    print(f"    one query with --per-file                {per_file:8.2f} ms")
    print(f"    100 queries at once, per query           {1000 * batch / 100:8.2f} ms")
    print(f"    search(): checkpoint digest, model and index loading, one query   {command:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--quick", action="store_true", help="3 clips of 2 s, 2,000 segments: check that it runs")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.files, args.seconds, args.segments, args.repeats = 3, 2.0, 2000, 2
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = demo_checkpoint(Path(tmp) / "demo.pt")
        indexing(Path(tmp), checkpoint, args.files, args.seconds, args.batch_size)
        query_latency(Path(tmp), checkpoint, args.segments, args.repeats)


if __name__ == "__main__":
    main()
