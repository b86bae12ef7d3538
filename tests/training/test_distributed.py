"""Two processes (gloo, CPU) on halves of a batch give the loss and gradients of one process on all of it,
for the stage-1 loss and for the stage-2 loss whose targets must cover the gathered global batch."""

import os
import socket
from datetime import timedelta

import forked
import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny import tiny_model_config

from audioretrieval.correspondences.ensemble import EnsembleTargets, build_targets
from audioretrieval.correspondences.target_rules import TargetRule
from audioretrieval.data.embeddings import write_embeddings
from audioretrieval.model.dual_encoder import DualEncoder
from audioretrieval.training import distributed
from audioretrieval.training.loop import DistillationTargets, batch_loss
from audioretrieval.training.spec import RunSpec

pytestmark = pytest.mark.slow  # two processes of torch.distributed

BATCH = 8
LOSSES = {"stage1": {"sup": 1.0, "dist": 0.0}, "stage2": {"sup": 0.5, "dist": 1.0}}  # one process group checks both


def make_batch():
    generator = torch.Generator().manual_seed(0)
    words = ["a loud tone", "a quiet hum", "some beeps", "a low siren"]
    return {
        "audio": 0.1 * torch.randn(BATCH, 64000, generator=generator),
        "fraction": torch.tensor([1.0, 0.5, 1.0, 0.3, 1.0, 1.0, 0.8, 0.4]),
        "caption": [words[i % 4] for i in range(BATCH)],
        "clip_index": torch.tensor([0, 0, 1, 2, 3, 3, 4, 5]),  # duplicates within and across halves
        "caption_row": torch.tensor([0, 1, 2, 4, 6, 7, 8, 10]),
    }


def make_model(tokenizer):
    torch.manual_seed(0)
    cfg = tiny_model_config(tokenizer)
    cfg["text"]["dropout"] = 0.0
    return DualEncoder(cfg, 2.0), cfg


def spec_for(cfg, weights):
    return RunSpec(
        seed=0,
        model=cfg,
        train={},
        train_audio="",
        train_captions="",
        val_audio="",
        val_captions="",
        best="",
        last="",
        log_table="",
        loss_weights=weights,
        target_tau=cfg["tau"],
    )


def make_targets(directory):
    """Ensemble targets over 6 clips with 2 captions each (random embeddings of 2 members)."""
    rng = np.random.default_rng(0)
    captions = pd.DataFrame(
        {
            "file_name": [f"{i}.wav" for i in range(6) for _ in range(2)],
            "clip_index": np.repeat(np.arange(6), 2),
            "caption_index": [1, 2] * 6,
            "caption": [f"caption {j}" for j in range(12)],
        }
    )
    members = []
    for m in range(2):
        audio, text = rng.standard_normal((6, 4)), rng.standard_normal((12, 4))
        audio /= np.linalg.norm(audio, axis=1, keepdims=True)
        text /= np.linalg.norm(text, axis=1, keepdims=True)
        write_embeddings(directory / f"m{m}.h5", audio, text, [f"{i}.wav" for i in range(6)], captions)
        members.append(str(directory / f"m{m}.h5"))
    build_targets(members, directory / "targets.h5")
    return str(directory / "targets.h5")


def worker(rank, world, port, tokenizer, losses, targets, queue):
    os.environ.update(  # as torchrun sets them, and the timeout a cluster's job may set
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        **{distributed.TIMEOUT_VARIABLE: "90"},
    )
    distributed.setup()
    if rank == 0:
        queue.put(dist.distributed_c10d._get_default_group()._get_backend(torch.device("cpu")).options._timeout)
    torch.set_num_threads(1)
    half = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    for weights in losses:
        model, cfg = make_model(tokenizer)
        model.eval()  # no patchout or dropout: both sides see the same computation
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        local = {k: v[half] for k, v in make_batch().items()}
        loss = batch_loss(
            ddp,
            local,
            torch.device("cpu"),
            "fp32",
            spec_for(cfg, weights),
            DistillationTargets(EnsembleTargets(targets), TargetRule.of(None, cfg["tau"])),
        )
        loss.backward()
        if rank == 0:
            grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters() if p.grad is not None}
            queue.put((loss.item(), grads))
    model, cfg = make_model(tokenizer)  # stage 1 once more, its gradients sent as bfloat16
    model.eval()
    ddp = distributed.wrapped(model, torch.device("cpu"), "bf16")
    local = {k: v[half] for k, v in make_batch().items()}
    batch_loss(ddp, local, torch.device("cpu"), "fp32", spec_for(cfg, losses[0])).backward()
    if rank == 0:
        queue.put({n: p.grad.numpy().copy() for n, p in model.named_parameters() if p.grad is not None})
    dist.barrier()
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process_on_the_global_batch(tiny_tokenizer, tmp_path):
    targets = make_targets(tmp_path)
    # forked from the tests' server, which imported torch and the models' libraries once (tests/forked.py)
    queue = forked.SERVER.SimpleQueue()
    processes = mp.start_processes(
        worker,
        args=(2, free_port(), str(tiny_tokenizer), list(LOSSES.values()), targets, queue),
        nprocs=2,
        join=False,
        start_method="forkserver",
    )
    results = []  # read before joining: the worker blocks until these are read
    while len(results) < 2 + len(LOSSES):
        if not queue.empty():
            results.append(queue.get())
        elif processes.join(timeout=0.5):  # raises with the worker's traceback where one failed
            pytest.fail(f"the workers exited after sending {len(results)} of {2 + len(LOSSES)} results")
    while not processes.join():
        pass
    timeout, *results, compressed = results
    assert timeout == timedelta(minutes=90)  # the process group waits as long as the job said
    for (name, weights), (distributed_loss, gradients) in zip(LOSSES.items(), results):
        model, cfg = make_model(tiny_tokenizer)
        model.eval()
        loss = batch_loss(
            model,
            make_batch(),
            torch.device("cpu"),
            "fp32",
            spec_for(cfg, weights),
            DistillationTargets(EnsembleTargets(targets), TargetRule.of(None, cfg["tau"])),
        )
        loss.backward()
        expected = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        assert distributed_loss == pytest.approx(loss.item(), rel=1e-5), name
        assert set(gradients) == set(expected), name
        for parameter, grad in expected.items():
            assert torch.allclose(torch.from_numpy(gradients[parameter]), grad, rtol=1e-4, atol=1e-6), (name, parameter)
        if name == "stage1":  # train.gradient_compression bf16: the same gradients, rounded to bfloat16
            assert set(compressed) == set(expected)
            for parameter, grad in expected.items():
                got = torch.from_numpy(compressed[parameter])
                assert torch.equal(got, got.bfloat16().float()), parameter  # sent as bfloat16
                if grad.abs().max() < 1e-6:  # zero but for rounding (an attention key's bias)
                    assert got.abs().max() < 1e-5, parameter
                    continue
                cosine = torch.nn.functional.cosine_similarity(got.flatten(), grad.flatten(), dim=0)
                assert cosine > 0.999, (parameter, cosine)  # each half rounded to 8 bits of mantissa, then the sum
