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
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "seed": int(seed),
    }


def read_checkpoint(path: str | os.PathLike) -> dict:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format_version") != FORMAT_VERSION:
        raise CheckpointMismatch(f"{path}: not a dual-encoder checkpoint of format {FORMAT_VERSION}")
    return checkpoint


def load_state(model: torch.nn.Module, state_dict: dict, source: str) -> None:
    """Load parameters, failing with a readable message when the architectures differ."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or reshaped:
        details = []
        if reshaped:
            k = reshaped[0]
            details.append(
                f"{len(reshaped)} tensors differ in shape "
                f"(e.g. {k}: {found[k]} in the checkpoint, {expected[k]} in the model)"
            )
        if missing:
            details.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        raise CheckpointMismatch(f"{source}: checkpoint does not fit the model architecture: " + "; ".join(details))
    model.load_state_dict(state_dict)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[DualEncoder, dict]:
    """Rebuild a DualEncoder from a checkpoint alone (no network, no pretrained weights needed)."""
    checkpoint = read_checkpoint(path)
    model = DualEncoder(
        checkpoint["model_config"], checkpoint["segment_s"], checkpoint["text_hf_config"], load_weights=False
    )
    load_state(model, checkpoint["state_dict"], str(path))
    return model.to(device), checkpoint
