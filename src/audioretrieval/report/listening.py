"""Pages to look and listen: retrieved clips with an audio player each, marked as the authors' README
marks them: ✔ the caption's own clip, ✔ another clip the relevance annotations (the demo's truth,
DCASE 2025's lists) say it describes, ✘ one they say it does not, ? unknown.

A page is one HTML file: the pipeline's embeds the clips it plays (MP3, each once), a search's
links to the sound files themselves. A small script marks every player whose source cannot be
loaded, so a broken link shows on the page itself.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass

import numpy as np
import soundfile
import torch

from audioretrieval.correspondences.ensemble import check_members_agree
from audioretrieval.data.embeddings import read_similarity
from audioretrieval.data.h5audio import AudioH5
from audioretrieval.evaluation.relevance import match_queries, read_relevance
from audioretrieval.files import write_text_atomically
from audioretrieval.report.pages import spread

MARKS = {
    "own": ("✔", "the caption's own clip"),
    "relevant": ("✔", "annotated as described by the query"),
    "irrelevant": ("✘", "annotated as not described by the query"),
    "unknown": ("?", "not annotated: unknown whether the query describes it"),  # ASCII: ❔ is missing from common fonts
}


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    name: str  # what the page shows: the clip's file name
    source: str  # the audio file, relative to the page
    mark: str  # a key of MARKS
    start_s: float = 0.0


def mark_of(clip: int, own: int | None, relevant: set[int] | None) -> str:
    """How a hit is marked: own clip, annotated relevant or not, or unknown (no annotations)."""
    if clip == own:
        return "own"
    if relevant is None:
        return "unknown"
    return "relevant" if clip in relevant else "irrelevant"


def mp3(samples: np.ndarray, sample_rate: int) -> bytes:
    """A clip as MP3 bytes (every browser plays it): about 40 kbit/s, 150 kB for a 30 s clip."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.8)
    return buffer.getvalue()


_CHECK_SOURCES = """
<script>
const clips = JSON.parse(document.getElementById("clips").textContent);
for (const audio of document.querySelectorAll("audio")) {
  const mark = (state) => { audio.dataset.state = state; if (state === "error") audio.insertAdjacentHTML(
    "afterend", '<span class="broken">cannot play ' + (audio.dataset.clip || audio.getAttribute("src")) + "</span>"); };
  audio.addEventListener("loadedmetadata", () => mark("loaded"));
  audio.addEventListener("error", () => mark("error"));
  const clip = clips[audio.dataset.clip];
  if (audio.dataset.clip) audio.src = clip ? "data:audio/mpeg;base64," + clip : "#missing";
  if (audio.readyState > 0) mark("loaded");
}
</script>
"""
_STYLE = """
<style>
body { font-family: sans-serif; margin: 2em; }
.models { display: flex; flex-wrap: wrap; gap: 0 2em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { padding: 0.25em 0.6em; text-align: left; vertical-align: middle; border-bottom: 1px solid #ddd; }
.own { color: #d95f02; } .relevant { color: #1b9e77; } .irrelevant { color: #b22222; } .unknown { color: #777; }
.broken { color: #b22222; font-weight: bold; }
</style>
"""


def _hit_row(hit: Hit, embedded: bool) -> str:
    symbol, meaning = MARKS[hit.mark]
    start = f" at {hit.start_s:g} s" if hit.start_s else ""
    if embedded:
        player = f'data-clip="{html.escape(hit.source, quote=True)}"'
    else:
        player = f'src="{html.escape(hit.source + (f"#t={hit.start_s:g}" if hit.start_s else ""), quote=True)}"'
    return (
        f'<tr><td>{hit.rank}</td><td class="{hit.mark}" title="{meaning}">{symbol}</td>'
        f"<td>{hit.score:.3f}</td><td>{html.escape(hit.name)}{start}</td>"
        f'<td><audio controls preload="metadata" {player}></audio></td></tr>'
    )


