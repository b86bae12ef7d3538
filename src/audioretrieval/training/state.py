"""Reproducibility and resumption: seeding, the random generators' state, and the state of the last
completed epoch kept in `<run_dir>/resume/state.pt` (model, optimizer, scaler, every process's
random state, the log so far, the best validation mAP@10)."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from audioretrieval.files import save_torch_atomically
from audioretrieval.training import distributed
from audioretrieval.training.spec import RunSpec

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    name, keys, position, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Progress:
    """Where a run stands: the first epoch still to train, the log rows so far, the best validation
    score of train.select_by."""

    start_epoch: int = 0
    rows: list = field(default_factory=list)
    best_score: float = -math.inf


def read_state(path) -> dict:
    """A resume state, memory-mapped: every process of a multi-GPU run maps the same pages of the
    file (about 5.3 GB at full size) instead of holding a copy of its own in host memory."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def resume(spec: RunSpec, model, optimizer, scaler) -> Progress:
    """Load the last completed epoch's state into the model, optimizer, scaler and random generators
    when it belongs to this very run (same fingerprint); otherwise start afresh."""
    path = spec.resume_dir / "state.pt"
    if not path.exists():
        return Progress()
    state = read_state(path)
    if state["fingerprint"] != spec.fingerprint():
        log.info("ignoring resume state of a different configuration in %s", spec.resume_dir)
        return Progress()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    rank = distributed.rank()
    set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
    log.info("resuming %s after epoch %d", spec.run_dir, state["epoch"] + 1)
    return Progress(state["epoch"] + 1, state["log"], state["best_score"])


def save_progress(spec: RunSpec, epoch: int, progress: Progress, model, optimizer, scaler) -> None:
    """The state after `epoch` (every process's random state gathered; written by the first)."""
    rng = distributed.gather_objects(rng_state())
    if distributed.rank() == 0:
        save_torch_atomically(
            {
                "fingerprint": spec.fingerprint(),
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng,
                "log": progress.rows,
                "best_score": progress.best_score,
            },
            spec.resume_dir / "state.pt",
        )
