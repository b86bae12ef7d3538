"""Where a job computes and in which precision: the one place these are decided (training picks its
GPU per process in training.distributed)."""

from __future__ import annotations

import contextlib

import torch


class DeviceUnavailable(RuntimeError):
    pass


def choose_device(requested: str | None = None) -> torch.device:
    """`requested` "cpu" or "cuda", or None for a GPU where there is one; a GPU asked for but absent
    raises DeviceUnavailable."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {requested!r}: no CUDA device is available here; use the cpu")
    return device


def job_device(gpus: int) -> torch.device:
    """The device of a pipeline job: a GPU when the job asked for one and one is there, else the CPU
    (a job planned for a GPU still runs on a machine without one)."""
    return choose_device() if gpus else torch.device("cpu")


def resolve_precision(setting: str, device: torch.device) -> str:
    """The precision a run uses on `device`: the setting ('fp16' is the reference code's: Lightning
    precision=16), 'auto' meaning bf16 where the GPU has it, else fp16; always fp32 on a CPU."""
    if device.type != "cuda":
        return "fp32"
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast_for(device: torch.device, precision: str):
    """Autocast context for a precision of 'fp32', 'bf16' or 'fp16'."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor made in the step (tokens) on `device` without blocking: through pinned memory
    to a GPU."""
    if device.type != "cuda":
        return tensor.to(device, non_blocking=True)
    return tensor.pin_memory().to(device, non_blocking=True)  # PyTorch's pinned blocks are cached and reused
