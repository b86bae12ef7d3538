"""What one training run depends on, as plain values (hashed to recognise its own resume state)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class RunSpec:
    """A training run: its seed, the `model` and `train` settings, its data and outputs, and for
    stage 2 the initial checkpoint, the targets and their temperature, and the loss weights."""

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
    loss_weights: dict = field(default_factory=lambda: {"sup": 1.0, "dist": 0.0})

    @property
    def run_dir(self) -> Path:
        return Path(self.best).parent

    @property
    def resume_dir(self) -> Path:
        return self.run_dir / "resume"

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]
