"""Answering text queries against a search index.

The queries are embedded with the checkpoint's text encoder and compared with every segment of the
index in one matrix product per block of queries (queries x segments, cosine similarities). Each
segment is a hit of its own, so a long file can appear several times, at different start times;
with `per_file` only each file's best segment counts.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import numpy as np
import pandas as pd
import torch

from audioretrieval.device import choose_device
from audioretrieval.evaluation.relevance import nfc, read_relevance
from audioretrieval.model.dual_encoder import DualEncoder
from audioretrieval.report.listening import Hit, page
from audioretrieval.search.checkpoints import (
    check_same_checkpoint,
    checkpoint_digest,
    load_search_model,
    recorded_checkpoint,
)
from audioretrieval.search.store import SearchError, SegmentTable, read_identity, read_segments, shown

QUERY_COLUMNS = ("query", "caption")
QUERY_BLOCK = 256  # queries scored at once: bounds the [queries, segments] matrix
HIT_COLUMNS = ["query", "rank", "file", "start_s", "score"]


def read_queries_file(path: str | os.PathLike) -> list[str]:
    """Queries from a CSV or Parquet table (a `query` or `caption` column) or a text file (one per line)."""
    path = Path(path)
    if not path.is_file():
        raise SearchError(
            f"{path}: no such queries file; expected one query per line, or a CSV/Parquet table "
            f"with a {' or '.join(QUERY_COLUMNS)} column"
        )
    if path.suffix.lower() == ".parquet":
        table = pd.read_parquet(path)
    else:
        text = read_utf8(path)
        if path.suffix.lower() != ".csv":
            return [line.strip() for line in text.splitlines() if line.strip()]
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    column = next((c for c in QUERY_COLUMNS if c in table.columns), None)
    if column is None:
        raise SearchError(f"{path}: expected a {' or '.join(QUERY_COLUMNS)} column, found {list(table.columns)}")
    return [str(q).strip() for q in table[column] if str(q).strip()]


def read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SearchError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            f"expected the queries as UTF-8, e.g. converted with `iconv -f LATIN1 -t UTF-8`"
        ) from exc


def gather_queries(texts: list[str], queries_file: str | os.PathLike | None) -> list[str]:
    """The command line's queries, then the file's; each distinct text once, in order of appearance."""
    queries = [t.strip() for t in texts if t.strip()] + (read_queries_file(queries_file) if queries_file else [])
    if not queries:
        raise SearchError(
            f"{queries_file}: holds no queries"
            if queries_file
            else "no queries: give query texts or --queries-file FILE"
        )
    return list(dict.fromkeys(queries))


@torch.inference_mode()
def embed_queries(model: DualEncoder, queries: list[str], batch_size: int = 64) -> torch.Tensor:
    """Normalised text embeddings [queries, D] on the CPU."""
    return torch.cat(
        [model.embed_text(queries[k : k + batch_size]).float().cpu() for k in range(0, len(queries), batch_size)]
    )


def best_segment_per_file(scores: torch.Tensor, table: SegmentTable, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `top` files of each query by their best segment's score: (scores, segment rows) [queries, top]."""
    values = scores.numpy()
    file_best = torch.from_numpy(np.maximum.reduceat(values, table.first_segment, axis=1))
    best, files = file_best.topk(min(top, file_best.shape[1]), dim=1)
    counts = np.diff(np.append(table.first_segment, values.shape[1]))
    rows = np.empty(files.shape, dtype=np.int64)
    for q, f in np.ndindex(*files.shape):
        first = table.first_segment[files[q, f]]
        rows[q, f] = first + values[q, first : first + counts[files[q, f]]].argmax()
    return best, torch.from_numpy(rows)


