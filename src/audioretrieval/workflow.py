"""Glue for the scripts in workflow_scripts/: logging to the rule's log file, starting training runs."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def logged_to(path: str | os.PathLike) -> Iterator[logging.Logger]:
    """Send stdout, stderr (progress bars included) and logging to the rule's log file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", buffering=1, encoding="utf-8") as log_file:
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(log_file), contextlib.redirect_stderr(log_file):
                yield logging.getLogger("audioretrieval")
        except BaseException:
            logging.getLogger("audioretrieval").exception("failed")
            raise
        finally:
            root.removeHandler(handler)


def run_training(spec, gpus: int, threads: int) -> None:
    """One training run: in this process (CPU or one GPU), or one torchrun process per GPU."""
    import json
    import subprocess
    from dataclasses import asdict

    import torch

    from .train import train

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


def training_spec(job, seed: int, **extra):
    """The RunSpec of a training rule's job (its data inputs, outputs and model/train params);
    a tokenizer built by the pipeline replaces the configured one."""
    from .train import RunSpec

    model = dict(job.params.model)
    if job.input.tokenizer:
        model["text"] = {**model["text"], "tokenizer": job.input.tokenizer[0]}
    return RunSpec(
        seed=seed, model=model, train=dict(job.params.train),
        train_audio=job.input.train_audio, train_captions=job.input.train_captions,
        val_audio=job.input.val_audio, val_captions=job.input.val_captions,
        best=job.output.best, last=job.output.last, log_table=job.output.log_table, **extra,
    )
