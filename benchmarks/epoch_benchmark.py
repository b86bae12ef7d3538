"""One timed epoch of the real training loop on a ClothoV2-sized dataset, and the verdict on a run.

    python benchmarks/epoch_benchmark.py [--workdir DIR] [--clips 3839] [--val-clips 1045] [--quick]

Generates (once; kept in --workdir) ClothoV2's sizes: 3,839 training and 1,045 validation clips of
15-30 s (32 kHz int16 HDF5, cut from a few of the demo's synthetic sources: the content does not
change the speed), five captions per clip of 8-20 words (ClothoV2's range) and a tokenizer built
from them. Then, with the paper's full-size model (random weights, nothing downloaded) and settings
(config/config.yaml: batch 64, 30 s segments, its DataLoader workers), for each precision the GPU
supports, without and with torch.compile, it runs the training loop's own functions
(training.loop): `start` (model, optimizer, loader), one warm-up step, one whole timed epoch
(`train_epoch`), validation twice (`validate`: the first compiles, the second is timed), the best
weights' snapshot and background write, and one resume state (`save_progress`). A variant that runs
out of GPU memory prints "does not fit" and the next one runs.

Projected run = start + warm-up step + epochs x (epoch + validation) + a snapshot of the best
weights after every epoch (an upper bound: each a new best) + the resume states train.save_every
writes + last.pt and best.pt at the end. The fastest variant's projection gives the verdict line
"projected ClothoV2 stage-1 run: N min (goal 15): PASS/FAIL". This measures the loop as it runs,
unlike train_step_benchmark.py's synthetic steps.
Without a GPU it times one epoch of the demo's model on the CPU and prints "no GPU: skipped" for
the rest. --quick: the CPU epoch on 16 short clips, and the GPU's on 16 clips of 15-30 s (a check
that it runs, not a measurement).
"""

from __future__ import annotations

import argparse
import copy
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from train_step_benchmark import each_fitting, full_size_model_config

from audioretrieval.data.demo import DemoSpec, draw_clip, synthesize
from audioretrieval.data.h5audio import AudioH5Writer
from audioretrieval.files import save_torch_atomically, write_table_atomically
from audioretrieval.model.checkpoint import checkpoint_of
from audioretrieval.model.tokenizer import build_tokenizer
from audioretrieval.training import distributed, loop
from audioretrieval.training.spec import RunSpec
from audioretrieval.training.state import BestWeights, Progress, save_progress

REPO = Path(__file__).resolve().parents[1]
RATE = 32000
GOAL_MIN = 15.0
WORDS = (
    "a an the man woman child dog bird birds car cars engine wind rain water stream door footsteps "
    "people crowd talking speaking loudly softly while and with in on by over under near far away "
    "road street park forest kitchen room is are passes pass sings sing barks runs running hums "
    "humming rumbles whistles ringing bell metal wooden floor distance background quiet noisy"
).split()


def clips_h5(path: Path, count: int, shortest_s: float, longest_s: float, seed: int) -> None:
    """`count` clips of shortest_s..longest_s seconds, cut from 16 synthetic demo sources."""
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    sources = [synthesize(rng, draw_clip(rng, DemoSpec()), longest_s, RATE) for _ in range(16)]
    with AudioH5Writer(path, RATE, "int16") as writer:
        for k in range(count):
            seconds = rng.uniform(shortest_s, longest_s)
            writer.append(f"clip {k}.wav", sources[k % len(sources)][: int(seconds * RATE)], seconds)


def captions_table(path: Path, clips: int, seed: int) -> None:
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    rows = [
        (f"clip {k}.wav", k, i, " ".join(rng.choice(WORDS, rng.integers(8, 21))))
        for k in range(clips)
        for i in range(1, 6)
    ]
    write_table_atomically(pd.DataFrame(rows, columns=["file_name", "clip_index", "caption_index", "caption"]), path)


def dataset(workdir: Path, clips: int, val_clips: int, shortest_s: float, longest_s: float) -> dict:
    """The splits' files (built once) and a tokenizer."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, count, seed in (("development", clips, 0), ("validation", val_clips, 1)):
        audio = workdir / f"{split}_{count}_{shortest_s:g}-{longest_s:g}s.h5"
        captions = workdir / f"{split}_{count}_captions.parquet"
        clips_h5(audio, count, shortest_s, longest_s, seed)
        captions_table(captions, count, seed)
        files[split] = (str(audio), str(captions))
    tokenizer = workdir / "tokenizer"
    if not tokenizer.exists():
        build_tokenizer(files["development"][1], tokenizer, 1000)
    files["tokenizer"] = str(tokenizer)
    return files


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def measure_epoch(spec: RunSpec) -> dict:
    """The loop's parts, timed in seconds, for one run of `spec`."""
    run, seconds = timed(lambda: loop.start(spec), torch.device("cpu"))
    times = {"start": seconds}
    run.ddp_model = distributed.wrapped(run.model, run.device, spec.train["gradient_compression"])
    first = next(iter(run.loader))
    _, times["warm-up step"] = timed(lambda: loop.train_step(run, first, 0.0).cpu(), run.device)
    losses, times["epoch"] = timed(lambda: loop.train_epoch(run, 0, progress=False), run.device)
    if not all(math.isfinite(loss) for loss in losses):
        raise FloatingPointError(f"non-finite training loss in {spec.run_dir}")
    _, times["first validation"] = timed(lambda: loop.validate(run, 0), run.device)
    metrics, times["validation"] = timed(lambda: loop.validate(run, 0), run.device)
    done = Progress(rows=[{"epoch": 1}])
    best = BestWeights(spec.resume_dir)
    try:
        _, times["best snapshot"] = timed(lambda: loop.keep_if_best(run, 0, metrics, done, best), run.device)
        _, times["best write (background)"] = timed(best.settled, run.device)
        _, times["resume state"] = timed(
            lambda: save_progress(spec, 0, done, run.model, run.optimizer, run.scaler, best), run.device
        )
    finally:
        best.close()
    snapshot = checkpoint_of(run.model, spec.model, spec.train["segment_s"], 0, metrics, spec.seed)
    _, times["last.pt"] = timed(lambda: save_torch_atomically(snapshot, spec.last), run.device)
    times["steps"] = run.steps_per_epoch
    if run.device.type == "cuda":
        times["peak GPU memory (MB)"] = torch.cuda.max_memory_allocated() / 2**20
    return times


