"""The learning-rate schedule by fractional epoch: linear warm-up, cosine ramp-down, constant floor."""

from __future__ import annotations

import math


def learning_rate(
    epoch: float, lr: float, min_lr: float, warmup_epochs: float, rampdown_start: float, rampdown_stop: float
) -> float:
    """lr at fractional epoch `epoch` (0 = start of training).

    0 -> lr linearly over the warm-up; lr until rampdown_start; cosine from lr to min_lr between
    rampdown_start and rampdown_stop; min_lr afterwards.
    """
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    if epoch < rampdown_start:
        return lr
    if epoch < rampdown_stop:
        progress = (epoch - rampdown_start) / (rampdown_stop - rampdown_start)
        return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    return min_lr
