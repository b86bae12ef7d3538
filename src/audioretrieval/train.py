"""The training loop shared by stage 1 and stage 2: one run, resumable, on CPU, one GPU or several.

Outputs (written when training ends): best.pt (best validation mAP@10), last.pt, and a per-epoch
log table. While training, `<run_dir>/resume/` keeps the state of the last completed epoch
(model, optimizer, scaler, RNG, log, best checkpoint), so a killed run continues from there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from . import distributed
from .checkpoint import checkpoint_of, load_state, read_checkpoint, save_atomically
from .data.dataset import CaptionedAudioUnion, as_float, training_set
from .data.h5audio import AudioH5
from .data.tables import write_table_atomically
from .embed import autocast_for, embed_split, evaluate_embeddings, resolve_precision
from .ensemble import EnsembleTargets, check_targets_match
from .losses import contrastive_loss, distillation_loss
from .metrics import NonFiniteSimilarity
from .model.audio import SpectrogramCache
from .model.dual_encoder import PARAMETER_GROUPS, DualEncoder
from .schedule import learning_rate

log = logging.getLogger(__name__)


class NonFiniteLoss(FloatingPointError):
    pass


@dataclass
class RunSpec:
    """Everything one training run depends on (plain values, so it can be hashed and logged)."""

    seed: int
    model: dict
    train: dict
    train_audio: str | list[str]  # several: training on their union (stage 1 with train_on all)
    train_captions: str | list[str]
    val_audio: str
    val_captions: str
    best: str
    last: str
    log_table: str
    init_checkpoint: str | None = None
    targets: str | None = None
    target_tau: float | None = None  # temperature of the targets; None: model["tau"]
    loss_weights: dict = field(default_factory=lambda: {"sup": 1.0, "dist": 0.0})

    @property
    def run_dir(self) -> Path:
        return Path(self.best).parent

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    name, keys, position, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_optimizer(model: DualEncoder, cfg: dict) -> torch.optim.AdamW:
    groups = model.parameter_groups()
    return torch.optim.AdamW(
        [{"name": name, "params": groups[name], "lr": cfg["lr"][name], "base_lr": cfg["lr"][name]} for name in PARAMETER_GROUPS],
        betas=tuple(cfg["betas"]), eps=cfg["eps"], weight_decay=cfg["weight_decay"],
    )


def set_learning_rates(optimizer: torch.optim.Optimizer, epoch: float, cfg: dict) -> None:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(epoch, group["base_lr"], cfg["min_lr"], cfg["warmup_epochs"],
                                    cfg["rampdown_start"], cfg["rampdown_stop"])


def batch_loss(model, batch: dict, device: torch.device, precision: str, spec: RunSpec,
               targets: EnsembleTargets | None = None, cache: SpectrogramCache | None = None) -> torch.Tensor:
    """w_sup L_sup + w_dist L_dist on the global batch (embeddings gathered over ranks); the
    distillation targets are the ensemble's block for the batch's clips and captions, / tau."""
    waveform = as_float(batch["audio"].to(device, non_blocking=True))
    spectrograms = cache(unwrapped(model).audio, waveform, batch["clip_index"]) if cache else None
    with autocast_for(device, precision):
        audio, text = model(waveform, batch["fraction"].to(device, non_blocking=True), batch["caption"], spectrograms)
    audio = distributed.gather_with_grad(audio.float())
    text = distributed.gather_with_grad(text.float())
    clip_ids = distributed.gather(batch["clip_index"].to(device))
    logits = audio @ text.T / spec.model["tau"]
    loss = torch.zeros((), device=device)
    if spec.loss_weights.get("sup", 0.0):
        loss = loss + spec.loss_weights["sup"] * contrastive_loss(logits, clip_ids)
    if spec.loss_weights.get("dist", 0.0):
        caption_rows = distributed.gather(batch["caption_row"].to(device))
        target_tau = spec.target_tau or spec.model["tau"]
        target = targets.block(clip_ids.cpu().numpy(), caption_rows.cpu().numpy()).to(device) / target_tau
        loss = loss + spec.loss_weights["dist"] * distillation_loss(logits, target)
    return loss


def unwrapped(model):
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _loader(dataset, spec: RunSpec, epoch: int, sampler: DistributedSampler) -> DataLoader:
    sampler.set_epoch(epoch)
    per_rank = spec.train["batch_size"] // distributed.world_size()
    generator = torch.Generator().manual_seed(spec.seed * 1000 + epoch * 10 + distributed.rank())
    workers = spec.train["num_workers"]
    return DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=True, num_workers=workers,
                      generator=generator, pin_memory=torch.cuda.is_available(), persistent_workers=False)


def train(spec: RunSpec, progress: bool = True) -> None:
    device = distributed.setup()
    world, rank = distributed.world_size(), distributed.rank()
    cfg = spec.train
    if cfg["batch_size"] % world:
        raise ValueError(f"train.batch_size ({cfg['batch_size']}) must be divisible by the {world} processes")
    precision = resolve_precision(cfg["precision"], device)
    resume_dir = spec.run_dir / "resume"
    state_path, best_path = resume_dir / "state.pt", resume_dir / "best.pt"

    seed_everything(spec.seed)
    model = DualEncoder(spec.model, cfg["segment_s"])
    if spec.init_checkpoint:
        load_state(model, read_checkpoint(spec.init_checkpoint)["state_dict"], spec.init_checkpoint)
    model.to(device)
    if cfg["compile"]:
        model.audio.passt.compile()  # in place: parameter names (and checkpoints) stay the same
    optimizer = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    seed_everything(spec.seed + rank)

    dataset = training_set(spec.train_audio, spec.train_captions, cfg["segment_s"])
    sets = dataset.parts if isinstance(dataset, CaptionedAudioUnion) else [dataset]
    log.info("training on %d captions of %d clips from %d set(s): %s", len(dataset), sum(len(s.audio) for s in sets),
             len(sets), ", ".join(str(s.audio.path) for s in sets))
    targets = None
    if spec.loss_weights.get("dist", 0.0):
        if not spec.targets:
            raise ValueError(f"{spec.run_dir}: loss weight dist is {spec.loss_weights['dist']} but no targets file is given")
        if isinstance(dataset, CaptionedAudioUnion):
            raise ValueError(f"{spec.run_dir}: targets describe one training set, not the union of {spec.train_audio}")
        targets = EnsembleTargets(spec.targets)
        check_targets_match(spec.targets, dataset.audio.file_names, dataset.captions)
    cache = val_cache = None
    if cfg["cache_spectrograms"]:
        cache = SpectrogramCache(dataset.clip_lengths, model.audio.segment)
        val_cache = SpectrogramCache(AudioH5(spec.val_audio).lengths, model.audio.segment)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=spec.seed, drop_last=True)
    steps_per_epoch = len(dataset) // world // (cfg["batch_size"] // world)
    if steps_per_epoch == 0:
        raise ValueError(f"{spec.train_captions}: {len(dataset)} captions make no batch of {cfg['batch_size']}")

    start_epoch, rows, best_map = 0, [], -math.inf
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state["fingerprint"] == spec.fingerprint():
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            _set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
            start_epoch, rows, best_map = state["epoch"] + 1, state["log"], state["best_map"]
            log.info("resuming %s after epoch %d", spec.run_dir, state["epoch"])
        else:
            log.info("ignoring resume state of a different configuration in %s", resume_dir)

    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    for epoch in range(start_epoch, cfg["epochs"]):
        model.train()
        started, losses = time.time(), []
        loader = _loader(dataset, spec, epoch, sampler)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg['epochs']}", disable=not progress or rank > 0, unit="batch")
        for step, batch in enumerate(bar):
            set_learning_rates(optimizer, epoch + step / steps_per_epoch, cfg)
            loss = batch_loss(ddp_model, batch, device, precision, spec, targets, cache)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(
                    f"{spec.run_dir}: loss is {loss.item()} at epoch {epoch + 1}, step {step + 1} "
                    f"(global step {epoch * steps_per_epoch + step + 1}); the last good state is in {resume_dir}"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")

        metrics = {}
        if rank == 0:
            embeddings = embed_split(model, spec.val_audio, spec.val_captions, cfg["segment_s"], cfg["eval_batch_size"],
                                     device, precision, cache=val_cache)
            try:
                metrics = evaluate_embeddings(embeddings)
            except NonFiniteSimilarity as exc:
                raise NonFiniteLoss(f"{spec.run_dir}: validation after epoch {epoch + 1}: {exc}; the last good state "
                                    f"is in {resume_dir}") from exc
        row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "seconds": time.time() - started,
               **{f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups}, **{f"val_{k}": v for k, v in metrics.items()}}
        rows.append(row)
        if rank == 0:
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
            if metrics["map@10"] > best_map:
                best_map = metrics["map@10"]
                save_atomically(checkpoint_of(model, spec.model, cfg["segment_s"], epoch, metrics, spec.seed), best_path)
        rng = distributed.gather_objects(_rng_state())
        if rank == 0:
            save_atomically({
                "fingerprint": spec.fingerprint(), "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "rng": rng, "log": rows,
                "best_map": best_map,
            }, state_path)
        distributed.barrier()

    if rank == 0:
        last_metrics = {k.removeprefix("val_"): v for k, v in rows[-1].items() if k.startswith("val_")}
        save_atomically(checkpoint_of(model, spec.model, cfg["segment_s"], cfg["epochs"] - 1, last_metrics, spec.seed), spec.last)
        save_atomically(torch.load(best_path, map_location="cpu", weights_only=True), spec.best)
        write_table_atomically(pd.DataFrame(rows), spec.log_table)
    distributed.barrier()


def main() -> None:
    """`python -m audioretrieval.train SPEC.json`: one run (torchrun starts one per GPU)."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = RunSpec(**json.loads(Path(sys.argv[1]).read_text()))
    train(spec, progress=distributed.rank() == 0)


if __name__ == "__main__":
    main()
