"""What one training run depends on, as plain values and its input files' sizes and modification
times (hashed to recognise its own resume state)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class RunSpec:
    """A training run: its seed, the `model` and `train` settings, its data and outputs, and for
    stage 2 the initial checkpoint, the targets, their temperature and rule, and the loss weights."""

    seed: int
    model: dict
    train: dict
    train_audio: str | list[str]  # several: training on their union (stage 1 with train_on all)
    train_captions: str | list[str]
    val_audio: str
    val_captions: str
    best: str
    last: str
    log_table: str
    init_checkpoint: str | None = None
    targets: str | None = None
    target_tau: float | None = None  # temperature of the targets (set wherever targets are)
    target_rule: dict | None = None  # how scores become targets (correspondences.target_rules; None: softmax)
    rule_targets: dict = field(default_factory=dict)  # a rule setting -> the targets file of the ensemble it names
    val_relevance: str | None = None  # the validation split's relevance table (train.select_by multi-positive)
    loss_weights: dict = field(default_factory=lambda: {"sup": 1.0, "dist": 0.0})
    text_states: list[str] = field(default_factory=list)  # a frozen text encoder's states (model.text_states)

    @property
    def run_dir(self) -> Path:
        return Path(self.best).parent

    @property
    def resume_dir(self) -> Path:
        return self.run_dir / "resume"

    def input_files(self) -> list[str]:
        files = [
            self.train_audio,
            self.train_captions,
            self.val_audio,
            self.val_captions,
            self.init_checkpoint,
            self.targets,
            self.text_states,
            list(self.rule_targets.values()),
            self.val_relevance,
        ]
        return [path for item in files if item for path in ([item] if isinstance(item, str) else item)]

    def fingerprint(self) -> str:
        """The settings and the identity of every input file: a rerun after an input changed (a
        retrained initial model, new targets, new data at the same path) starts afresh."""
        stats = {
            path: [os.stat(path).st_size, os.stat(path).st_mtime_ns]
            for path in self.input_files()
            if os.path.exists(path)
        }
        return hashlib.sha256(json.dumps([asdict(self), stats], sort_keys=True).encode()).hexdigest()[:16]
