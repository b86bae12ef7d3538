"""The training loop shared by stage 1 and stage 2: one run, resumable, on CPU, one GPU or several.

Outputs (written when training ends): best.pt (the best validation score of train.select_by:
own-clip mAP@10, or the multi-positive mAP@16 where validation has relevance annotations), last.pt, and a per-epoch
log table. While training, `<run_dir>/resume/` keeps the state of the last saved epoch (every
train.save_every epochs) and the best checkpoint so far (training.state), so a killed run continues
from there; a finished run removes it.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from audioretrieval.correspondences.ensemble import EnsembleTargets, check_targets_match
from audioretrieval.correspondences.target_rules import TargetRule
from audioretrieval.data.dataset import (
    CaptionedAudio,
    CaptionedAudioUnion,
    CropSeeds,
    as_float,
    read_caption_table,
    training_set,
)
from audioretrieval.data.h5audio import AudioH5
from audioretrieval.device import autocast_for, resolve_precision
from audioretrieval.evaluation.metrics import MULTI_POSITIVE_AT, NonFiniteSimilarity, embedding_metrics
from audioretrieval.evaluation.relevance import match_queries, read_relevance
from audioretrieval.files import save_torch_atomically, write_table_atomically, written_atomically
from audioretrieval.model.audio import SpectrogramCache
from audioretrieval.model.checkpoint import checkpoint_of, load_state, read_checkpoint
from audioretrieval.model.dual_encoder import PARAMETER_GROUPS, DualEncoder
from audioretrieval.model.embed import Split, embed_split
from audioretrieval.model.text_states import preload as preload_text_states
from audioretrieval.training import distributed
from audioretrieval.training.losses import contrastive_loss, distillation_loss, positives
from audioretrieval.training.schedule import learning_rate
from audioretrieval.training.spec import RunSpec
from audioretrieval.training.state import BestWeights, Progress, resume, save_progress, seed_everything

log = logging.getLogger(__name__)
SELECTION_CRITERIA = ("map@10", f"dcase2025_map@{MULTI_POSITIVE_AT}")  # train.select_by: own clip, or multi-positive


class NonFiniteLoss(FloatingPointError):
    pass


@dataclass
class Run:
    """The live objects of one run, built once by `start`."""

    spec: RunSpec
    device: torch.device
    precision: str
    model: DualEncoder
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    dataset: CaptionedAudio | CaptionedAudioUnion
    sampler: DistributedSampler
    loader: DataLoader
    steps_per_epoch: int
    targets: DistillationTargets | None
    cache: SpectrogramCache | None
    validation: Split  # opened once: its DataLoader workers live for the whole run
    val_relevance: tuple | None = None  # the validation queries' relevant clips (train.select_by multi-positive)
    ddp_model: torch.nn.Module | None = None


def train(spec: RunSpec, progress: bool = True) -> None:
    run = start(spec)
    done = resume(spec, run.model, run.optimizer, run.scaler)
    run.ddp_model = distributed.wrapped(run.model, run.device, spec.train["gradient_compression"])
    best = BestWeights(spec.resume_dir, done.best_epoch) if distributed.rank() == 0 else None
    try:
        for epoch in range(done.start_epoch, spec.train["epochs"]):
            started = time.time()
            losses = train_epoch(run, epoch, progress)
            metrics = validate(run, epoch) if distributed.rank() == 0 else {}
            done.rows.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": float(np.mean(losses)),
                    "seconds": time.time() - started,
                    **{f"lr_{g['name']}": g["lr"] for g in run.optimizer.param_groups},
                    **{f"val_{k}": v for k, v in metrics.items()},
                }
            )
            if distributed.rank() == 0:
                keep_if_best(run, epoch, metrics, done, best)
            saved = saves_after(epoch, spec.train)
            if saved:
                save_progress(spec, epoch, done, run.model, run.optimizer, run.scaler, best)
            if distributed.rank() == 0:
                log.info(
                    "epoch %d%s: %s",
                    epoch + 1,
                    " (saved: a run killed from here on resumes after it)" if saved else "",
                    ", ".join(f"{k}={v:.4g}" for k, v in done.rows[-1].items() if k != "epoch"),
                )
            distributed.barrier()
        if distributed.rank() == 0:
            write_outputs(run, done, best)
    finally:
        if best is not None:
            best.close()
    distributed.barrier()
    if distributed.rank() == 0:
        shutil.rmtree(spec.resume_dir)  # finished: a later rerun of this job trains again


def saves_after(epoch: int, cfg: dict) -> bool:
    """Whether the resume state is written after `epoch` (0-based): every train.save_every epochs,
    except the last, after which the outputs are written instead."""
    return (epoch + 1) % cfg["save_every"] == 0 and epoch + 1 < cfg["epochs"]


def check_device_settings(cfg: dict, device: torch.device) -> None:
    """Refuse settings that would exhaust a GPU machine's host memory before the first step."""
    if cfg["cache_spectrograms"] and device.type == "cuda":
        raise ValueError(
            f"train.cache_spectrograms is true on {device}: it keeps every clip's spectrogram in host "
            f"memory (about 24 GB for ClothoV2) to save CPU time a GPU run does not spend; set it to false"
        )