def page(title: str, intro: str, sections: list, clips: dict[str, bytes] | None = None) -> str:
    """An HTML page: per query (sections: [(query, [(model, [Hit])])]) a table of hits per model. With
    `clips` (id -> MP3 bytes) a hit's source is a clip id and the page carries the clips; without, it
    is a URL."""
    legend = " ".join(f'<span class="{k}">{s}</span> {m};' for k, (s, m) in MARKS.items())
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>", f"<p>{legend}</p>"]
    for query, models in sections:
        parts.append(f"<h2>“{html.escape(query)}”</h2>")
        header = "<tr><th>rank</th><th></th><th>score</th><th>clip</th><th>listen</th></tr>"
        tables = [
            f'<div class="model"><h3>{html.escape(model)}</h3><table>{header}'
            f"{''.join(_hit_row(hit, clips is not None) for hit in hits)}</table></div>"
            for model, hits in models
        ]
        parts.append(f'<div class="models">{"".join(tables)}</div>')
    encoded = {key: base64.b64encode(data).decode() for key, data in (clips or {}).items()}
    data = f'<script type="application/json" id="clips">{json.dumps(encoded)}</script>'
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>{_STYLE}</head>\n'
        f"<body>\n{body}\n{data}{_CHECK_SOURCES}</body></html>\n"
    )


def retrieval_examples(
    models: dict[str, str],
    audio_h5: str | os.PathLike,
    relevance: str | os.PathLike | None,
    out_html: str | os.PathLike,
    queries: int,
    top_k: int,
) -> None:
    """The pipeline's listening page: for `queries` evaluation queries spread over the split (over
    the annotated ones where there is a relevance table), each model's `top_k` clips by similarity
    (models: name -> its embeddings file of the evaluation split), the clips embedded in the page."""
    identities = check_members_agree(list(models.values()))  # one split, or an error naming the odd file
    rows, relevant = _query_rows(identities, relevance, queries)
    similarity = {name: read_similarity(path)[torch.from_numpy(rows)] for name, path in models.items()}
    top_k = min(top_k, len(identities["file_name"]))
    sections = []
    for q, row in enumerate(rows):
        own = int(identities["clip_of_caption"][row])
        annotated = None if relevant is None else set(np.flatnonzero(relevant[q].numpy()).tolist())
        hits = [(name, _top_hits(scores[q], identities, own, annotated, top_k)) for name, scores in similarity.items()]
        sections.append((identities["caption"][row], hits))
    annotations = "Marks from the relevance annotations." if relevance else "No relevance annotations: ? is unknown."
    intro = f"{len(rows)} evaluation queries, each model's top {top_k} clips (best weights). {annotations}"
    audio = AudioH5(audio_h5)
    shown = sorted({hit.source for _, models_ in sections for _, hits in models_ for hit in hits})  # clip ids
    clips = {clip: mp3(audio.read(int(clip)), audio.sample_rate) for clip in shown}
    write_text_atomically(page("Listen: retrieval examples", intro, sections, clips), out_html)


def _top_hits(scores: torch.Tensor, identities: dict, own: int, annotated: set[int] | None, top_k: int) -> list[Hit]:
    top = torch.topk(scores, top_k)
    return [
        Hit(
            rank + 1,
            float(score),
            identities["file_name"][clip],
            f"{clip:05d}",
            mark_of(clip, own, annotated),
        )
        for rank, (score, clip) in enumerate(zip(top.values.tolist(), top.indices.tolist()))
    ]


def _query_rows(identities: dict, relevance, count: int) -> tuple[np.ndarray, torch.Tensor | None]:
    """The caption rows of the shown queries and, with annotations, their relevant clips."""
    if not relevance:
        return spread(len(identities["caption"]), count), None
    rows, relevant = match_queries(
        read_relevance(relevance), identities["file_name"], identities["caption"], str(relevance)
    )
    chosen = spread(len(rows), count)
    return rows[chosen], relevant[torch.from_numpy(chosen)]
