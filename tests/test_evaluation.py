import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from audioretrieval.evaluate import main as score_command
from audioretrieval.evaluate import score_file
from audioretrieval.metrics import audio_to_text_ranks, multi_positive_ap, own_clip_ranks, retrieval_metrics
from audioretrieval.relevance import RelevanceMismatch, read_relevance, relevance_matrix
from audioretrieval.summary import summary_markdown, summary_table

from test_correspondences import CLIPS, caption_table, member


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


def test_relevance_tables_in_the_dcase_layout(tmp_path):
    path = tmp_path / "metadata_eval.csv"
    pd.DataFrame({"query": ["a dog barks", "rain falls "], "file_names": ["['d1.wav', 'd2.wav']", "r1.wav; r2.wav"]}).to_csv(path, index=False)
    table = read_relevance(path)
    assert sorted(map(tuple, table.to_numpy())) == [("a dog barks", "d1.wav"), ("a dog barks", "d2.wav"),
                                                    ("rain falls", "r1.wav"), ("rain falls", "r2.wav")]
    # one name per row: names may contain ';' (HTML entities)
    pd.DataFrame({"caption": ["a fan"], "relevant_file_name": ["fan &#39;live&#39; 470.wav"]}).to_parquet(tmp_path / "t.parquet")
    assert read_relevance(tmp_path / "t.parquet")["relevant_file_name"].tolist() == ["fan &#39;live&#39; 470.wav"]
    pd.DataFrame({"sentence": ["x"], "file_name": ["y"]}).to_csv(path, index=False)
    with pytest.raises(RelevanceMismatch, match=r"no query column; expected one of \['query', 'caption'\]"):
        read_relevance(path)


def test_relevance_matrix_adds_the_own_clip_and_names_offenders():
    table = pd.DataFrame({"query": ["dog", "dog", "rain"], "relevant_file_name": ["b.wav", "c.wav", "c.wav"]})
    relevant = relevance_matrix(["a.wav", "b.wav", "c.wav"], ["dog", "rain", "wind"], np.array([0, 2, 1]), table)
    assert relevant.tolist() == [[True, True, True], [False, False, True], [False, False, False]]
    bad = pd.DataFrame({"query": ["dog", "cat", "cow"], "relevant_file_name": ["z.wav", "a.wav", "a.wav"]})
    with pytest.raises(RelevanceMismatch) as error:
        relevance_matrix(["a.wav", "b.wav"], ["dog", "rain"], np.array([0, 1]), bad, "eval.csv")
    message = str(error.value)
    assert message.startswith("eval.csv: ") and "2 queries match no caption" in message and "'cat', 'cow'" in message
    assert "1 file names match no clip of the split, e.g. ['z.wav']" in message


def test_scoring_an_embeddings_file_from_the_command_line(tmp_path, capsys):
    audio, text = member(tmp_path / "emb.h5", seed=3)
    captions = caption_table()
    relevance = pd.DataFrame({"caption": [captions["caption"][0]], "relevant_file_name": [CLIPS[5]]})
    relevance.to_parquet(tmp_path / "truth.parquet")
    score_command([str(tmp_path / "emb.h5"), "--metrics", str(tmp_path / "m.json"), "--ranks", str(tmp_path / "r.parquet"),
                   "--relevance", str(tmp_path / "truth.parquet")])
    metrics = json.loads((tmp_path / "m.json").read_text())
    ranks = pd.read_parquet(tmp_path / "r.parquet")
    expected = own_clip_ranks(torch.from_numpy(text @ audio.T), torch.from_numpy(captions["clip_index"].to_numpy().copy()))
    assert ranks["rank"].tolist() == expected.tolist()
    assert metrics["map@10"] == pytest.approx(ranks["ap@10"].mean())
    assert ranks[["file_name", "caption_index", "caption"]].equals(captions[["file_name", "caption_index", "caption"]])
    # only the one annotated caption gets the multi-positive AP: own clip and clip 5 relevant
    assert metrics["multi_positive_queries"] == 1 and metrics["mean_relevant_clips"] == 2
    assert ranks["multi_ap@16"].notna().tolist() == [True] + [False] * (len(captions) - 1)
    assert json.loads(capsys.readouterr().out)["map@10"] == metrics["map@10"]


def test_scoring_a_file_without_caption_texts_says_what_is_missing(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["audio"] = np.zeros((2, 4), np.float32)
        f["text"] = np.zeros((2, 4), np.float32)
    with pytest.raises(KeyError, match="other.h5: no .*'file_name'.*expected an embeddings or targets file"):
        score_file(tmp_path / "other.h5")


def metrics(value):
    return {"map@10": value, "r@1": value / 2, "r@5": value, "r@10": value}


def test_the_summary_lists_every_run_the_seed_mean_and_the_references():
    table = summary_table({"seed1": metrics(0.2), "seed2": metrics(0.3)}, {"all": metrics(0.35)},
                          {"distill": metrics(0.4), "distill-control": metrics(0.38)}, None,
                          [{"model": "paper: stage 1", "map@10": 28.2, "r@1": 17.24, "r@5": 42.31, "r@10": 56.47}])
    assert table["model"].tolist() == ["seed1", "seed2", "stage 1, mean of 2 seeds", "ensemble all", "distill",
                                       "distill-control", "paper: stage 1"]
    mean = table.set_index("model").loc["stage 1, mean of 2 seeds"]
    assert mean["mAP@10"] == pytest.approx(25.0) and mean["mAP@10 sd"] == pytest.approx(np.std([20, 30], ddof=1))
    markdown = summary_markdown(table)
    assert "25.00 ± 7.07" in markdown and "| 28.20" in markdown