def start(spec: RunSpec) -> Run:
    """The model (from the initial checkpoint in stage 2), its optimizer and scaler, the training
    data and targets; every process seeded as a fresh run would be."""
    device = distributed.setup()
    world, cfg = distributed.world_size(), spec.train
    check_device_settings(cfg, device)
    if cfg["batch_size"] % world:
        raise ValueError(f"train.batch_size ({cfg['batch_size']}) must be divisible by the {world} processes")
    seed_everything(spec.seed)
    model = DualEncoder(spec.model, cfg["segment_s"])
    if spec.init_checkpoint:
        load_state(model, read_checkpoint(spec.init_checkpoint)["state_dict"], spec.init_checkpoint)
    model.to(device)
    if spec.text_states:
        preload_text_states(model.text, *spec.text_states)
    if cfg["compile"]:
        model.compile_encoders()
    precision = resolve_precision(cfg["precision"], device)
    optimizer = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    seed_everything(spec.seed + distributed.rank())
    dataset = training_set(spec.train_audio, spec.train_captions, cfg["segment_s"])
    log_training_set(dataset)
    targets = distillation_targets(spec, dataset, device)
    caches = (
        (
            SpectrogramCache(dataset.clip_lengths, model.audio.segment),
            SpectrogramCache(AudioH5(spec.val_audio).lengths, model.audio.segment),
        )
        if cfg["cache_spectrograms"]
        else (None, None)
    )
    if caches[0] and cfg["num_workers"] == 0 and isinstance(dataset, CaptionedAudio):
        dataset.unread = caches[0].stored  # read live: a clip is skipped once its spectrogram is held
    sampler = DistributedSampler(
        dataset, num_replicas=world, rank=distributed.rank(), shuffle=True, seed=spec.seed, drop_last=True
    )
    steps_per_epoch = len(dataset) // world // (cfg["batch_size"] // world)
    if steps_per_epoch == 0:
        raise ValueError(f"{spec.train_captions}: {len(dataset)} captions make no batch of {cfg['batch_size']}")
    return Run(
        spec,
        device,
        precision,
        model,
        optimizer,
        scaler,
        dataset,
        sampler,
        training_loader(dataset, sampler, spec),
        steps_per_epoch,
        targets,
        caches[0],
        validation_split(spec, device, caches[1]),
        validation_relevance(spec),
    )


def validation_split(spec: RunSpec, device: torch.device, cache: SpectrogramCache | None) -> Split:
    """The validation split, opened once for the whole run (its DataLoader workers persist)."""
    cfg = spec.train
    return Split(
        spec.val_audio,
        spec.val_captions,
        cfg["segment_s"],
        cfg["eval_batch_size"],
        device,
        cfg["num_workers"],
        cache,
        persistent=True,
    )


def log_training_set(dataset) -> None:
    sets = dataset.parts if isinstance(dataset, CaptionedAudioUnion) else [dataset]
    log.info(
        "training on %d captions of %d clips from %d set(s): %s",
        len(dataset),
        sum(len(s.audio) for s in sets),
        len(sets),
        ", ".join(str(s.audio.path) for s in sets),
    )


def validation_relevance(spec: RunSpec) -> tuple | None:
    """The validation queries' caption rows and relevant clips where the epoch is selected by a
    multi-positive metric (train.select_by), else None."""
    criterion = spec.train["select_by"]
    if criterion not in SELECTION_CRITERIA:
        raise ValueError(f"train.select_by {criterion!r}: expected one of {SELECTION_CRITERIA}")
    if criterion == "map@10":
        return None
    if not spec.val_relevance:
        raise ValueError(f"{spec.run_dir}: train.select_by is {criterion} but no validation relevance table is given")
    file_names = AudioH5(spec.val_audio).file_names
    captions = read_caption_table(spec.val_captions, len(file_names), spec.val_audio)["caption"].tolist()
    return match_queries(read_relevance(spec.val_relevance), file_names, captions, spec.val_relevance)


