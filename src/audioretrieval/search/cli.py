"""The `audioretrieval-search` command: index a folder, query an index, describe an index, write the
DCASE 2025 prediction file of a folder and a queries CSV."""

from __future__ import annotations

import argparse
import signal
import sys

from audioretrieval.device import DeviceUnavailable
from audioretrieval.evaluation.relevance import RelevanceMismatch
from audioretrieval.files import HeldByAnother, WriteFailed, write_text_atomically
from audioretrieval.pipeline.workflow import DEBUG_VARIABLE, debugging, error_sentence
from audioretrieval.search.indexing import UpdateSummary, update_index
from audioretrieval.search.predictions import prediction_table
from audioretrieval.search.query import format_hits, gather_queries, mark_relevance, search
from audioretrieval.search.store import SearchError, read_identity, read_index, shown

PROG = "audioretrieval-search"


def summary_line(index: str, summary: UpdateSummary) -> str:
    embedded = f"{summary.new} new, {summary.changed} changed, {summary.retried} previously skipped"
    return (
        f"{index}: {summary.files} files, {summary.segments} segments; this run: {embedded} "
        f"({summary.embedded_files} embedded, {len(summary.skipped_now)} skipped), {summary.unchanged} unchanged, "
        f"{summary.removed} removed; skipped in all: {summary.skipped}"
        + (f" (listed by `{PROG} info {index}`)" if summary.skipped else "")
    )


def run_index(args: argparse.Namespace) -> None:
    try:
        summary = update_index(
            args.folder, args.checkpoint, args.index, args.batch_size, args.device, args.save_every, args.read_timeout
        )
    except KeyboardInterrupt:
        print(
            f"{PROG}: interrupted; {args.index} holds every file embedded so far: run the same command again to "
            f"embed the rest",
            file=sys.stderr,
        )
        sys.exit(130)
    print(summary_line(args.index, summary))


def run_query(args: argparse.Namespace) -> None:
    queries = gather_queries(args.queries, args.queries_file)
    hits = search(args.index, args.checkpoint, queries, args.top, args.per_file, args.device)
    if args.relevance:
        hits = mark_relevance(hits, args.relevance)
    fmt = args.format or ("csv" if args.queries_file else "table")
    text = format_hits(hits, fmt, read_identity(args.index)["folder"], args.output)
    if args.output:
        write_text_atomically(text, args.output)
    else:
        sys.stdout.write(text)


def run_predict(args: argparse.Namespace) -> None:
    table = prediction_table(args.folder, args.queries_csv, args.checkpoint, args.device, args.batch_size)
    write_text_atomically(table.to_csv(), args.output)
    print(f"{args.output}: {len(table)} queries x {table.shape[1]} audio files")


def run_info(args: argparse.Namespace) -> None:
    index = read_index(args.index)
    segments = sum(len(entry.starts_s) for entry in index.files.values())
    minutes = sum(entry.duration_s for entry in index.files.values()) / 60
    print(
        shown(
            f"{args.index}: {len(index.files)} files, {segments} segments of {index.segment_s:g} s, {minutes:.1f} "
            f"min of audio, from {index.folder}\ncheckpoint {index.checkpoint} (sha256 {index.checkpoint_sha256})"
        )
    )
    if index.skipped:
        print(f"skipped ({len(index.skipped)}):")
        for path, entry in index.skipped.items():
            print(f"  {shown(path)}: {entry.reason}")


def add_index_command(commands, common: argparse.ArgumentParser) -> None:
    index = commands.add_parser(
        "index", parents=[common], help="embed every audio file below a folder into an index (or update it)"
    )
    index.add_argument("folder", help="folder of audio files (.wav .flac .ogg .mp3, searched recursively)")
    index.add_argument("--checkpoint", required=True, help="a best.pt or last.pt written by training")
    index.add_argument("--index", required=True, help="index file (HDF5) to create or update")
    index.add_argument("--batch-size", type=int, default=16, help="segments per forward pass (16)")
    index.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available")
    index.add_argument(
        "--save-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="write the progress to the index this often (60)",
    )
    index.add_argument(
        "--read-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="skip a file whose read makes no progress for this long, e.g. on a hung mount (60)",
    )
    index.set_defaults(run=run_index)


def add_predict_command(commands, common: argparse.ArgumentParser) -> None:
    predict = commands.add_parser(
        "predict",
        parents=[common],
        help="the DCASE 2025 Task 6 prediction file: every query's score for every audio file of a folder",
    )
    predict.add_argument("folder", help="folder of the audio files to rank (its own files, not its subfolders')")
    predict.add_argument("queries_csv", help="CSV of the queries, in its column 'caption'")
    predict.add_argument("--checkpoint", required=True, help="a checkpoint this pipeline can load (best.pt, ...)")
    predict.add_argument("--output", required=True, help="the prediction CSV to write")
    predict.add_argument("--batch-size", type=int, default=16, help="files per forward pass (16)")
    predict.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available")
    predict.set_defaults(run=run_predict)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Find sounds by text with a trained dual encoder.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", help=f"show an error's traceback (also: {DEBUG_VARIABLE}=1 in the environment)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_index_command(commands, common)
    query = commands.add_parser(
        "query", parents=[common], help="the best-matching segments of an index for text queries"
    )
    query.add_argument("index", help="index file written by `index`")
    query.add_argument("queries", nargs="*", help="query texts")
    query.add_argument(
        "--checkpoint", help="the checkpoint the index was built with (default: found where the index recorded it)"
    )
    query.add_argument(
        "--queries-file", help="more queries: one per line, or a CSV/Parquet table with a query or caption column"
    )
    query.add_argument("--top", type=int, default=10, help="hits per query (10)")
    query.add_argument("--per-file", action="store_true", help="one hit per file: its best segment")
    query.add_argument(
        "--format",
        choices=("table", "csv", "json", "html"),
        help="default: table, or csv with --queries-file; html: a page with a player for every hit",
    )
    query.add_argument("--output", help="write the results to this file instead of standard output")
    query.add_argument(
        "--relevance",
        help="relevance table (CSV/Parquet: query and relevant file names, as "
        "audioretrieval-score reads): mark each hit relevant or not",
    )
    query.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available")
    query.set_defaults(run=run_query)
    add_predict_command(commands, common)
    info = commands.add_parser("info", parents=[common], help="what an index holds, and the files it skipped and why")
    info.add_argument("index")
    info.set_defaults(run=run_info)
    return parser


SAID_IN_FULL = (SearchError, RelevanceMismatch, WriteFailed, DeviceUnavailable, HeldByAnother)  # no traceback needed


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Run a command; an error ends it with one line naming the file and the cause (the traceback
    only with --debug or AUDIORETRIEVAL_DEBUG=1)."""
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a kill saves progress as Ctrl-C does
    try:
        args.run(args)
    except Exception as exc:
        if args.debug or debugging():
            raise
        if isinstance(exc, SAID_IN_FULL):
            sys.exit(f"{PROG}: error: {shown(str(exc))}")
        sys.exit(f"{PROG}: error: {shown(error_sentence(exc))} (--debug shows the traceback)")
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
