"""Several processes (torchrun) for one run: setup, and gathering a global batch with gradients."""

from __future__ import annotations

import math
import os
from datetime import timedelta

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


TIMEOUT_VARIABLE = "AUDIORETRIEVAL_PROCESS_GROUP_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MIN = 60.0  # not NCCL's 10: the other ranks wait while the first validates and writes checkpoints


def process_group_timeout() -> timedelta:
    """How long a rank waits for the others at a collective: $AUDIORETRIEVAL_PROCESS_GROUP_TIMEOUT_MIN
    minutes, or an hour."""
    value = os.environ.get(TIMEOUT_VARIABLE, "")
    try:
        minutes = float(value) if value else DEFAULT_TIMEOUT_MIN
    except ValueError:
        minutes = math.nan
    if not minutes > 0 or math.isinf(minutes):
        raise ValueError(f"{TIMEOUT_VARIABLE}={value!r}: expected a positive number of minutes")
    return timedelta(minutes=minutes)


def setup() -> torch.device:
    """Join the process group when started by torchrun; returns this process's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=process_group_timeout())
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        torch.backends.cuda.matmul.allow_tf32 = True  # what fp32 matmuls remain outside autocast, on tensor cores
        torch.backends.cudnn.allow_tf32 = True
        return torch.device("cuda", local)
    return torch.device("cpu")


GRADIENT_COMPRESSIONS = ("none", "bf16")  # train.gradient_compression


def wrapped(model: torch.nn.Module, device: torch.device, compression: str = "none") -> torch.nn.Module:
    """The model as the training step calls it: in DistributedDataParallel under torchrun, its
    gradients averaged in fp32 or, with `compression` bf16, sent as bfloat16 (half the traffic)."""
    if compression not in GRADIENT_COMPRESSIONS:
        raise ValueError(f"train.gradient_compression {compression!r}: expected one of {GRADIENT_COMPRESSIONS}")
    if world_size() == 1:
        return model
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if compression == "bf16":
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        ddp.register_comm_hook(None, default_hooks.bf16_compress_hook)
    return ddp


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient of the gathered tensor and returns
    this rank's slice: every rank computes the loss of the whole global batch."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rows = tensor.shape[0]
        return gather(tensor.contiguous())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[rank() * ctx.rows : (rank() + 1) * ctx.rows]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's tensor (rank order); gradients flow back to each rank's own part."""
    if world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def gather(tensor: torch.Tensor) -> torch.Tensor:
    if world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor)
    return torch.cat(parts, dim=0)


def gather_objects(obj) -> list:
    """Every rank's picklable `obj`, in rank order ([obj] in a single process)."""
    if world_size() == 1:
        return [obj]
    objects = [None] * world_size()
    dist.all_gather_object(objects, obj)
    return objects


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