@dataclass(frozen=True)
class DistillationTargets:
    """The targets of L_dist: the estimates' block for a batch's clips and captions, made into target
    distributions by the run's rule (with the blocks of any ensemble the rule names), all kept on
    the training device."""

    estimates: EnsembleTargets
    rule: TargetRule
    rule_estimates: dict[str, EnsembleTargets] = field(default_factory=dict)

    def distributions(self, clip_rows: torch.Tensor, caption_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(over the batch's audios, over its captions), for distillation_loss."""
        blocks = {
            key: source.block(clip_rows, caption_rows, caption_rows)
            for key, source in {"scores": self.estimates, **self.rule_estimates}.items()
        }
        return self.rule.distributions(blocks.pop("scores"), positives(clip_rows), blocks)


def distillation_targets(spec: RunSpec, dataset, device: torch.device) -> DistillationTargets | None:
    """The targets of a run with a distillation term, checked against its training set."""
    if not spec.loss_weights.get("dist", 0.0):
        return None
    if not spec.targets or spec.target_tau is None:
        raise ValueError(
            f"{spec.run_dir}: loss weight dist is {spec.loss_weights['dist']} but no targets file or "
            f"target temperature is given"
        )
    if isinstance(dataset, CaptionedAudioUnion):
        raise ValueError(f"{spec.run_dir}: targets describe one training set, not the union of {spec.train_audio}")
    rule = TargetRule.of(spec.target_rule, spec.target_tau)
    named = rule.estimators
    if set(spec.rule_targets) != set(named):
        raise ValueError(
            f"{spec.run_dir}: target rule {rule.name!r} reads the targets of {named}, given files for "
            f"{sorted(spec.rule_targets)}"
        )
    for path in [spec.targets, *spec.rule_targets.values()]:
        check_targets_match(path, dataset.audio.file_names, dataset.captions)
    return DistillationTargets(
        EnsembleTargets(spec.targets, device=device),
        rule,
        {key: EnsembleTargets(path, device=device) for key, path in spec.rule_targets.items()},
    )


def build_optimizer(model: DualEncoder, cfg: dict, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over the four parameter groups; the fused kernel (the same update) where the model is on
    a GPU, or where `fused` says."""
    groups = model.parameter_groups()
    return torch.optim.AdamW(
        [
            {"name": name, "params": groups[name], "lr": cfg["lr"][name], "base_lr": cfg["lr"][name]}
            for name in PARAMETER_GROUPS
        ],
        betas=tuple(cfg["betas"]),
        eps=cfg["eps"],
        weight_decay=cfg["weight_decay"],
        fused=next(model.parameters()).device.type == "cuda" if fused is None else fused,
    )


def set_learning_rates(optimizer: torch.optim.Optimizer, epoch: float, cfg: dict) -> None:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(
            epoch, group["base_lr"], cfg["min_lr"], cfg["warmup_epochs"], cfg["rampdown_start"], cfg["rampdown_stop"]
        )


def train_epoch(run: Run, epoch: int, progress: bool) -> list[float]:
    """One pass over the training set; the losses of its steps. They stay on the device and are read
    (and checked to be finite) every train.log_every steps and at the end of the epoch, so that a step
    on a GPU does not wait for the host."""
    cfg = run.spec.train
    run.model.train()
    losses, unread = [], []
    run.sampler.set_epoch(epoch)
    batches = tqdm(
        run.loader,
        desc=f"epoch {epoch + 1}/{cfg['epochs']}",
        unit="batch",
        disable=not progress or distributed.rank() > 0,
    )
    for step, batch in enumerate(batches):
        unread.append(train_step(run, batch, epoch + step / run.steps_per_epoch))
        if len(unread) == cfg["log_every"]:
            losses += read_losses(run, epoch, len(losses), unread)
            unread = []
            batches.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses + read_losses(run, epoch, len(losses), unread)


def train_step(run: Run, batch: dict, epoch: float) -> torch.Tensor:
    """One optimizer step on a batch at a fractional `epoch` (the learning rates' schedule); its loss,
    left on the device. Nothing in it waits for the device (tests/training/test_sync_audit.py)."""
    set_learning_rates(run.optimizer, epoch, run.spec.train)
    loss = batch_loss(run.ddp_model, batch, run.device, run.precision, run.spec, run.targets, run.cache)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return loss.detach()


def read_losses(run: Run, epoch: int, first_step: int, unread: list[torch.Tensor]) -> list[float]:
    """The losses of the steps from `first_step` (0-based) on, read in one transfer; a non-finite one
    stops the run naming its step."""
    values = torch.stack(unread).float().cpu().tolist() if unread else []
    for offset, value in enumerate(values):
        if not math.isfinite(value):
            step = first_step + offset
            raise NonFiniteLoss(
                f"{run.spec.run_dir}: loss is {value} at epoch {epoch + 1}, step {step + 1} "
                f"(global step {epoch * run.steps_per_epoch + step + 1}; read after step {first_step + len(values)}); "
                f"the last good state is in {run.spec.resume_dir}"
            )
    return values


def training_loader(dataset, sampler: DistributedSampler, spec: RunSpec) -> DataLoader:
    """The run's batches, every epoch: shuffled by the sampler (set_epoch), each item's crop drawn
    from its own seed (CropSeeds), read by workers that live for the whole run, pinned for a GPU."""
    workers = spec.train["num_workers"]
    return DataLoader(
        dataset,
        batch_size=spec.train["batch_size"] // distributed.world_size(),
        sampler=CropSeeds(sampler, spec.seed),
        drop_last=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(spec.seed),  # leaves the global generator to the model
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )


def batch_loss(
    model,
    batch: dict,
    device: torch.device,
    precision: str,
    spec: RunSpec,
    targets: DistillationTargets | None = None,
    cache: SpectrogramCache | None = None,
) -> torch.Tensor:
    """w_sup L_sup + w_dist L_dist on the global batch (embeddings gathered over processes); the
    distillation targets are the run's rule applied to the ensemble's block for the batch."""
    waveform = as_float(batch["audio"].to(device, non_blocking=True))
    spectrograms = cache(distributed.unwrapped(model).audio, waveform, batch["clip_index"]) if cache else None
    with autocast_for(device, precision):
        audio, text = model(waveform, batch["fraction"].to(device, non_blocking=True), batch["caption"], spectrograms)
    audio = distributed.gather_with_grad(audio.float())
    text = distributed.gather_with_grad(text.float())
    clip_ids = distributed.gather(batch["clip_index"].to(device, non_blocking=True))
    logits = distributed.unwrapped(model).logits(audio, text)
    loss = torch.zeros((), device=device)
    if spec.loss_weights.get("sup", 0.0):
        loss = loss + spec.loss_weights["sup"] * contrastive_loss(logits, clip_ids)
    if spec.loss_weights.get("dist", 0.0):
        caption_rows = distributed.gather(batch["caption_row"].to(device, non_blocking=True))
        loss = loss + spec.loss_weights["dist"] * distillation_loss(
            logits, *targets.distributions(clip_ids, caption_rows)
        )
    return loss


def validate(run: Run, epoch: int) -> dict[str, float]:
    """mAP@10 and R@k on the validation split (and the multi-positive mAP@16 where the epoch is
    selected by it); non-finite embeddings stop the run."""
    spec = run.spec
    embeddings = embed_split(run.model, run.validation, run.device, run.precision)
    try:
        return embedding_metrics(embeddings, run.val_relevance)
    except NonFiniteSimilarity as exc:
        raise NonFiniteLoss(
            f"{spec.run_dir}: validation after epoch {epoch + 1}: {exc}; the last good state is in {spec.resume_dir}"
        ) from exc


def keep_if_best(run: Run, epoch: int, metrics: dict, done: Progress, best: BestWeights) -> None:
    """The epoch with the best validation score of train.select_by so far: its weights, copied to
    the host, go to `best` (written in the background while the next epoch trains)."""
    score = metrics[run.spec.train["select_by"]]
    if score > done.best_score:
        done.best_score, done.best_epoch = score, epoch
        best.keep(
            checkpoint_of(run.model, run.spec.model, run.spec.train["segment_s"], epoch, metrics, run.spec.seed),
            epoch,
        )


def write_outputs(run: Run, done: Progress, best: BestWeights) -> None:
    """last.pt, best.pt (kept in resume/ while training) and the log table."""
    spec = run.spec
    last_metrics = {k.removeprefix("val_"): v for k, v in done.rows[-1].items() if k.startswith("val_")}
    save_torch_atomically(
        checkpoint_of(
            run.model, spec.model, spec.train["segment_s"], spec.train["epochs"] - 1, last_metrics, spec.seed
        ),
        spec.last,
    )
    with written_atomically(spec.best) as tmp:
        shutil.copyfile(best.settled(), tmp)
    write_table_atomically(pd.DataFrame(done.rows), spec.log_table)


def main() -> None:
    """`python -m audioretrieval.training.loop SPEC.json`: one run (torchrun starts one per GPU)."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = RunSpec(**json.loads(Path(sys.argv[1]).read_text()))
    train(spec, progress=distributed.rank() == 0)


if __name__ == "__main__":
    main()