def rank_segments(
    query_embeddings: torch.Tensor, table: SegmentTable, top: int, per_file: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's top hits: (scores, segment rows), both [queries, min(top, hits)], best first."""
    segments = torch.from_numpy(table.embeddings)
    scores, rows = [], []
    for start in range(0, len(query_embeddings), QUERY_BLOCK):
        similarity = query_embeddings[start : start + QUERY_BLOCK] @ segments.T
        if per_file:
            best, best_rows = best_segment_per_file(similarity, table, top)
        else:
            best, best_rows = similarity.topk(min(top, similarity.shape[1]), dim=1)
        scores.append(best.numpy())
        rows.append(best_rows.numpy())
    return np.concatenate(scores), np.concatenate(rows)


def hits_table(queries: list[str], table: SegmentTable, scores: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
    """One row per (query, hit): query, rank (1 = best), file, start_s, score (cosine)."""
    top = rows.shape[1]
    flat = rows.reshape(-1)
    return pd.DataFrame(
        {
            "query": np.repeat(np.asarray([shown(q) for q in queries], dtype=object), top),
            "rank": np.tile(np.arange(1, top + 1), len(queries)),
            "file": np.asarray([shown(p) for p in table.paths], dtype=object)[table.file_of_segment[flat]],
            "start_s": table.starts_s[flat],
            "score": scores.reshape(-1).astype(np.float64),
        }
    )


def mark_relevance(hits: pd.DataFrame, relevance: str | os.PathLike) -> pd.DataFrame:
    """Add `relevant`: whether the relevance table lists the hit's file (its path or its base name) for
    the query's text; empty where the table does not have the query."""
    if not Path(relevance).is_file():
        raise SearchError(
            f"{relevance}: no such relevance table; expected a CSV or Parquet file with a query or "
            f"caption column and the relevant file names"
        )
    table = read_relevance(relevance)
    relevant = dict(zip(table["query"], map(set, table["relevant"])))

    def listed(query: str, file: str):
        names = relevant.get(nfc(query))
        return None if names is None else (nfc(file) in names or nfc(PurePosixPath(file).name) in names)

    return hits.assign(relevant=[listed(q, f) for q, f in zip(hits["query"], hits["file"])])


def load_segments_for(index_path: str | os.PathLike, checkpoint: str | os.PathLike) -> SegmentTable:
    """The index's segments, refusing an index that another checkpoint built or that holds none."""
    identity = read_identity(index_path)
    check_same_checkpoint(index_path, identity, checkpoint, checkpoint_digest(checkpoint))
    table = read_segments(index_path)
    if len(table.embeddings) == 0:
        raise SearchError(
            f"{index_path}: the index holds no segments (every file was skipped: "
            f"`audioretrieval-search info {index_path}` lists why)"
        )
    return table


def search(
    index_path: str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    queries: list[str],
    top: int = 10,
    per_file: bool = False,
    device: str | None = None,
) -> pd.DataFrame:
    """The top hits of each query in the index, as a table (hits_table's columns); `checkpoint` None:
    the one the index was built with."""
    if top < 1:
        raise SearchError(f"--top {top}: expected a positive number of hits")
    checkpoint = checkpoint or recorded_checkpoint(index_path, read_identity(index_path))
    table = load_segments_for(index_path, checkpoint)
    model, _ = load_search_model(checkpoint, choose_device(device))
    embedded = embed_queries(model, queries)
    bad = (~embedded.isfinite().all(dim=1)).nonzero().flatten().tolist()
    if bad:
        raise SearchError(
            f"{checkpoint}: its model embeds the query {queries[bad[0]]!r} as NaN or inf (numbers that are not "
            f"numbers), so it cannot be scored"
        )
    scores, rows = rank_segments(embedded, table, top, per_file)
    return hits_table(queries, table, scores, rows)


def format_table(hits: pd.DataFrame) -> str:
    """Per query its text, then one aligned line per hit."""
    lines = []
    marks = {True: "yes", False: "no", None: "-"}
    for query, group in hits.groupby("query", sort=False):
        lines += [f"{query}", "  rank   score  start_s  " + ("relevant  " if "relevant" in group else "") + "file"]
        for hit in group.itertuples():
            mark = f"{marks[getattr(hit, 'relevant', None)]:>8}  " if "relevant" in group else ""
            lines.append(f"  {hit.rank:>4}  {hit.score:6.4f}  {hit.start_s:7.1f}  {mark}{hit.file}")
        lines.append("")
    return "\n".join(lines)


def format_json(hits: pd.DataFrame) -> str:
    answers = []
    for query, group in hits.groupby("query", sort=False):
        fields = [c for c in group.columns if c != "query"]
        answers.append({"query": query, "hits": json.loads(group[fields].to_json(orient="records"))})
    return json.dumps(answers, indent=1, ensure_ascii=False) + "\n"


def format_html(hits: pd.DataFrame, folder: str, output: str | os.PathLike | None) -> str:
    """A page to look and listen: every hit with a player that plays its file from the hit's start,
    marked by the relevance table where one was given. The players link to the files themselves:
    relative to `output` when the page is written there, else by absolute file URLs."""
    base = Path(output).resolve().parent if output else None
    marks = {True: "relevant", False: "irrelevant", None: "unknown"}
    sections = []
    for query, group in hits.groupby("query", sort=False):
        found = []
        for hit in group.itertuples():
            file = Path(folder) / hit.file
            source = quote(Path(os.path.relpath(file, base)).as_posix()) if base else file.as_uri()
            found.append(Hit(hit.rank, hit.score, hit.file, source, marks[getattr(hit, "relevant", None)], hit.start_s))
        sections.append((query, [(f"the index's {len(found)} best segments", found)]))
    intro = f"Hits in {folder}: each player starts at its segment." + (
        " Marks from the relevance table." if "relevant" in hits else " No relevance table: ? is unknown."
    )
    return page("Search results", intro, sections)


def format_hits(hits: pd.DataFrame, fmt: str, folder: str = "", output: str | os.PathLike | None = None) -> str:
    if fmt == "table":
        return format_table(hits)
    if fmt == "json":
        return format_json(hits)
    if fmt == "html":
        return format_html(hits, folder, output)
    return hits.to_csv(index=False)
