"""Counting, on a CPU, what in a training step would make a GPU wait for the host or the host for the GPU.

A step on a GPU should only queue work: the host reads a value back (`.item()`, `.tolist()`,
`bool(t)`, `.cpu()`), runs an operation whose output size depends on the data (boolean-mask
indexing, `nonzero`, `unique`), or copies host memory to the device with a blocking copy, and the
queue drains. On a CPU nothing waits, so the audit tracks where each tensor would live on a GPU
instead: the batch as the loader gives it and what the step makes on the host (a factory without a
`device=`, `torch.tensor`, a tokenizer's output) are host tensors, everything else (the model, the
optimizer's state, the targets, and what is computed from them) device tensors. Each read-back,
data-dependent operation, blocking copy or host tensor handed to a device operation is recorded
with the line of the project's (or a library's) code that did it. On a GPU,
`torch.cuda.set_sync_debug_mode` is the same check done by CUDA itself (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakIdKeyDictionary

aten = torch.ops.aten

# Operations whose output size or value the host must read from the device before going on.
DATA_DEPENDENT = {
    aten._local_scalar_dense.default: "reads a value back (.item(), bool(), int(), float())",
    aten.is_nonzero.default: "reads a value back (bool())",
    aten.equal.default: "reads a value back (torch.equal)",
    aten.nonzero.default: "nonzero: its size depends on the data",
    aten.masked_select.default: "masked_select: its size depends on the data",
    aten._unique2.default: "unique: its size depends on the data",
    aten.unique_dim.default: "unique: its size depends on the data",
    aten.unique_consecutive.default: "unique: its size depends on the data",
    aten.repeat_interleave.Tensor: "repeat_interleave without output_size: its size depends on the data",
}
INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}
READ_BACK_METHODS = {
    torch.Tensor.cpu: ".cpu()",
    torch.Tensor.numpy: ".numpy()",
    torch.Tensor.tolist: ".tolist()",
}
HOST_FACTORIES = {torch.tensor, torch.as_tensor, torch.from_numpy}  # host tensors unless given a device
MADE_ON_A_DEVICE = {
    torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.linspace, torch.eye,
    torch.rand, torch.randn, torch.randint, torch.randperm, torch.normal, torch.tensor, torch.as_tensor,
}  # fmt: skip
AUDIT_FILES = (__file__,)


@dataclass(frozen=True)
class HostSync:
    """One place a step would wait: what happened, and the innermost line outside torch that did it."""

    what: str
    where: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def caller() -> str:
    """The innermost frame of the stack outside torch itself and this module, as `file:line (function)`."""
    for frame in reversed(traceback.extract_stack()):
        path = frame.filename.replace("\\", "/")
        if "/torch/" in path or path in AUDIT_FILES or "<" in path:
            continue
        return f"{path}:{frame.lineno} ({frame.name})"
    return "?"


def _tensors(tree) -> list[torch.Tensor]:
    return [leaf for leaf in torch.utils._pytree.tree_leaves(tree) if isinstance(leaf, torch.Tensor)]


class _Places:
    """Which tensors live on the host; every other tensor lives on the device."""

    def __init__(self, host: list[torch.Tensor]):
        self.host = WeakIdKeyDictionary()
        for tensor in host:
            self.mark_host(tensor)

    def mark_host(self, tensor: torch.Tensor) -> None:
        self.host[tensor] = True

    def mark_device(self, tensor: torch.Tensor) -> None:
        self.host.pop(tensor, None)

    def on_host(self, tensor: torch.Tensor) -> bool:
        return tensor in self.host


class _FunctionLevel(TorchFunctionMode):
    """Sees the calls as the code wrote them: whether a factory was given a device, copies to the
    device (blocking or not), and read-backs that do not reach the dispatcher."""

    def __init__(self, places: _Places, found: list[HostSync]):
        super().__init__()
        self.places, self.found = places, found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        inputs = _tensors((args, kwargs))
        if func in READ_BACK_METHODS and not self.places.on_host(args[0]):
            self.found.append(HostSync(f"{READ_BACK_METHODS[func]} copies a device tensor to the host", caller()))
            for tensor in _tensors(result):
                self.places.mark_host(tensor)
        elif func in (torch.Tensor.to, torch.Tensor.cuda) and isinstance(result, torch.Tensor) and _moves(args, kwargs):
            if self.places.on_host(args[0]) and not _non_blocking(args, kwargs):
                self.found.append(HostSync("a blocking host-to-device copy (.to without non_blocking=True)", caller()))
            self.places.mark_device(result)
        elif func in HOST_FACTORIES and "device" not in kwargs:
            for tensor in _tensors(result):
                self.places.mark_host(tensor)
        elif func in MADE_ON_A_DEVICE and not inputs:
            for tensor in _tensors(result):
                (self.places.mark_device if "device" in kwargs else self.places.mark_host)(tensor)
        return result


def _moves(args, kwargs) -> bool:
    """A `.to(...)` that names a device (not only a dtype)."""
    if "device" in kwargs:
        return True
    return any(isinstance(a, (torch.device, str)) or (isinstance(a, int) and not isinstance(a, bool)) for a in args[1:])


def _non_blocking(args, kwargs) -> bool:
    return bool(kwargs.get("non_blocking", any(a is True for a in args[1:] if isinstance(a, bool))))


class _DispatchLevel(TorchDispatchMode):
    """Sees every operation, the backward pass's included: which need the host to read device
    memory, and which mix host tensors into device work."""

    def __init__(self, places: _Places, found: list[HostSync]):
        super().__init__()
        self.places, self.found = places, found

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = _tensors((args, kwargs))
        result = func(*args, **kwargs)
        device_inputs = [t for t in inputs if not self.places.on_host(t)]
        outputs = _tensors(result)
        if not inputs:
            return result  # a factory: placed by _FunctionLevel (a device one when not seen there)
        if not device_inputs:
            for tensor in outputs:
                self.places.mark_host(tensor)
            return result
        node = torch._C._current_autograd_node()
        during = f" (in the backward pass, {node.name()})" if node is not None else ""
        if func in DATA_DEPENDENT:
            self.found.append(HostSync(DATA_DEPENDENT[func] + during, caller()))
        elif func in INDEXING and any(t.dtype in (torch.bool, torch.uint8) for t in _tensors(args[1:2])):
            self.found.append(
                HostSync(f"boolean-mask indexing ({func}): its size depends on the data{during}", caller())
            )
        hosted = [t for t in inputs if self.places.on_host(t) and t.dim() > 0]
        if hosted:
            shapes = ", ".join(str(tuple(t.shape)) for t in hosted)
            self.found.append(HostSync(f"{func} takes host tensor(s) {shapes}: copied to the device{during}", caller()))
        for tensor in outputs:
            self.places.mark_device(tensor)
        return result


class SyncAudit:
    """`with SyncAudit(host=[...]) as audit: <a step>`; then `audit.found` lists what would wait.
    `host`: the tensors the step starts with on the host (the loader's batch)."""

    def __init__(self, host=()):
        self.found: list[HostSync] = []
        self._places = _Places(_tensors(host))
        self._modes = (_FunctionLevel(self._places, self.found), _DispatchLevel(self._places, self.found))

    def __enter__(self) -> SyncAudit:
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
