"""The pages to look and listen: the marks of every hit, the clips they play, and a real browser
playing them (tests/browser.py: a headless Chromium, installed with apt-get where missing)."""

import base64
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import soundfile
from browser import rendered_dom, screenshot
from embedding_files import CLIPS, caption_table, member
from system_packages import Unavailable

from audioretrieval.data.h5audio import AudioH5Writer
from audioretrieval.report.listening import MARKS, Hit, page, retrieval_examples


@pytest.fixture
def split(tmp_path):
    """Two models' evaluation embeddings of six clips (two captions each) and the clips' audio."""
    models = {name: str(tmp_path / f"{name}.h5") for name in ("model a", "model b")}
    for seed, path in enumerate(models.values()):
        member(path, seed)
    with AudioH5Writer(tmp_path / "audio.h5", 32000, "int16") as writer:
        for i, name in enumerate(CLIPS):
            writer.append(name, 0.3 * np.sin(np.arange(16000) * 0.05 * (i + 1)).astype(np.float32), 0.5)
    return models, tmp_path / "audio.h5"


def marks(page: str) -> list[tuple[str, str]]:
    """(mark class, clip name) of every hit on a page, in order."""
    return re.findall(
        r'<td class="(own|relevant|irrelevant|unknown)"[^>]*>.*?</td><td>[^<]*</td><td>([^<]*)</td>', page
    )


def test_every_hit_is_marked_by_the_annotations_and_plays_its_own_clip(tmp_path, split):
    models, audio = split
    captions = caption_table()
    truth = pd.DataFrame(
        list(zip(captions["caption"], captions["file_name"])) + [(captions["caption"][0], CLIPS[3])],
        columns=["query", "relevant_file_name"],
    )
    truth.to_parquet(tmp_path / "truth.parquet")
    retrieval_examples(models, audio, tmp_path / "truth.parquet", tmp_path / "listen.html", queries=3, top_k=6)
    page = (tmp_path / "listen.html").read_text()
    found = marks(page)
    assert len(found) == 3 * 2 * 6  # queries x models x top_k
    first_query = found[:6]  # the first caption, describing its own clip 0 and, annotated, clip 3
    assert sorted(first_query) == sorted(
        [("own", "clip 0, é.wav"), ("relevant", "clip 3, é.wav")]
        + [("irrelevant", f"clip {i}, é.wav") for i in (1, 2, 4, 5)]
    )
    clips = json.loads(re.search(r'<script type="application/json" id="clips">(.*?)</script>', page).group(1))
    played = set(re.findall(r'<audio [^>]*data-clip="([^"]+)"', page))
    assert played == set(clips) and len(played) == 6  # every clip the page plays is in it, once
    assert all(base64.b64decode(clip).startswith((b"ID3", b"\xff\xfb", b"\xff\xf3")) for clip in clips.values())  # MP3
    retrieval_examples(models, audio, None, tmp_path / "plain.html", queries=2, top_k=2)
    assert {mark for mark, _ in marks((tmp_path / "plain.html").read_text())} <= {"own", "unknown"}
    retrieval_examples(models, audio, None, tmp_path / "few.html", queries=1, top_k=2)
    few = (tmp_path / "few.html").read_text()
    clips = json.loads(re.search(r'<script type="application/json" id="clips">(.*?)</script>', few).group(1))
    assert len(clips) < len(CLIPS)
    for clip, data in clips.items():  # each embedded clip is the named clip's audio: its tone
        samples, rate = soundfile.read(io.BytesIO(base64.b64decode(data)))
        peak = np.argmax(np.abs(np.fft.rfft(samples))) * rate / len(samples)
        assert peak == pytest.approx(0.05 * (int(clip) + 1) * rate / (2 * np.pi), rel=0.03), clip


@pytest.mark.slow
def test_a_browser_plays_every_clip_and_the_page_flags_one_it_cannot_load(tmp_path, split):
    models, audio = split
    retrieval_examples(models, audio, None, tmp_path / "listen.html", queries=2, top_k=3)
    page = tmp_path / "listen.html"
    try:
        dom = rendered_dom(page)
    except Unavailable as exc:
        pytest.skip(f"no headless browser here: {exc}")
    assert dom.count('data-state="loaded"') == dom.count("<audio") == 2 * 2 * 3
    text = page.read_text()
    missing = re.search(r'data-clip="([^"]+)"', text).group(1)
    page.write_text(re.sub(rf'"{missing}": "[^"]*", ?', "", text))  # the page without that clip's audio
    dom = rendered_dom(page)
    assert 'data-state="error"' in dom and f"cannot play {missing}" in dom
    assert screenshot(page, tmp_path / "listen.png").stat().st_size > 0


class _Cells(HTMLParser):
    """The text of every table cell of a page, as a browser shows it (entities decoded once)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cells, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "td":
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_names_are_shown_as_they_are_escaped_once_and_every_mark_is_plain_text():
    """A name holding "&" shows "&"; one holding the text "&amp;" (as some of ClothoV2's file names
    do, and the demo's) shows "&amp;". The marks are characters every font has, or the dingbats
    ✔ ✘ that DejaVu carries; no emoji (❔ rendered as an empty box in headless Chromium)."""
    names = ["Mühle & friends 458.wav", "Mühle &amp; friends 458.wav", "<b>bold</b> 'quoted\".wav"]
    hits = [Hit(i + 1, 0.5, name, f"clip{i}.mp3", mark) for i, (name, mark) in enumerate(zip(names, MARKS))]
    parser = _Cells()
    parser.feed(page("t", "i", [("a query", [("model", hits)])]))
    shown = parser.cells[3::5]  # rank, mark, score, name, player
    assert shown == names
    assert parser.cells[1::5] == [symbol for symbol, _ in MARKS.values()][: len(names)]
    assert all(symbol.isascii() or symbol in "✔✘" for symbol, _ in MARKS.values())
