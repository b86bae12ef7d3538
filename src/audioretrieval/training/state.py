"""Reproducibility and resumption: seeding, the random generators' state, the state of the last saved
epoch kept in `<run_dir>/resume/state.pt` (model, optimizer, scaler, every process's random state,
the log so far, the best validation score and its epoch) every train.save_every epochs, and the best
epoch's weights in `<run_dir>/resume/best.<epoch>.pt`, written in the background."""

from __future__ import annotations

import logging
import math
import random
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

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
    score of train.select_by and its epoch (0-based; -1 before the first)."""

    start_epoch: int = 0
    rows: list = field(default_factory=list)
    best_score: float = -math.inf
    best_epoch: int = -1


def best_file(resume_dir: Path, epoch: int) -> Path:
    return Path(resume_dir) / f"best.{epoch}.pt"


def best_files(resume_dir: Path) -> dict[int, Path]:
    """The best-epoch checkpoints in a resume folder, by epoch."""
    found = {}
    for path in Path(resume_dir).glob("best.*.pt"):
        match = re.fullmatch(r"best\.(\d+)\.pt", path.name)
        if match:
            found[int(match.group(1))] = path
    return found


class BestWeights:
    """The best epoch's checkpoint, written to resume/best.<epoch>.pt by a background thread while
    training goes on. The resume state names the epoch whose file goes with it (`saved`): that file
    stays until a later state names another, so a run killed at any moment resumes with the best
    weights of the epochs it keeps, and retrains (and re-judges) the rest. At most two files exist."""

    def __init__(self, resume_dir: Path, saved: int = -1):
        self.resume_dir = Path(resume_dir)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="best-weights")
        self._pending: Future | None = None
        self.saved = self.epoch = saved

    def keep(self, checkpoint: dict, epoch: int) -> None:
        """Write `checkpoint` (a snapshot on the host) as the best so far, in the background."""
        self.settled()
        self.epoch = epoch
        self._prune()
        self._pending = self._writer.submit(save_torch_atomically, checkpoint, best_file(self.resume_dir, epoch))

    def settled(self) -> Path | None:
        """The best file, once written (a failed write raises here)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()
        return best_file(self.resume_dir, self.epoch) if self.epoch >= 0 else None

    def saved_with(self, epoch: int) -> None:
        """A resume state naming `epoch` is on disk: the files of other epochs can go."""
        self.saved = epoch
        self._prune()

    def _prune(self) -> None:
        for epoch, path in best_files(self.resume_dir).items():
            if epoch not in (self.saved, self.epoch):
                path.unlink()

    def close(self) -> None:
        self._writer.shutdown(wait=True)


def read_state(path) -> dict:
    """A resume state, memory-mapped: every process of a multi-GPU run maps the same pages of the
    file (about 5.3 GB at full size) instead of holding a copy of its own in host memory."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def resume(spec: RunSpec, model, optimizer, scaler) -> Progress:
    """Load the last saved epoch's state into the model, optimizer, scaler and random generators
    when it belongs to this very run (same fingerprint); otherwise start afresh. Best-epoch files the
    state does not name (written after it, or by another configuration) are removed."""
    path = spec.resume_dir / "state.pt"
    state = read_state(path) if path.exists() else None
    if state is not None and state["fingerprint"] != spec.fingerprint():
        log.info("ignoring resume state of a different configuration in %s", spec.resume_dir)
        state = None
    kept = state.get("best_epoch", -1) if state is not None else -1
    for epoch, best in best_files(spec.resume_dir).items():
        if epoch != kept:
            best.unlink()
    if state is None:
        return Progress()
    if kept >= 0 and not best_file(spec.resume_dir, kept).exists():
        raise FileNotFoundError(
            f"{path} goes with the best weights of epoch {kept + 1} in {best_file(spec.resume_dir, kept)}, "
            f"which is missing: remove {spec.resume_dir} to train this run afresh"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    rank = distributed.rank()
    set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
    log.info("resuming %s after epoch %d", spec.run_dir, state["epoch"] + 1)
    return Progress(state["epoch"] + 1, state["log"], state["best_score"], kept)


def save_progress(
    spec: RunSpec, epoch: int, progress: Progress, model, optimizer, scaler, best: BestWeights | None = None
) -> None:
    """The state after `epoch` (every process's random state gathered; written by the first, once
    the best weights it names are on disk)."""
    rng = distributed.gather_objects(rng_state())
    if distributed.rank() == 0:
        if best is not None:
            best.settled()
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
                "best_epoch": progress.best_epoch,
            },
            spec.resume_dir / "state.pt",
        )
        if best is not None:
            best.saved_with(progress.best_epoch)