def projected_s(times: dict, train_cfg: dict) -> float:
    """A stage-1 run's seconds from one measured epoch (see the module's docstring)."""
    epochs = train_cfg["epochs"]
    saves = sum(1 for epoch in range(epochs - 1) if (epoch + 1) % train_cfg["save_every"] == 0)
    return (
        times["start"]
        + times["warm-up step"]
        + epochs * (times["epoch"] + times["validation"] + times["best snapshot"])
        + times["first validation"]
        - times["validation"]
        + saves * times["resume state"]
        + 2 * times["last.pt"]
    )


def report(name: str, times: dict, train_cfg: dict) -> float:
    seconds = projected_s(times, train_cfg)
    parts = ", ".join(f"{key} {value:.2f}" for key, value in times.items() if key != "steps")
    print(
        f"{name}: {times['steps']} steps; {parts} (s); projected {train_cfg['epochs']}-epoch run {seconds / 60:.1f} min"
    )
    return seconds


def run_spec(files: dict, model: dict, train_cfg: dict, run_dir: Path) -> RunSpec:
    return RunSpec(
        seed=1,
        model=model,
        train=train_cfg,
        train_audio=files["development"][0],
        train_captions=files["development"][1],
        val_audio=files["validation"][0],
        val_captions=files["validation"][1],
        best=str(run_dir / "best.pt"),
        last=str(run_dir / "last.pt"),
        log_table=str(run_dir / "log.csv"),
    )


def cpu_epoch(workdir: Path, quick: bool) -> None:
    """One epoch of the demo's model and settings on the CPU (16 clips of 2-4 s with --quick)."""
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    files = dataset(workdir / "cpu", 16 if quick else 300, 8 if quick else 100, 2.0, 4.0)
    model = copy.deepcopy(demo["model"])
    model["text"].update(name=None, tokenizer=files["tokenizer"], freeze=False, pooling="first")
    train_cfg = {**demo["train"], "batch_size": 16 if quick else 64, "eval_batch_size": 16}
    times = measure_epoch(run_spec(files, model, train_cfg, workdir / "cpu-run"))
    report(f"(a) CPU epoch, demo model, fp32, {torch.get_num_threads()} threads", times, train_cfg)


def gpu_epochs(workdir: Path, clips: int, val_clips: int) -> None:
    paper = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    files = dataset(workdir / "clotho-sized", clips, val_clips, 15.0, 30.0)
    print(f"GPU: {torch.cuda.get_device_name()}")
    precisions = ["fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    variants = [(precision, compiled) for precision in precisions for compiled in (False, True)]
    fastest = None

    def epoch(precision: str, compiled: bool) -> dict:
        train_cfg = {**paper["train"], "precision": precision, "compile": compiled}
        run_dir = workdir / f"run-{precision}-{'compiled' if compiled else 'eager'}"
        shutil.rmtree(run_dir, ignore_errors=True)
        try:
            return measure_epoch(run_spec(files, full_size_model_config(files["tokenizer"]), train_cfg, run_dir))
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)  # gigabytes of checkpoints

    for (precision, compiled), times in each_fitting(variants, epoch):
        name = f"(a) ClothoV2-sized epoch, full size, {precision}" + (", compiled" if compiled else "")
        if times is None:
            print(f"{name}: does not fit in GPU memory")
            continue
        seconds = report(name, times, paper["train"])
        if fastest is None or seconds < fastest[0]:
            fastest = (seconds, name)
    if fastest is None:
        print("projected ClothoV2 stage-1 run: no variant fits in this GPU's memory: FAIL")
        return
    minutes = fastest[0] / 60
    verdict = "PASS" if minutes < GOAL_MIN else "FAIL"
    print(f"projected ClothoV2 stage-1 run: {minutes:.1f} min (goal {GOAL_MIN:g}): {verdict} [{fastest[1]}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "epoch-benchmark")
    parser.add_argument("--clips", type=int, default=3839, help="training clips (ClothoV2 development: 3,839)")
    parser.add_argument("--val-clips", type=int, default=1045, help="validation clips (ClothoV2: 1,045)")
    parser.add_argument("--quick", action="store_true", help="a CPU epoch on 16 short clips")
    args = parser.parse_args()
    cpu_epoch(args.workdir, args.quick)
    if not torch.cuda.is_available():
        print("projected ClothoV2 stage-1 run: no GPU: skipped")
        return
    gpu_epochs(args.workdir, 16 if args.quick else args.clips, 8 if args.quick else args.val_clips)


if __name__ == "__main__":
    sys.exit(main())
