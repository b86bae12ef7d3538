"""Starting a training rule's run: its RunSpec from the job, in this process or under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict

import torch

from .train import RunSpec, train


def run_training(spec, gpus: int, threads: int) -> None:
    """One training run: in this process (CPU or one GPU), or one torchrun process per GPU."""
    torch.set_num_threads(max(1, threads))
    if gpus <= 1:
        train(spec)
        return
    spec_file = spec.run_dir / "resume" / "spec.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(asdict(spec), indent=1))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
               "-m", "audioretrieval.train", str(spec_file)]
    subprocess.run(command, check=True, stdout=sys.stdout, stderr=sys.stderr)


def _one_or_list(files) -> str | list[str]:
    """A job's training-set input: one file (stage 2) or a list (stage 1: one file per set)."""
    return files if isinstance(files, str) else [str(f) for f in files]


def training_spec(job, seed: int, **extra):
    """The RunSpec of a training rule's job (its data inputs, outputs and model/train params);
    a tokenizer built by the pipeline replaces the configured one."""
    model = dict(job.params.model)
    if job.input.tokenizer:
        model["text"] = {**model["text"], "tokenizer": os.path.dirname(job.input.tokenizer[0])}
    return RunSpec(
        seed=seed, model=model, train=dict(job.params.train),
        train_audio=_one_or_list(job.input.train_audio), train_captions=_one_or_list(job.input.train_captions),
        val_audio=job.input.val_audio, val_captions=job.input.val_captions,
        best=job.output.best, last=job.output.last, log_table=job.output.log_table, **extra,
    )
