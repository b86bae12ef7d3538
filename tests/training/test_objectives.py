"""The training objectives and the learning-rate schedule, against hand computations of their definitions."""

import math

import pytest
import torch

from audioretrieval.training.losses import contrastive_loss, distillation_loss
from audioretrieval.training.schedule import learning_rate


def test_contrastive_loss_matches_a_hand_computation_with_two_captions_of_one_clip():
    values = [[2.0, 1.0, 0.5], [0.3, 1.5, -1.0], [0.0, 0.2, 3.0]]  # plain floats: the expectation is computed by hand
    logits = torch.tensor(values)
    clip_ids = torch.tensor([7, 7, 9])  # items 0 and 1 are two captions of clip 7 (and its audio twice)
    positives = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2)]

    def log_softmax_column(i, j):  # over audios i for caption j
        return values[i][j] - math.log(sum(math.exp(values[k][j]) for k in range(3)))

    def log_softmax_row(i, j):  # over captions j for audio i
        return values[i][j] - math.log(sum(math.exp(values[i][k]) for k in range(3)))

    expected = -0.5 * (
        sum(log_softmax_column(i, j) for i, j in positives) / 5 + sum(log_softmax_row(i, j) for i, j in positives) / 5
    )
    assert contrastive_loss(logits, clip_ids).item() == pytest.approx(expected, rel=1e-6)


def test_learning_rate_schedule_at_chosen_epochs():
    schedule = dict(lr=2e-5, min_lr=1e-7, warmup_epochs=1, rampdown_start=1, rampdown_stop=15)
    assert learning_rate(0.0, **schedule) == 0.0
    assert learning_rate(0.5, **schedule) == pytest.approx(1e-5)
    assert learning_rate(1.0, **schedule) == pytest.approx(2e-5)
    assert learning_rate(8.0, **schedule) == pytest.approx((2e-5 + 1e-7) / 2)
    assert learning_rate(15.0, **schedule) == pytest.approx(1e-7)
    assert learning_rate(19.9, **schedule) == pytest.approx(1e-7)
    assert learning_rate(4.0, **schedule) > learning_rate(5.0, **schedule) > learning_rate(6.0, **schedule)


def test_distillation_loss_matches_its_definition_in_both_directions():
    logits = torch.tensor([[1.0, 0.2, -0.5], [0.3, 2.0, 0.1], [0.0, 0.4, 1.5]])
    targets = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.5, 1.0], [0.5, 0.5, 2.0]])

    def softmax(values):
        e = [math.exp(v) for v in values]
        return [x / sum(e) for x in e]

    def cross_entropy(logit_rows, target_rows):
        total = 0.0
        for c, t in zip(logit_rows, target_rows):
            p, q = softmax(t), softmax(c)
            total -= sum(pi * math.log(qi) for pi, qi in zip(p, q))
        return total / len(logit_rows)

    rows_c, rows_t = logits.tolist(), targets.tolist()
    cols_c, cols_t = logits.T.tolist(), targets.T.tolist()
    expected = 0.5 * (cross_entropy(rows_c, rows_t) + cross_entropy(cols_c, cols_t))
    over_audios, over_captions = torch.softmax(targets, dim=0), torch.softmax(targets, dim=1)
    assert distillation_loss(logits, over_audios, over_captions).item() == pytest.approx(expected, rel=1e-6)
