"""Model checkpoints: plain dicts of tensors and values, loaded with torch.load(weights_only=True).

A checkpoint holds everything needed to rebuild the model without the training configuration:
  format_version  1
  model_config    the `model` section of the configuration (audio, text, embed_dim, tau)
  segment_s       audio segment length the model was trained with
  text_hf_config  the Hugging Face config of the text encoder (rebuilt offline from it)
  state_dict      parameters and buffers of the DualEncoder
  epoch, metrics  the epoch (0-based) it was taken after, and its validation metrics
  seed            the run's seed
"""

from __future__ import annotations

import os
import pickle
import re

import torch

from audioretrieval.model.dual_encoder import DualEncoder

FORMAT_VERSION = 1


class CheckpointMismatch(RuntimeError):
    pass


def checkpoint_of(
    model: DualEncoder, model_config: dict, segment_s: float, epoch: int, metrics: dict, seed: int
) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "model_config": model_config,
        "segment_s": float(segment_s),
        "text_hf_config": model.text.hf_config,
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},  # a snapshot
        "epoch": int(epoch),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "seed": int(seed),
    }


def refused_global(exc: pickle.UnpicklingError) -> str:
    """What torch.load(weights_only=True) refused to unpickle, as the file names it (e.g. posix.system)."""
    found = re.search(r"GLOBAL (\S+)", str(exc))
    return found.group(1) if found else str(exc).splitlines()[0]


def read_checkpoint(path: str | os.PathLike) -> dict:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's own message advises weights_only=False, which would run it
        raise CheckpointMismatch(
            f"{path}: holds {refused_global(exc)}, code that unpickling would run, refused: a checkpoint of "
            f"this pipeline holds only tensors and plain values"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format_version") != FORMAT_VERSION:
        raise CheckpointMismatch(f"{path}: not a dual-encoder checkpoint of format {FORMAT_VERSION}")
    return checkpoint


def listed(items: list[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def fit_problems(expected: dict[str, tuple], found: dict[str, tuple], names: dict[str, str] | None = None) -> list[str]:
    """Why tensors `found` (key -> shape) do not load into a model holding `expected` ones: the keys it
    needs that are missing, the keys it does not have, the tensors of another shape; empty when they
    fit. `names`: how to show a found key (e.g. where it came from beside it)."""
    shown = (names or {}).get
    missing = sorted(set(expected) - set(found))
    extra = sorted(shown(k, k) for k in set(found) - set(expected))
    reshaped = sorted(
        f"{shown(k, k)}: {found[k]} in the checkpoint, {expected[k]} in the model"
        for k in set(expected) & set(found)
        if tuple(found[k]) != tuple(expected[k])
    )
    problems = [f"{len(missing)} tensor(s) the model needs are missing: {listed(missing)}"] if missing else []
    problems += [f"{len(extra)} tensor(s) the model does not have: {listed(extra)}"] if extra else []
    return problems + ([f"{len(reshaped)} tensor(s) of another shape: {listed(reshaped)}"] if reshaped else [])


def load_state(model: torch.nn.Module, state_dict: dict, source: str) -> None:
    """Load parameters, failing with a readable message when the architectures differ."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = fit_problems(expected, {k: tuple(v.shape) for k, v in state_dict.items()})
    if problems:
        raise CheckpointMismatch(f"{source}: checkpoint does not fit the model architecture: " + "; ".join(problems))
    model.load_state_dict(state_dict)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[DualEncoder, dict]:
    """Rebuild a DualEncoder from a checkpoint alone (no network, no pretrained weights needed)."""
    checkpoint = read_checkpoint(path)
    model = DualEncoder(
        checkpoint["model_config"], checkpoint["segment_s"], checkpoint["text_hf_config"], load_weights=False
    )
    load_state(model, checkpoint["state_dict"], str(path))
    return model.to(device), checkpoint
