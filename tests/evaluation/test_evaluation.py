import ast
import json
import unicodedata

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from embedding_files import CLIPS, caption_table, member

from audioretrieval.data.embeddings import write_embeddings
from audioretrieval.evaluation.metrics import (
    NonFiniteSimilarity,
    audio_to_text_ranks,
    multi_positive_ap,
    own_clip_ranks,
    retrieval_metrics,
)
from audioretrieval.evaluation.relevance import RelevanceMismatch, match_queries, read_relevance
from audioretrieval.evaluation.score import main as score_command
from audioretrieval.evaluation.score import score_file


def test_retrieval_metrics_on_a_hand_made_ranking():
    similarity = torch.tensor([[0.9, 0.1, 0.2], [0.5, 0.4, 0.6], [0.1, 0.2, 0.3]])
    ranks = own_clip_ranks(similarity, torch.tensor([0, 0, 1]))
    assert ranks.tolist() == [1, 2, 2]
    metrics = retrieval_metrics(ranks)
    assert metrics["map@10"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert metrics["r@1"] == pytest.approx(1 / 3) and metrics["r@5"] == 1.0


def test_ties_count_against_the_own_clip():
    similarity = torch.tensor([[0.5, 0.5, 0.5], [0.2, 0.7, 0.7]])
    assert own_clip_ranks(similarity, torch.tensor([0, 1])).tolist() == [3, 2]


def test_a_caption_whose_clip_ranks_eleventh_scores_zero_in_map_at_10():
    similarity = torch.arange(20, 0, -1, dtype=torch.float32).unsqueeze(0)  # clip 0 first ... clip 19 last
    for own, expected_rank, expected_ap in ((9, 10, 0.1), (10, 11, 0.0)):
        ranks = own_clip_ranks(similarity, torch.tensor([own]))
        assert ranks.tolist() == [expected_rank]
        assert retrieval_metrics(ranks)["map@10"] == pytest.approx(expected_ap)
        assert retrieval_metrics(ranks)["r@10"] == (1.0 if expected_rank <= 10 else 0.0)


def test_audio_to_text_rank_is_that_of_the_best_own_caption():
    # captions 0, 1 belong to clip 0; caption 2 to clip 1
    similarity = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.4]])
    ranks = audio_to_text_ranks(similarity, torch.tensor([0, 0, 1]))
    assert ranks.tolist() == [1, 2]  # clip 0: caption 1 first; clip 1: caption 0 (0.9) above caption 2 (0.4)


def direct_multi_positive_ap(scores: list[float], relevant: set[int], k: int) -> float:
    """The definition, one query at a time: rank clips by score (ties: non-relevant first, then by row)."""
    order = sorted(range(len(scores)), key=lambda c: (-scores[c], c in relevant, c))
    total, hits = 0.0, 0
    for rank, clip in enumerate(order[:k], start=1):
        if clip in relevant:
            hits += 1
            total += hits / rank
    return total / len(relevant)


