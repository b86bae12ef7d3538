"""The model of a search: loaded from a checkpoint, identified by the digest of the checkpoint's bytes."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from audioretrieval.files import file_digest
from audioretrieval.model.checkpoint import load_model
from audioretrieval.model.dual_encoder import DualEncoder
from audioretrieval.search.store import SearchError


def checkpoint_digest(path: str | os.PathLike) -> str:
    if not Path(path).is_file():
        raise SearchError(f"{path}: no such checkpoint file; expected a best.pt or last.pt written by training")
    return file_digest(path, "sha256")


def load_search_model(path: str | os.PathLike, device: torch.device) -> tuple[DualEncoder, dict]:
    """The dual encoder of a checkpoint in evaluation mode, and the checkpoint's contents."""
    try:
        model, checkpoint = load_model(path, device)
    except Exception as exc:  # torch.load's errors on foreign files are of many kinds
        raise SearchError(
            f"{path}: not a usable checkpoint of this pipeline ({type(exc).__name__}: {exc}); "
            f"expected a best.pt or last.pt written by training"
        ) from exc
    check_finite_weights(path, checkpoint["state_dict"])
    return model.eval(), checkpoint


def check_finite_weights(path: str | os.PathLike, state_dict: dict[str, torch.Tensor]) -> None:
    """Refuse a checkpoint with a NaN or inf weight: every score of its model would be NaN."""
    bad = [key for key, value in state_dict.items() if value.is_floating_point() and not value.isfinite().all()]
    if bad:
        raise SearchError(
            f"{path}: weight {bad[0]}"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
            + " holds NaN or inf values (numbers that are not numbers): its model cannot score anything; "
            "use another checkpoint"
        )


def check_same_checkpoint(
    index_path: str | os.PathLike, identity: dict, checkpoint: str | os.PathLike, digest: str
) -> None:
    """Refuse to compare an index's embeddings with another model's."""
    if identity["checkpoint_sha256"] != digest:
        raise SearchError(
            f"{index_path} was built with checkpoint {identity['checkpoint']} (sha256 "
            f"{identity['checkpoint_sha256'][:12]}), not with {checkpoint} (sha256 {digest[:12]}): embeddings of "
            f"different models cannot be compared. Use that checkpoint, or index the folder with this one into "
            f"another --index file."
        )


def recorded_checkpoint(index_path: str | os.PathLike, identity: dict) -> Path:
    """The checkpoint an index was built with, found by the path the index recorded; its digest is
    checked by check_same_checkpoint."""
    path = Path(identity["checkpoint"])
    if not path.is_file():
        raise SearchError(
            f"{index_path} was built with checkpoint {identity['checkpoint']}, which is no longer there (moved or "
            f"deleted): pass --checkpoint with its new path (its sha256 must be {identity['checkpoint_sha256'][:12]}…)"
        )
    return path
