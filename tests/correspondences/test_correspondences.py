import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from embedding_files import CLIPS, caption_table, member

from audioretrieval.correspondences.ensemble import EnsembleTargets, MemberMismatch, build_targets, check_targets_match
from audioretrieval.correspondences.quality import (
    average_precision,
    correspondence_quality,
    quality_table,
    roc_auc,
    truth_matrix,
)
from audioretrieval.correspondences.truth import target_mass, write_oracle_targets
from audioretrieval.data.embeddings import write_embeddings


def test_stored_targets_equal_the_mean_of_the_members_cosines(tmp_path):
    members = [member(tmp_path / f"m{m}.h5", seed=m) for m in range(3)]
    build_targets([str(tmp_path / f"m{m}.h5") for m in range(3)], tmp_path / "targets.h5")
    clip_rows, caption_rows = np.array([4, 0, 4, 2]), np.array([9, 1, 8, 5])  # clip 4 twice: two of its captions
    expected = np.mean([a[clip_rows] @ t[caption_rows].T for a, t in members], axis=0)
    for in_memory in (True, False):
        block = EnsembleTargets(tmp_path / "targets.h5", in_memory=in_memory).block(clip_rows, caption_rows)
        assert block.shape == (4, 4)
        np.testing.assert_allclose(block.numpy(), expected, rtol=1e-5, atol=1e-6)
    with h5py.File(tmp_path / "targets.h5") as f:
        assert f["audio"].shape == (6, 24) and f["text"].shape == (12, 24)  # never clips x captions


def test_members_of_different_sizes_average_their_cosines_and_unnormalised_ones_are_refused(tmp_path):
    small, large = member(tmp_path / "small.h5", 0, dim=8), member(tmp_path / "large.h5", 1, dim=32)
    build_targets([str(tmp_path / "small.h5"), str(tmp_path / "large.h5")], tmp_path / "targets.h5")
    block = EnsembleTargets(tmp_path / "targets.h5").block(np.arange(6), np.arange(12)).numpy()
    np.testing.assert_allclose(block, (small[0] @ small[1].T + large[0] @ large[1].T) / 2, rtol=1e-5, atol=1e-6)
    audio, text = small
    write_embeddings(tmp_path / "raw.h5", audio * 3.0, text, CLIPS, caption_table())  # scaled: not normalised
    with pytest.raises(MemberMismatch, match=r"member .*raw.h5: audio row \d has L2 norm 3; expected normalised"):
        build_targets([str(tmp_path / "small.h5"), str(tmp_path / "raw.h5")], tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


def test_members_must_embed_the_same_clips_and_captions(tmp_path):
    member(tmp_path / "a.h5", 0)
    member(tmp_path / "b.h5", 1, clips=CLIPS[::-1], captions=caption_table(CLIPS))
    with pytest.raises(MemberMismatch, match=r"members .*a.h5 and .*b.h5 do not embed the same clips"):
        build_targets([str(tmp_path / "a.h5"), str(tmp_path / "b.h5")], tmp_path / "t.h5")
    member(tmp_path / "c.h5", 2, captions=caption_table(CLIPS, per_clip=1).assign(clip_index=range(6)))
    with pytest.raises(MemberMismatch, match="same captions"):
        build_targets([str(tmp_path / "a.h5"), str(tmp_path / "c.h5")], tmp_path / "t.h5")
    assert not (tmp_path / "t.h5").exists()


def test_targets_must_describe_the_training_set(tmp_path):
    member(tmp_path / "a.h5", 0)
    build_targets([str(tmp_path / "a.h5")], tmp_path / "t.h5")
    check_targets_match(tmp_path / "t.h5", CLIPS, caption_table())
    with pytest.raises(MemberMismatch, match="other clips than the training set"):
        check_targets_match(tmp_path / "t.h5", CLIPS[:-1] + ["new.wav"], caption_table())


def test_roc_auc_and_average_precision_by_hand_with_ties_whatever_the_input_order():
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    for labels in ([True, False, True, False], [True, True, False, False], [1, 0, 1, 0]):
        # pairs (true, false): (0.9, 0.5) 1, (0.9, 0.1) 1, (0.5, 0.5) 1/2, (0.5, 0.1) 1 -> 3.5 / 4
        assert roc_auc(scores, np.array(labels)) == pytest.approx(0.875)
        # thresholds 0.9 (precision 1, recall 1/2) and 0.5 (precision 2/3, recall 1): the tie is one step
        assert average_precision(scores, np.array(labels)) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


@pytest.mark.parametrize(
    "scores, labels, message",
    [
        ([0.9, np.nan, 0.1], [True, False, False], "1 of 3 scores are NaN or infinite"),
        ([0.9, 0.5, 0.1], [2, 0, 1], r"labels must be true/false or 0/1, found \[0, 1, 2\]"),
        ([0.9, 0.5, 0.1], [False, False, False], "need true and false pairs; found 0 true of 3"),
    ],
)
def test_quality_measures_refuse_what_would_give_a_wrong_number(scores, labels, message):
    for measure in (roc_auc, average_precision):
        with pytest.raises(ValueError, match=message):
            measure(np.array(scores), np.array(labels))


def test_quality_leaves_out_each_captions_own_clip(tmp_path):
    member(tmp_path / "a.h5", 0)
    captions = caption_table()
    truth = pd.DataFrame(
        {
            "file_name": ["clip 0, é.wav", "clip 0, é.wav"],
            "caption_index": [1, 1],
            "relevant_file_name": ["clip 0, é.wav", "clip 3, é.wav"],
        }
    )
    table = quality_table({"m": str(tmp_path / "a.h5")}, truth)
    assert table.loc[0, "true_pairs"] == 1 and table.loc[0, "pairs"] == len(captions) * (len(CLIPS) - 1)
    with pytest.raises(ValueError, match="not in the embeddings"):
        truth_matrix({"file_name": ["x"], "caption_file_name": ["x"], "caption_index": [1]}, truth)
    perfect = correspondence_quality(np.array([[1.0, 0.9, 0.1]]), np.array([[True, True, False]]), np.array([0]))
    assert perfect["roc_auc"] == 1.0 and perfect["average_precision"] == 1.0


def truth_table(pairs):
    captions = caption_table()
    rows = [(captions["file_name"][j], captions["caption_index"][j], CLIPS[c]) for j, c in pairs]
    return pd.DataFrame(rows, columns=["file_name", "caption_index", "relevant_file_name"])


def test_oracle_targets_are_the_truth_and_put_all_mass_on_true_clips(tmp_path):
    captions = caption_table()
    own = [(j, captions["clip_index"][j]) for j in range(len(captions))]
    truth = truth_table(own + [(0, 3), (5, 1)])
    write_oracle_targets(CLIPS, captions, truth, tmp_path / "oracle.h5")
    block = EnsembleTargets(tmp_path / "oracle.h5").block(np.arange(len(CLIPS)), np.arange(len(captions)))
    expected = torch.zeros(len(CLIPS), len(captions))
    for j, c in own + [(0, 3), (5, 1)]:
        expected[c, j] = 1
    assert torch.equal(block, expected)
    mass = target_mass(tmp_path / "oracle.h5", truth, batch_size=8, tau=0.05, batches=50)
    assert mass["false_clips"] < 1e-6 and mass["own_clip"] + mass["other_true_clips"] == pytest.approx(1.0)
    assert mass["other_true_clips"] > 0