def test_multi_positive_ap_by_hand():
    similarity = torch.tensor([[0.9, 0.8, 0.7, 0.6]])
    relevant = torch.tensor([[True, False, True, False]])
    assert multi_positive_ap(similarity, relevant, 16)[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert multi_positive_ap(similarity, relevant, 2)[0] == pytest.approx((1 / 1) / 2)  # the second is cut off


def test_multi_positive_ap_matches_its_definition_ties_included():
    rng = np.random.default_rng(0)
    similarity = torch.from_numpy(rng.integers(0, 6, size=(40, 30)).astype(np.float32))  # many ties
    relevant = torch.from_numpy(rng.random((40, 30)) < 0.15)
    relevant[torch.arange(40), torch.from_numpy(rng.integers(0, 30, 40))] = True
    for k in (16, 10, 3):
        fast = multi_positive_ap(similarity, relevant, k)
        for q in range(40):
            expected = direct_multi_positive_ap(similarity[q].tolist(), set(np.flatnonzero(relevant[q].numpy())), k)
            assert fast[q] == pytest.approx(expected)


def test_multi_positive_ap_with_one_relevant_clip_is_the_reciprocal_rank():
    torch.manual_seed(0)
    similarity = torch.rand(50, 20)
    own = torch.randint(0, 20, (50,))
    relevant = torch.zeros(50, 20, dtype=torch.bool)
    relevant[torch.arange(50), own] = True
    ranks = own_clip_ranks(similarity, own).double()
    assert np.allclose(multi_positive_ap(similarity, relevant, 10), torch.where(ranks <= 10, 1 / ranks, 0).numpy())


def dcase2025_baseline_map(C: torch.Tensor, captions: np.ndarray, paths: np.ndarray, metadata_csv, k: int) -> float:
    """The DCASE 2025 Task 6 multi-positive mAP@k, transcribed from the baseline
    (CPJKU/dcase2025_task6_baseline, d25_t6/retrieval_module.py, on_validation_epoch_end): the oracle."""
    matched_files = pd.read_csv(metadata_csv)
    matched_files["audio_filenames"] = matched_files["audio_filenames"].transform(lambda x: ast.literal_eval(x))

    def get_ranks(c, r):
        return [i.item() for i in torch.argsort(torch.argsort(-c))[r]]

    matched_files["query_index"] = matched_files["query"].transform(lambda x: captions.tolist().index(x))
    matched_files["new_audio_indices"] = matched_files["audio_filenames"].transform(
        lambda x: [paths.tolist().index(y) for y in x]
    )
    matched_files["TP_ranks"] = matched_files.apply(
        lambda row: get_ranks(C[row["query_index"]], row["new_audio_indices"]), axis=1
    )

    def average_precision_at_k(relevant_ranks, k=10):
        relevant_ranks = sorted(relevant_ranks)
        ap = 0.0
        for i, rank in enumerate(relevant_ranks, start=1):
            if rank >= k:
                break
            ap += i / (rank + 1)
        return ap / len(relevant_ranks)

    return matched_files["TP_ranks"].apply(lambda ranks: average_precision_at_k(ranks, k)).mean()


# file names as ClothoV2 spells them: spaces, commas, quotes, HTML entities, non-ASCII
REAL_NAMES = [
    "bird_in_rain.wav",
    "Pensol - le Moulin cours d&#39;eau.wav",
    "water, stream 2.wav",
    "Small watetfall.wav",
    'the "quote" take.wav',
    "Café terrace, n°3.wav",
    "rain's loop.wav",
    "20091217.17.fountain.wav",
]


def embeddings_in_the_real_layout(path, rng, clips=40, per_clip=5):
    names = REAL_NAMES + [f"clip {i}, take &amp; more.wav" for i in range(clips - len(REAL_NAMES))]
    clip_of_caption = np.repeat(np.arange(clips), per_clip)
    texts = [f"Caption {j} of a recording, with 'quotes' and commas." for j in range(clips * per_clip)]
    texts[7] = texts[3]  # a text that two captions share: the query takes the first
    table = pd.DataFrame(
        {
            "file_name": [names[c] for c in clip_of_caption],
            "clip_index": clip_of_caption,
            "caption_index": np.tile(np.arange(1, per_clip + 1), clips),
            "caption": texts,
        }
    )
    audio = rng.standard_normal((clips, 8)).astype(np.float32)
    text = rng.standard_normal((clips * per_clip, 8)).astype(np.float32)
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    write_embeddings(path, audio, text, names, table)
    return names, table, audio, text


def test_dcase2025_map_equals_the_baselines_on_a_file_in_the_published_layout(tmp_path):
    rng = np.random.default_rng(7)
    names, table, audio, text = embeddings_in_the_real_layout(tmp_path / "embeddings.h5", rng)
    rows = []
    for j in rng.choice(len(table), 60, replace=False):
        if j == 7:
            continue  # its text is caption 3's: no query twice, as in the published file
        own = table["file_name"][j]
        others = [n for n in rng.choice(names, rng.integers(1, 12), replace=False) if n != own]
        relevant = others + ([own] if rng.random() < 0.5 or not others else [])  # some rows without the own clip
        rows.append((table["caption"][j], str([str(n) for n in rng.permutation(relevant)])))
    metadata = tmp_path / "metadata_eval.csv"
    pd.DataFrame(rows, columns=["query", "audio_filenames"]).to_csv(metadata, index=False)
    assert metadata.read_text().splitlines()[0] == "query,audio_filenames"
    assert "d&#39;eau.wav" in metadata.read_text() and "\"['" in metadata.read_text()  # list literals, quoted cells

    score_command(
        [
            str(tmp_path / "embeddings.h5"),
            "--metrics",
            str(tmp_path / "m.json"),
            "--ranks",
            str(tmp_path / "r.parquet"),
            "--relevance",
            str(metadata),
        ]
    )
    metrics = json.loads((tmp_path / "m.json").read_text())
    C = torch.from_numpy(text @ audio.T)
    captions, paths = table["caption"].to_numpy(), np.asarray(names)
    for k in (16, 10):
        assert metrics[f"dcase2025_map@{k}"] == pytest.approx(
            dcase2025_baseline_map(C, captions, paths, metadata, k), abs=1e-12
        )
    assert metrics["dcase2025_queries"] == len(rows)
    ranks = pd.read_parquet(tmp_path / "r.parquet")
    assert ranks["dcase2025_ap@16"].notna().sum() == len(rows)  # one caption per query


def test_relevance_tables_in_the_published_and_the_long_layout(tmp_path):
    path = tmp_path / "metadata_eval.csv"
    pd.DataFrame(
        {
            "query": ["a dog barks", "rain falls"],
            "audio_filenames": ["['d1.wav', 'fan &#39;live&#39;; 470.wav']", "['r1.wav']"],
        }
    ).to_csv(path, index=False)
    table = read_relevance(path)
    assert table["query"].tolist() == ["a dog barks", "rain falls"]
    assert table["relevant"].tolist() == [["d1.wav", "fan &#39;live&#39;; 470.wav"], ["r1.wav"]]
    # one (query, file) pair per row, as the demo's truth: gathered per query
    pd.DataFrame(
        {"caption": ["a fan", "a hum", "a fan"], "relevant_file_name": ["f1.wav", "h.wav", "f2.wav"]}
    ).to_parquet(tmp_path / "t.parquet")
    assert read_relevance(tmp_path / "t.parquet")["relevant"].tolist() == [["f1.wav", "f2.wav"], ["h.wav"]]


@pytest.mark.parametrize(
    "table, message",
    [
        ({"sentence": ["x"], "file_name": ["y"]}, r"expected a query column \['query', 'caption'\]"),
        (
            {"query": ["x", "x"], "audio_filenames": ["['a.wav']", "['b.wav']"]},
            r"1 queries appear in more than one row, e.g. \['x'\]",
        ),
        ({"query": ["x"], "audio_filenames": ["a.wav, b.wav"]}, r"row 1: expected a list literal of file names"),
        ({"query": ["x"], "audio_filenames": ["[]"]}, r"row 1: expected a non-empty list of file names"),
    ],
)
def test_malformed_relevance_tables_fail_naming_file_row_and_expectation(tmp_path, table, message):
    pd.DataFrame(table).to_csv(tmp_path / "eval.csv", index=False)
    with pytest.raises(RelevanceMismatch, match="eval.csv.*" + message):
        read_relevance(tmp_path / "eval.csv")


def test_queries_match_their_first_caption_and_offenders_are_named():
    table = pd.DataFrame({"query": ["dog", "rain"], "relevant": [["b.wav", "c.wav"], ["c.wav"]]})
    rows, relevant = match_queries(table, ["a.wav", "b.wav", "c.wav"], ["wind", "dog", "rain", "dog"])
    assert rows.tolist() == [1, 2]
    assert relevant.tolist() == [[False, True, True], [False, False, True]]  # the own clip is not added
    bad = pd.DataFrame({"query": ["dog", "cat", "cow"], "relevant": [["z.wav"], ["a.wav"], ["a.wav"]]})
    with pytest.raises(RelevanceMismatch) as error:
        match_queries(bad, ["a.wav", "b.wav"], ["dog", "rain"], "eval.csv")
    message = str(error.value)
    assert message.startswith("eval.csv: ") and "2 queries match no caption" in message and "'cat', 'cow'" in message
    assert "1 file names match no clip of the split, e.g. ['z.wav']" in message


def test_names_and_queries_match_whatever_their_unicode_normal_form(tmp_path):
    decomposed = unicodedata.normalize("NFD", "Café naïve.wav")
    pd.DataFrame({"query": [unicodedata.normalize("NFD", "a café")], "audio_filenames": [str([decomposed])]}).to_csv(
        tmp_path / "eval.csv", index=False
    )
    rows, relevant = match_queries(
        read_relevance(tmp_path / "eval.csv"),
        [unicodedata.normalize("NFC", "Café naïve.wav")],
        [unicodedata.normalize("NFC", "a café")],
    )
    assert rows.tolist() == [0] and relevant.tolist() == [[True]]


def test_scoring_an_embeddings_file_from_the_command_line(tmp_path, capsys):
    audio, text = member(tmp_path / "emb.h5", seed=3)
    captions = caption_table()
    relevance = pd.DataFrame({"caption": [captions["caption"][0]], "relevant_file_name": [CLIPS[5]]})
    relevance.to_parquet(tmp_path / "truth.parquet")
    score_command(
        [
            str(tmp_path / "emb.h5"),
            "--metrics",
            str(tmp_path / "m.json"),
            "--ranks",
            str(tmp_path / "r.parquet"),
            "--relevance",
            str(tmp_path / "truth.parquet"),
        ]
    )
    metrics = json.loads((tmp_path / "m.json").read_text())
    ranks = pd.read_parquet(tmp_path / "r.parquet")
    expected = own_clip_ranks(
        torch.from_numpy(text @ audio.T), torch.from_numpy(captions["clip_index"].to_numpy().copy())
    )
    assert ranks["rank"].tolist() == expected.tolist()
    assert metrics["map@10"] == pytest.approx(ranks["ap@10"].mean())
    assert ranks[["file_name", "caption_index", "caption"]].equals(captions[["file_name", "caption_index", "caption"]])
    # only the one query gets the DCASE 2025 AP, with exactly the one listed clip relevant
    assert metrics["dcase2025_queries"] == 1 and metrics["mean_relevant_clips"] == 1
    assert ranks["dcase2025_ap@16"].notna().tolist() == [True] + [False] * (len(captions) - 1)
    assert json.loads(capsys.readouterr().out)["map@10"] == metrics["map@10"]


def test_scoring_a_file_without_caption_texts_says_what_is_missing(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["audio"] = np.zeros((2, 4), np.float32)
        f["text"] = np.zeros((2, 4), np.float32)
    with pytest.raises(KeyError, match="other.h5: no .*'file_name'.*expected an embeddings or targets file"):
        score_file(tmp_path / "other.h5")


def test_nan_similarities_are_refused_rather_than_ranked_first():
    similarity = torch.tensor([[float("nan"), 0.2], [0.1, 0.9]])
    with pytest.raises(
        NonFiniteSimilarity, match=r"1 similarities of 1 captions \(e.g. rows \[0\]\) are NaN or infinite"
    ):
        own_clip_ranks(similarity, torch.tensor([0, 1]))
    with pytest.raises(NonFiniteSimilarity):
        multi_positive_ap(similarity, torch.tensor([[True, False], [False, True]]), 10)
