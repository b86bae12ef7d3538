"""Starting a training rule's run: its RunSpec from the job's files and settings (plain values), in
this process or one torchrun process per GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict

import torch

from audioretrieval.training.loop import train
from audioretrieval.training.spec import RunSpec

RULE_INPUT = "rule_"  # a training job's input rule_<setting>: the targets of the ensemble a target rule's setting names


def run_training(spec: RunSpec, gpus: int, threads: int) -> None:
    """One training run: in this process (CPU or one GPU), or one torchrun process per GPU."""
    torch.set_num_threads(max(1, threads))
    if gpus <= 1:
        train(spec)
        return
    spec_file = spec.resume_dir / "spec.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(asdict(spec), indent=1))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={gpus}",
        "-m",
        "audioretrieval.training.loop",
        str(spec_file),
    ]
    subprocess.run(command, check=True, stdout=sys.stdout, stderr=sys.stderr)


def training_spec(inputs: dict, outputs: dict, model: dict, train_settings: dict, run: dict) -> RunSpec:
    """The RunSpec of a training job: `inputs` (train_audio, train_captions: one file or one per set;
    val_audio, val_captions; tokenizer: the files of a tokenizer the pipeline built, if any; init
    and targets: stage 2's starting checkpoint and its targets, if any; rule_<setting>: the targets of
    an ensemble its target rule reads; text_states: a frozen text encoder's states of the training and
    validation captions, if any; val_relevance: the validation split's relevance table, if the epoch is
    selected by it), `outputs` (best, last, log_table), the model and train settings, and `run`: the
    seed and, in stage 2, the loss weights, the targets' temperature and their rule
    (pipeline.study.training_params)."""
    if inputs.get("tokenizer"):
        model = {**model, "text": {**model["text"], "tokenizer": os.path.dirname(inputs["tokenizer"][0])}}
    return RunSpec(
        model=model,
        train=dict(train_settings),
        train_audio=inputs["train_audio"],
        train_captions=inputs["train_captions"],
        val_audio=inputs["val_audio"],
        val_captions=inputs["val_captions"],
        best=outputs["best"],
        last=outputs["last"],
        log_table=outputs["log_table"],
        init_checkpoint=inputs.get("init") or None,
        targets=next(iter(inputs.get("targets") or []), None),
        rule_targets={key.removeprefix(RULE_INPUT): path for key, path in inputs.items() if key.startswith(RULE_INPUT)},
        val_relevance=next(iter(inputs.get("val_relevance") or []), None),
        text_states=list(inputs.get("text_states") or []),
        **run,
    )
