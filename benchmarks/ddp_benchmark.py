"""Training steps in two processes (DistributedDataParallel, as torchrun starts a run on two GPUs)
against one process doing one process's share of the batch: what the all-reduce of the gradients and
the gathering of the embeddings cost.

    python benchmarks/ddp_benchmark.py [--workdir DIR] [--steps 20] [--quick]

Each variant is the training loop's own code (training.loop `start`, `train_step` through
distributed.wrapped, the real loader), started by `torch.distributed.run --standalone
--nproc_per_node=2` as pipeline.launch starts a run with two GPUs: one warm-up step, then --steps
timed steps. The baseline, in the same run, is one process on the same per-process batch (half the
global batch), so that the ratio "two processes / one" is the cost of the communication; it is
measured with train.gradient_compression none and bf16.
With two or more GPUs: the paper's full-size model and settings (config/config.yaml, batch 64, 32
per GPU) on 30 s clips, over NCCL. Without a GPU: the demo's model on the CPU over gloo, a check
that the two-process path runs (on two cores the processes share them: not a measurement). With
one GPU: skipped. --quick: 3 timed steps of batch 8.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
import yaml
from epoch_benchmark import dataset, run_spec
from train_step_benchmark import full_size_model_config

from audioretrieval.training import distributed, loop
from audioretrieval.training.spec import RunSpec

REPO = Path(__file__).resolve().parents[1]


def endless_batches(run: loop.Run):
    """The run's batches, epoch after epoch."""
    for epoch in itertools.count():
        run.sampler.set_epoch(epoch)
        yield from run.loader


def worker(spec_file: Path, steps: int, result_file: Path) -> None:
    """One process of a variant: a warm-up step, then `steps` timed ones; rank 0 writes the seconds per step."""
    spec = RunSpec(**json.loads(spec_file.read_text()))
    run = loop.start(spec)
    run.ddp_model = distributed.wrapped(run.model, run.device, spec.train["gradient_compression"])
    batches = endless_batches(run)
    loop.train_step(run, next(batches), 0.0).cpu()
    distributed.barrier()
    started = time.perf_counter()
    losses = [loop.train_step(run, next(batches), 0.0) for _ in range(steps)]
    torch.stack(losses).cpu()  # waits for the device
    seconds = (time.perf_counter() - started) / steps
    distributed.barrier()
    if distributed.rank() == 0:
        result_file.write_text(json.dumps({"step_s": seconds, "world": distributed.world_size()}))


def measure(spec: RunSpec, processes: int, steps: int, workdir: Path) -> float:
    """Seconds per step of `spec` in `processes` processes (torchrun for more than one)."""
    name = f"{processes}x-{spec.train['gradient_compression']}-batch{spec.train['batch_size']}"
    spec_file, result_file = workdir / f"{name}.json", workdir / f"{name}.result.json"
    spec_file.write_text(json.dumps(asdict(spec)))
    result_file.unlink(missing_ok=True)
    script = [str(Path(__file__).resolve()), "--worker", str(spec_file), "--steps", str(steps)]
    script += ["--result", str(result_file)]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        command = [sys.executable, *launch, *script]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // processes))}
    subprocess.run(command, check=True, env=env, cwd=REPO)
    return json.loads(result_file.read_text())["step_s"]


def settings(workdir: Path, quick: bool, gpus: int) -> tuple[dict, dict, dict, str]:
    """The data files, model and train settings of the variants, and their description."""
    if gpus >= 2:
        paper = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        files = dataset(workdir / "data-gpu", 64 if quick else 256, 8, 15.0, 30.0)
        train_cfg = {**paper["train"], "precision": "auto", "batch_size": 8 if quick else 64}
        model = full_size_model_config(files["tokenizer"])
        return files, model, train_cfg, f"{torch.cuda.get_device_name()}, full size, nccl"
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    files = dataset(workdir / "data-cpu", 64, 8, 2.0, 4.0)
    model = copy.deepcopy(demo["model"])
    model["text"].update(name=None, tokenizer=files["tokenizer"], freeze=False, pooling="first")
    train_cfg = {**demo["train"], "batch_size": 8 if quick else 16, "eval_batch_size": 8}
    return files, model, train_cfg, "CPU, demo model, gloo (a check that it runs, not a measurement)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ddp-benchmark")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="3 timed steps of batch 8")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.result)
        return
    gpus = torch.cuda.device_count()
    if gpus == 1:
        print("(c) two-process DDP step: one GPU: skipped")
        return
    steps = 3 if args.quick else args.steps
    files, model, train_cfg, described = settings(args.workdir, args.quick, gpus)
    runs = args.workdir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    batch = train_cfg["batch_size"]

    def spec(processes: int, compression: str) -> RunSpec:
        cfg = {**train_cfg, "batch_size": batch // 2 * processes, "gradient_compression": compression}
        return run_spec(files, model, cfg, runs / f"{processes}x-{compression}")

    one = measure(spec(1, "none"), 1, steps, runs)
    print(f"(c) one process, batch {batch // 2} ({described}): {one:.3f} s/step")
    for compression in ("none", "bf16"):
        two = measure(spec(2, compression), 2, steps, runs)
        sent = "fp32" if compression == "none" else compression
        print(
            f"(c) two processes, batch {batch // 2} each, gradients sent as {sent}: {two:.3f} s/step; "
            f"two processes / one: {two / one:.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
